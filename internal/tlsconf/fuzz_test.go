package tlsconf

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/tlsconf/tlstest"
)

// FuzzParseCerts: any bytes in a CA bundle give certificates or an error,
// never a panic; what parses has a fingerprint and an expiry verdict.
func FuzzParseCerts(f *testing.F) {
	ca := tlstest.NewCA(f, "fuzz CA")
	c, k, _ := ca.Issue(f, tlstest.Leaf{CN: "leaf", DNS: []string{"a.test"}})
	f.Add(ca.PEM)
	f.Add(append(append([]byte{}, c...), k...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseCerts(b)
		if err != nil {
			return
		}
		for _, c := range certs {
			if len(Fingerprint(c)) != 64 {
				t.Fatalf("fingerprint %q", Fingerprint(c))
			}
			_ = ExpiryProblem(c, time.Now())
			_ = certName(c)
		}
	})
}

// FuzzLoadKeyPair: any certificate and key file contents give a key pair
// or an error naming the configuration key, never a panic.
func FuzzLoadKeyPair(f *testing.F) {
	ca := tlstest.NewCA(f, "fuzz CA")
	c, k, _ := ca.Issue(f, tlstest.Leaf{CN: "leaf"})
	f.Add(c, k)
	f.Add(k, c)
	f.Add([]byte("junk"), k)
	f.Fuzz(func(t *testing.T, cert, key []byte) {
		dir := t.TempDir()
		cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
		if err := os.WriteFile(cf, cert, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(kf, key, 0o600); err != nil {
			t.Fatal(err)
		}
		pair, err := LoadKeyPair("cert_file", cf, "key_file", kf)
		if err == nil && (pair.Leaf == nil || len(pair.Certificate) == 0) {
			t.Fatal("a key pair without its certificate")
		}
	})
}
