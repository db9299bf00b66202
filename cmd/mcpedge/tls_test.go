package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/faultproxy"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
	"github.com/mcpedge/mcpedge/internal/tlsconf/tlstest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// tlsFiles makes a server certificate for 127.0.0.1 and a client CA with
// two agents' certificates, and writes the PEM files into dir.
type tlsFiles struct {
	ca, clientCA            *tlstest.CA
	cert, key, clientCAFile string
	agent1, agent2          tls.Certificate
}

func makeTLSFiles(t *testing.T, dir string) *tlsFiles {
	t.Helper()
	f := &tlsFiles{ca: tlstest.NewCA(t, "server CA"), clientCA: tlstest.NewCA(t, "agents CA")}
	c, k, _ := f.ca.Issue(t, tlstest.Leaf{CN: "gateway", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	f.cert, f.key = tlstest.Write(t, dir, "cert.pem", c), tlstest.Write(t, dir, "key.pem", k)
	f.clientCAFile = tlstest.Write(t, dir, "agents-ca.pem", f.clientCA.PEM)
	for i, dst := range []*tls.Certificate{&f.agent1, &f.agent2} {
		ac, ak, _ := f.clientCA.Issue(t, tlstest.Leaf{CN: fmt.Sprintf("agent-%d", i+1), Client: true})
		pair, err := tls.X509KeyPair(ac, ak)
		if err != nil {
			t.Fatal(err)
		}
		*dst = pair
	}
	return f
}

// client is an HTTPS client that trusts the gateway's CA and presents
// certs (none: no client certificate).
func (f *tlsFiles) client(certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: tlstest.Pool(f.ca), Certificates: certs,
	}}}
}

// initStatus posts an initialize request and returns the status.
func initStatus(t *testing.T, hc *http.Client, u, bearer string) int {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const agentMapping = `
[[server.tls.client_certs]]
subject_cn = "agent-1"
tenant = "default"
role = "member"
`

// TestServeTLSAndClientCertificates runs `mcpedge serve` with [server.tls]
// and auth required, the production setup: MCP over HTTPS, a client
// certificate mapped to a tenant is a credential, an unmapped one is not,
// plain HTTP and TLS 1.2 are refused, and a reload changes the mapping.
func TestServeTLSAndClientCertificates(t *testing.T) {
	dir := t.TempDir()
	f := makeTLSFiles(t, dir)
	tlsTable := fmt.Sprintf("[server.tls]\ncert_file = %q\nkey_file = %q\nclient_ca_file = %q\n", f.cert, f.key, f.clientCAFile)
	cfgPath := writeConfig(t, tlsTable+agentMapping)
	p := startServe(t, nil, "--config", cfgPath)
	if !strings.HasPrefix(p.URL, "https://127.0.0.1:") {
		t.Fatalf("gateway URL %q, want https", p.URL)
	}
	mcpURL := p.URL + "/mcp"

	// An MCP client authenticated by its certificate alone.
	c := mcp.NewClient(&mcp.Implementation{Name: "agent-1", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: f.client(f.agent1), MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("MCP over HTTPS with a mapped client certificate: %v\n%s", err, p.stderr.String())
	}
	// The built-in lattice server registers its tools a moment after the
	// gateway listens: wait for the one called below.
	waitFor(t, 10*time.Second, "lattice__lattice_list listed", func() bool {
		tools, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("tools/list as agent-1: %v", err)
		}
		return slices.ContainsFunc(tools.Tools, func(tl *mcp.Tool) bool { return tl.Name == "lattice__lattice_list" })
	})
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "lattice__lattice_list", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call as agent-1: %v %+v\n%s", err, res, p.stderr.String())
	}
	cs.Close()

	// A certificate of the same CA that no entry maps, and no
	// certificate at all, are refused; a bearer key still works.
	if st := initStatus(t, f.client(f.agent2), mcpURL, ""); st != http.StatusUnauthorized {
		t.Fatalf("unmapped certificate: %d, want 401", st)
	}
	if st := initStatus(t, f.client(), mcpURL, ""); st != http.StatusUnauthorized {
		t.Fatalf("no certificate and no key: %d, want 401", st)
	}
	if st := initStatus(t, f.client(), mcpURL, testAdminKey); st != http.StatusOK {
		t.Fatalf("bearer key over HTTPS: %d, want 200", st)
	}
	// The refusal of the unmapped certificate is in the audit log.
	waitFor(t, 10*time.Second, "audit entry of the unmapped certificate", func() bool {
		_, body := apiDoTLS(t, f.client(), p.URL+"/api/audit?action=auth.reject", testAdminKey)
		var got struct {
			Entries []struct {
				ActorKind string          `json:"actor_kind"`
				Detail    json.RawMessage `json:"detail"`
			} `json:"entries"`
		}
		_ = json.Unmarshal([]byte(body), &got)
		for _, e := range got.Entries {
			var d struct{ Reason, Subject string }
			if e.ActorKind == "certificate" && json.Unmarshal(e.Detail, &d) == nil && d.Reason == "client certificate not mapped to a tenant" && d.Subject == "CN=agent-2" {
				return true
			}
		}
		return false
	})
	// Plain HTTP and TLS 1.2 do not get through.
	plain := strings.Replace(p.URL, "https://", "http://", 1)
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(plain + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("plain HTTP to the TLS port answered %d", resp.StatusCode)
	}
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlstest.Pool(f.ca), MaxVersion: tls.VersionTLS12}}}
	if resp, err := old.Get(p.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a TLS 1.2 client was served with the default min_version")
	}

	// A reload without the mapping: the certificate is no credential
	// any more, without a restart.
	if err := os.WriteFile(cfgPath, []byte(tlsTable), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "agent-1 refused after the reload", func() bool {
		return initStatus(t, f.client(f.agent1), mcpURL, "") == http.StatusUnauthorized
	})
}

