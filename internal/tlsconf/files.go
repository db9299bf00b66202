// Package tlsconf is the gateway's TLS: the server side of [server.tls]
// (certificate files reloaded when they change, ACME, client certificates)
// and the client side of the "tls" tables of upstreams, [hub] and
// [auth.oidc] (extra CAs and a client certificate). It builds
// *tls.Config values; it opens no connection of its own except the ACME
// client's, which dials through the egress policy.
//
// TLS 1.3 is the default minimum; with min_version = "1.2" only
// forward-secret AEAD suites are offered. Certificate expiry is exported
// as mcpedge_tls_certificate_expiry_timestamp_seconds.
package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// maxPEMBytes bounds a certificate, key or CA file: a real one is a few
// kilobytes, a CA bundle a few hundred.
const maxPEMBytes = 4 << 20

// ExpiryWarning is how close to its expiry a certificate is reported by
// `mcpedge config check` and in the log.
const ExpiryWarning = 14 * 24 * time.Hour

// readPEM reads a PEM file for key (the configuration key, for messages).
func readPEM(key, path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %s does not exist", key, path)
		}
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s: %s is a directory, not a PEM file", key, path)
	}
	if fi.Size() > maxPEMBytes {
		return nil, fmt.Errorf("%s: %s is %d bytes, more than a PEM file of certificates holds (at most %d)", key, path, fi.Size(), maxPEMBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return b, nil
}

// LoadKeyPair loads a certificate chain and its private key. certKey and
// keyKey name the configuration keys in errors ("server.tls.cert_file").
// The errors say what is wrong: a missing file, a file without a
// certificate or key, a key that does not belong to the certificate.
func LoadKeyPair(certKey, certFile, keyKey, keyFile string) (*tls.Certificate, error) {
	cb, err := readPEM(certKey, certFile)
	if err != nil {
		return nil, err
	}
	kb, err := readPEM(keyKey, keyFile)
	if err != nil {
		return nil, err
	}
	if !hasBlock(cb, "CERTIFICATE") {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate (a block \"-----BEGIN CERTIFICATE-----\")", certKey, certFile)
	}
	if !hasKeyBlock(kb) {
		return nil, fmt.Errorf("%s: %s holds no PEM private key", keyKey, keyFile)
	}
	c, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "does not match") {
			return nil, fmt.Errorf("%s: the private key in %s does not belong to the certificate in %s (%s = %s)", keyKey, keyFile, certFile, certKey, certFile)
		}
		return nil, fmt.Errorf("%s, %s: %s", certKey, keyKey, strings.TrimPrefix(msg, "tls: "))
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", certKey, err)
		}
	}
	return &c, nil
}

func hasBlock(b []byte, typ string) bool {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return false
		}
		if blk.Type == typ {
			return true
		}
	}
}

func hasKeyBlock(b []byte) bool {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return false
		}
		if blk.Type == "PRIVATE KEY" || strings.HasSuffix(blk.Type, " PRIVATE KEY") {
			return true
		}
	}
}

// LoadCAs reads a PEM bundle of CA certificates. With withSystem, the
// system's roots are included too (outbound connections: the CA file
// adds private CAs, it does not replace the public ones).
func LoadCAs(key, path string, withSystem bool) (*x509.CertPool, []*x509.Certificate, error) {
	b, err := readPEM(key, path)
	if err != nil {
		return nil, nil, err
	}
	certs, err := ParseCerts(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s: %w", key, path, err)
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("%s: %s holds no PEM certificate", key, path)
	}
	var pool *x509.CertPool
	if withSystem {
		if pool, err = x509.SystemCertPool(); err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
	} else {
		pool = x509.NewCertPool()
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, certs, nil
}

// ParseCerts parses every CERTIFICATE block of a PEM document; other
// blocks are skipped. A block that does not parse is an error naming it.
func ParseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		out = append(out, c)
	}
}

// Fingerprint is the SHA-256 of a certificate's DER, 64 lower-case hex
// digits: what [[server.tls.client_certs]] fingerprint matches.
func Fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// ExpiryProblem says what is wrong with a certificate's validity at now,
// "" when nothing: expired, not yet valid, or expiring within
// ExpiryWarning.
func ExpiryProblem(c *x509.Certificate, now time.Time) string {
	switch {
	case now.After(c.NotAfter):
		return fmt.Sprintf("the certificate %s expired on %s", describe(c), c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Sprintf("the certificate %s is not valid before %s", describe(c), c.NotBefore.UTC().Format(time.RFC3339))
	case c.NotAfter.Sub(now) < ExpiryWarning:
		return fmt.Sprintf("the certificate %s expires on %s, in %s", describe(c), c.NotAfter.UTC().Format(time.RFC3339), c.NotAfter.Sub(now).Round(time.Minute))
	}
	return ""
}

// describe names a certificate in messages: its first DNS name, else its
// subject.
func describe(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return fmt.Sprintf("for %q", c.DNSNames[0])
	}
	return fmt.Sprintf("%q", c.Subject.String())
}

// certName is a certificate's name as a metric label.
func certName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return Fingerprint(c)[:16]
}

// stamp identifies the contents of files by their size and modification
// time, cheaply: a change of either means the files are read again.
func stamp(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			b.WriteString("missing;")
			continue
		}
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}
