package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/faultproxy"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// faultUpstream is an in-process go-sdk upstream behind a fault proxy. Its
// tools: "read" (read-only), "idem" (idempotent), "write" (no hints),
// "toolerr" (an isError result), "rpcerr" (a JSON-RPC error of its own) and
// "slow" (waits for its context). calls counts the calls that reached it.
type faultUpstream struct {
	url   string
	proxy *faultproxy.Proxy
	calls map[string]*atomic.Int64
}

func newFaultUpstream(t *testing.T) *faultUpstream {
	t.Helper()
	f := &faultUpstream{calls: map[string]*atomic.Int64{}}
	s := mcp.NewServer(&mcp.Implementation{Name: "faulty", Version: "1"}, nil)
	schema := json.RawMessage(`{"type":"object"}`)
	add := func(name string, ann *mcp.ToolAnnotations, h mcp.ToolHandler) {
		n := new(atomic.Int64)
		f.calls[name] = n
		s.AddTool(&mcp.Tool{Name: name, InputSchema: schema, Annotations: ann}, func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			n.Add(1)
			return h(ctx, r)
		})
	}
	ok := func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
	}
	add("read", &mcp.ToolAnnotations{ReadOnlyHint: true}, ok)
	add("idem", &mcp.ToolAnnotations{IdempotentHint: true}, ok)
	add("write", nil, ok)
	add("toolerr", nil, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "no"}}}, nil
	})
	add("rpcerr", &mcp.ToolAnnotations{ReadOnlyHint: true}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: -32602, Message: "bad arguments"}
	})
	add("slow", &mcp.ToolAnnotations{ReadOnlyHint: true}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
		return ok(ctx, nil)
	})
	direct, err := url.Parse(startHTTPUpstream(t, s))
	if err != nil {
		t.Fatal(err)
	}
	f.proxy, err = faultproxy.New(direct.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.proxy.Close() })
	f.url = "http://" + f.proxy.Addr() + "/mcp"
	return f
}

func callTool(ctx context.Context, cs *mcp.ClientSession, name string) (*mcp.CallToolResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{}})
}

func wireCode(err error) int64 {
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		return werr.Code
	}
	return 0
}

func breakerOf(g *Gateway, name string) string {
	for _, s := range g.Statuses() {
		if s.Name == name {
			return s.Breaker
		}
	}
	return ""
}

func TestBreakerCountsTransportFailuresOnly(t *testing.T) {
	up := newFaultUpstream(t)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("f", up.url, `timeout = "5s"`, "retries = 0", "[upstreams.breaker]\nfailures = 2\nopen_for = \"300ms\""))
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25")
	ctx := context.Background()

	// The upstream's own errors and tool errors are answers, not failures.
	for range 3 {
		if res, err := callTool(ctx, cs, "f__toolerr"); err != nil || !res.IsError {
			t.Fatalf("toolerr: %v %v", res, err)
		}
		if _, err := callTool(ctx, cs, "f__rpcerr"); wireCode(err) != -32602 {
			t.Fatalf("rpcerr: %v", err)
		}
	}
	if st := breakerOf(g, "f"); st != "closed" {
		t.Fatalf("breaker %q after upstream errors, want closed", st)
	}

	// Transport failures open it.
	up.proxy.Set(faultproxy.Reset())
	for i := range 2 {
		if _, err := callTool(ctx, cs, "f__write"); wireCode(err) != mcpwire.CodeUpstreamUnavailable {
			t.Fatalf("call %d through a reset: %v, want code %d", i, err, mcpwire.CodeUpstreamUnavailable)
		}
	}
	if st := breakerOf(g, "f"); st != "open" {
		t.Fatalf("breaker %q after 2 failures, want open", st)
	}
	start := time.Now()
	_, err := callTool(ctx, cs, "f__write")
	took := time.Since(start)
	msg := err.Error()
	if wireCode(err) != mcpwire.CodeUpstreamUnavailable || !strings.Contains(msg, "circuit breaker open after 2 consecutive failures") || !strings.Contains(msg, "probes again at") {
		t.Fatalf("call on an open breaker: %v", err)
	}
	if took > time.Second {
		t.Errorf("open breaker took %s to refuse", took)
	}
	if n := metricValue(t, g, "mcpedge_upstream_breaker_rejections_total", "f", ""); n < 1 {
		t.Errorf("rejections = %v", n)
	}
	if st, reason := g.edges["f"].breaker.status(); st != "open" || !strings.Contains(reason, "consecutive failures") {
		t.Errorf("status %q %q", st, reason)
	}

	// Back to pass: after open_for a probe goes through and closes it.
	up.proxy.Set(faultproxy.Pass())
	if !waitFor(t, "a call to succeed", 30*time.Second, func() bool {
		res, err := callTool(ctx, cs, "f__write")
		return err == nil && !res.IsError
	}) {
		t.Fatal("calls do not work again after the proxy passes traffic")
	}
	if st := breakerOf(g, "f"); st != "closed" {
		t.Errorf("breaker %q after a successful probe, want closed", st)
	}
}

