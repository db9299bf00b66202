package devicekey

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/mcpedge/mcpedge/internal/devicekey/swtpmtest"
)

// testCA is a CA made with crypto/x509 for EK certificates in tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string, parent *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// tcgSAN is a subjectAltName as the TCG EK profile has it: one
// directoryName with the TPM manufacturer, model and version.
func tcgSAN(t testing.TB) []byte {
	t.Helper()
	rdn := pkix.RDNSequence{{
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 1}, Value: "id:00001014"},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 2}, Value: "swtpm"},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 3}, Value: "id:20191023"},
	}}
	name, err := asn1.Marshal(rdn)
	if err != nil {
		t.Fatal(err)
	}
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name}})
	if err != nil {
		t.Fatal(err)
	}
	return san
}

// ekCertFor issues an EK certificate in the TCG profile's shape (empty
// subject, critical directoryName SAN, tcg-kp-EKCertificate usage) for
// pub, with the given extra extensions (replacing the SAN when one is
// given).
func ekCertFor(t testing.TB, ca *testCA, pub crypto.PublicKey, notAfter time.Time, ext ...pkix.Extension) []byte {
	t.Helper()
	if len(ext) == 0 {
		ext = []pkix.Extension{{Id: oidSubjectAltName, Critical: true, Value: tcgSAN(t)}}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageKeyEncipherment,
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{{2, 23, 133, 8, 1}},
		BasicConstraintsValid: true,
		ExtraExtensions:       ext,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// tpmEK returns the EK public area a TPM presents, and as a Go key.
func tpmEK(t testing.TB) ([]byte, crypto.PublicKey) {
	t.Helper()
	sw := swtpmtest.Start(t)
	k, err := Open(context.Background(), Options{DataDir: t.TempDir(), TPM: sw.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	att, err := k.Attest([]byte("n"))
	if err != nil {
		t.Fatal(err)
	}
	area, err := unmarshal[tpm2.TPMTPublic](att.EKPublic, "ek")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := tpm2.Pub(*area)
	if err != nil {
		t.Fatal(err)
	}
	return att.EKPublic, pub
}

// EK certificates issued with crypto/x509 for a real TPM's EK public key:
// what VerifyEKCert accepts and refuses.
func TestVerifyEKCertGenerated(t *testing.T) {
	ekPublic, ekPub := tpmEK(t)
	root := newTestCA(t, "Test TPM Root", nil)
	inter := newTestCA(t, "Test TPM Intermediate", root)
	roots, err := ParseEKRoots(append(append([]byte{}, root.pem...), inter.pem...))
	if err != nil {
		t.Fatal(err)
	}
	if roots.Roots != 1 || roots.Intermediates != 1 {
		t.Fatalf("roots %d, intermediates %d, want 1 and 1", roots.Roots, roots.Intermediates)
	}
	now := time.Now()
	later := now.Add(time.Hour)

	good := ekCertFor(t, inter, ekPub, later)
	c, err := roots.VerifyEKCert(ekPublic, good, now)
	if err != nil {
		t.Fatalf("a TCG-shaped EK certificate for the EK: %v", err)
	}
	if len(c.UnhandledCriticalExtensions) != 1 {
		t.Fatalf("returned certificate lost its unhandled SAN: %v", c.UnhandledCriticalExtensions)
	}
	// Issued directly by the root, too.
	if _, err := roots.VerifyEKCert(ekPublic, ekCertFor(t, root, ekPub, later), now); err != nil {
		t.Fatalf("issued by the root: %v", err)
	}

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherRoot := newTestCA(t, "Other Root", nil)
	unknownExt := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}
	otherName, _ := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: []byte{6, 1, 42, 0xa0, 2, 5, 0}}})
	badDirName, _ := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: []byte{4, 1, 0}}})
	for _, tc := range []struct {
		name string
		cert []byte
		now  time.Time
		want error
	}{
		{"no certificate", nil, now, ErrEKUntrusted},
		{"garbage", []byte("not a certificate"), now, ErrEKUntrusted},
		{"another CA", ekCertFor(t, otherRoot, ekPub, later), now, ErrEKUntrusted},
		{"expired", good, later.Add(time.Minute), ErrEKUntrusted},
		{"unknown critical extension", ekCertFor(t, inter, ekPub, later, pkix.Extension{Id: oidSubjectAltName, Critical: true, Value: tcgSAN(t)}, unknownExt), now, ErrEKUntrusted},
		{"critical SAN with an otherName", ekCertFor(t, inter, ekPub, later, pkix.Extension{Id: oidSubjectAltName, Critical: true, Value: otherName}), now, ErrEKUntrusted},
		{"critical SAN with a malformed directoryName", ekCertFor(t, inter, ekPub, later, pkix.Extension{Id: oidSubjectAltName, Critical: true, Value: badDirName}), now, ErrEKUntrusted},
		{"certificate of another key", ekCertFor(t, inter, other.Public(), later), now, ErrEKMismatch},
	} {
		_, err := roots.VerifyEKCert(ekPublic, tc.cert, tc.now)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Only the intermediate is not enough: it must chain to a root.
	if _, err := ParseEKRoots(inter.pem); err == nil || !strings.Contains(err.Error(), "no self-signed root") {
		t.Errorf("a bundle without a root: %v", err)
	}
	// A root alone does not know the intermediate.
	rootOnly, err := ParseEKRoots(root.pem)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rootOnly.VerifyEKCert(ekPublic, good, now); !errors.Is(err, ErrEKUntrusted) {
		t.Errorf("without the intermediate: %v", err)
	}
	// A malformed EK public area is malformed, not a mismatch.
	if _, err := roots.VerifyEKCert([]byte{1, 2, 3}, good, now); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed ek_public: %v", err)
	}
	var nilRoots *EKRoots
	if _, err := nilRoots.VerifyEKCert(ekPublic, good, now); !errors.Is(err, ErrEKUntrusted) {
		t.Errorf("nil roots: %v", err)
	}
}

