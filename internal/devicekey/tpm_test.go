package devicekey_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/devicekey/swtpmtest"
	"github.com/mcpedge/mcpedge/internal/sealbox"
)

func openTPM(t *testing.T, tpm, dir string, pcrs ...int) devicekey.Key {
	t.Helper()
	k, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: dir, TPM: tpm, PCRs: pcrs})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func nonce(t *testing.T) []byte {
	n := make([]byte, 32)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	return n
}

// attest makes an attestation and sends it through JSON, as it travels
// to the hub.
func attest(t *testing.T, k devicekey.Key, n []byte) *devicekey.Attestation {
	t.Helper()
	att, err := k.Attest(n)
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	b, err := json.Marshal(att)
	if err != nil {
		t.Fatal(err)
	}
	back, err := devicekey.ParseAttestation(b)
	if err != nil {
		t.Fatalf("ParseAttestation: %v", err)
	}
	return back
}

func TestTPMKeyPersists(t *testing.T) {
	sw := swtpmtest.Start(t)
	dir := t.TempDir()
	k1 := openTPM(t, sw.Addr, dir)
	if k1.Kind() != devicekey.KindTPM {
		t.Fatalf("Kind = %q", k1.Kind())
	}
	checkID(t, k1)
	signVerify(t, k1)
	id := k1.ID()
	if err := k1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, devicekey.TPMKeyName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("device.tpm mode %v", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, devicekey.FileKeyName)); err == nil {
		t.Fatal("a TPM key also wrote device.key")
	}

	// Open and close many times: a TPM without a resource manager has
	// few object slots, so a leaked handle would show here.
	for i := 0; i < 6; i++ {
		k := openTPM(t, sw.Addr, dir)
		if k.ID() != id {
			t.Fatalf("open %d: id %s, want %s", i, k.ID(), id)
		}
		if _, err := k.Attest(nonce(t)); err != nil {
			t.Fatalf("open %d: Attest: %v", i, err)
		}
		k.Close()
	}
	k2 := openTPM(t, sw.Addr, dir)
	signVerify(t, k2)

	// Another data directory on the same TPM is another device key.
	k3 := openTPM(t, sw.Addr, t.TempDir())
	if k3.ID() == id {
		t.Fatal("a second key has the same id")
	}
}

// Signing and attesting at once from several goroutines: the key
// serializes its TPM commands.
func TestTPMKeyConcurrent(t *testing.T) {
	sw := swtpmtest.Start(t)
	k := openTPM(t, sw.Addr, t.TempDir())
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			digest := sha256.Sum256([]byte{byte(i)})
			sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil || !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest[:], sig) {
				t.Errorf("Sign: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			n := []byte{byte(i), 1, 2, 3}
			att, err := k.Attest(n)
			if err != nil {
				t.Errorf("Attest: %v", err)
				return
			}
			if _, err := devicekey.Verify(att, k.Public(), n, devicekey.Policy{}); err != nil {
				t.Errorf("Verify: %v", err)
			}
		}()
	}
	wg.Wait()
	k.Close()
	digest := sha256.Sum256(nil)
	if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err == nil {
		t.Error("Sign after Close succeeded")
	}
	if _, err := k.Attest([]byte("n")); err == nil {
		t.Error("Attest after Close succeeded")
	}
}

func TestTPMKeyOtherTPM(t *testing.T) {
	sw1, sw2 := swtpmtest.Start(t), swtpmtest.Start(t)
	dir := t.TempDir()
	openTPM(t, sw1.Addr, dir).Close()
	_, err := devicekey.Open(context.Background(), devicekey.Options{DataDir: dir, TPM: sw2.Addr})
	if err == nil {
		t.Fatal("a key made by one TPM loaded in another")
	}
	if !strings.Contains(err.Error(), "another TPM") || !strings.Contains(err.Error(), devicekey.TPMKeyName) {
		t.Fatalf("error does not explain: %v", err)
	}
	if testing.Verbose() {
		t.Log(err)
	}
}

