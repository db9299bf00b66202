package gateway

// Tests for what a reload must clean up after the connections it stops,
// and for other small defects found in review.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
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
	upA := reviewHTTPUpstream(t, echoServer("a", true))
	upB := reviewHTTPUpstream(t, echoServer("b", true))
	g, url := reviewGateway(t, "[server]\n"+reviewBlock("a", upA)+reviewBlock("b", upB))
	cs := reviewClient(t, url+"/mcp", &mcp.ClientOptions{LoggingMessageHandler: func(context.Context, *mcp.LoggingMessageRequest) {}}, "2025-11-25")
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
	up := reviewHTTPUpstream(t, s)
	_, url := reviewGateway(t, "[server]\n"+reviewBlock("sub", up))
	cs := reviewClient(t, url+"/mcp", nil, "2026-07-28")
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return subscribed["mem://r"]
	}
	listenErr := make(chan error, 1)
	go func() { listenErr <- cs.Subscribe(context.Background(), &mcp.SubscribeParams{URI: "mem://r"}) }()
	if !reviewWait(t, "upstream subscribed", 15*time.Second, func() bool { return count() == 1 }) {
		t.Fatalf("the upstream was not subscribed (count %d)", count())
	}
	if err := cs.Unsubscribe(context.Background(), &mcp.UnsubscribeParams{URI: "mem://r"}); err != nil {
		t.Fatal(err)
	}
	if !reviewWait(t, "upstream unsubscribed", 15*time.Second, func() bool { return count() == 0 }) {
		t.Fatalf("the client ended its subscriptions/listen stream, the upstream is still subscribed (count %d)", count())
	}
	select {
	case <-listenErr:
	case <-time.After(10 * time.Second):
		t.Error("the client's subscriptions/listen did not return after Unsubscribe")
	}
}
