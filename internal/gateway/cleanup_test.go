package gateway

// Tests for what a reload must clean up after the connections it stops,
// and for other small defects found in review.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	cachestage "github.com/mcpedge/mcpedge/internal/stage/cache"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// gatheredUpstreams returns "metric/upstream" for every series on the
// gateway's registry that has an upstream label.
func gatheredUpstreams(t *testing.T, g *Gateway) map[string]bool {
	t.Helper()
	mfs, err := g.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "upstream" {
					series[mf.GetName()+"/"+l.GetValue()] = true
				}
			}
		}
	}
	return series
}

// TestReloadForgetsStoppedConnections: a reload that replaces a connection
// moves its logging-level entry to the replacement, one that removes a
// connection drops the entry and the connection's request series
// (requests, errors, latency, retries); repeated reloads do not grow the
// level table.
func TestReloadForgetsStoppedConnections(t *testing.T) {
	upA := startHTTPUpstream(t, echoServer("a", true))
	upB := startHTTPUpstream(t, echoServer("b", true))
	g, url := startGateway(t, "[server]\n"+upstreamBlock("a", upA)+upstreamBlock("b", upB))
	cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{LoggingMessageHandler: func(context.Context, *mcp.LoggingMessageRequest) {}}, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"a__echo", "b__echo"} {
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	// A failed call too, so that the error series exists.
	_, _ = cs.CallTool(ctx, &mcp.CallToolParams{Name: "b__nosuch", Arguments: map[string]any{}})
	g.metrics.Errors.WithLabelValues("b", "tools/call", "protocol").Inc()
	g.edgeMetrics.retries.WithLabelValues("b", "tools/call").Inc()
	before := gatheredUpstreams(t, g)
	for _, s := range []string{"mcpedge_requests_total/b", "mcpedge_request_errors_total/b", "mcpedge_request_duration_seconds/b", "mcpedge_upstream_retries_total/b"} {
		if !before[s] {
			t.Fatalf("precondition: %s not exported", s)
		}
	}
	applied := func() map[string]int {
		g.levels.mu.Lock()
		defer g.levels.mu.Unlock()
		out := map[string]int{}
		for u, r := range g.levels.applied {
			if cur, ok := g.Upstream(u.Name()); !ok || cur != u {
				out["stopped "+u.Name()]++
				continue
			}
			out[u.Name()] = r
		}
		return out
	}
	if got := applied(); len(got) != 2 || got["a"] != 0 || got["b"] != 0 {
		t.Fatalf("precondition: level table %v, want a and b at debug", got)
	}

	// Remove b, then replace a several times.
	cfg := *g.cfg.Load()
	cfg.Upstreams = cfg.Upstreams[:1:1]
	if _, removed, _ := g.Apply(ctx, &cfg); len(removed) != 1 || removed[0] != "b" {
		t.Fatalf("removed = %v, want [b]", removed)
	}
	for i := range 5 {
		next := cfg
		next.Upstreams = append(cfg.Upstreams[:0:0], cfg.Upstreams...)
		next.Upstreams[0].Timeout += config.Duration(time.Duration(i+1) * time.Millisecond)
		if _, _, changed := g.Apply(ctx, &next); len(changed) != 1 {
			t.Fatalf("reload %d: changed = %v, want [a]", i, changed)
		}
	}
	if got := applied(); len(got) != 1 || got["a"] != 0 {
		t.Errorf("after removing b and replacing a 5 times the level table is %v, want only the current a at debug", got)
	}
	after := gatheredUpstreams(t, g)
	for s := range after {
		if s[len(s)-2:] == "/b" {
			t.Errorf("%s still exported after b was removed", s)
		}
	}
	if !after["mcpedge_requests_total/a"] {
		t.Error("a was only replaced, its request counter is gone")
	}
}

// TestListenUnsubscribesUpstream: a 2026-07-28 client subscribes through a
// subscriptions/listen stream and unsubscribes by ending it. The gateway
// subscribed the upstream when the stream opened and must unsubscribe it
// when it ends; it used the ended stream's (canceled) context, so the
// upstream stayed subscribed.
func TestListenUnsubscribesUpstream(t *testing.T) {
	var mu sync.Mutex
	subscribed := map[string]int{}
	s := mcp.NewServer(&mcp.Implementation{Name: "sub", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler: func(_ context.Context, r *mcp.SubscribeRequest) error {
			mu.Lock()
			subscribed[r.Params.URI]++
			mu.Unlock()
			return nil
		},
		UnsubscribeHandler: func(_ context.Context, r *mcp.UnsubscribeRequest) error {
			mu.Lock()
			subscribed[r.Params.URI]--
			mu.Unlock()
			return nil
		},
	})
	s.AddResource(&mcp.Resource{URI: "mem://r", Name: "r"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "mem://r", Text: "x"}}}, nil
	})
	up := startHTTPUpstream(t, s)
	_, url := startGateway(t, "[server]\n"+upstreamBlock("sub", up))
	cs := dialClient(t, url+"/mcp", nil, "2026-07-28")
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return subscribed["mem://r"]
	}
	listenErr := make(chan error, 1)
	go func() { listenErr <- cs.Subscribe(context.Background(), &mcp.SubscribeParams{URI: "mem://r"}) }()
	if !waitFor(t, "upstream subscribed", 15*time.Second, func() bool { return count() == 1 }) {
		t.Fatalf("the upstream was not subscribed (count %d)", count())
	}
	if err := cs.Unsubscribe(context.Background(), &mcp.UnsubscribeParams{URI: "mem://r"}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, "upstream unsubscribed", 15*time.Second, func() bool { return count() == 0 }) {
		t.Fatalf("the client ended its subscriptions/listen stream, the upstream is still subscribed (count %d)", count())
	}
	select {
	case <-listenErr:
	case <-time.After(10 * time.Second):
		t.Error("the client's subscriptions/listen did not return after Unsubscribe")
	}
}