func TestAttestation(t *testing.T) {
	sw := swtpmtest.Start(t)
	k := openTPM(t, sw.Addr, t.TempDir())
	n := nonce(t)
	att := attest(t, k, n)

	v, err := devicekey.Verify(att, k.Public(), n, devicekey.Policy{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(v.PCRs) != len(devicekey.DefaultPCRs) {
		t.Fatalf("verified %d PCRs, want %d", len(v.PCRs), len(devicekey.DefaultPCRs))
	}
	cur, err := k.(devicekey.PCRReader).PCRs()
	if err != nil {
		t.Fatal(err)
	}
	for i, val := range cur {
		if !bytes.Equal(v.PCRs[i], val) {
			t.Fatalf("PCR %d: verified %x, TPM has %x", i, v.PCRs[i], val)
		}
	}
	if len(att.EKPublic) == 0 {
		t.Error("no EK public in the attestation")
	}

	// Second round, as after enrollment: AK pinned, PCRs enforced.
	pol := devicekey.Policy{AK: v.AK, PCRs: v.PCRs}
	n2 := nonce(t)
	att2 := attest(t, k, n2)
	v2, err := devicekey.Verify(att2, k.Public(), n2, pol)
	if err != nil {
		t.Fatalf("Verify with pinned AK and PCRs: %v", err)
	}
	if !bytes.Equal(v2.AK, v.AK) {
		t.Fatal("the AK changed between attestations")
	}
	if v2.Clock < v.Clock {
		t.Errorf("TPM clock went back: %d then %d", v.Clock, v2.Clock)
	}

	// The AK survives reopening the key (it is derived, not stored).
	k.Close()
	k = openTPM(t, sw.Addr, t.TempDir())
	n3 := nonce(t)
	att3 := attest(t, k, n3)
	if _, err := devicekey.Verify(att3, k.Public(), n3, pol); err != nil {
		t.Fatalf("another key of the same TPM with the pinned AK: %v", err)
	}

	// A subset of PCRs.
	k4 := openTPM(t, sw.Addr, t.TempDir(), 7, 23, 0)
	n4 := nonce(t)
	v4, err := devicekey.Verify(attest(t, k4, n4), k4.Public(), n4, devicekey.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if len(v4.PCRs) != 3 || v4.PCRs[23] == nil {
		t.Fatalf("PCRs %v, want 0, 7 and 23", v4.PCRs)
	}

	if _, err := k.Attest(nil); err == nil {
		t.Error("Attest accepted an empty nonce")
	}
	if _, err := k.Attest(make([]byte, 33)); err == nil {
		t.Error("Attest accepted a 33-byte nonce")
	}
}

func TestAttestationStaleNonce(t *testing.T) {
	sw := swtpmtest.Start(t)
	k := openTPM(t, sw.Addr, t.TempDir())
	old := nonce(t)
	oldAtt := attest(t, k, old)
	if _, err := devicekey.Verify(oldAtt, k.Public(), old, devicekey.Policy{}); err != nil {
		t.Fatal(err)
	}
	// The verifier issued a new nonce, the device answers with the old
	// evidence: a replay.
	fresh := nonce(t)
	if _, err := devicekey.Verify(oldAtt, k.Public(), fresh, devicekey.Policy{}); !errors.Is(err, devicekey.ErrStaleNonce) {
		t.Fatalf("replayed attestation: %v, want ErrStaleNonce", err)
	}
	// A fresh quote spliced with an old certification is refused too.
	newAtt := attest(t, k, fresh)
	mixed := *newAtt
	mixed.Certify, mixed.CertifySig = oldAtt.Certify, oldAtt.CertifySig
	if _, err := devicekey.Verify(&mixed, k.Public(), fresh, devicekey.Policy{}); !errors.Is(err, devicekey.ErrStaleNonce) {
		t.Fatalf("old certify with a new quote: %v, want ErrStaleNonce", err)
	}
	if _, err := devicekey.Verify(newAtt, k.Public(), fresh, devicekey.Policy{}); err != nil {
		t.Fatalf("fresh attestation: %v", err)
	}
}

func TestAttestationPCRMismatch(t *testing.T) {
	sw := swtpmtest.Start(t)
	k := openTPM(t, sw.Addr, t.TempDir(), 16, 23)
	n := nonce(t)
	v, err := devicekey.Verify(attest(t, k, n), k.Public(), n, devicekey.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	pol := devicekey.Policy{PCRs: v.PCRs, AK: v.AK}

	// Something measured into PCR 23 after the policy was recorded.
	if err := devicekey.ExtendPCR(context.Background(), sw.Addr, 23, []byte("an unexpected configuration")); err != nil {
		t.Fatalf("ExtendPCR: %v", err)
	}
	n2 := nonce(t)
	att := attest(t, k, n2)
	_, err = devicekey.Verify(att, k.Public(), n2, pol)
	if !errors.Is(err, devicekey.ErrPCRMismatch) {
		t.Fatalf("after PCR_Extend: %v, want ErrPCRMismatch", err)
	}
	var pe *devicekey.PCRMismatchError
	if !errors.As(err, &pe) || pe.PCR != 23 || !strings.Contains(err.Error(), "PCR 23") {
		t.Fatalf("error does not name PCR 23: %v", err)
	}
	// Unenforced, the same evidence verifies and reports the new value.
	v2, err := devicekey.Verify(att, k.Public(), n2, devicekey.Policy{AK: v.AK})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(v2.PCRs[23], v.PCRs[23]) || !bytes.Equal(v2.PCRs[16], v.PCRs[16]) {
		t.Fatal("PCR 23 did not change, or PCR 16 did")
	}
	// A policy PCR that was not quoted.
	_, err = devicekey.Verify(att, k.Public(), n2, devicekey.Policy{PCRs: map[int][]byte{7: make([]byte, 32)}})
	if !errors.As(err, &pe) || pe.PCR != 7 || pe.Got != nil {
		t.Fatalf("unquoted PCR 7: %v", err)
	}
	// Reported values that are not the quoted ones.
	forged := *att
	forged.PCRs = map[int][]byte{16: v2.PCRs[16], 23: v.PCRs[23]}
	if _, err := devicekey.Verify(&forged, k.Public(), n2, pol); !errors.Is(err, devicekey.ErrBadSignature) {
		t.Fatalf("forged PCR values: %v, want ErrBadSignature", err)
	}
}

func TestAttestationUncertifiedKey(t *testing.T) {
	sw := swtpmtest.Start(t)
	k1 := openTPM(t, sw.Addr, t.TempDir())
	k2 := openTPM(t, sw.Addr, t.TempDir())
	n := nonce(t)
	att2 := attest(t, k2, n)

	// Evidence for k2 presented for k1.
	if _, err := devicekey.Verify(att2, k1.Public(), n, devicekey.Policy{}); !errors.Is(err, devicekey.ErrUncertifiedKey) {
		t.Fatalf("k2's attestation for k1: %v, want ErrUncertifiedKey", err)
	}
	// k1's public area with the AK's certification of k2.
	att1 := attest(t, k1, nonce(t))
	swapped := *att2
	swapped.KeyPublic = att1.KeyPublic
	if _, err := devicekey.Verify(&swapped, k1.Public(), n, devicekey.Policy{}); !errors.Is(err, devicekey.ErrUncertifiedKey) {
		t.Fatalf("certify of another key: %v, want ErrUncertifiedKey", err)
	}
	// A software key (a file key) presented with the TPM evidence of k2.
	soft, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devicekey.Verify(att2, &soft.PublicKey, n, devicekey.Policy{}); !errors.Is(err, devicekey.ErrUncertifiedKey) {
		t.Fatalf("software key: %v, want ErrUncertifiedKey", err)
	}
	file := openFile(t, t.TempDir(), sealbox.FileKey(filepath.Join(t.TempDir(), "m.key")))
	if _, err := devicekey.Verify(att2, file.Public(), n, devicekey.Policy{}); !errors.Is(err, devicekey.ErrUncertifiedKey) {
		t.Fatalf("file key: %v, want ErrUncertifiedKey", err)
	}
	// The AK of another TPM than the pinned one.
	sw2 := swtpmtest.Start(t)
	other := openTPM(t, sw2.Addr, t.TempDir())
	no := nonce(t)
	if _, err := devicekey.Verify(attest(t, other, no), other.Public(), no, devicekey.Policy{AK: att2.AKPublic}); !errors.Is(err, devicekey.ErrAKMismatch) {
		t.Fatalf("another TPM's AK: %v, want ErrAKMismatch", err)
	}
}

func TestAttestationTampered(t *testing.T) {
	sw := swtpmtest.Start(t)
	k := openTPM(t, sw.Addr, t.TempDir())
	n := nonce(t)
	att := attest(t, k, n)

	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	cases := map[string]func(a *devicekey.Attestation){
		// The last byte of a quote is in the PCR digest.
		"quote":       func(a *devicekey.Attestation) { a.Quote = flip(a.Quote, len(a.Quote)-1) },
		"quote sig":   func(a *devicekey.Attestation) { a.QuoteSig = flip(a.QuoteSig, len(a.QuoteSig)-1) },
		"certify":     func(a *devicekey.Attestation) { a.Certify = flip(a.Certify, len(a.Certify)-1) },
		"certify sig": func(a *devicekey.Attestation) { a.CertifySig = flip(a.CertifySig, len(a.CertifySig)-1) },
		"swapped sigs": func(a *devicekey.Attestation) {
			a.QuoteSig, a.CertifySig = a.CertifySig, a.QuoteSig
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := *att
			mutate(&c)
			if _, err := devicekey.Verify(&c, k.Public(), n, devicekey.Policy{}); !errors.Is(err, devicekey.ErrBadSignature) {
				t.Fatalf("%v, want ErrBadSignature", err)
			}
		})
	}
	// A quote signed by another TPM's AK, with this AK claimed.
	sw2 := swtpmtest.Start(t)
	other := openTPM(t, sw2.Addr, t.TempDir())
	oa := attest(t, other, n)
	c := *att
	c.Quote, c.QuoteSig = oa.Quote, oa.QuoteSig
	if _, err := devicekey.Verify(&c, k.Public(), n, devicekey.Policy{}); !errors.Is(err, devicekey.ErrBadSignature) {
		t.Fatalf("quote from another TPM: %v, want ErrBadSignature", err)
	}
	// Malformed pieces.
	for name, mutate := range map[string]func(a *devicekey.Attestation){
		"no ak":       func(a *devicekey.Attestation) { a.AKPublic = nil },
		"short ak":    func(a *devicekey.Attestation) { a.AKPublic = a.AKPublic[:10] },
		"trailing ak": func(a *devicekey.Attestation) { a.AKPublic = append(bytes.Clone(a.AKPublic), 0) },
		"version":     func(a *devicekey.Attestation) { a.Version = 2 },
		"no key":      func(a *devicekey.Attestation) { a.KeyPublic = nil },
	} {
		c := *att
		mutate(&c)
		if _, err := devicekey.Verify(&c, k.Public(), n, devicekey.Policy{}); !errors.Is(err, devicekey.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := devicekey.Verify(nil, k.Public(), n, devicekey.Policy{}); !errors.Is(err, devicekey.ErrMalformed) {
		t.Errorf("nil attestation: %v", err)
	}
}

func TestTPMSealedMasterKey(t *testing.T) {
	sw := swtpmtest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	src := devicekey.TPMSealedKey(devicekey.Options{DataDir: dir, TPM: sw.Addr})
	k1, err := src.MasterKey(ctx)
	if err != nil {
		t.Fatalf("MasterKey: %v", err)
	}
	if len(k1) != sealbox.KeySize || bytes.Equal(k1, make([]byte, sealbox.KeySize)) {
		t.Fatalf("master key %x", k1)
	}
	raw, err := os.ReadFile(filepath.Join(dir, devicekey.SealedMasterName))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, k1) {
		t.Fatal("master.tpm holds the key in the clear")
	}
	for i := 0; i < 5; i++ { // and no leaked object slots
		k2, err := src.MasterKey(ctx)
		if err != nil {
			t.Fatalf("MasterKey again: %v", err)
		}
		if !bytes.Equal(k1, k2) {
			t.Fatal("the unsealed master key changed")
		}
	}

	// Another file is another master key, from the same TPM.
	other, err := devicekey.TPMSealedKeyFile(sw.Addr, filepath.Join(dir, "store.tpm")).MasterKey(ctx)
	if err != nil {
		t.Fatalf("TPMSealedKeyFile: %v", err)
	}
	if bytes.Equal(other, k1) {
		t.Fatal("two sealed files hold the same master key")
	}
	if _, err := devicekey.TPMSealedKey(devicekey.Options{TPM: sw.Addr}).MasterKey(ctx); err == nil {
		t.Fatal("a sealed key without a data directory")
	}

	// It works as a sealbox key source, and seals a file device key,
	// while a TPM device key of the same TPM is open.
	tk := openTPM(t, sw.Addr, dir)
	fk, err := devicekey.Open(ctx, devicekey.Options{DataDir: dir, TPM: "off", Master: src})
	if err != nil {
		t.Fatalf("file key under the sealed master: %v", err)
	}
	signVerify(t, fk)
	signVerify(t, tk)
	if _, err := sealbox.New(ctx, src, nil); err != nil {
		t.Fatalf("sealbox.New: %v", err)
	}

	// Another TPM cannot unseal it.
	sw2 := swtpmtest.Start(t)
	_, err = devicekey.TPMSealedKey(devicekey.Options{DataDir: dir, TPM: sw2.Addr}).MasterKey(ctx)
	if err == nil {
		t.Fatal("another TPM unsealed the master key")
	}
	if !strings.Contains(err.Error(), "another TPM") || !strings.Contains(err.Error(), devicekey.SealedMasterName) {
		t.Fatalf("error does not explain: %v", err)
	}
	if testing.Verbose() {
		t.Log(err)
	}
	// No TPM at all.
	_, err = devicekey.TPMSealedKey(devicekey.Options{DataDir: dir, TPM: "off"}).MasterKey(ctx)
	if err == nil || !strings.Contains(err.Error(), "no TPM") {
		t.Fatalf("tpm off: %v", err)
	}
	// A device key file given as the master key file.
	_, err = devicekey.TPMSealedKey(devicekey.Options{DataDir: t.TempDir(), TPM: sw.Addr}).MasterKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	b, _ := os.ReadFile(filepath.Join(dir, devicekey.TPMKeyName))
	os.WriteFile(filepath.Join(bad, devicekey.SealedMasterName), b, 0o600)
	if _, err := devicekey.TPMSealedKey(devicekey.Options{DataDir: bad, TPM: sw.Addr}).MasterKey(ctx); err == nil || !strings.Contains(err.Error(), "want \"mcpedge sealed master key") {
		t.Fatalf("device.tpm as master.tpm: %v", err)
	}
}

// "auto" keeps the key a device has: a key in a TPM that is gone is an
// error, not a new file key (a new identity).
func TestAutoKeepsExistingKey(t *testing.T) {
	if _, err := os.Stat(devicekey.DefaultTPMDevice); err == nil {
		t.Skipf("%s exists on this machine; the test needs a machine without it", devicekey.DefaultTPMDevice)
	}
	ctx := context.Background()
	sw := swtpmtest.Start(t)
	dir := t.TempDir()
	openTPM(t, sw.Addr, dir).Close()
	_, err := devicekey.Open(ctx, devicekey.Options{DataDir: dir, TPM: "auto"})
	if err == nil || !strings.Contains(err.Error(), devicekey.TPMKeyName) || !strings.Contains(err.Error(), devicekey.DefaultTPMDevice) {
		t.Fatalf("auto with device.tpm and no TPM: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, devicekey.FileKeyName)); err == nil {
		t.Fatal("auto made a file key beside device.tpm")
	}
	// "off" is explicit: a file key.
	master := sealbox.FileKey(filepath.Join(t.TempDir(), "m"))
	k, err := devicekey.Open(ctx, devicekey.Options{DataDir: dir, TPM: "off", Master: master})
	if err != nil || k.Kind() != devicekey.KindFile {
		t.Fatalf("off: %v", err)
	}
	k.Close()
	// A file key stays a file key under "auto".
	fdir := t.TempDir()
	openFile(t, fdir, master).Close()
	k, err = devicekey.Open(ctx, devicekey.Options{DataDir: fdir, Master: master})
	if err != nil || k.Kind() != devicekey.KindFile {
		t.Fatalf("auto with device.key: %v", err)
	}
	k.Close()
}
