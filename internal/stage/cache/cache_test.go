package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// testClock is an injectable clock.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time      { return c.t }
func (c *testClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newTestCache(cfg config.Cache) (*Store, *testClock) {
	clk := &testClock{t: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)}
	c := NewStore(cfg, "k", Metrics{})
	c.now = clk.now
	return c, clk
}

func toolReq(tenant, id string, args string) *pipeline.Call {
	r := &pipeline.Call{Method: pipeline.MethodCallTool, Upstream: "up", Name: "up__get-x", Item: "get-x", Arguments: json.RawMessage(args)}
	if tenant != "" || id != "" {
		r.Principal = &principal.Principal{Kind: "key", ID: id, TenantID: tenant}
	}
	return r
}

func readReq(tenant, id string) *pipeline.Call {
	r := &pipeline.Call{Method: pipeline.MethodReadResource, Upstream: "up", Name: "demo://x"}
	if tenant != "" || id != "" {
		r.Principal = &principal.Principal{Kind: "key", ID: id, TenantID: tenant}
	}
	return r
}

// upstreamTool counts calls and answers with the caller's tenant, so a
// result served to the wrong tenant shows.
type upstreamTool struct {
	calls int
	err   error
	isErr bool
}

func (u *upstreamTool) run(req *pipeline.Call) pipeline.Handler {
	return pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (mcp.Result, error) {
		u.calls++
		if u.err != nil {
			return nil, u.err
		}
		who := "anon"
		if p := req.Principal; p != nil {
			who = p.TenantID + "/" + p.ID
		}
		return &mcp.CallToolResult{IsError: u.isErr, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s#%d", who, u.calls)}}}, nil
	})
}

func cacheCall(t *testing.T, c *Store, up *upstreamTool, req *pipeline.Call, readOnly bool) (*mcp.CallToolResult, error) {
	t.Helper()
	res, err := c.serve(context.Background(), req, readOnly, up.run(req), nil)
	r, _ := res.(*mcp.CallToolResult)
	return r, err
}

func textOf(r *mcp.CallToolResult) string { return r.Content[0].(*mcp.TextContent).Text }

func cacheMeta(m mcp.Meta) map[string]any {
	v, _ := m[MetaKey].(map[string]any)
	return v
}

