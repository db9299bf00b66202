package devicekey

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// EK certificate verification: a TPM manufacturer certifies, in the EK
// certificate it writes into the TPM's NV at manufacture, that an EK
// public key belongs to a genuine TPM. A verifier that trusts the
// manufacturer's CA and sees that certificate for the EK that a
// credential activation was made against (MakeCredential) knows the AK
// lives in a real TPM, not in software that made up its own EK.

// EK certificate errors; test with errors.Is.
var (
	// ErrEKUntrusted: there is no EK certificate, it does not parse, or
	// it does not chain to a trusted root.
	ErrEKUntrusted = errors.New("devicekey: the TPM's endorsement key certificate is missing or not trusted")
	// ErrEKMismatch: the EK certificate is valid but certifies another
	// key than the EK the attestation presents.
	ErrEKMismatch = errors.New("devicekey: the endorsement key certificate is for another key than the TPM's endorsement key")
)

// maxEKRootsFile bounds an ek_roots bundle: manufacturers' roots and
// intermediates together are a few hundred KiB at most.
const maxEKRootsFile = 4 << 20

// maxEKCert bounds an EK certificate: TPM NV indexes hold at most a few
// KiB, and real EK certificates are 1 to 2 KiB.
const maxEKCert = 8 << 10

// oidSubjectAltName is the subjectAltName extension. The TCG EK
// credential profile puts the TPM's manufacturer, model and firmware
// version in it as a directoryName, and marks it critical when the
// subject is empty (as it usually is).
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// EKRoots are the CA certificates an EK certificate must chain to.
type EKRoots struct {
	roots, intermediates *x509.CertPool
	// Roots and Intermediates count what the bundle held.
	Roots, Intermediates int
}