// TestServeTLSCertificateRotation: new certificate files are served on new
// connections without a restart.
func TestServeTLSCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	f := makeTLSFiles(t, dir)
	cfgPath := writeConfig(t, fmt.Sprintf("[server.tls]\ncert_file = %q\nkey_file = %q\n", f.cert, f.key))
	p := startServe(t, nil, "--config", cfgPath)
	serial := func() string {
		c, err := tls.Dial("tcp", strings.TrimPrefix(p.URL, "https://"), &tls.Config{RootCAs: tlstest.Pool(f.ca)})
		if err != nil {
			return "error: " + err.Error()
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	nc, nk, leaf := f.ca.Issue(t, tlstest.Leaf{CN: "gateway", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	tlstest.Replace(t, f.key, nk, 2*time.Second)
	tlstest.Replace(t, f.cert, nc, 2*time.Second)
	waitFor(t, 20*time.Second, "the rotated certificate served", func() bool { return serial() == leaf.SerialNumber.String() })
	if before == leaf.SerialNumber.String() {
		t.Fatal("the first certificate had the new serial")
	}
	// The expiry metric names the served certificate.
	code, body := apiDoTLS(t, f.client(), p.URL+"/metrics", testAdminKey)
	want := fmt.Sprintf(`mcpedge_tls_certificate_expiry_timestamp_seconds{name="gateway",use="server"} %s`, strconv.FormatFloat(float64(leaf.NotAfter.Unix()), 'g', -1, 64))
	if code != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("/metrics (%d) lacks %q", code, want)
	}
}

func apiDoTLS(t *testing.T, hc *http.Client, u, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConfigCheckTLS: `mcpedge config check` reads the TLS files: a
// missing key and a key of another certificate are errors, an expired
// certificate a warning.
func TestConfigCheckTLS(t *testing.T) {
	dir := t.TempDir()
	f := makeTLSFiles(t, dir)
	_, otherKey, _ := f.ca.Issue(t, tlstest.Leaf{CN: "other"})
	other := tlstest.Write(t, dir, "other-key.pem", otherKey)
	ec, ek, _ := f.ca.Issue(t, tlstest.Leaf{CN: "old", DNS: []string{"old.test"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	cases := []struct {
		name, cert, key string
		code            int
		want            string
	}{
		{"ok", f.cert, f.key, 0, "ok (0 upstreams, listen https://"},
		{"missing key", f.cert, filepath.Join(dir, "nope.pem"), 1, "server.tls.key_file: " + filepath.Join(dir, "nope.pem") + " does not exist"},
		{"key mismatch", f.cert, other, 1, "the private key in " + other + " does not belong to the certificate"},
		{"expired", tlstest.Write(t, dir, "old.pem", ec), tlstest.Write(t, dir, "old-key.pem", ek), 0, "warning: server.tls.cert_file: the certificate for \"old.test\" expired on"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := writeConfig(t, fmt.Sprintf("[server.tls]\ncert_file = %q\nkey_file = %q\n", c.cert, c.key))
			out, errs, code := mcpedge(t, "", nil, "config", "check", "--config", cfg)
			if code != c.code || !strings.Contains(out+errs, c.want) {
				t.Fatalf("exit %d (want %d): %s%s\nwant %q", code, c.code, out, errs, c.want)
			}
		})
	}
}

// proxiedURL returns rawURL with its host:port replaced by a fault proxy's
// in front of it.
func proxiedURL(t *testing.T, rawURL string) (string, *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	u.Host = p.Addr()
	return u.String(), p
}

// readiness fetches /readyz without credentials, as a probe does.
func readiness(t *testing.T, u string) (int, map[string]string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Components []struct{ Name, State, Error string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, c := range body.Components {
		states[c.Name] = c.State
		if c.Error != "" {
			t.Errorf("an unauthenticated /readyz shows the error of %s: %q", c.Name, c.Error)
		}
	}
	return resp.StatusCode, states
}

// TestReadyzStoreAndRedis: /readyz follows the store and Redis. A real
// PostgreSQL and a real Redis are reached through TCP proxies that the
// test cuts: while the store (or Redis) cannot be reached the replica is
// not ready (503), and it is ready again once they can.
func TestReadyzStoreAndRedis(t *testing.T) {
	pg, pgProxy := proxiedURL(t, storetest.PostgresURL(t))
	rd, rdProxy := proxiedURL(t, redisURL(t))
	cfgPath := writeConfig(t, fmt.Sprintf("[store]\nurl = %q\n[redis]\nurl = %q\n", pg, rd))
	env := []string{"MCPEDGE_STORE_KEY=c3RvcmUta2V5LW9mLXRoZS1yZWFkeXotdGVzdCEhISE="}
	p := startServe(t, env, "--config", cfgPath)
	p.waitReadyAuth(t, testAdminKey, "lattice")

	code, states := readiness(t, p.URL)
	if code != http.StatusOK || states["store"] != "up" || states["redis"] != "up" || len(states) != 2 {
		t.Fatalf("ready gateway (a probe sees the store and Redis, not the queue): %d %v", code, states)
	}
	// Operators see why a component is down.
	detailErr := func(name string) string {
		_, b := apiDo(t, http.MethodGet, p.URL+"/readyz", testAdminKey, "")
		var body struct {
			Components []struct{ Name, State, Error string }
		}
		_ = json.Unmarshal(b, &body)
		for _, c := range body.Components {
			if c.Name == name {
				return c.Error
			}
		}
		return ""
	}

	for _, c := range []struct {
		name  string
		proxy *faultproxy.Proxy
	}{{"store", pgProxy}, {"redis", rdProxy}} {
		c.proxy.Set(faultproxy.Reset())
		waitFor(t, 20*time.Second, c.name+" down in /readyz", func() bool {
			code, states := readiness(t, p.URL)
			return code == http.StatusServiceUnavailable && states[c.name] == "down"
		})
		if c.name == "redis" {
			// The store answers, so the operator's key is checked.
			if e := detailErr("redis"); e == "" {
				t.Fatal("an operator's /readyz does not say why Redis is down")
			}
		}
		c.proxy.Set(faultproxy.Pass())
		waitFor(t, 30*time.Second, c.name+" up again in /readyz", func() bool {
			code, states := readiness(t, p.URL)
			return code == http.StatusOK && states[c.name] == "up"
		})
	}
}

// TestHubOverMTLS: an edge reaches a hub that terminates TLS with a private
// CA and requires client certificates, with [hub.tls]; the device still
// enrolls with its device key and calls reach the hub's upstreams. An edge
// without the client certificate is refused at the handshake.
func TestHubOverMTLS(t *testing.T) {
	dir := t.TempDir()
	f := makeTLSFiles(t, dir)
	hubData := t.TempDir()
	hubEnv := []string{"XDG_DATA_HOME=" + hubData, "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN="}
	hubCfg := writeConfig(t, fmt.Sprintf("[server.tls]\ncert_file = %q\nkey_file = %q\nclient_ca_file = %q\nclient_auth = \"required\"\n", f.cert, f.key, f.clientCAFile)+everythingBlock(t, "ev"))
	hp := startServe(t, hubEnv, "--config", hubCfg)
	// The hub asks every client for a certificate: the test's has one.
	admin := f.client(f.agent1)
	waitFor(t, 30*time.Second, "the hub's upstream ready", func() bool {
		code, body := apiDoTLS(t, admin, hp.URL+"/readyz", testAdminKey)
		return code == http.StatusOK && strings.Contains(body, `"name":"ev"`) && strings.Contains(body, `"state":"ready"`)
	})
	cli(t, hubEnv, "tenant", "create", "edges", "--config", hubCfg, "--upstreams", "ev")
	tok := lastLine(cli(t, hubEnv, "hub", "token", "create", "--config", hubCfg, "--tenant", "edges"))

	caFile := tlstest.Write(t, dir, "hub-ca.pem", f.ca.PEM)
	ec, ek, _ := f.clientCA.Issue(t, tlstest.Leaf{CN: "edge-1", Client: true})
	certFile, keyFile := tlstest.Write(t, dir, "edge.pem", ec), tlstest.Write(t, dir, "edge-key.pem", ek)
	edgeCfg := func(tlsTable string) string {
		return writeConfig(t, "[device]\ntpm = \"off\"\n[hub]\nurl = \""+hp.URL+"\"\nenroll_token = \"${MCPEDGE_ENROLL_TOKEN}\"\nname = \"edge-1\"\ntimeout = \"10s\"\n"+tlsTable)
	}
	edgeEnv := []string{"XDG_DATA_HOME=" + t.TempDir(), "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN=", "MCPEDGE_ENROLL_TOKEN=" + tok}
	ep := startServe(t, edgeEnv, "--config", edgeCfg(fmt.Sprintf("[hub.tls]\nca_file = %q\ncert_file = %q\nkey_file = %q\n", caFile, certFile, keyFile)))
	ep.waitReadyAuth(t, testAdminKey, "hub")
	cs, err := connectAs(t, ep.URL+"/mcp", testAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := callText(t, cs, "ev__echo", map[string]any{"message": "over mTLS"})
	if err != nil || !strings.Contains(out, "over mTLS") {
		t.Fatalf("a hub tool through the mTLS link: %q %v", out, err)
	}
	cs.Close()

	// Without its client certificate the edge gets no further than the
	// handshake.
	tok2 := lastLine(cli(t, hubEnv, "hub", "token", "create", "--config", hubCfg, "--tenant", "edges"))
	env2 := []string{"XDG_DATA_HOME=" + t.TempDir(), "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN=", "MCPEDGE_ENROLL_TOKEN=" + tok2}
	ep2 := startServe(t, env2, "--config", edgeCfg(fmt.Sprintf("[hub.tls]\nca_file = %q\n", caFile)))
	waitFor(t, 20*time.Second, "the refused handshake in the edge's log", func() bool {
		return strings.Contains(ep2.stderr.String(), "certificate required")
	})
}