func TestCanonicalJSON(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, `{}`},
		{`null`, `{}`},
		{` { "b" : 1, "a" : [ 1 , {"d":2,"c":"<x>"} ] } `, `{"a":[1,{"c":"<x>","d":2}],"b":1}`},
		{`{"n":1.0}`, `{"n":1.0}`},
	} {
		got, ok := canonicalJSON([]byte(tc.in))
		if !ok || string(got) != tc.want {
			t.Errorf("canonicalJSON(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	if _, ok := canonicalJSON([]byte(`{"a":1`)); ok {
		t.Error("invalid JSON was accepted")
	}
}

func TestCacheHitMissAndArgs(t *testing.T) {
	c, clk := newTestCache(config.Cache{TTL: config.Duration(time.Minute)})
	up := &upstreamTool{}
	r1, _ := cacheCall(t, c, up, toolReq("", "", `{"a":1,"b":2}`), true)
	clk.add(1500 * time.Millisecond)
	// Same arguments, other key order and spacing: a hit.
	r2, err := cacheCall(t, c, up, toolReq("", "", ` { "b": 2, "a": 1 } `), true)
	if err != nil || up.calls != 1 || textOf(r2) != textOf(r1) {
		t.Fatalf("second call: calls=%d res=%v err=%v", up.calls, textOf(r2), err)
	}
	if m := cacheMeta(r2.Meta); m["hit"] != true || m["age_ms"] != int64(1500) {
		t.Errorf("hit _meta = %v", r2.Meta)
	}
	if cacheMeta(r1.Meta) != nil {
		t.Errorf("the upstream's own result was marked: %v", r1.Meta)
	}
	// Hits are copies: marking one does not touch the cached entry.
	r2.Meta[MetaKey] = "changed"
	if r3, _ := cacheCall(t, c, up, toolReq("", "", `{"a":1,"b":2}`), true); cacheMeta(r3.Meta)["hit"] != true {
		t.Errorf("cached entry was modified through a hit: %v", r3.Meta)
	}
	// Different arguments miss.
	if _, _ = cacheCall(t, c, up, toolReq("", "", `{"a":2,"b":2}`), true); up.calls != 2 {
		t.Errorf("different arguments: calls = %d, want 2", up.calls)
	}
	// A tool that is not read-only is never cached.
	for range 2 {
		_, _ = cacheCall(t, c, up, toolReq("", "", `{"w":1}`), false)
	}
	if up.calls != 4 {
		t.Errorf("not read-only: calls = %d, want 4", up.calls)
	}
}

func TestCacheTenantIsolation(t *testing.T) {
	c, _ := newTestCache(config.Cache{TTL: config.Duration(time.Minute)})
	up := &upstreamTool{}
	a, _ := cacheCall(t, c, up, toolReq("tenant-a", "k1", `{}`), true)
	b, _ := cacheCall(t, c, up, toolReq("tenant-b", "k2", `{}`), true)
	if up.calls != 2 || !strings.HasPrefix(textOf(b), "tenant-b/") {
		t.Fatalf("tenant B got %q (calls %d), tenant A had %q", textOf(b), up.calls, textOf(a))
	}
	// Another principal of tenant A shares A's tool result.
	a2, _ := cacheCall(t, c, up, toolReq("tenant-a", "k3", `{}`), true)
	if up.calls != 2 || textOf(a2) != textOf(a) {
		t.Errorf("same tenant: calls=%d got %q want %q", up.calls, textOf(a2), textOf(a))
	}
	// Single-user mode (no principal) is a tenant of its own.
	if anon, _ := cacheCall(t, c, up, toolReq("", "", `{}`), true); up.calls != 3 || !strings.HasPrefix(textOf(anon), "anon") {
		t.Errorf("no principal got %q", textOf(anon))
	}
}

func TestCacheHintsScopeAndTTL(t *testing.T) {
	c, clk := newTestCache(config.Cache{TTL: config.Duration(time.Minute)})
	calls := 0
	read := func(req *pipeline.Call, ttlMs int, scope string) *mcp.ReadResourceResult {
		res, err := c.serve(context.Background(), req, false, pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (mcp.Result, error) {
			calls++
			p := req.Principal
			r := &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "demo://x", Text: p.TenantID + "/" + p.ID}}}
			r.TTLMs, r.CacheScope = ttlMs, scope
			return r, nil
		}), nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.(*mcp.ReadResourceResult)
	}
	// Private: another principal of the same tenant does not get it; the
	// principal itself does.
	read(readReq("t", "alice"), 0, "private")
	if r := read(readReq("t", "bob"), 0, "private"); calls != 2 || r.Contents[0].Text != "t/bob" {
		t.Fatalf("private result shared: calls=%d text=%q", calls, r.Contents[0].Text)
	}
	if r := read(readReq("t", "alice"), 0, "private"); calls != 2 || r.Contents[0].Text != "t/alice" {
		t.Fatalf("private hit: calls=%d text=%q", calls, r.Contents[0].Text)
	}
	// Public: shared in the tenant, never across tenants.
	c2, clk2 := newTestCache(config.Cache{TTL: config.Duration(time.Minute)})
	c, clk, calls = c2, clk2, 0
	read(readReq("t", "alice"), 2000, "public")
	if r := read(readReq("t", "bob"), 2000, "public"); calls != 1 || r.Contents[0].Text != "t/alice" {
		t.Fatalf("public result not shared: calls=%d", calls)
	}
	if r := read(readReq("u", "carol"), 2000, "public"); calls != 2 || r.Contents[0].Text != "u/carol" {
		t.Fatalf("public result crossed tenants: %q", r.Contents[0].Text)
	}
	// ttlMs 2000 shortens the configured minute.
	clk.add(2001 * time.Millisecond)
	read(readReq("t", "bob"), 2000, "public")
	if calls != 3 {
		t.Errorf("ttlMs not honoured: calls = %d", calls)
	}
	// A hint never extends beyond the configured TTL.
	c3, clk3 := newTestCache(config.Cache{TTL: config.Duration(time.Second)})
	c, clk, calls = c3, clk3, 0
	read(readReq("t", "a"), 3_600_000, "public")
	clk.add(1001 * time.Millisecond)
	read(readReq("t", "a"), 3_600_000, "public")
	if calls != 2 {
		t.Errorf("hint extended the TTL: calls = %d", calls)
	}
}

func TestCacheExpiryAndErrors(t *testing.T) {
	c, clk := newTestCache(config.Cache{TTL: config.Duration(10 * time.Second), Tools: map[string]config.Duration{"short": config.Duration(time.Second), "off": 0}})
	up := &upstreamTool{}
	req := toolReq("", "", `{}`)
	cacheCall(t, c, up, req, true)
	clk.add(9 * time.Second)
	cacheCall(t, c, up, req, true)
	clk.add(time.Second)
	cacheCall(t, c, up, req, true)
	if up.calls != 2 {
		t.Errorf("TTL: calls = %d, want 2 (hit before 10s, miss at 10s)", up.calls)
	}
	if n, _ := c.Size(); n != 1 {
		t.Errorf("expired entry kept without serve_stale: %d entries", n)
	}
	short := toolReq("", "", `{}`)
	short.Item = "short"
	cacheCall(t, c, up, short, true)
	clk.add(time.Second)
	cacheCall(t, c, up, short, true)
	off := toolReq("", "", `{}`)
	off.Item = "off"
	cacheCall(t, c, up, off, true)
	cacheCall(t, c, up, off, true)
	if up.calls != 6 {
		t.Errorf("per-tool TTLs: calls = %d, want 6", up.calls)
	}
	// Tool errors and errors are never cached.
	up2 := &upstreamTool{isErr: true}
	e := toolReq("", "", `{"e":1}`)
	cacheCall(t, c, up2, e, true)
	cacheCall(t, c, up2, e, true)
	up2.isErr, up2.err = false, errors.New("boom")
	cacheCall(t, c, up2, e, true)
	cacheCall(t, c, up2, e, true)
	if up2.calls != 4 {
		t.Errorf("errors cached: calls = %d", up2.calls)
	}
}

