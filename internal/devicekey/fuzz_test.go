package devicekey_test

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/mcpedge/mcpedge/internal/devicekey"
)

// seed is a real attestation from swtpm (PCRs 0, 7 and 23), kept in
// testdata so that the fuzz targets start from valid evidence without
// needing swtpm.
type seed struct {
	Nonce        []byte                 `json:"nonce"`
	DevicePublic []byte                 `json:"device_public"`
	Attestation  *devicekey.Attestation `json:"attestation"`
}

func loadSeed(t testing.TB) (seed, *ecdsa.PublicKey, []byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/attestation.json")
	if err != nil {
		t.Fatal(err)
	}
	var s seed
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(s.DevicePublic)
	if err != nil {
		t.Fatal(err)
	}
	attJSON, err := json.Marshal(s.Attestation)
	if err != nil {
		t.Fatal(err)
	}
	return s, pub.(*ecdsa.PublicKey), attJSON
}

// The recorded attestation verifies: the seed is valid evidence, and
// Verify needs no TPM.
func TestVerifyRecorded(t *testing.T) {
	s, pub, _ := loadSeed(t)
	v, err := devicekey.Verify(s.Attestation, pub, s.Nonce, devicekey.Policy{})
	if err != nil {
		t.Fatalf("recorded attestation: %v", err)
	}
	if len(v.PCRs) != 3 {
		t.Fatalf("PCRs %v", v.PCRs)
	}
	if _, err := devicekey.Verify(s.Attestation, pub, []byte("another nonce"), devicekey.Policy{}); !errors.Is(err, devicekey.ErrStaleNonce) {
		t.Fatalf("other nonce: %v", err)
	}
}

// FuzzParseAttestation decodes attestations as a hub receives them and
// verifies whatever decodes: no input may panic or verify unless it is
// the recorded evidence itself.
func FuzzParseAttestation(f *testing.F) {
	s, pub, attJSON := loadSeed(f)
	f.Add(attJSON)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":1,"pcrs":{"0":"AAAA"}}`))
	f.Add([]byte(`{"version":1,"ak_public":"AAAA","quote":"/1RDRw==","quote_sig":"ABgACwAA"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		att, err := devicekey.ParseAttestation(b)
		if err != nil {
			if !errors.Is(err, devicekey.ErrMalformed) {
				t.Fatalf("ParseAttestation error %v does not wrap ErrMalformed", err)
			}
			return
		}
		_, _ = devicekey.Verify(att, pub, s.Nonce, devicekey.Policy{})
	})
}

// FuzzVerify replaces one field of valid evidence with arbitrary bytes:
// Verify must not panic, and must not accept a signed structure that was
// changed.
func FuzzVerify(f *testing.F) {
	s, pub, _ := loadSeed(f)
	a := s.Attestation
	fields := []*[]byte{&a.AKPublic, &a.KeyPublic, &a.Certify, &a.CertifySig, &a.Quote, &a.QuoteSig, &a.EKPublic}
	for i, p := range fields {
		f.Add(uint8(i), *p)
		f.Add(uint8(i), []byte{})
		if len(*p) > 4 {
			f.Add(uint8(i), (*p)[:len(*p)-1])
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		c := *a
		fields := []*[]byte{&c.AKPublic, &c.KeyPublic, &c.Certify, &c.CertifySig, &c.Quote, &c.QuoteSig, &c.EKPublic}
		i := int(which) % len(fields)
		orig := string(*fields[i])
		*fields[i] = data
		_, err := devicekey.Verify(&c, pub, s.Nonce, devicekey.Policy{})
		// Only the EK is not signed evidence; any other change must fail.
		if err == nil && i != len(fields)-1 && string(data) != orig {
			t.Fatalf("Verify accepted field %d changed to %x", i, data)
		}
	})
}