func TestRetriesOnlySafeCalls(t *testing.T) {
	up := newFaultUpstream(t)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("f", up.url, `timeout = "10s"`))
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25")
	ctx := context.Background()
	for _, tool := range []string{"read", "idem"} {
		w := up.proxy.Watch(`"name":"`+tool+`"`, 1)
		res, err := callTool(ctx, cs, "f__"+tool)
		if err != nil || res.IsError {
			t.Fatalf("%s across one reset: %v %v", tool, res, err)
		}
		if w.Seen() != 2 || w.Failed() != 1 || up.calls[tool].Load() != 1 {
			t.Errorf("%s: proxy saw %d (failed %d), upstream ran it %d times; want 2, 1, 1", tool, w.Seen(), w.Failed(), up.calls[tool].Load())
		}
	}
	if n := metricValue(t, g, "mcpedge_upstream_retries_total", "f", "tools/call"); n != 2 {
		t.Errorf("retries metric = %v, want 2", n)
	}

	w := up.proxy.Watch(`"name":"write"`, 1)
	if _, err := callTool(ctx, cs, "f__write"); wireCode(err) != mcpwire.CodeUpstreamUnavailable {
		t.Fatalf("write through a reset: %v", err)
	}
	if w.Seen() != 1 || up.calls["write"].Load() != 0 {
		t.Errorf("write: proxy saw %d, upstream ran it %d times; want 1 and 0 (not retried)", w.Seen(), up.calls["write"].Load())
	}

	// The upstream's own error is not retried, even for a read-only tool.
	if _, err := callTool(ctx, cs, "f__rpcerr"); wireCode(err) != -32602 {
		t.Fatalf("rpcerr: %v", err)
	}
	if n := up.calls["rpcerr"].Load(); n != 1 {
		t.Errorf("rpcerr ran %d times", n)
	}
}

func TestRetriesOff(t *testing.T) {
	up := newFaultUpstream(t)
	_, url := startGateway(t, "[server]\n"+upstreamBlock("f", up.url, "retries = 0"))
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25")
	w := up.proxy.Watch(`"name":"read"`, 1)
	if _, err := callTool(context.Background(), cs, "f__read"); wireCode(err) != mcpwire.CodeUpstreamUnavailable {
		t.Fatalf("read through a reset with retries = 0: %v", err)
	}
	if w.Seen() != 1 {
		t.Errorf("proxy saw %d attempts, want 1", w.Seen())
	}
}

