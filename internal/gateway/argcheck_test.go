package gateway

// The argcheck stage through the gateway: a go-sdk upstream with a typed
// tool, and raw session-era clients whose tools/call carries arguments of
// the wrong types — on the hot path and on the SDK's way — and the SDK
// client. A refused call answers -32602 naming the path and never reaches
// the upstream.

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type addIn struct {
	A     int    `json:"a"`
	B     int    `json:"b"`
	Label string `json:"label,omitempty"`
}

type addOut struct {
	Sum int `json:"sum"`
}

// typedUpstream is a go-sdk server with the typed tool "add" (a and b
// integers, both required). received counts the tools/call requests that
// reached it at all, ran those that reached the tool's handler.
type typedUpstream struct {
	srv            *mcp.Server
	received, ran  atomic.Int32
	lastA, lastB   atomic.Int64
	lastLabelEmpty atomic.Bool
}

func newTypedUpstream() *typedUpstream {
	u := &typedUpstream{srv: mcp.NewServer(&mcp.Implementation{Name: "typed", Version: "1"}, nil)}
	u.srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/call" {
				u.received.Add(1)
			}
			return next(ctx, method, req)
		}
	})
	mcp.AddTool(u.srv, &mcp.Tool{Name: "add", Description: "adds two integers"}, func(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
		u.ran.Add(1)
		u.lastA.Store(int64(in.A))
		u.lastB.Store(int64(in.B))
		return nil, addOut{Sum: in.A + in.B}, nil
	})
	return u
}

// TestArgcheckThroughTheGateway: on the hot path and on the SDK's way, on
// /mcp and /mcp/<upstream>, arguments of the wrong type are refused with
// -32602 naming the path and never reach the upstream; right ones do.
func TestArgcheckThroughTheGateway(t *testing.T) {
	for _, tc := range []struct {
		name, server, path string
	}{
		{"hot path", "[server]\n", "hot"},
		{"sdk path", "[server]\nhot_path = false\n", "sdk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newTypedUpstream()
			g, url := startGateway(t, tc.server+upstreamBlock("calc", startHTTPUpstream(t, up.srv)))
			waitTargetsReady(t, g, 1)
			hot := g.edgeMetrics.hot.WithLabelValues("tools/call", "hot", "")
			hotBefore := counterValue(t, hot)
			refused := g.argMetrics.Refused.WithLabelValues("calc")

			for _, face := range []struct{ url, tool string }{{url + "/mcp", "calc__add"}, {url + "/mcp/calc", "add"}} {
				c := newRawClient(t, face.url)
				id := 10
				for _, bad := range []struct{ args, want string }{
					{`{"a":"1","b":2}`, "at /a: got string, want integer"},
					{`{"a":1,"b":2.5}`, "at /b: got number, want integer"},
					{`{"a":1}`, "at (root): missing property 'b'"},
					{``, "at (root): missing properties 'a', 'b'"},
					{`null`, "at (root): missing properties 'a', 'b'"},
					{`{"a":1,"b":2,"label":7}`, "at /label: got number, want string"},
				} {
					id++
					before := counterValue(t, refused)
					e, r := c.call(id, face.tool, bad.args)
					if e == nil {
						t.Fatalf("%s %s: result %v, want an error", face.tool, bad.args, r)
					}
					if e["code"] != float64(jsonrpc.CodeInvalidParams) || e["message"] != "arguments do not match the tool's inputSchema: "+bad.want {
						t.Errorf("%s %s: error %v, want -32602 %q", face.tool, bad.args, e, bad.want)
					}
					if counterValue(t, refused) != before+1 {
						t.Errorf("%s %s: refusal not counted", face.tool, bad.args)
					}
				}
				if n := up.received.Load(); n != 0 {
					t.Fatalf("%d refused calls reached the upstream", n)
				}
				// Right arguments go through, unchanged.
				id++
				e, r := c.call(id, face.tool, `{"a":40,"b":2}`)
				if e != nil || r["isError"] == true {
					t.Fatalf("%s with right arguments: %v %v", face.tool, e, r)
				}
				sc, _ := r["structuredContent"].(map[string]any)
				if sc["sum"] != float64(42) || up.ran.Load() != 1 {
					t.Fatalf("%s: result %v (handler ran %d times)", face.tool, r, up.ran.Load())
				}
				up.received.Store(0)
				up.ran.Store(0)
			}
			hotAfter := counterValue(t, hot)
			if tc.path == "hot" && hotAfter == hotBefore {
				t.Error("no call took the hot path")
			}
			if tc.path == "sdk" && hotAfter != hotBefore {
				t.Errorf("%v calls took the hot path with hot_path = false", hotAfter-hotBefore)
			}
		})
	}
}