func TestParseEKRoots(t *testing.T) {
	root := newTestCA(t, "Root", nil)
	leafDER := ekCertFor(t, root, root.key.Public(), time.Now().Add(time.Hour))
	leaf := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "no self-signed root"},
		{"not PEM", "hello", "no PEM certificate"},
		{"a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", `"PRIVATE KEY"`},
		{"bad certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate 1"},
		{"an EK certificate", string(root.pem) + string(leaf), "not a CA certificate"},
	} {
		_, err := ParseEKRoots([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	dir := t.TempDir()
	if _, err := LoadEKRoots(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(p, root.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if r, err := LoadEKRoots(p); err != nil || r.Roots != 1 {
		t.Errorf("LoadEKRoots: %v", err)
	}
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, bytes.Repeat([]byte{'a'}, maxEKRootsFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEKRoots(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("too large: %v", err)
	}
}

// A TPM manufactured by swtpm_setup with EK certificates from a local CA
// (as a TPM vendor provisions them): the device presents the RSA EK and
// its certificate, which chains to the CA, certifies that EK, and a
// credential made for that EK activates.
func TestProvisionedTPMEKCert(t *testing.T) {
	ca := swtpmtest.NewLocalCA(t)
	sw := swtpmtest.StartProvisioned(t, ca)
	k, err := Open(context.Background(), Options{DataDir: t.TempDir(), TPM: sw.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	n := []byte("nonce")
	att, err := k.Attest(n)
	if err != nil {
		t.Fatal(err)
	}
	if len(att.EKCert) == 0 {
		t.Fatal("the attestation of a provisioned TPM has no EK certificate")
	}
	ek, err := unmarshal[tpm2.TPMTPublic](att.EKPublic, "ek")
	if err != nil {
		t.Fatal(err)
	}
	if ek.Type != tpm2.TPMAlgRSA {
		t.Fatalf("EK type %#x, want RSA (swtpm certifies RSA 2048 and ECC P-384 EKs)", uint16(ek.Type))
	}
	if _, err := Verify(att, k.Public(), n, Policy{}); err != nil {
		t.Fatal(err)
	}
	// swtpm_setup persisted the EK at 0x81010001, which openEK uses: it is
	// the key CreatePrimary makes from the RSA EK template.
	tr := k.(*tpmKey).t
	if _, err := (tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(0x81010001)}).Execute(tr); err != nil {
		t.Fatalf("no persisted EK: %v", err)
	}
	made, err := createPrimary(tr, tpm2.TPMRHEndorsement, tpm2.RSAEKTemplate)
	if err != nil {
		t.Fatal(err)
	}
	flush(tr, made.ObjectHandle)
	if !bytes.Equal(made.OutPublic.Bytes(), att.EKPublic) {
		t.Fatal("the attested EK is not the RSA EK of the TCG template")
	}
	roots, err := ParseEKRoots(ca.Bundle(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := roots.VerifyEKCert(att.EKPublic, att.EKCert, time.Now())
	if err != nil {
		t.Fatalf("swtpm's EK certificate: %v", err)
	}
	t.Logf("EK certificate: issuer %s, SAN critical %v", c.Issuer, c.UnhandledCriticalExtensions)

	secret := []byte("0123456789abcdef")
	blob, enc, err := MakeCredential(att.EKPublic, att.AKPublic, secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.(CredentialActivator).ActivateCredential(blob, enc)
	if err != nil {
		t.Fatalf("activating a credential for the RSA EK: %v", err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatal("activation returned another secret")
	}

	// Another CA's TPM: its certificate does not chain to these roots.
	other := swtpmtest.StartProvisioned(t, swtpmtest.NewLocalCA(t))
	k2, err := Open(context.Background(), Options{DataDir: t.TempDir(), TPM: other.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	att2, err := k2.Attest(n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := roots.VerifyEKCert(att2.EKPublic, att2.EKCert, time.Now()); !errors.Is(err, ErrEKUntrusted) {
		t.Fatalf("another CA's EK certificate: %v", err)
	}
	// This TPM's certificate with the other TPM's EK.
	if _, err := roots.VerifyEKCert(att2.EKPublic, att.EKCert, time.Now()); !errors.Is(err, ErrEKMismatch) {
		t.Fatalf("another TPM's EK certificate: %v", err)
	}
}

func FuzzVerifyEKCert(f *testing.F) {
	root := newTestCA(f, "Fuzz Root", nil)
	roots, err := ParseEKRoots(root.pem)
	if err != nil {
		f.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := ekCertFor(f, root, key.Public(), time.Now().Add(time.Hour))
	f.Add(good, []byte{0, 35, 0, 11})
	f.Add([]byte{0x30, 0x82, 0xff, 0xff}, []byte{})
	f.Add(good[:len(good)/2], []byte("ek"))
	f.Add(root.cert.Raw, []byte{})
	now := time.Now()
	f.Fuzz(func(t *testing.T, cert, ekPublic []byte) {
		c, err := roots.VerifyEKCert(ekPublic, cert, now)
		if err == nil {
			t.Fatalf("accepted an EK certificate for a fuzzed EK public area (%d bytes): %v", len(ekPublic), c.Subject)
		}
		if !errors.Is(err, ErrEKUntrusted) && !errors.Is(err, ErrEKMismatch) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error of no known kind: %v", err)
		}
	})
}

func FuzzParseEKRoots(f *testing.F) {
	root := newTestCA(f, "Fuzz Root", nil)
	inter := newTestCA(f, "Fuzz Intermediate", root)
	f.Add(root.pem)
	f.Add(append(append([]byte{}, inter.pem...), root.pem...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseEKRoots(b)
		if err == nil && r.Roots == 0 {
			t.Fatal("accepted a bundle without a root")
		}
	})
}

// BenchmarkProvisionedTPM is the cost on a TPM with EK certificates
// (RSA EK): an attestation (which reads the certificate from NV) on the
// device, and the EK certificate check on the hub.
func BenchmarkProvisionedTPM(b *testing.B) {
	ca := swtpmtest.NewLocalCA(b)
	sw := swtpmtest.StartProvisioned(b, ca)
	k, err := Open(context.Background(), Options{DataDir: b.TempDir(), TPM: sw.Addr})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	n := []byte("0123456789abcdef0123456789abcdef")
	att, err := k.Attest(n)
	if err != nil {
		b.Fatal(err)
	}
	roots, err := ParseEKRoots(ca.Bundle(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Attest", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.Attest(n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VerifyEKCert", func(b *testing.B) {
		for b.Loop() {
			if _, err := roots.VerifyEKCert(att.EKPublic, att.EKCert, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A key persisted at the ECC EK's handle that was not made from the EK
// template is not taken for the EK.
func TestOpenEKIgnoresOtherPersistedKey(t *testing.T) {
	sw := swtpmtest.Start(t)
	tr, err := openTransport(sw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	other, err := createPrimary(tr, tpm2.TPMRHEndorsement, akTemplate)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.EvictControl{
		Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		ObjectHandle:     &tpm2.NamedHandle{Handle: other.ObjectHandle, Name: other.Name},
		PersistentHandle: 0x81010002,
	}).Execute(tr); err != nil {
		t.Fatalf("EvictControl: %v", err)
	}
	flush(tr, other.ObjectHandle)
	ek, err := openEK(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer ek.close()
	if ek.handle == 0x81010002 || bytes.Equal(ek.public, other.OutPublic.Bytes()) {
		t.Fatal("openEK took a persisted non-EK key for the EK")
	}
	made, err := createPrimary(tr, tpm2.TPMRHEndorsement, tpm2.ECCEKTemplate)
	if err != nil {
		t.Fatal(err)
	}
	flush(tr, made.ObjectHandle)
	if !bytes.Equal(made.OutPublic.Bytes(), ek.public) {
		t.Fatal("openEK's EK is not the ECC EK of the TCG template")
	}
}