// routeMeta returns the result's routing note.
func routeMeta(t *testing.T, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	v, ok := res.Meta[MetaRoute].(map[string]any)
	if !ok {
		t.Fatalf("no %s in _meta: %v", MetaRoute, res.Meta)
	}
	return v
}

func keysOf(m map[string]any) string {
	k := slices.Sorted(maps.Keys(m))
	return strings.Join(k, ",")
}

// TestExplainedForOperatorsOnly: in multi-tenant mode only an operator
// gets the full routing note (reasons with the device's load, attempts
// with the targets' errors); any other caller gets upstream, target and
// factor.
func TestExplainedForOperatorsOnly(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "ua", Version: "1"}, nil)
	secTool(s, "t", nil)
	up := startHTTPUpstream(t, s)
	l := httptest.NewServer(http.NotFoundHandler())
	dead := l.URL + "/mcp"
	l.Close()
	sec := newSecFake()
	const opTok = "token-of-an-operator"
	sec.creds[opTok] = &principal.Principal{Kind: principal.KindKey, ID: "key-op", TenantID: "ta", TenantName: "a", Role: principal.RoleAdmin, Operator: true}
	g, url := secGateway(t, fmt.Sprintf(`
[[upstreams]]
name = "ua"
[[upstreams.targets]]
url = %q
[[upstreams.targets]]
url = %q
locality = "remote"
`, dead, up), sec, nil)
	if !waitFor(t, "a target connected", 20*time.Second, func() bool { _, ok := g.Upstream("ua"); return ok }) {
		t.Fatalf("no target connected: %+v", g.Statuses())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call := func(tok string) map[string]any {
		cs := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken(tok))
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Meta: mcp.Meta{MetaExplain: true}, Name: "ua__t", Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("call: %+v %v", res, err)
		}
		return routeMeta(t, res)
	}
	op := call(opTok)
	if keysOf(op) != "attempts,factor,reasons,target,upstream" || op["target"] != "remote" {
		t.Errorf("operator's note %v, want upstream, target remote, factor, reasons and attempts", op)
	}
	if reasons, _ := op["reasons"].([]any); len(reasons) == 0 {
		t.Errorf("operator's note has no reasons: %v", op)
	}
	member := call(secTokA)
	if keysOf(member) != "factor,target,upstream" {
		t.Errorf("member's note %v, want only upstream, target and factor", member)
	}
	if member["upstream"] != "ua" || member["target"] != "remote" || member["factor"] != op["factor"] {
		t.Errorf("member's note %v does not match the operator's %v", member, op)
	}
}

// TestExplainedStaleAnswer: a stale answer stands in for a call that was
// routed and failed; its note says "stale" and shows the failed attempt,
// where it used to claim the call was not routed ({"cached": true} is for
// fresh answers, which were not).
func TestExplainedStaleAnswer(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "kv", Version: "1"}, nil)
	var n atomic.Int32
	s.AddTool(&mcp.Tool{Name: "lookup", InputSchema: json.RawMessage(`{"type":"object"}`), Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("answer %d", n.Add(1))}}}, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	defer srv.Close()
	g, gw := startGateway(t, fmt.Sprintf(`
[[upstreams]]
name = "kv"
url = %q
[upstreams.cache]
ttl = "1h"
serve_stale = true
[upstreams.cache.tools]
lookup = "1s"
`, srv.URL))
	if !waitFor(t, "ready", 20*time.Second, func() bool { _, ok := g.Upstream("kv"); return ok }) {
		t.Fatalf("upstream not ready: %+v", g.Statuses())
	}
	cs := dialClient(t, gw+"/mcp", nil, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call := func() *mcp.CallToolResult {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Meta: mcp.Meta{MetaExplain: true}, Name: "kv__lookup", Arguments: map[string]any{"k": "a"}})
		if err != nil || res.IsError {
			t.Fatalf("call: %+v %v", res, err)
		}
		return res
	}
	if v := routeMeta(t, call()); v["upstream"] != "kv" || v["stale"] != nil || v["cached"] != nil {
		t.Errorf("first call's note %v, want a routed call", v)
	}
	if v := routeMeta(t, call()); keysOf(v) != "cached" {
		t.Errorf("fresh cache hit's note %v, want {cached: true}", v)
	}
	time.Sleep(1100 * time.Millisecond) // the result expires
	srv.CloseClientConnections()
	srv.Close()
	res := call()
	if c, _ := res.Meta[cachestage.MetaKey].(map[string]any); c["stale"] != true {
		t.Fatalf("not a stale answer: %v", res.Meta)
	}
	v := routeMeta(t, res)
	if v["stale"] != true || v["cached"] != nil || v["upstream"] != "kv" || v["target"] == nil {
		t.Errorf("stale answer's note %v, want stale with the routing", v)
	}
	attempts, _ := v["attempts"].([]any)
	if len(attempts) == 0 {
		t.Fatalf("stale answer's note has no attempts: %v", v)
	}
	last, _ := attempts[len(attempts)-1].(map[string]any)
	if last["ok"] != false || last["error"] == nil {
		t.Errorf("the failed attempt is not shown: %v", attempts)
	}
}
