package devicekey_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/sealbox"
)

func openFile(t *testing.T, dir string, master sealbox.KeySource) devicekey.Key {
	t.Helper()
	k, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: dir, TPM: "off", Master: master})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// signVerify signs a digest with k and checks the signature with the
// public key alone, as the hub would.
func signVerify(t *testing.T, k devicekey.Key) {
	t.Helper()
	digest := sha256.Sum256([]byte("enroll me"))
	sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("Public is %T, want *ecdsa.PublicKey", k.Public())
	}
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		t.Fatal("signature does not verify under the public key")
	}
	other := sha256.Sum256([]byte("something else"))
	if ecdsa.VerifyASN1(pub, other[:], sig) {
		t.Fatal("signature verifies for another digest")
	}
	if _, err := k.Sign(rand.Reader, digest[:16], crypto.SHA256); err == nil {
		t.Fatal("Sign accepted a 16-byte digest")
	}
	if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA384); err == nil {
		t.Fatal("Sign accepted SHA-384")
	}
}

func checkID(t *testing.T, k devicekey.Key) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	if want := hex.EncodeToString(sum[:])[:32]; k.ID() != want {
		t.Fatalf("ID = %q, want %q", k.ID(), want)
	}
}

func TestFileKeyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	master := sealbox.FileKey(filepath.Join(t.TempDir(), "master.key"))
	k1 := openFile(t, dir, master)
	if k1.Kind() != devicekey.KindFile {
		t.Fatalf("Kind = %q", k1.Kind())
	}
	checkID(t, k1)
	signVerify(t, k1)
	if _, err := k1.Attest([]byte("nonce")); !errors.Is(err, devicekey.ErrNotAttestable) {
		t.Fatalf("Attest on a file key: %v, want ErrNotAttestable", err)
	}
	fi, err := os.Stat(filepath.Join(dir, devicekey.FileKeyName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("device.key mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(filepath.Join(dir, devicekey.FileKeyName))
	if strings.Contains(string(raw), "PRIVATE KEY") || len(raw) < 100 {
		t.Fatalf("device.key does not look sealed: %q", raw)
	}
	k1.Close()

	k2 := openFile(t, dir, master)
	if k2.ID() != k1.ID() {
		t.Fatalf("reopened key has id %s, want %s", k2.ID(), k1.ID())
	}
	signVerify(t, k2)
}

func TestFileKeyWrongMaster(t *testing.T) {
	dir := t.TempDir()
	masterPath := filepath.Join(t.TempDir(), "master.key")
	openFile(t, dir, sealbox.FileKey(masterPath)).Close()

	other := sealbox.FileKey(filepath.Join(t.TempDir(), "other.key"))
	_, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: dir, TPM: "off", Master: other})
	if err == nil {
		t.Fatal("Open with another master key succeeded")
	}
	for _, want := range []string{filepath.Join(dir, "device.key"), "other.key", "another master key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// An environment key that is not set names the variable.
	_, err = devicekey.Open(context.Background(), devicekey.Options{DataDir: dir, TPM: "off", Master: sealbox.EnvKey("MCPEDGE_TEST_NO_SUCH_VAR")})
	if err == nil || !strings.Contains(err.Error(), "MCPEDGE_TEST_NO_SUCH_VAR") {
		t.Fatalf("Open with an unset env key: %v", err)
	}

	// A tampered file does not open either, and is not replaced.
	path := filepath.Join(dir, devicekey.FileKeyName)
	raw, _ := os.ReadFile(path)
	raw[len(raw)-1] ^= 1
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: dir, TPM: "off", Master: sealbox.FileKey(masterPath)}); err == nil {
		t.Fatal("a tampered device.key opened")
	}
	if err := os.WriteFile(path, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: dir, TPM: "off", Master: sealbox.FileKey(masterPath)}); err == nil || !strings.Contains(err.Error(), "not a sealed mcpedge device key") {
		t.Fatalf("junk device.key: %v", err)
	}
}

// The default master key: the environment variable when set, else a key
// file in the data directory.
func TestFileKeyDefaultMaster(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(devicekey.MasterKeyEnv, "")
	k := openFile(t, dir, nil)
	if _, err := os.Stat(filepath.Join(dir, devicekey.MasterKeyName)); err != nil {
		t.Fatalf("default master key file: %v", err)
	}
	k.Close()

	dir2 := t.TempDir()
	t.Setenv(devicekey.MasterKeyEnv, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	k2 := openFile(t, dir2, nil)
	if _, err := os.Stat(filepath.Join(dir2, devicekey.MasterKeyName)); err == nil {
		t.Fatal("a master key file was made although the environment variable is set")
	}
	k2.Close()
	t.Setenv(devicekey.MasterKeyEnv, "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if _, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: dir2, TPM: "off"}); err == nil || !strings.Contains(err.Error(), devicekey.MasterKeyEnv) {
		t.Fatalf("another env key: %v", err)
	}
}

// Processes (here goroutines) starting at once agree on one key.
func TestFileKeyConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	master := sealbox.FileKey(filepath.Join(dir, "master.key"))
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: dir, TPM: "off", Master: master})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = k.ID()
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids differ: %v", ids)
		}
	}
}

func TestOpenOptionErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := devicekey.Open(ctx, devicekey.Options{TPM: "off"}); err == nil {
		t.Error("Open without a data directory succeeded")
	}
	if _, err := devicekey.Open(ctx, devicekey.Options{DataDir: t.TempDir(), TPM: "maybe"}); err == nil || !strings.Contains(err.Error(), "maybe") {
		t.Errorf("tpm = maybe: %v", err)
	}
	if _, err := devicekey.Open(ctx, devicekey.Options{DataDir: t.TempDir(), TPM: "off", PCRs: []int{24}}); err == nil {
		t.Error("PCR 24 accepted")
	}
	if _, err := devicekey.Open(ctx, devicekey.Options{DataDir: t.TempDir(), TPM: "/nonexistent/tpm"}); err == nil || !strings.Contains(err.Error(), "/nonexistent/tpm") {
		t.Errorf("missing TPM device: %v", err)
	}
	// Nothing listens: a clear error, quickly, not a hang.
	if _, err := devicekey.Open(ctx, devicekey.Options{DataDir: t.TempDir(), TPM: "tcp://127.0.0.1:1"}); err == nil {
		t.Error("tcp TPM with nothing listening succeeded")
	}
	if _, err := devicekey.Open(ctx, devicekey.Options{DataDir: t.TempDir(), TPM: "tcp://127.0.0.1"}); err == nil {
		t.Error("tcp TPM without a port accepted")
	}
}