func TestCacheServeStale(t *testing.T) {
	for _, stale := range []bool{false, true} {
		c, clk := newTestCache(config.Cache{TTL: config.Duration(time.Second), ServeStale: stale})
		up := &upstreamTool{}
		req := toolReq("", "", `{}`)
		first, _ := cacheCall(t, c, up, req, true)
		clk.add(5 * time.Second)
		up.err = &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: "down"}
		res, err := cacheCall(t, c, up, req, true)
		if !stale {
			if err == nil {
				t.Errorf("serve_stale off: stale result served")
			}
			continue
		}
		if err != nil || textOf(res) != textOf(first) {
			t.Fatalf("serve_stale: %v %v", res, err)
		}
		if m := cacheMeta(res.Meta); m["stale"] != true || m["age_ms"] != int64(5000) {
			t.Errorf("stale _meta = %v", res.Meta)
		}
		// The upstream's own errors are not covered by a stale result.
		up.err = &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "no"}
		if _, err := cacheCall(t, c, up, req, true); err == nil {
			t.Error("stale result served for an upstream's own error")
		}
	}
}

func TestCacheLRUBound(t *testing.T) {
	c, _ := newTestCache(config.Cache{TTL: config.Duration(time.Minute), MaxEntries: 3})
	for i := range 5 {
		c.put(fmt.Sprint(i), []byte("0123456789"), time.Minute)
		if i == 2 {
			c.get("0") // 0 is now the most recently used
		}
	}
	if n, b := c.Size(); n != 3 || b != 30 {
		t.Errorf("size = %d entries, %d bytes; want 3, 30", n, b)
	}
	for k, want := range map[string]bool{"0": true, "1": false, "2": false, "3": true, "4": true} {
		if _, _, ok := c.get(k); ok != want {
			t.Errorf("entry %s kept = %v, want %v", k, ok, want)
		}
	}
	b, _ := newTestCache(config.Cache{TTL: config.Duration(time.Minute), MaxBytes: 25})
	for i := range 4 {
		b.put(fmt.Sprint(i), []byte("0123456789"), time.Minute)
	}
	b.put("big", make([]byte, 26), time.Minute)
	if n, by := b.Size(); n != 2 || by != 20 {
		t.Errorf("byte bound: %d entries, %d bytes; want 2, 20", n, by)
	}
	if _, _, ok := b.get("big"); ok {
		t.Error("an entry over max_bytes was stored")
	}
}

// storeOf hands the stage one store for every call.
type storeOf struct {
	s  *Store
	ro bool
}

func (o storeOf) For(*pipeline.Call) (*Store, bool) { return o.s, o.ro }

// The stage caches only what it may: not resumptions, not other methods,
// not upstreams without a store; it tells Noted how it answered.
func TestStageAppliesOnlyWhereItMay(t *testing.T) {
	st, _ := newTestCache(config.Cache{TTL: config.Duration(time.Minute)})
	var noted []string
	s := New(storeOf{s: st, ro: true}, &Options{Noted: func(_ context.Context, how string) { noted = append(noted, how) }})
	up := &upstreamTool{}
	call := func(c *pipeline.Call) {
		t.Helper()
		if _, err := s.Handle(context.Background(), c, up.run(c)); err != nil {
			t.Fatal(err)
		}
	}
	call(toolReq("t", "k", `{}`))
	call(toolReq("t", "k", `{}`))
	if up.calls != 1 || len(noted) != 1 || noted[0] != "hit" {
		t.Fatalf("second call: calls %d, noted %v", up.calls, noted)
	}
	resuming := toolReq("t", "k", `{}`)
	resuming.Resuming = true
	call(resuming)
	prompt := &pipeline.Call{Method: pipeline.MethodGetPrompt, Upstream: "up", Name: "p"}
	call(prompt)
	call(prompt)
	if up.calls != 4 {
		t.Fatalf("resumption or prompt answered from the cache: calls %d", up.calls)
	}
	none := New(storeOf{}, nil)
	c := toolReq("t", "k", `{}`)
	for range 2 {
		if _, err := none.Handle(context.Background(), c, up.run(c)); err != nil {
			t.Fatal(err)
		}
	}
	if up.calls != 6 {
		t.Fatalf("an upstream without a store was cached: calls %d", up.calls)
	}
}
