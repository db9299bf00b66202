package devicekey_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/devicekey/swtpmtest"
)

// TestCredentialActivation: a credential made (in Go) for a TPM's EK and
// AK is activated by that TPM; one made for this TPM's EK but another
// TPM's AK (a "software AK presented with a real EK") is not, and
// neither is one made for another TPM's EK.
func TestCredentialActivation(t *testing.T) {
	sw1, sw2 := swtpmtest.Start(t), swtpmtest.Start(t)
	k1 := openTPM(t, sw1.Addr, t.TempDir())
	k2 := openTPM(t, sw2.Addr, t.TempDir())
	a1, a2 := attest(t, k1, nonce(t)), attest(t, k2, nonce(t))
	if bytes.Equal(a1.EKPublic, a2.EKPublic) || bytes.Equal(a1.AKPublic, a2.AKPublic) {
		t.Fatal("two swtpms have the same EK or AK")
	}
	act1 := k1.(devicekey.CredentialActivator)
	secret := nonce(t)

	blob, enc, err := devicekey.MakeCredential(a1.EKPublic, a1.AKPublic, secret)
	if err != nil {
		t.Fatalf("MakeCredential: %v", err)
	}
	got, err := act1.ActivateCredential(blob, enc)
	if err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("activated %x, want %x", got, secret)
	}

	// This TPM's EK, the other TPM's AK: this TPM holds no object of
	// that name, so it does not release the secret.
	blob, enc, err = devicekey.MakeCredential(a1.EKPublic, a2.AKPublic, secret)
	if err != nil {
		t.Fatalf("MakeCredential: %v", err)
	}
	if got, err := act1.ActivateCredential(blob, enc); !errors.Is(err, devicekey.ErrActivation) {
		t.Fatalf("activating a credential for another TPM's AK: %x, %v; want ErrActivation", got, err)
	}
	// And the other TPM, whose AK it names, does not hold this EK.
	if got, err := k2.(devicekey.CredentialActivator).ActivateCredential(blob, enc); !errors.Is(err, devicekey.ErrActivation) {
		t.Fatalf("activating a credential for another TPM's EK: %x, %v; want ErrActivation", got, err)
	}
	// A tampered blob is refused too.
	blob, enc, _ = devicekey.MakeCredential(a1.EKPublic, a1.AKPublic, secret)
	blob[len(blob)-1] ^= 1
	if _, err := act1.ActivateCredential(blob, enc); !errors.Is(err, devicekey.ErrActivation) {
		t.Fatalf("activating a tampered credential: %v; want ErrActivation", err)
	}
	// The TPM still works afterwards (no object slot leaked).
	blob, enc, _ = devicekey.MakeCredential(a1.EKPublic, a1.AKPublic, secret)
	if _, err := act1.ActivateCredential(blob, enc); err != nil {
		t.Fatalf("ActivateCredential after failures: %v", err)
	}
	attest(t, k1, nonce(t))

	// Refusals of MakeCredential: an AK as "EK" (a signing key), junk.
	if _, _, err := devicekey.MakeCredential(a1.AKPublic, a1.AKPublic, secret); !errors.Is(err, devicekey.ErrMalformed) {
		t.Errorf("MakeCredential with a signing key as EK: %v", err)
	}
	if _, _, err := devicekey.MakeCredential(a1.EKPublic, []byte{1, 2, 3}, secret); !errors.Is(err, devicekey.ErrMalformed) {
		t.Errorf("MakeCredential with junk AK: %v", err)
	}
	if _, _, err := devicekey.MakeCredential(a1.EKPublic, a1.AKPublic, make([]byte, 33)); err == nil {
		t.Error("MakeCredential took a 33-byte secret")
	}
}

// BenchmarkMakeCredential is the hub's cost per TPM enrollment challenge.
func BenchmarkMakeCredential(b *testing.B) {
	s, _, _ := loadSeed(b)
	secret := make([]byte, devicekey.MaxCredentialSecret)
	for b.Loop() {
		if _, _, err := devicekey.MakeCredential(s.Attestation.EKPublic, s.Attestation.AKPublic, secret); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkActivateCredential is the device's cost per enrollment
// (EK, AK and TPM2_ActivateCredential on swtpm).
func BenchmarkActivateCredential(b *testing.B) {
	sw := swtpmtest.Start(b)
	k, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: b.TempDir(), TPM: sw.Addr})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	n := make([]byte, 32)
	att, err := k.Attest(n)
	if err != nil {
		b.Fatal(err)
	}
	blob, enc, err := devicekey.MakeCredential(att.EKPublic, att.AKPublic, n)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.(devicekey.CredentialActivator).ActivateCredential(blob, enc); err != nil {
			b.Fatal(err)
		}
	}
}
