package sealbox

import (
	"bytes"
	"errors"
	"testing"
)

func TestDataKeySealOpen(t *testing.T) {
	k, err := NewDataKey(NewDataKeyMaterial())
	if err != nil {
		t.Fatal(err)
	}
	ad := AD{Tenant: "t1", Record: "q_1/call"}
	ct := k.Seal(ad, []byte("secret arguments"))
	if len(ct) != DataKeyOverhead+len("secret arguments") || !IsDataKeyCiphertext(ct) {
		t.Fatalf("ciphertext of %d bytes, header %x", len(ct), ct[0])
	}
	if bytes.Contains(ct, []byte("secret")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	pt, err := k.Open(ad, ct)
	if err != nil || string(pt) != "secret arguments" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	// Another tenant, another record, another key, a flipped bit: no.
	if _, err := k.Open(AD{Tenant: "t2", Record: "q_1/call"}, ct); !errors.Is(err, ErrOpen) {
		t.Errorf("other tenant: %v", err)
	}
	if _, err := k.Open(AD{Tenant: "t1", Record: "q_2/call"}, ct); !errors.Is(err, ErrOpen) {
		t.Errorf("other record: %v", err)
	}
	other, _ := NewDataKey(NewDataKeyMaterial())
	if _, err := other.Open(ad, ct); !errors.Is(err, ErrOpen) {
		t.Errorf("other key: %v", err)
	}
	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 1
	if _, err := k.Open(ad, bad); !errors.Is(err, ErrOpen) {
		t.Errorf("altered: %v", err)
	}
	if _, err := k.Open(ad, ct[:10]); !errors.Is(err, ErrDataKeyFormat) {
		t.Errorf("short: %v", err)
	}
	if _, err := NewDataKey(make([]byte, 16)); err == nil {
		t.Error("a 16-byte key was accepted")
	}
	// Two seals of one plaintext differ (random nonces).
	if bytes.Equal(k.Seal(ad, []byte("x")), k.Seal(ad, []byte("x"))) {
		t.Error("two seals are equal")
	}
}

func FuzzDataKeyOpen(f *testing.F) {
	k, _ := NewDataKey(bytes.Repeat([]byte{7}, KeySize))
	f.Add(k.Seal(AD{Tenant: "t", Record: "r"}, []byte("hello")))
	f.Add([]byte{dataKeyVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := k.Open(AD{Tenant: "t", Record: "r"}, b)
		if err == nil && string(pt) != "hello" {
			t.Fatalf("opened a forged ciphertext: %q", pt)
		}
	})
}