// LoadEKRoots reads a PEM bundle of TPM manufacturers' CA certificates
// (see ParseEKRoots).
func LoadEKRoots(path string) (*EKRoots, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("devicekey: EK roots: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEKRootsFile+1))
	if err != nil {
		return nil, fmt.Errorf("devicekey: EK roots: %s: %w", path, err)
	}
	if len(b) > maxEKRootsFile {
		return nil, fmt.Errorf("devicekey: EK roots: %s is larger than %d bytes: not a PEM bundle of CA certificates", path, maxEKRootsFile)
	}
	r, err := ParseEKRoots(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// ParseEKRoots parses a PEM bundle of CA certificates. A self-issued
// certificate (subject equal to issuer, signed by its own key) is a
// trust anchor; any other is an intermediate, used only to build a chain
// from an EK certificate to an anchor in the same bundle (TPMs hold only
// their EK certificate, so manufacturers' intermediates belong in the
// bundle too). Every certificate must be a CA certificate; blocks other
// than CERTIFICATE are refused, so a key or an EK certificate put there
// by mistake is noticed.
func ParseEKRoots(b []byte) (*EKRoots, error) {
	r := &EKRoots{roots: x509.NewCertPool(), intermediates: x509.NewCertPool()}
	rest := b
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("devicekey: EK roots: PEM block %d is a %q, want only CERTIFICATE blocks", n, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("devicekey: EK roots: certificate %d: %w", n, err)
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("devicekey: EK roots: certificate %d (%s) is not a CA certificate: the bundle holds the manufacturers' CAs, not EK certificates", n, c.Subject)
		}
		if bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil {
			r.roots.AddCert(c)
			r.Roots++
		} else {
			r.intermediates.AddCert(c)
			r.Intermediates++
		}
	}
	if len(bytes.TrimSpace(rest)) > 0 && r.Roots+r.Intermediates == 0 {
		return nil, errors.New("devicekey: EK roots: no PEM certificate found (the file must hold PEM \"-----BEGIN CERTIFICATE-----\" blocks)")
	}
	if r.Roots == 0 {
		return nil, fmt.Errorf("devicekey: EK roots: no self-signed root certificate among %d certificates: add the manufacturers' root CAs", r.Intermediates)
	}
	return r, nil
}

// VerifyEKCert checks that ekCert (DER, as in Attestation.EKCert) chains
// to r at time now and certifies exactly the key of ekPublic (the EK's
// TPMT_PUBLIC, as in Attestation.EKPublic). It returns the parsed
// certificate, or an error wrapping ErrEKUntrusted or ErrEKMismatch.
//
// What is accepted beyond crypto/x509's own rules:
//   - any extended key usage (EK certificates carry tcg-kp-EKCertificate,
//     2.23.133.8.1, or none; the chain is not checked for a usage);
//   - a critical subjectAltName that holds only directoryName entries,
//     each a well-formed Name (the TCG profile's TPM manufacturer, model
//     and version attributes). crypto/x509 understands only DNS, email,
//     IP and URI names and so leaves such an extension unhandled. Any
//     other unhandled critical extension is refused.
//
// The key comparison is of the public keys themselves (RSA modulus and
// exponent, or ECC curve and point), not of encodings.
func (r *EKRoots) VerifyEKCert(ekPublic, ekCert []byte, now time.Time) (cert *x509.Certificate, err error) {
	defer func() {
		if p := recover(); p != nil {
			cert, err = nil, fmt.Errorf("%w: %v", ErrEKUntrusted, p)
		}
	}()
	if r == nil || r.roots == nil {
		return nil, fmt.Errorf("%w: no EK roots configured", ErrEKUntrusted)
	}
	if len(ekCert) == 0 {
		return nil, fmt.Errorf("%w: the TPM has no EK certificate (none in NV index %#x or %#x)", ErrEKUntrusted, uint32(ekCertIndex), uint32(rsaEKCertIndex))
	}
	if len(ekCert) > maxEKCert {
		return nil, fmt.Errorf("%w: the EK certificate is %d bytes, more than %d", ErrEKUntrusted, len(ekCert), maxEKCert)
	}
	c, err := x509.ParseCertificate(ekCert)
	if err != nil {
		return nil, fmt.Errorf("%w: the EK certificate does not parse: %v", ErrEKUntrusted, err)
	}
	// The SAN exception is applied to a copy, so the returned
	// certificate still shows what was unhandled.
	leaf := *c
	leaf.UnhandledCriticalExtensions = nil
	for _, oid := range c.UnhandledCriticalExtensions {
		if oid.Equal(oidSubjectAltName) {
			if err := checkDirectoryNameSAN(c); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrEKUntrusted, err)
			}
			continue
		}
		leaf.UnhandledCriticalExtensions = append(leaf.UnhandledCriticalExtensions, oid)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         r.roots,
		Intermediates: r.intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("%w: the EK certificate (issuer %q, serial %s) does not chain to the configured EK roots: %v", ErrEKUntrusted, c.Issuer.String(), c.SerialNumber, err)
	}
	ek, err := unmarshal[tpm2.TPMTPublic](ekPublic, "ek_public")
	if err != nil {
		return nil, err
	}
	pub, err := tpm2.Pub(*ek)
	if err != nil {
		return nil, fmt.Errorf("%w: ek_public: %v", ErrMalformed, err)
	}
	eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(c.PublicKey) {
		return nil, fmt.Errorf("%w (certificate serial %s)", ErrEKMismatch, c.SerialNumber)
	}
	return c, nil
}

// checkDirectoryNameSAN accepts a subjectAltName extension of c made only
// of directoryName entries whose content is a well-formed Name.
func checkDirectoryNameSAN(c *x509.Certificate) error {
	i := slices.IndexFunc(c.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(oidSubjectAltName) })
	if i < 0 {
		return errors.New("the subjectAltName extension is missing")
	}
	var names []asn1.RawValue
	rest, err := asn1.Unmarshal(c.Extensions[i].Value, &names)
	if err != nil || len(rest) > 0 {
		return errors.New("the subjectAltName extension does not parse")
	}
	if len(names) == 0 {
		return errors.New("the critical subjectAltName extension is empty")
	}
	for _, n := range names {
		// directoryName is [4] EXPLICIT Name.
		if n.Class != asn1.ClassContextSpecific || n.Tag != 4 || !n.IsCompound {
			return fmt.Errorf("the critical subjectAltName holds a name of type [%d], which is not understood (only directoryName is accepted)", n.Tag)
		}
		var rdn pkix.RDNSequence
		rest, err := asn1.Unmarshal(n.Bytes, &rdn)
		if err != nil || len(rest) > 0 {
			return errors.New("a directoryName in the subjectAltName does not parse")
		}
	}
	return nil
}
