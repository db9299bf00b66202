package devicekey_test

import (
	"testing"

	"github.com/mcpedge/mcpedge/internal/devicekey"
)

// FuzzMakeCredential decodes an EK and an AK public area from outside
// (an attestation's ek_public and ak_public, as the hub receives them):
// no input may panic, and only well-formed areas make a credential.
func FuzzMakeCredential(f *testing.F) {
	s, _, _ := loadSeed(f)
	a := s.Attestation
	f.Add(a.EKPublic, a.AKPublic)
	f.Add(a.AKPublic, a.AKPublic)
	f.Add(a.EKPublic, a.EKPublic)
	f.Add([]byte{}, a.AKPublic)
	f.Add(a.EKPublic[:len(a.EKPublic)-1], a.AKPublic)
	f.Add(a.EKPublic, []byte{0, 0x23, 0, 0x0b})
	f.Fuzz(func(t *testing.T, ek, ak []byte) {
		blob, enc, err := devicekey.MakeCredential(ek, ak, []byte("0123456789abcdef0123456789abcdef"))
		if err == nil && (len(blob) == 0 || len(enc) == 0) {
			t.Fatalf("MakeCredential returned an empty credential without an error")
		}
	})
}