// The SDK client gets the refusal as a -32602 error, and its session goes
// on.
func TestArgcheckSDKClient(t *testing.T) {
	up := newTypedUpstream()
	g, url := startGateway(t, "[server]\n"+upstreamBlock("calc", startHTTPUpstream(t, up.srv)))
	waitTargetsReady(t, g, 1)
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "calc__add", Arguments: map[string]any{"a": true, "b": 1}})
	var werr *jsonrpc.Error
	if err == nil || !strings.Contains(err.Error(), "at /a: got boolean, want integer") {
		t.Fatalf("err = %v", err)
	}
	if !asRPC(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("err = %#v, want a -32602", err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "calc__add", Arguments: map[string]any{"a": 1, "b": 1}})
	if err != nil || res.IsError {
		t.Fatalf("then a right call: %v %v", res, err)
	}
	if up.received.Load() != 1 {
		t.Errorf("the upstream received %d calls, want 1", up.received.Load())
	}
}

func asRPC(err error, target **jsonrpc.Error) bool {
	for e := err; e != nil; {
		if w, ok := e.(*jsonrpc.Error); ok {
			*target = w
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// check_arguments = false sends the same call on, for the upstream to
// judge; a reload turns the check back on without reconnecting.
func TestArgcheckOffPerUpstream(t *testing.T) {
	up := newTypedUpstream()
	upURL := startHTTPUpstream(t, up.srv)
	cfgText := func(check bool) string {
		extra := ""
		if !check {
			extra = "check_arguments = false"
		}
		return "[server]\n" + upstreamBlock("calc", upURL, extra)
	}
	g, url := startGateway(t, cfgText(false))
	waitTargetsReady(t, g, 1)
	u, _ := g.Upstream("calc")
	c := newRawClient(t, url+"/mcp")
	e, r := c.call(2, "calc__add", `{"a":"1","b":2}`)
	if up.received.Load() != 1 || up.ran.Load() != 0 {
		t.Fatalf("unchecked call: the upstream received %d, ran %d (want 1, 0): %v %v", up.received.Load(), up.ran.Load(), e, r)
	}
	if e == nil && r["isError"] != true {
		t.Fatalf("the upstream took a string for an integer: %v", r)
	}
	if e != nil && strings.Contains(e["message"].(string), "do not match the tool's inputSchema") {
		t.Fatalf("the gateway refused with check_arguments = false: %v", e)
	}

	cfg, err := config.Parse("review.toml", []byte(cfgText(true)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, changed := g.Apply(context.Background(), cfg); len(changed) != 0 {
		t.Fatalf("check_arguments changed the upstream's connection: %v", changed)
	}
	if v, _ := g.Upstream("calc"); v != u {
		t.Fatal("the upstream was replaced")
	}
	e, _ = c.call(3, "calc__add", `{"a":"1","b":2}`)
	if e == nil || e["code"] != float64(jsonrpc.CodeInvalidParams) || !strings.Contains(e["message"].(string), "at /a:") {
		t.Fatalf("after the reload: %v", e)
	}
	if up.received.Load() != 1 {
		t.Errorf("the checked call reached the upstream")
	}
}

// When the upstream changes a tool's schema, calls are checked against the
// new one (the cache is keyed by the schema's bytes).
func TestArgcheckFollowsTheCatalog(t *testing.T) {
	up := mcp.NewServer(&mcp.Implementation{Name: "shifty", Version: "1"}, nil)
	var ran atomic.Int32
	h := func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		ran.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
	}
	up.AddTool(&mcp.Tool{Name: "t", InputSchema: json.RawMessage(`{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}`)}, h)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("s", startHTTPUpstream(t, up)))
	waitTargetsReady(t, g, 1)
	c := newRawClient(t, url+"/mcp")
	if e, _ := c.call(2, "s__t", `{"x":"a"}`); e == nil {
		t.Fatal("a string for the integer x went through")
	}
	up.AddTool(&mcp.Tool{Name: "t", InputSchema: json.RawMessage(`{"type":"object","properties":{"x":{"type":"string"}},"required":["x"]}`)}, h)
	if !waitFor(t, "the new schema listed", 10*time.Second, func() bool {
		u, _ := g.Upstream("s")
		for _, tool := range g.listedCatalog(u).Tools {
			if b, _ := json.Marshal(tool.InputSchema); tool.Name == "t" && strings.Contains(string(b), `"string"`) {
				return true
			}
		}
		return false
	}) {
		t.Fatal("the gateway never listed the new schema")
	}
	if e, _ := c.call(3, "s__t", `{"x":"a"}`); e != nil {
		t.Fatalf("after the change, a string for x: %v", e)
	}
	if e, _ := c.call(4, "s__t", `{"x":1}`); e == nil || !strings.Contains(e["message"].(string), "at /x: got number, want string") {
		t.Fatalf("after the change, a number for x: %v", e)
	}
	if ran.Load() != 1 {
		t.Errorf("the tool ran %d times, want 1", ran.Load())
	}
}

// A tool whose schema does not compile is not blocked: its calls go to the
// upstream, and the gateway counts them.
func TestArgcheckSchemaThatDoesNotCompile(t *testing.T) {
	up := mcp.NewServer(&mcp.Implementation{Name: "odd", Version: "1"}, nil)
	var ran atomic.Int32
	up.AddTool(&mcp.Tool{Name: "t", InputSchema: json.RawMessage(`{"type":"object","properties":{"x":{"$ref":"https://schemas.example/x.json"}},"required":["x"]}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			ran.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
		})
	g, url := startGateway(t, "[server]\n"+upstreamBlock("odd", startHTTPUpstream(t, up)))
	waitTargetsReady(t, g, 1)
	c := newRawClient(t, url+"/mcp")
	for i := range 2 {
		if e, _ := c.call(2+i, "odd__t", `{}`); e != nil {
			t.Fatalf("call %d: %v", i, e)
		}
	}
	if ran.Load() != 2 {
		t.Errorf("the tool ran %d times, want 2", ran.Load())
	}
	if n := counterValue(t, g.argMetrics.Unchecked.WithLabelValues("odd")); n != 2 {
		t.Errorf("unchecked counted %v, want 2", n)
	}
	if n := counterValue(t, g.argMetrics.SchemaErrors.WithLabelValues("odd")); n != 1 {
		t.Errorf("schema errors counted %v, want 1", n)
	}
}

// A refused call is audited as denied, like one authorize refuses.
func TestArgcheckRefusalAudited(t *testing.T) {
	up := newTypedUpstream()
	sec := newSecFake()
	g, url := secGateway(t, "[server]\n"+upstreamBlock("ua", startHTTPUpstream(t, up.srv)), sec, nil)
	waitTargetsReady(t, g, 1)
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken(secTokA))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ua__add", Arguments: map[string]any{"a": "x", "b": 1}}); err == nil {
		t.Fatal("the call went through")
	}
	sec.mu.Lock()
	defer sec.mu.Unlock()
	if len(sec.records) != 1 || sec.records[0].Outcome != "denied" || sec.records[0].Tool != "add" || sec.records[0].Upstream != "ua" {
		t.Fatalf("records %+v, want one denied call of ua's add", sec.records)
	}
	if up.received.Load() != 0 {
		t.Error("the refused call reached the upstream")
	}
}
