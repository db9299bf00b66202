package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/faultproxy"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// fakeDeferrer records deferred calls; full makes it refuse them.
type fakeDeferrer struct {
	mu    sync.Mutex
	calls []deferred
	full  bool
}

type deferred struct {
	tenant, upstream, tool, key string
	args                        string
}

func (f *fakeDeferrer) Defer(_ context.Context, tenant, upstream, tool string, args json.RawMessage, key string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.full {
		return "", fmt.Errorf("%w: the test's bound", ErrQueueFull)
	}
	f.calls = append(f.calls, deferred{tenant, upstream, tool, key, string(args)})
	return "id-" + tool, nil
}

func (f *fakeDeferrer) Status(_ context.Context, tenant, id string) (*QueuedCall, error) {
	if id == "id-write" {
		return &QueuedCall{ID: id, State: "pending", Target: "u", Tool: "write"}, nil
	}
	return nil, ErrQueuedNotFound
}

func (f *fakeDeferrer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// TestDeferOnlyGatewayUnavailable: a deferrable call is queued on the
// gateway's own -32010 only — not on the upstream's JSON-RPC errors (even
// one carrying -32010), not on isError results; a full queue is -32012;
// CallUpstream tells the upstream's errors from transport failures and
// sends the _meta it is given.
func TestDeferOnlyGatewayUnavailable(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "u", Version: "1"}, nil)
	schema := json.RawMessage(`{"type":"object"}`)
	var gotKey sync.Map
	s.AddTool(&mcp.Tool{Name: "write", InputSchema: schema}, func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if k, ok := r.Params.Meta[MetaIdempotencyKey].(string); ok {
			gotKey.Store(k, true)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
	})
	s.AddTool(&mcp.Tool{Name: "toolerr", InputSchema: schema}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "no"}}}, nil
	})
	s.AddTool(&mcp.Tool{Name: "unavail", InputSchema: schema}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: "the upstream's own -32010"}
	})
	direct, err := url.Parse(startHTTPUpstream(t, s))
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.New(direct.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })

	cfg, err := config.Parse("d.toml", []byte(upstreamBlock("u", "http://"+proxy.Addr()+"/mcp",
		`timeout = "5s"`, "retries = 0", `deferrable = ["*"]`, "breaker = { failures = 1, open_for = \"1m\" }")))
	if err != nil {
		t.Fatal(err)
	}
	fd := &fakeDeferrer{}
	g, gw, ctx := startTestGateway(t, cfg, true, func(g *Gateway) { g.SetDeferrer(fd) })
	cs := dialClient(t, gw+"/mcp", nil, "2025-11-25")

	if _, err := callTool(ctx, cs, "u__unavail"); wireCode(err) != mcpwire.CodeUpstreamUnavailable {
		t.Errorf("upstream's own -32010: %v", err)
	}
	if res, err := callTool(ctx, cs, "u__toolerr"); err != nil || !res.IsError {
		t.Errorf("isError result: %v, %v", res, err)
	}
	if n := fd.count(); n != 0 {
		t.Fatalf("%d calls deferred on the upstream's answers", n)
	}
	if st := breakerOf(g, "u"); st != "closed" {
		t.Fatalf("breaker %q", st)
	}

	// Delivery through the gateway: results, the upstream's errors, _meta.
	res, err := g.CallUpstream(ctx, "u", "write", json.RawMessage(`{}`), map[string]any{MetaIdempotencyKey: "dk-1"})
	if err != nil || res.IsError {
		t.Fatalf("CallUpstream: %v, %v", res, err)
	}
	if _, ok := gotKey.Load("dk-1"); !ok {
		t.Error("the delivery key did not reach the upstream")
	}
	if _, err := g.CallUpstream(ctx, "u", "unavail", nil, nil); !IsUpstreamError(err) || wireCode(err) != mcpwire.CodeUpstreamUnavailable {
		t.Errorf("CallUpstream of the upstream's error: %v (upstream's: %v)", err, IsUpstreamError(err))
	}
	if res, err := g.CallUpstream(ctx, "u", "toolerr", nil, nil); err != nil || !res.IsError {
		t.Errorf("CallUpstream of an isError result: %v, %v", res, err)
	}
	if _, err := g.CallUpstream(ctx, "nosuch", "write", nil, nil); err == nil || IsUpstreamError(err) {
		t.Errorf("CallUpstream of a missing upstream: %v", err)
	}

	// The upstream is unreachable: queued, with the client's key.
	proxy.Set(faultproxy.Reset())
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	res, err = cs.CallTool(cctx, &mcp.CallToolParams{Name: "u__write", Arguments: map[string]any{"a": 1}, Meta: mcp.Meta{MetaIdempotencyKey: "ck"}})
	if err != nil || res.IsError {
		t.Fatalf("deferrable call, upstream down: %v, %v", res, err)
	}
	if m, _ := res.Meta[MetaQueued].(map[string]any); m["id"] != "id-write" {
		t.Errorf("queued _meta: %v", res.Meta)
	}
	fd.mu.Lock()
	if len(fd.calls) != 1 || fd.calls[0] != (deferred{"", "u", "write", "ck", `{"a":1}`}) {
		t.Errorf("deferred: %+v", fd.calls)
	}
	fd.mu.Unlock()
	if _, err := g.CallUpstream(ctx, "u", "write", nil, nil); err == nil || IsUpstreamError(err) || wireCode(err) != mcpwire.CodeUpstreamUnavailable {
		t.Errorf("CallUpstream, upstream down: %v", err)
	}
	fd.mu.Lock()
	fd.full = true
	fd.mu.Unlock()
	if _, err := callTool(ctx, cs, "u__write"); wireCode(err) != mcpwire.CodeQueueFull {
		t.Errorf("full queue: %v, want %d", err, mcpwire.CodeQueueFull)
	}

	// queue_result: found, and not found.
	res, err = cs.CallTool(cctx, &mcp.CallToolParams{Name: builtinQueueResult, Arguments: map[string]any{"id": "id-write"}})
	if err != nil {
		t.Fatal(err)
	}
	var qc QueuedCall
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &qc); err != nil || qc.State != "pending" {
		t.Errorf("queue_result: %s, %v", b, err)
	}
	if _, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: builtinQueueResult, Arguments: map[string]any{"id": "other"}}); wireCode(err) != jsonrpc.CodeInvalidParams {
		t.Errorf("queue_result of an unknown id: %v", err)
	}
}
