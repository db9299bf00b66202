// Package attest is the hub's check of a TPM device's attestation: it
// joins the hub (which asks) and the device key package (which knows how
// to verify a TPM quote and certification), and maps each way a check can
// fail to the refusal code the hub sends and audits (docs/hub.md,
// "Refusals"). It lives apart from both so that neither imports the other.
package attest

import (
	"crypto"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/hub"
)

// EKNotChecked is the warning a hub gives when TPM endorsement key
// certificates are not checked.
const EKNotChecked = "hub: TPM endorsement key certificates are not checked ([hub_server] ek_roots is not set): a TPM device's endorsement key is trusted on first use, so a device made entirely in software can enroll as a TPM device"

// Verifier returns the hub's check of a TPM device's attestation
// (devicekey.Verify): the quote and certification must be made for this
// nonce by the pinned AK (any AK at the first enrollment) and show the
// recorded PCR values; with ekRoots, an enrollment also needs an EK
// certificate that chains to them and certifies the EK presented. A
// refusal is a *hub.AttestationError saying which check failed. Without
// ekRoots the first TPM enrollment logs EKNotChecked once.
func Verifier(ekRoots *devicekey.EKRoots, log *slog.Logger) hub.VerifyAttestation {
	var once sync.Once
	return func(raw json.RawMessage, pub crypto.PublicKey, nonce []byte, want hub.AttestationPolicy) (*hub.AttestationResult, error) {
		res, err := Verify(raw, pub, nonce, want, ekRoots)
		if err == nil && want.Enrollment && ekRoots == nil && log != nil {
			once.Do(func() { log.Warn(EKNotChecked) })
		}
		return res, err
	}
}

// Verify checks one attestation; see [Verifier].
func Verify(raw json.RawMessage, pub crypto.PublicKey, nonce []byte, want hub.AttestationPolicy, ekRoots *devicekey.EKRoots) (*hub.AttestationResult, error) {
	att, err := devicekey.ParseAttestation(raw)
	if err != nil {
		return nil, &hub.AttestationError{Code: hub.CodeBadAttestation, Err: err}
	}
	v, err := devicekey.Verify(att, pub, nonce, devicekey.Policy{AK: want.AK, PCRs: want.PCRs})
	if err == nil && want.Enrollment && ekRoots != nil {
		// After Verify: the evidence is fresh and signed, so a refusal
		// here is about the TPM itself, not a replay.
		_, err = ekRoots.VerifyEKCert(v.EKPublic, v.EKCert, time.Now())
	}
	if err != nil {
		return nil, Refusal(err)
	}
	return &hub.AttestationResult{AK: v.AK, EKPublic: v.EKPublic, PCRs: v.PCRs}, nil
}

// Refusal maps a failed check to the hub's refusal: the code a device is
// told and the audit log records.
func Refusal(err error) *hub.AttestationError {
	ae := &hub.AttestationError{Code: hub.CodeBadAttestation, Err: err}
	var pm *devicekey.PCRMismatchError
	switch {
	case errors.As(err, &pm):
		ae.Code, ae.PCR = hub.CodePCRChanged, pm.PCR
	case errors.Is(err, devicekey.ErrStaleNonce):
		ae.Code = hub.CodeStaleAttestation
	case errors.Is(err, devicekey.ErrUncertifiedKey):
		ae.Code = hub.CodeUncertifiedKey
	case errors.Is(err, devicekey.ErrAKMismatch):
		ae.Code = hub.CodeWrongAK
	case errors.Is(err, devicekey.ErrEKUntrusted):
		ae.Code = hub.CodeEKUntrusted
	case errors.Is(err, devicekey.ErrEKMismatch):
		ae.Code = hub.CodeEKMismatch
	}
	return ae
}
