package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/tlsconf/tlstest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// pebbleEnv is a private ACME CA: pebble with its mock DNS server
// (pebble-challtestsrv) answering every name with 127.0.0.1, so that
// pebble validates challenges against the gateway on loopback — for real:
// it connects to the gateway's TLS port (TLS-ALPN-01) or its HTTP port
// (HTTP-01) and checks the answer.
type pebbleEnv struct {
	directory string // the ACME directory URL
	caFile    string // trust for pebble's own HTTPS
	mgmt      string // pebble's management address
	mgmtTLS   *tls.Config
}

// freePort returns a loopback port free at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// lookPebble finds pebble and pebble-challtestsrv (Debian's pebble
// package, installed by scripts/test.sh), or skips — or fails, when the
// test services are required.
func lookPebble(t *testing.T) (string, string) {
	t.Helper()
	p, err1 := exec.LookPath("pebble")
	c, err2 := exec.LookPath("pebble-challtestsrv")
	if err1 != nil || err2 != nil {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") != "" {
			t.Fatalf("pebble and pebble-challtestsrv are required (Debian package pebble; scripts/test.sh installs it): %v %v", err1, err2)
		}
		t.Skip("pebble not installed (Debian package pebble; scripts/test.sh installs it)")
	}
	return p, c
}

// startPebble starts the CA. validity is the lifetime of the certificates
// it issues; tlsPort and httpPort are where it validates TLS-ALPN-01 and
// HTTP-01 challenges.
func startPebble(t *testing.T, validity time.Duration, tlsPort, httpPort int) *pebbleEnv {
	t.Helper()
	pebbleBin, challBin := lookPebble(t)
	dir := t.TempDir()

	// pebble's own HTTPS certificate, from a CA the test makes.
	ca := tlstest.NewCA(t, "pebble HTTPS CA")
	certPEM, keyPEM, _ := ca.Issue(t, tlstest.Leaf{CN: "pebble", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	env := &pebbleEnv{caFile: tlstest.Write(t, dir, "pebble-ca.PEM", ca.PEM), mgmtTLS: &tls.Config{RootCAs: tlstest.Pool(ca)}}

	dnsPort := freePort(t)
	chall := exec.Command(challBin,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dns01", fmt.Sprintf("127.0.0.1:%d", dnsPort),
		"-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	startProc(t, chall, "pebble-challtestsrv")

	acmePort, mgmtPort := freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", acmePort),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":                    tlstest.Write(t, dir, "pebble-cert.pem", certPEM),
		"privateKey":                     tlstest.Write(t, dir, "pebble-key.pem", keyPEM),
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"certificateValidityPeriod":      uint64(validity / time.Second),
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := tlstest.Write(t, dir, "pebble.json", b)
	peb := exec.Command(pebbleBin, "-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))
	// No artificial validation delays, no random nonce refusals: the
	// test exercises the protocol, not the client's retry of bad nonces.
	peb.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	startProc(t, peb, "pebble")

	env.directory = fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort)
	env.mgmt = fmt.Sprintf("127.0.0.1:%d", mgmtPort)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: env.mgmtTLS}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(env.directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer at %s within 20s: %v", env.directory, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return env
}

// startProc starts cmd with its output kept for failure reports, and stops
// it when the test ends.
func startProc(t *testing.T, cmd *exec.Cmd, name string) {
	t.Helper()
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
}

// roots returns the CA roots pebble issues under (new at each start).
func (e *pebbleEnv) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: e.mgmtTLS}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + e.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble roots: %d %v", resp.StatusCode, err)
	}
	certs, err := ParseCerts(b)
	if err != nil || len(certs) == 0 {
		t.Fatalf("pebble roots: %v (%d certificates)", err, len(certs))
	}
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

const acmeDomain = "gateway.mcpedge.test"

// waitServed handshakes with the gateway at addr as a client that trusts
// only pebble's roots, until it is served a certificate for which accept
// returns true; it returns the verified chain.
func waitServed(t *testing.T, addr string, roots *x509.CertPool, within time.Duration, accept func(*x509.Certificate) bool, certs ...tls.Certificate) []*x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: acmeDomain, Certificates: certs})
		if err == nil {
			st := c.ConnectionState()
			c.Close()
			if len(st.VerifiedChains) > 0 && accept(st.VerifiedChains[0][0]) {
				return st.VerifiedChains[0]
			}
			last = fmt.Errorf("served serial %v", st.PeerCertificates[0].SerialNumber)
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no acceptable certificate served within %s: %v", within, last)
	return nil
}

