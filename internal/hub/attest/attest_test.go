package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/hub"
)

// Each way a check fails has its own refusal code; anything else is
// bad_attestation. (The checks themselves are tested against real swtpm
// instances in internal/devicekey and end to end in cmd/mcpedge.)
func TestRefusalCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
		pcr  int
	}{
		{devicekey.ErrStaleNonce, hub.CodeStaleAttestation, 0},
		{fmt.Errorf("quote: %w", devicekey.ErrUncertifiedKey), hub.CodeUncertifiedKey, 0},
		{devicekey.ErrAKMismatch, hub.CodeWrongAK, 0},
		{devicekey.ErrEKUntrusted, hub.CodeEKUntrusted, 0},
		{devicekey.ErrEKMismatch, hub.CodeEKMismatch, 0},
		{&devicekey.PCRMismatchError{PCR: 7}, hub.CodePCRChanged, 7},
		{errors.New("something else"), hub.CodeBadAttestation, 0},
	} {
		ae := Refusal(tc.err)
		if ae.Code != tc.code || ae.PCR != tc.pcr || ae.Err != tc.err {
			t.Errorf("Refusal(%v) = %+v, want code %s pcr %d", tc.err, ae, tc.code, tc.pcr)
		}
	}
}

// Evidence that does not parse is refused as bad_attestation.
func TestVerifyRefusesGarbage(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{`null`, `{}`, `{"quote":"not base64"}`, `[1,2]`} {
		_, err := Verifier(nil, nil)([]byte(raw), &k.PublicKey, []byte("nonce"), hub.AttestationPolicy{Enrollment: true})
		var ae *hub.AttestationError
		if !errors.As(err, &ae) || ae.Code != hub.CodeBadAttestation {
			t.Errorf("attestation %s: err = %v, want %s", raw, err, hub.CodeBadAttestation)
		}
	}
}
