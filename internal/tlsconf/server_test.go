package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/tlsconf/tlstest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serve starts an HTTPS server on loopback with s's listener and the
// connection-state plumbing the gateway uses; its handler answers the
// verified client certificate's common name, or "-".
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c := ClientCertificate(r); c != nil {
				_, _ = io.WriteString(w, c.Subject.CommonName)
				return
			}
			_, _ = io.WriteString(w, "-")
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          nil,
	}
	go func() { _ = srv.Serve(s.Listener(ln)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// handshake connects with tc and returns the server's leaf certificate.
func handshake(t *testing.T, addr string, tc *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, tc)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestServerReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	certA, keyA, leafA := ca.Issue(t, tlstest.Leaf{CN: "gw", DNS: []string{"gw.test"}})
	cf, kf := tlstest.Write(t, dir, "cert.pem", certA), tlstest.Write(t, dir, "key.pem", keyA)
	reg := prometheus.NewRegistry()
	s, err := New(config.TLS{CertFile: cf, KeyFile: kf, MinVersion: config.TLSVersion13, ClientAuth: config.ClientAuthNone}, Options{Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	client := &tls.Config{RootCAs: tlstest.Pool(ca), ServerName: "gw.test"}
	got, err := handshake(t, addr, client)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if got.SerialNumber.Cmp(leafA.SerialNumber) != 0 {
		t.Fatalf("served serial %v, want %v", got.SerialNumber, leafA.SerialNumber)
	}
	if v := testutil.ToFloat64(s.o.Metrics.expiry.WithLabelValues("server", "gw.test")); v != float64(leafA.NotAfter.Unix()) {
		t.Fatalf("expiry metric = %v, want %v", v, leafA.NotAfter.Unix())
	}

	// Unchanged files: nothing to do.
	if changed, err := s.Check(); changed || err != nil {
		t.Fatalf("Check on unchanged files = %v, %v", changed, err)
	}

	// A rotation caught half-way (new certificate, old key) is refused
	// and the old certificate stays.
	certB, keyB, leafB := ca.Issue(t, tlstest.Leaf{CN: "gw", DNS: []string{"gw2.test"}, NotAfter: time.Now().Add(48 * time.Hour)})
	tlstest.Replace(t, cf, certB, 2*time.Second)
	changed, err := s.Check()
	if changed || err == nil || !strings.Contains(err.Error(), "does not belong to the certificate") {
		t.Fatalf("Check with a mismatched key = %v, %v; want the mismatch error", changed, err)
	}
	if changed, err := s.Check(); changed || err != nil {
		t.Fatalf("the same broken files are reported once: got %v, %v", changed, err)
	}
	if got, err = handshake(t, addr, client); err != nil || got.SerialNumber.Cmp(leafA.SerialNumber) != 0 {
		t.Fatalf("after a failed reload the old certificate must be served: %v %v", got, err)
	}

	// The key arrives: the new certificate is served on new connections.
	tlstest.Replace(t, kf, keyB, 3*time.Second)
	if changed, err := s.Check(); !changed || err != nil {
		t.Fatalf("Check after the rotation = %v, %v", changed, err)
	}
	got, err = handshake(t, addr, &tls.Config{RootCAs: tlstest.Pool(ca), ServerName: "gw2.test"})
	if err != nil || got.SerialNumber.Cmp(leafB.SerialNumber) != 0 {
		t.Fatalf("after the rotation: %v, %v; want serial %v", got, err, leafB.SerialNumber)
	}
	if n := testutil.CollectAndCount(s.o.Metrics.expiry); n != 1 {
		t.Fatalf("expiry series = %d, want only the served certificate's", n)
	}
	if v := testutil.ToFloat64(s.o.Metrics.expiry.WithLabelValues("server", "gw2.test")); v != float64(leafB.NotAfter.Unix()) {
		t.Fatalf("expiry metric after rotation = %v, want %v", v, leafB.NotAfter.Unix())
	}
}

func TestServerRunPicksUpRotation(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	certA, keyA, _ := ca.Issue(t, tlstest.Leaf{DNS: []string{"gw.test"}})
	cf, kf := tlstest.Write(t, dir, "cert.pem", certA), tlstest.Write(t, dir, "key.pem", keyA)
	s, err := New(config.TLS{CertFile: cf, KeyFile: kf, MinVersion: config.TLSVersion13}, Options{PollEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	certB, keyB, leafB := ca.Issue(t, tlstest.Leaf{DNS: []string{"gw.test"}})
	// Key first, then certificate, as a careless rotation would.
	tlstest.Replace(t, kf, keyB, 2*time.Second)
	tlstest.Replace(t, cf, certB, 2*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := handshake(t, addr, &tls.Config{RootCAs: tlstest.Pool(ca), ServerName: "gw.test"})
		if err == nil && got.SerialNumber.Cmp(leafB.SerialNumber) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated certificate was not served within 10s (last: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServerVersions(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	certPEM, keyPEM, _ := ca.Issue(t, tlstest.Leaf{DNS: []string{"gw.test"}})
	cf, kf := tlstest.Write(t, dir, "cert.pem", certPEM), tlstest.Write(t, dir, "key.pem", keyPEM)

	s13, err := New(config.TLS{CertFile: cf, KeyFile: kf, MinVersion: config.TLSVersion13}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr13 := serve(t, s13)
	if _, err := handshake(t, addr13, &tls.Config{RootCAs: tlstest.Pool(ca), ServerName: "gw.test", MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("a TLS 1.2 client was accepted with the default min_version 1.3")
	}
	c, err := tls.Dial("tcp", addr13, &tls.Config{RootCAs: tlstest.Pool(ca), ServerName: "gw.test"})
	if err != nil {
		t.Fatal(err)
	}
	if st := c.ConnectionState(); st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "" && st.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("version %x, protocol %q", st.Version, st.NegotiatedProtocol)
	}
	c.Close()

	s12, err := New(config.TLS{CertFile: cf, KeyFile: kf, MinVersion: config.TLSVersion12}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr12 := serve(t, s12)
	if _, err := handshake(t, addr12, &tls.Config{RootCAs: tlstest.Pool(ca), ServerName: "gw.test", MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}); err != nil {
		t.Fatalf("TLS 1.2 with a modern suite refused with min_version 1.2: %v", err)
	}
	if _, err := handshake(t, addr12, &tls.Config{RootCAs: tlstest.Pool(ca), ServerName: "gw.test", MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		t.Fatal("TLS 1.2 with a CBC suite was accepted")
	}
	if _, err := handshake(t, addr12, &tls.Config{RootCAs: tlstest.Pool(ca), ServerName: "gw.test", MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}); err == nil {
		t.Fatal("TLS 1.1 was accepted")
	}
}

func TestServerClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "server CA")
	clientCA := tlstest.NewCA(t, "client CA")
	otherCA := tlstest.NewCA(t, "someone else")
	certPEM, keyPEM, _ := ca.Issue(t, tlstest.Leaf{DNS: []string{"gw.test"}})
	cf, kf := tlstest.Write(t, dir, "cert.pem", certPEM), tlstest.Write(t, dir, "key.pem", keyPEM)
	caf := tlstest.Write(t, dir, "clients.pem", clientCA.PEM)
	good, goodKey, _ := clientCA.Issue(t, tlstest.Leaf{CN: "edge-1", Client: true})
	bad, badKey, _ := otherCA.Issue(t, tlstest.Leaf{CN: "intruder", Client: true})
	goodPair, err := tls.X509KeyPair(good, goodKey)
	if err != nil {
		t.Fatal(err)
	}
	badPair, _ := tls.X509KeyPair(bad, badKey)

	get := func(addr string, certs ...tls.Certificate) (string, error) {
		tc := &tls.Config{RootCAs: tlstest.Pool(ca), ServerName: "gw.test"}
		if len(certs) > 0 {
			// Sent whatever CAs the server names (a Go client would
			// otherwise keep a certificate of another CA to itself).
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("https://" + addr + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	t.Run("optional", func(t *testing.T) {
		s, err := New(config.TLS{CertFile: cf, KeyFile: kf, MinVersion: config.TLSVersion13, ClientCAFile: caf, ClientAuth: config.ClientAuthOptional}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		addr := serve(t, s)
		if got, err := get(addr); err != nil || got != "-" {
			t.Fatalf("without a certificate: %q, %v", got, err)
		}
		if got, err := get(addr, goodPair); err != nil || got != "edge-1" {
			t.Fatalf("with a certificate of the client CA: %q, %v", got, err)
		}
		if _, err := get(addr, badPair); err == nil {
			t.Fatal("a certificate of another CA was accepted")
		}
	})
	t.Run("required", func(t *testing.T) {
		s, err := New(config.TLS{CertFile: cf, KeyFile: kf, MinVersion: config.TLSVersion13, ClientCAFile: caf, ClientAuth: config.ClientAuthRequired}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		addr := serve(t, s)
		if _, err := get(addr); err == nil {
			t.Fatal("a client without a certificate was served with client_auth = required")
		}
		if got, err := get(addr, goodPair); err != nil || got != "edge-1" {
			t.Fatalf("with a certificate of the client CA: %q, %v", got, err)
		}
		// A reload that trusts the other CA instead.
		other := tlstest.Write(t, dir, "other.pem", otherCA.PEM)
		if err := s.Apply(config.TLS{CertFile: cf, KeyFile: kf, MinVersion: config.TLSVersion13, ClientCAFile: other, ClientAuth: config.ClientAuthRequired}); err != nil {
			t.Fatal(err)
		}
		if got, err := get(addr, badPair); err != nil || got != "intruder" {
			t.Fatalf("after the reload the new CA's certificate: %q, %v", got, err)
		}
		if _, err := get(addr, goodPair); err == nil {
			t.Fatal("after the reload the old CA's certificate was still accepted")
		}
	})
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	certPEM, keyPEM, _ := ca.Issue(t, tlstest.Leaf{DNS: []string{"gw.test"}})
	_, otherKey, _ := ca.Issue(t, tlstest.Leaf{DNS: []string{"gw.test"}})
	cf := tlstest.Write(t, dir, "cert.pem", certPEM)
	kf := tlstest.Write(t, dir, "key.pem", keyPEM)
	okf := tlstest.Write(t, dir, "other-key.pem", otherKey)
	junk := tlstest.Write(t, dir, "junk.pem", []byte("not a certificate\n"))
	cases := []struct {
		name, cert, key, want string
	}{
		{"missing certificate", dir + "/nope.pem", kf, "server.tls.cert_file: " + dir + "/nope.pem does not exist"},
		{"missing key", cf, dir + "/nokey.pem", "server.tls.key_file: " + dir + "/nokey.pem does not exist"},
		{"directory", dir, kf, "is a directory"},
		{"no certificate", junk, kf, "holds no PEM certificate"},
		{"no key", cf, junk, "holds no PEM private key"},
		{"key mismatch", cf, okf, "does not belong to the certificate"},
		{"key swapped for certificate", kf, cf, "holds no PEM certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(config.TLS{CertFile: c.cert, KeyFile: c.key}, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	if _, err := New(config.TLS{CertFile: cf, KeyFile: kf, ClientCAFile: junk, ClientAuth: config.ClientAuthOptional}, Options{}); err == nil || !strings.Contains(err.Error(), "server.tls.client_ca_file") {
		t.Fatalf("a client CA file without certificates: %v", err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	expired, expiredKey, _ := ca.Issue(t, tlstest.Leaf{DNS: []string{"old.test"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	soon, soonKey, _ := ca.Issue(t, tlstest.Leaf{CN: "edge", Client: true, NotAfter: time.Now().Add(72 * time.Hour)})
	cfg := config.Default()
	cfg.Server.TLS = config.TLS{CertFile: tlstest.Write(t, dir, "c.pem", expired), KeyFile: tlstest.Write(t, dir, "k.pem", expiredKey), ClientCAFile: tlstest.Write(t, dir, "ca.PEM", ca.PEM)}
	cfg.Upstreams = []config.Upstream{
		{Name: "a", Transport: config.TransportHTTP, URL: "https://a.test/mcp", TLS: config.ClientTLS{CertFile: tlstest.Write(t, dir, "uc.pem", soon), KeyFile: tlstest.Write(t, dir, "uk.pem", soonKey)}},
		{Name: "b", Transport: config.TransportHTTP, URL: "https://b.test/mcp", TLS: config.ClientTLS{CAFile: dir + "/missing-ca.PEM"}},
		{Name: "c", Transport: config.TransportHTTP, URL: "https://c.test/mcp", Disabled: true, TLS: config.ClientTLS{CAFile: dir + "/missing-too.pem"}},
	}
	warnings, err := Check(cfg, time.Now())
	if err == nil || !strings.Contains(err.Error(), "upstreams[1].tls.ca_file: "+dir+"/missing-ca.PEM does not exist") {
		t.Fatalf("Check error = %v, want the missing CA file of upstreams[1]", err)
	}
	if strings.Contains(err.Error(), "missing-too") {
		t.Fatalf("a disabled upstream's files were checked: %v", err)
	}
	joined := strings.Join(warnings, "\n")
	if !strings.Contains(joined, "server.tls.cert_file: the certificate for \"old.test\" expired on") {
		t.Fatalf("warnings %q lack the expired server certificate", joined)
	}
	if !strings.Contains(joined, "upstreams[0].tls.cert_file: the certificate \"CN=edge\" expires on") {
		t.Fatalf("warnings %q lack the expiring client certificate", joined)
	}
}

func TestACMEHostPolicy(t *testing.T) {
	p := hostPolicy([]string{"mcp.example.com"})
	for host, ok := range map[string]bool{
		"mcp.example.com": true, "MCP.Example.com.": true, "mcp.example.com:5002": true,
		"example.com": false, "evil.mcp.example.com": false, "": false, "mcp.example.com.evil": false,
	} {
		if err := p(t.Context(), host); (err == nil) != ok {
			t.Errorf("%q: %v, want allowed=%v", host, err, ok)
		}
	}
}