func TestACMEIssuanceAndRenewalTLSALPN(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	// Certificates live 40s and are renewed 30s before they expire
	// (plus up to 3s of jitter): the first renewal comes about 10s in.
	env := startPebble(t, 40*time.Second, port, freePort(t))
	dataDir := t.TempDir()
	reg := prometheus.NewRegistry()
	// Client certificates are required: the CA's validation handshake,
	// which has none, must still be answered.
	clientCA := tlstest.NewCA(t, "client CA")
	cc, ck, _ := clientCA.Issue(t, tlstest.Leaf{CN: "agent", Client: true})
	clientCert, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.TLS{MinVersion: config.TLSVersion13, ClientAuth: config.ClientAuthRequired, ClientCAFile: tlstest.Write(t, dataDir, "clients.pem", clientCA.PEM), ACME: config.ACME{
		Domains: []string{acmeDomain}, Email: "ops@mcpedge.test", DirectoryURL: env.directory, CAFile: env.caFile,
		Challenge: config.ChallengeTLSALPN, RenewBefore: config.Duration(30 * time.Second), AcceptTerms: true,
	}}
	s, err := New(cfg, Options{DataDir: dataDir, Metrics: NewMetrics(reg), PollEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(s.Listener(ln)) }()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}

	roots := env.roots(t)
	chain := waitServed(t, ln.Addr().String(), roots, 60*time.Second, func(*x509.Certificate) bool { return true }, clientCert)
	first := chain[0]
	if !slices.Contains(first.DNSNames, acmeDomain) {
		t.Fatalf("issued certificate names %v, want %s", first.DNSNames, acmeDomain)
	}
	if len(chain) < 2 {
		t.Fatalf("verified chain has %d certificates; want the leaf up to pebble's root", len(chain))
	}
	// The certificate and account are cached in data_dir.
	if _, err := os.Stat(filepath.Join(dataDir, "acme", acmeDomain)); err != nil {
		t.Fatalf("certificate not cached in data_dir/acme: %v", err)
	}
	// An HTTPS request through the gateway, verified against pebble's roots.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: acmeDomain, Certificates: []tls.Certificate{clientCert}}}}
	resp, err := hc.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("HTTPS request verified against pebble's roots: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	hc.CloseIdleConnections()
	if string(body) != "ok" {
		t.Fatalf("body %q", body)
	}
	// Renewal before expiry: a new certificate is served while the first
	// one is still valid.
	renewed := waitServed(t, ln.Addr().String(), roots, 45*time.Second, func(c *x509.Certificate) bool {
		return c.SerialNumber.Cmp(first.SerialNumber) != 0
	}, clientCert)[0]
	if !time.Now().Before(first.NotAfter) {
		t.Fatalf("the renewal came after the first certificate expired (%s)", first.NotAfter)
	}
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Fatalf("renewed certificate expires %s, not after the first (%s)", renewed.NotAfter, first.NotAfter)
	}
	// The expiry metric follows the served certificate.
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(s.o.Metrics.expiry.WithLabelValues("server", acmeDomain)) < float64(renewed.NotAfter.Unix()) {
		if time.Now().After(deadline) {
			t.Fatalf("expiry metric %v, want at least %d", testutil.ToFloat64(s.o.Metrics.expiry.WithLabelValues("server", acmeDomain)), renewed.NotAfter.Unix())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedBuffer is an io.Writer a process writes while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestACMEIssuanceHTTP01(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpPort := freePort(t)
	// pebble validates TLS-ALPN-01 on a port nobody listens on: only the
	// HTTP-01 challenge, answered on http_listen, can succeed.
	env := startPebble(t, time.Hour, freePort(t), httpPort)
	httpListen := fmt.Sprintf("127.0.0.1:%d", httpPort)
	cfg := config.TLS{MinVersion: config.TLSVersion13, ClientAuth: config.ClientAuthNone, ACME: config.ACME{
		Domains: []string{acmeDomain}, DirectoryURL: env.directory, CAFile: env.caFile,
		Challenge: config.ChallengeHTTP, HTTPListen: httpListen, AcceptTerms: true,
	}}
	s, err := New(cfg, Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(s.Listener(ln)) }()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	chain := waitServed(t, ln.Addr().String(), env.roots(t), 60*time.Second, func(*x509.Certificate) bool { return true })
	if !slices.Contains(chain[0].DNSNames, acmeDomain) {
		t.Fatalf("issued certificate names %v", chain[0].DNSNames)
	}
	// Anything but a challenge on http_listen is sent to https.
	hc := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpListen+"/mcp", nil)
	req.Host = acmeDomain
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "https://"+acmeDomain+"/mcp" {
		t.Fatalf("plain HTTP request answered %d %q, want a redirect to https", resp.StatusCode, loc)
	}
}
