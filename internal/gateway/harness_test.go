package gateway

// Helpers for the review_*_test.go files: an in-process gateway, in-process
// go-sdk upstreams, a hand-written (hostile) Streamable HTTP upstream, a
// hand-written session-era client (rawClient), and a way to run a scenario
// in a child process so that a panic on a gateway goroutine is reported as
// a test failure instead of killing the test binary.

import (
	"bufio"
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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func startGateway(t testing.TB, toml string) (*Gateway, string) {
	t.Helper()
	return startGatewayOpts(t, toml, true)
}

// startGatewayOpts: closeSessions=false leaves client sessions alone at
// cleanup (for tests where CloseSessions itself hangs).
func startGatewayOpts(t testing.TB, toml string, closeSessions bool) (*Gateway, string) {
	t.Helper()
	cfg, err := config.Parse("review.toml", []byte(toml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g, url, _ := startTestGateway(t, cfg, closeSessions, nil)
	return g, url
}

// startTestGateway builds a gateway for cfg, lets setup (if not nil)
// configure it before Start, serves it from an httptest server, waits until
// every upstream was attempted, and stops both at cleanup (closeSessions:
// as for startGatewayOpts). The context returned ends at cleanup.
func startTestGateway(t testing.TB, cfg *config.Config, closeSessions bool, setup func(*Gateway)) (*Gateway, string, context.Context) {
	t.Helper()
	return startTestGatewayHTTP(t, cfg, closeSessions, setup, HTTPOptions{})
}

// startTestGatewayHTTP is startTestGateway with the HTTP options o
// (MaxBodyBytes and MaxJSONDepth come from cfg).
func startTestGatewayHTTP(t testing.TB, cfg *config.Config, closeSessions bool, setup func(*Gateway), o HTTPOptions) (*Gateway, string, context.Context) {
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
	o.MaxBodyBytes, o.MaxJSONDepth = cfg.Server.MaxBodyBytes, cfg.Server.MaxJSONDepth
	srv := httptest.NewServer(g.Handler(o))
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
	if !waitFor(t, fmt.Sprintf("%d targets connected", n), 20*time.Second, func() bool {
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

func startHTTPUpstream(t testing.TB, s *mcp.Server) string {
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

func upstreamBlock(name, url string, extra ...string) string {
	b, _ := json.Marshal(name)
	u, _ := json.Marshal(url)
	return "\n[[upstreams]]\nname = " + string(b) + "\ntransport = \"http\"\nurl = " + string(u) + "\n" + strings.Join(extra, "\n") + "\n"
}

func dialClient(t testing.TB, url string, opts *mcp.ClientOptions, version string, topts ...func(*mcp.StreamableClientTransport)) *mcp.ClientSession {
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

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) bool {
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
	return hostileUpstreamHook(t, results, nil)
}

// hostileMsg is a message POSTed to a hostile upstream.
type hostileMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Body   []byte          `json:"-"` // the whole message as it came
}

// hostileUpstreamHook is hostileUpstream with a hook that sees every
// POSTed message first and, when it returns true, has written the whole
// response itself (status, headers, body: anything at all). Messages the
// hook leaves alone are answered as hostileUpstream answers them.
func hostileUpstreamHook(t testing.TB, results map[string]string, hook func(w http.ResponseWriter, r *http.Request, msg hostileMsg) bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var msg hostileMsg
		_ = json.Unmarshal(body, &msg)
		msg.Body = body
		if hook != nil && hook(w, r, msg) {
			return
		}
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

// hotHostile is a hand-written session-era upstream (hostileUpstreamHook)
// whose tools are the keys of answer plus "good"; answer[tool] writes the
// whole HTTP response to a tools/call of tool. It gives its session an id,
// and keeps what it was sent.
type hotHostile struct {
	url string

	mu        sync.Mutex
	calls     []hostileMsg           // tools/call requests
	responses map[string]chan []byte // JSON-RPC responses the gateway POSTed, by id
}

type hostileAnswer func(w http.ResponseWriter, msg hostileMsg, h *hotHostile)

// hostileJSON answers with body as application/json ("{{id}}": the
// request's id).
func hostileJSON(body string) hostileAnswer {
	return func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(strings.ReplaceAll(body, "{{id}}", string(msg.ID))))
	}
}

// hostileResult answers with result as the request's result.
func hostileResult(result string) hostileAnswer {
	return hostileJSON(`{"jsonrpc":"2.0","id":{{id}},"result":` + result + `}`)
}

func newHotHostile(t *testing.T, answers map[string]hostileAnswer) *hotHostile {
	h := &hotHostile{responses: map[string]chan []byte{}}
	var tools []string
	for name := range answers {
		tools = append(tools, fmt.Sprintf(`{"name":%q,"inputSchema":{"type":"object"}}`, name))
	}
	tools = append(tools, `{"name":"good","inputSchema":{"type":"object"}}`)
	results := map[string]string{"initialize": hostileInit, "tools/list": `{"tools":[` + strings.Join(tools, ",") + `]}`,
		"prompts/list": `{"prompts":[]}`, "resources/list": `{"resources":[]}`, "resources/templates/list": `{"resourceTemplates":[]}`}
	h.url = hostileUpstreamHook(t, results, func(w http.ResponseWriter, r *http.Request, msg hostileMsg) bool {
		w.Header().Set("Mcp-Session-Id", "hostile-session")
		switch {
		case msg.Method == "" && len(msg.ID) > 0: // a response to one of its requests
			h.response(string(msg.ID)) <- msg.Body
			w.WriteHeader(http.StatusAccepted)
			return true
		case msg.Method != "tools/call":
			return false
		}
		h.mu.Lock()
		h.calls = append(h.calls, msg)
		h.mu.Unlock()
		var p struct{ Name string }
		_ = json.Unmarshal(msg.Params, &p)
		if a, ok := answers[p.Name]; ok {
			a(w, msg, h)
			return true
		}
		return false
	})
	return h
}

// response is the channel of the gateway's responses to request id (raw
// JSON).
func (h *hotHostile) response(id string) chan []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.responses[id]
	if !ok {
		c = make(chan []byte, 4)
		h.responses[id] = c
	}
	return c
}

func (h *hotHostile) toolCalls() []hostileMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// sse writes events (JSON-RPC messages) on an event stream and flushes.
func sse(w http.ResponseWriter, events ...string) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/event-stream")
	}
	for _, e := range events {
		fmt.Fprintf(w, "event: message\ndata: %s\n\n", e)
	}
	w.(http.Flusher).Flush()
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
	return newRawClientWith(t, url, token, `{}`)
}

// newRawClientWith is newRawClientAs declaring capabilities (a JSON
// object) at initialize.
func newRawClientWith(t *testing.T, url, token, capabilities string) *rawClient {
	t.Helper()
	c := &rawClient{t: t, url: url, token: token}
	st, _, msg := c.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":` + capabilities + `,"clientInfo":{"name":"raw","version":"1"}}}`)
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

// rawAnswer is the gateway's answer to one POST of a rawClient, as its
// bytes: exchange, callTool.
type rawAnswer struct {
	Status      int
	ContentType string
	Body        []byte                     // the body (for a stream: the answer's data)
	Msg         map[string]json.RawMessage // the JSON-RPC answer, nil if none
}

// decoded returns the answer's member key (result, error, id) decoded.
func (a rawAnswer) decoded(key string) any {
	raw, ok := a.Msg[key]
	if !ok {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "undecodable: " + string(raw)
	}
	return v
}

// exchange sends one message in the session and reads the answer as it
// came; mutate (optional) changes the request before it is sent.
func (c *rawClient) exchange(body string, mutate ...func(*http.Request)) rawAnswer {
	c.t.Helper()
	resp, err := c.send(body, mutate...)
	if err != nil {
		c.t.Fatalf("POST %s: %v", c.url, err)
	}
	defer resp.Body.Close()
	return readRawAnswer(c.t, resp)
}

// send POSTs one message in the session; the caller reads and closes the
// response.
func (c *rawClient) send(body string, mutate ...func(*http.Request)) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, c.url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	c.headers(req)
	req.Header.Set("Content-Type", "application/json")
	for _, m := range mutate {
		m(req)
	}
	return (&http.Client{Timeout: 60 * time.Second}).Do(req)
}

// headers sets the headers of a request in the session.
func (c *rawClient) headers(req *http.Request) {
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", cmp.Or(c.version, "2025-11-25"))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
	}
}

// callTool sends tools/call with id and the raw params object and reads
// the answer as it came.
func (c *rawClient) callTool(id int, params string) rawAnswer {
	c.t.Helper()
	return c.exchange(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}`, id, params))
}

// callAnswering is callTool answering, as a client would, each request the
// gateway puts to the client on the call's stream: it POSTs in the session
// the JSON-RPC member ("result" or "error") and value answer returns for
// it. Every message of the stream before the answer is kept in seen.
func (c *rawClient) callAnswering(id int, params string, answer func(method string, params json.RawMessage) (member, value string)) (a rawAnswer, seen []string) {
	c.t.Helper()
	resp, err := c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}`, id, params))
	if err != nil {
		c.t.Fatalf("POST %s: %v", c.url, err)
	}
	defer resp.Body.Close()
	a = readRawStream(c.t, resp, func(m map[string]json.RawMessage, data []byte) {
		seen = append(seen, string(data))
		var method string
		if m == nil || m["id"] == nil || json.Unmarshal(m["method"], &method) != nil {
			return
		}
		member, value := answer(method, m["params"])
		if r := c.exchange(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,%q:%s}`, m["id"], member, value)); r.Status != http.StatusAccepted {
			c.t.Errorf("the answer to %s: HTTP %d: %s", data, r.Status, r.Body)
		}
	})
	return a, seen
}

// delete ends the session (HTTP DELETE) and returns the status.
func (c *rawClient) delete() int {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, c.url, nil)
	c.headers(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("DELETE %s: %v", c.url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// stream opens the session's standalone event stream (GET) and returns
// the data of its events as they come; the stream closes at cleanup.
func (c *rawClient) stream() <-chan string {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url, nil)
	c.headers(req)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", c.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		c.t.Fatalf("GET %s: HTTP %d", c.url, resp.StatusCode)
	}
	c.t.Cleanup(func() { resp.Body.Close() })
	events := make(chan string, 64)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
				select {
				case events <- strings.TrimPrefix(d, " "):
				default: // nobody is reading: drop
				}
			}
		}
	}()
	return events
}

// readRawAnswer reads a response: one JSON message, or an event stream up
// to its first message that is an answer (result or error).
func readRawAnswer(t testing.TB, resp *http.Response) rawAnswer {
	t.Helper()
	return readRawStream(t, resp, nil)
}

// readRawStream is readRawAnswer handing each message of an event stream
// that comes before the answer to other (nil: dropped).
func readRawStream(t testing.TB, resp *http.Response, other func(msg map[string]json.RawMessage, data []byte)) rawAnswer {
	t.Helper()
	a := rawAnswer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	if strings.HasPrefix(a.ContentType, "text/event-stream") {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 256<<20)
		var data []byte
		for sc.Scan() {
			line := sc.Text()
			if d, ok := strings.CutPrefix(line, "data:"); ok {
				data = append(data, strings.TrimPrefix(d, " ")...)
				continue
			}
			if line != "" || len(data) == 0 {
				continue
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(data, &m) == nil && m["method"] == nil && (m["result"] != nil || m["error"] != nil) {
				a.Body, a.Msg = data, m
				return a
			}
			if other != nil {
				other(m, data)
			}
			data = nil
		}
		return a
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	a.Body = b
	if strings.HasPrefix(a.ContentType, "application/json") {
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) == nil {
			a.Msg = m
		}
	}
	return a
}
