package gateway

// Helpers for the review_*_test.go files: an in-process gateway, in-process
// go-sdk upstreams, a hand-written (hostile) Streamable HTTP upstream, a
// hand-written session-era client (rawClient), and a way to run a scenario
// in a child process so that a panic on a gateway goroutine is reported as
// a test failure instead of killing the test binary.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func reviewGateway(t testing.TB, toml string) (*Gateway, string) {
	t.Helper()
	return reviewGatewayOpts(t, toml, true)
}

// reviewGatewayOpts: closeSessions=false leaves client sessions alone at
// cleanup (for tests where CloseSessions itself hangs).
func reviewGatewayOpts(t testing.TB, toml string, closeSessions bool) (*Gateway, string) {
	t.Helper()
	cfg, err := config.Parse("review.toml", []byte(toml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g, url, _ := startReviewGateway(t, cfg, closeSessions, nil)
	return g, url
}

// startReviewGateway builds a gateway for cfg, lets setup (if not nil)
// configure it before Start, serves it from an httptest server, waits until
// every upstream was attempted, and stops both at cleanup (closeSessions:
// as for reviewGatewayOpts). The context returned ends at cleanup.
func startReviewGateway(t testing.TB, cfg *config.Config, closeSessions bool, setup func(*Gateway)) (*Gateway, string, context.Context) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("MCPEDGE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g := New(cfg, log, telemetry.NewMetrics())
	if setup != nil {
		setup(g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.Start(ctx)
	srv := httptest.NewServer(g.Handler(HTTPOptions{MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxJSONDepth: cfg.Server.MaxJSONDepth}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		if closeSessions {
			g.CloseSessions(context.Background())
			srv.Close() // waits for handlers, which may wait for sessions
		}
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		g.Stop(stop)
		cancel()
	})
	g.WaitAttempted(ctx, 20*time.Second)
	return g, srv.URL, ctx
}

// waitTargetsReady waits until n targets (of all upstreams) are ready and
// fails the test otherwise.
func waitTargetsReady(t testing.TB, g *Gateway, n int) {
	t.Helper()
	if !reviewWait(t, fmt.Sprintf("%d targets connected", n), 20*time.Second, func() bool {
		ready := 0
		for _, s := range g.Statuses() {
			if s.State == upstream.StateReady {
				ready++
			}
		}
		return ready == n
	}) {
		t.Fatalf("targets not ready: %+v", g.Statuses())
	}
}

func reviewHTTPUpstream(t testing.TB, s *mcp.Server) string {
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(func() {
		// Forcibly and bounded: a fixture handler still waiting on a client
		// (an elicitation nobody answers) must not hang the test's cleanup;
		// httptest.Server.Close waits for every handler.
		srv.CloseClientConnections()
		done := make(chan struct{})
		go func() { srv.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
		}
	})
	return srv.URL
}

func reviewBlock(name, url string, extra ...string) string {
	b, _ := json.Marshal(name)
	u, _ := json.Marshal(url)
	return "\n[[upstreams]]\nname = " + string(b) + "\ntransport = \"http\"\nurl = " + string(u) + "\n" + strings.Join(extra, "\n") + "\n"
}

func reviewClient(t testing.TB, url string, opts *mcp.ClientOptions, version string, topts ...func(*mcp.StreamableClientTransport)) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "review", Version: "1"}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var so *mcp.ClientSessionOptions
	if version != "" {
		so = &mcp.ClientSessionOptions{ProtocolVersion: version}
	}
	tr := &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1}
	for _, o := range topts {
		o(tr)
	}
	cs, err := c.Connect(ctx, tr, so)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func reviewWait(t testing.TB, what string, d time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// hostileUpstream is a hand-written Streamable HTTP MCP server answering with
// fixed JSON: results maps a method to its raw JSON result. A method mapped
// to a value starting with "SSE:" is answered as an event stream whose
// events are the remaining "\n\n"-separated messages followed by the result
// ("{{id}}" is replaced with the request id).
func hostileUpstream(t testing.TB, results map[string]string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.Unmarshal(body, &msg)
		if len(msg.ID) == 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		res, ok := results[msg.Method]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, msg.ID)
			return
		}
		if pre, ok := strings.CutPrefix(res, "SSE:"); ok {
			parts := strings.Split(pre, "\n\n")
			w.Header().Set("Content-Type", "text/event-stream")
			var buf bytes.Buffer
			for _, p := range parts[:len(parts)-1] {
				fmt.Fprintf(&buf, "event: message\ndata: %s\n\n", p)
			}
			fmt.Fprintf(&buf, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", msg.ID, parts[len(parts)-1])
			_, _ = w.Write(buf.Bytes())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, res)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

const hostileInit = `{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"prompts":{},"resources":{}},"serverInfo":{"name":"hostile","version":"1"}}`

// inChild runs scenario in a child process (this test binary, re-run for
// just the named test with MCPEDGE_REVIEW_CHILD set) and returns its
// combined output and whether it exited cleanly. In the child, inChild runs
// the scenario and exits.
func inChild(t *testing.T, scenario func(t *testing.T)) (string, bool) {
	t.Helper()
	if os.Getenv("MCPEDGE_REVIEW_CHILD") == t.Name() {
		scenario(t)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MCPEDGE_REVIEW_CHILD="+t.Name())
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// firstLines keeps a panic report short.
func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

// hostileUpstreamFunc is hostileUpstream with results computed per request.
func hostileUpstreamFunc(t testing.TB, result func(method string) (string, bool)) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.Unmarshal(body, &msg)
		if len(msg.ID) == 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		res, ok := result(msg.Method)
		if !ok {
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, msg.ID)
			return
		}
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, res)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// rawClient is a session-era client written by hand: it initializes with
// "capabilities":{} (so its tools/call may take the hot path) and posts
// messages in its session, with token as its bearer credential when set.
type rawClient struct {
	t       *testing.T
	url     string
	token   string
	session string
	// version is the MCP-Protocol-Version header ("" for 2025-11-25).
	version string
}

func newRawClient(t *testing.T, url string) *rawClient { return newRawClientAs(t, url, "") }

// newRawClientAs is newRawClient presenting token.
func newRawClientAs(t *testing.T, url, token string) *rawClient {
	c := &rawClient{t: t, url: url, token: token}
	st, _, msg := c.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if st != http.StatusOK || c.session == "" || msg["result"] == nil {
		t.Fatalf("initialize: HTTP %d, session %q, %v", st, c.session, msg)
	}
	if st, _, _ := c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`); st != http.StatusAccepted {
		t.Fatalf("notifications/initialized: HTTP %d", st)
	}
	return c
}

// post sends one message and returns the HTTP status, the headers and the
// answer (from a JSON body or the last message of an event stream).
func (c *rawClient) post(body string) (int, http.Header, map[string]any) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", cmp.Or(c.version, "2025-11-25"))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" && c.session == "" {
		c.session = id
	}
	var msg map[string]any
	if json.Unmarshal(b, &msg) != nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				_ = json.Unmarshal(d, &msg)
			}
		}
	}
	return resp.StatusCode, resp.Header, msg
}

// call posts a tools/call of name with the raw arguments and returns the
// answer's error (nil for a result) and result.
func (c *rawClient) call(id int, name, args string) (rpcErr map[string]any, result map[string]any) {
	c.t.Helper()
	params := `{"name":` + strings.TrimSpace(string(mustJSON(name)))
	if args != "" {
		params += `,"arguments":` + args
	}
	params += "}"
	st, _, msg := c.post(`{"jsonrpc":"2.0","id":` + string(mustJSON(id)) + `,"method":"tools/call","params":` + params + `}`)
	if st != http.StatusOK {
		c.t.Fatalf("tools/call %s: HTTP %d %v", name, st, msg)
	}
	if msg["id"] != float64(id) {
		c.t.Fatalf("tools/call %s: answer for id %v, want %d: %v", name, msg["id"], id, msg)
	}
	e, _ := msg["error"].(map[string]any)
	r, _ := msg["result"].(map[string]any)
	return e, r
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// counterValue reads one counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
