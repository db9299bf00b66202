package devicekey_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/devicekey/swtpmtest"
	"github.com/mcpedge/mcpedge/internal/sealbox"
)

// BenchmarkVerify is the hub's cost per enrollment or re-attestation.
func BenchmarkVerify(b *testing.B) {
	s, pub, _ := loadSeed(b)
	for b.Loop() {
		if _, err := devicekey.Verify(s.Attestation, pub, s.Nonce, devicekey.Policy{}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSign(b *testing.B, k devicekey.Key) {
	digest := sha256.Sum256([]byte("x"))
	for b.Loop() {
		if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFileKeySign(b *testing.B) {
	k, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: b.TempDir(), TPM: "off", Master: sealbox.FileKey(filepath.Join(b.TempDir(), "m"))})
	if err != nil {
		b.Fatal(err)
	}
	benchSign(b, k)
}

func BenchmarkSWTPM(b *testing.B) {
	sw := swtpmtest.Start(b)
	dir := b.TempDir()
	open := func() devicekey.Key {
		k, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: dir, TPM: sw.Addr})
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	open().Close() // creates the key
	b.Run("Open", func(b *testing.B) {
		for b.Loop() {
			open().Close()
		}
	})
	k := open()
	defer k.Close()
	b.Run("Sign", func(b *testing.B) { benchSign(b, k) })
	b.Run("Attest", func(b *testing.B) {
		n := []byte("0123456789abcdef0123456789abcdef")
		for b.Loop() {
			if _, err := k.Attest(n); err != nil {
				b.Fatal(err)
			}
		}
	})
}