func TestToolTimeout(t *testing.T) {
	up := newFaultUpstream(t)
	_, url := startGateway(t, "[server]\n"+upstreamBlock("f", up.url, `timeout = "20s"`, `tool_timeouts = { "slow" = "300ms" }`))
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25")
	start := time.Now()
	_, err := callTool(context.Background(), cs, "f__slow")
	took := time.Since(start)
	if wireCode(err) != mcpwire.CodeUpstreamTimeout || !strings.Contains(err.Error(), `tool "slow" within its tool timeout of 300ms`) {
		t.Fatalf("slow tool: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("the tool timeout of 300ms took %s", took)
	}
	// A timeout of the call's own deadline is not retried.
	if n := up.calls["slow"].Load(); n != 1 {
		t.Errorf("slow ran %d times", n)
	}
}

func TestReloadKeepsOrResetsBreaker(t *testing.T) {
	up := newFaultUpstream(t)
	block := func(extra ...string) string { return "[server]\n" + upstreamBlock("f", up.url, extra...) }
	g, _ := startGateway(t, block("[upstreams.breaker]\nfailures = 3"))
	before := g.edges["f"]
	apply := func(src string) *edge {
		t.Helper()
		cfg, err := config.Parse("reload.toml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		g.Apply(context.Background(), cfg)
		g.mu.RLock()
		defer g.mu.RUnlock()
		return g.edges["f"]
	}
	if e := apply(block("[upstreams.breaker]\nfailures = 3")); e != before {
		t.Error("an unchanged upstream lost its breaker")
	}
	if e := apply(block("[upstreams.breaker]\nfailures = 4")); e == before || e.breaker.failures != 4 {
		t.Error("a changed breaker setting kept the old breaker")
	}
	if e := apply(block(`timeout = "9s"`, "[upstreams.breaker]\nfailures = 4")); e == before {
		t.Error("a changed upstream kept its breaker")
	}
	if e := apply(block("[upstreams.breaker]\nfailures = 0")); e.breaker != nil || breakerOf(g, "f") != "" {
		t.Error("failures = 0 left a breaker")
	}
}

func TestBreakerInReadyzAndMetrics(t *testing.T) {
	up := newFaultUpstream(t)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("f", up.url))
	get := func(path string) string {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if body := get("/readyz"); !strings.Contains(body, `"breaker":"closed"`) {
		t.Errorf("readyz: %s", body)
	}
	if body := get("/metrics"); !strings.Contains(body, `mcpedge_upstream_breaker_state{upstream="f"} 0`) {
		t.Errorf("metrics lack the breaker state")
	}
	// Trip it by hand.
	for range 5 {
		done, err := g.edges["f"].breaker.admit()
		if err != nil {
			t.Fatal(err)
		}
		done(failure, errors.New("boom"))
	}
	if body := get("/readyz"); !strings.Contains(body, `"breaker":"open"`) || !strings.Contains(body, "5 consecutive failures, the last: boom") {
		t.Errorf("readyz: %s", body)
	}
	if body := get("/metrics"); !strings.Contains(body, `mcpedge_upstream_breaker_state{upstream="f"} 2`) {
		t.Errorf("metrics lack the open breaker")
	}
}

func TestClassify(t *testing.T) {
	live := context.Background()
	canceled, cancel := context.WithCancel(live)
	cancel()
	rejected := &jsonrpc.Error{Code: mcpwire.CodeRejected, Message: mcpwire.MsgRejected}
	expired, cancel2 := context.WithTimeout(live, -time.Second)
	defer cancel2()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want outcome
	}{
		{"result", live, nil, success},
		{"upstream error", live, &jsonrpc.Error{Code: -32602}, success},
		{"wrapped upstream error", live, errors.Join(errors.New("x"), &jsonrpc.Error{Code: 1}), success},
		{"broken connection", live, errors.New("connection reset by peer"), failure},
		{"rejected by transport", live, fmt.Errorf("sending: %w: %w", rejected, errors.New("connection refused")), failure},
		{"upstream error over HTTP 400", live, fmt.Errorf("sending: %w: %w: Bad Request", &jsonrpc.Error{Code: -32600}, rejected), success},
		{"timeout", expired, context.DeadlineExceeded, failure},
		{"client canceled", canceled, context.Canceled, excluded},
		{"canceled while failing", canceled, errors.New("EOF"), excluded},
	}
	for _, tt := range tests {
		if got := classify(tt.ctx, tt.err); got != tt.want {
			t.Errorf("%s: classify = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestRetryBudget(t *testing.T) {
	now := time.Unix(0, 0)
	b := newRetryBudget()
	b.now = func() time.Time { return now }
	b.last = now
	spent := 0
	for b.spend() {
		spent++
	}
	if spent != int(retryBurst) {
		t.Fatalf("a fresh budget allowed %d retries, want %d", spent, int(retryBurst))
	}
	// 100 calls earn 20 retries' worth, capped at the burst.
	for range 10 {
		b.earn()
	}
	if !b.spend() || b.spend() {
		t.Error("10 calls should earn exactly 2 retries")
	}
	// The floor: one retry a second with no traffic.
	now = now.Add(time.Second)
	if !b.spend() {
		t.Error("the floor gave no retry after a second")
	}
	if b.spend() {
		t.Error("the floor gave more than one retry a second")
	}
}

func TestBreakerHalfOpenAdmitsProbesOnly(t *testing.T) {
	b := newBreaker("x", 1, 50*time.Millisecond, 1, slog.New(slog.DiscardHandler))
	done, _ := b.admit()
	done(failure, errors.New("down"))
	if _, err := b.admit(); err == nil {
		t.Fatal("open breaker admitted a call")
	}
	time.Sleep(80 * time.Millisecond)
	probe, err := b.admit()
	if err != nil {
		t.Fatalf("half-open breaker refused the probe: %v", err)
	}
	if _, err := b.admit(); err == nil || !strings.Contains(b.rejection(err), "half-open") {
		t.Fatalf("second call while probing: %v", err)
	}
	// A cancelled probe frees its slot without closing or opening.
	probe(excluded, context.Canceled)
	probe, err = b.admit()
	if err != nil {
		t.Fatalf("no new probe after a cancelled one: %v", err)
	}
	probe(success, nil)
	if st, _ := b.status(); st != "closed" {
		t.Errorf("state after a good probe: %s", st)
	}
}

// metricValue reads a counter or gauge of the gateway's registry by its
// upstream (and, if not "", method) label.
func metricValue(t *testing.T, g *Gateway, name, up, method string) float64 {
	t.Helper()
	mfs, err := g.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "upstream" && l.GetValue() != up) || (l.GetName() == "method" && method != "" && l.GetValue() != method) {
					continue metrics
				}
			}
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestRetryStaysOnTheClientsSession(t *testing.T) {
	up := newFaultUpstream(t)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("f", up.url, `isolation = "session"`))
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25")
	if _, err := callTool(context.Background(), cs, "f__idem"); err != nil {
		t.Fatal(err)
	}
	u, _ := g.Upstream("f")
	if n := u.SessionCount(); n != 1 {
		t.Fatalf("per-session connections = %d, want 1", n)
	}
	w := up.proxy.Watch(`"name":"read"`, 1)
	if res, err := callTool(context.Background(), cs, "f__read"); err != nil || res.IsError {
		t.Fatalf("read across one reset on a per-session connection: %v %v", res, err)
	}
	if w.Seen() != 2 || up.calls["read"].Load() != 1 {
		t.Errorf("proxy saw %d, upstream ran it %d times; want 2 and 1", w.Seen(), up.calls["read"].Load())
	}
	if n := u.SessionCount(); n != 1 {
		t.Errorf("the retry opened another connection: %d", n)
	}
}
