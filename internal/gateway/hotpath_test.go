package gateway

// Tests of the hot path (hotpath.go, hotforward.go, clients.go): a
// session-era client's tools/call served without the SDK server. Clients
// here are raw (rawClient): they declare no capabilities, so their calls
// qualify, and the tests see the gateway's answers byte for byte.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// hotCount is the number of tools/call counted on path ("hot" or "sdk")
// for reason (mcpedge_hot_path_requests_total).
func hotCount(t *testing.T, g *Gateway, path, reason string) float64 {
	t.Helper()
	return counterValue(t, g.edgeMetrics.hot.WithLabelValues(pipeline.MethodCallTool, path, reason))
}

// hotReached waits until n calls were counted on path for reason, and
// reports whether exactly n were: a call is counted when its handler
// returns, which may be just after its client read an answer sent as an
// event stream.
func hotReached(t *testing.T, g *Gateway, path, reason string, n float64) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for hotCount(t, g, path, reason) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return hotCount(t, g, path, reason) == n
}

// hotGateway starts a gateway for toml with hot_path set as given.
func hotGateway(t *testing.T, toml string, hot bool, setup func(*Gateway), o HTTPOptions) (*Gateway, string) {
	t.Helper()
	cfg, err := config.Parse("review.toml", []byte(fmt.Sprintf("[server]\nhot_path = %v\n", hot)+toml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g, url, _ := startTestGatewayHTTP(t, cfg, true, setup, o)
	return g, url
}

// catalogueUpstream is a session-era upstream whose tools answer with each
// kind of result the hot path relays.
func catalogueUpstream() *mcp.Server {
	s := legacyOnly("cat", nil)
	catalogueTools(s)
	return s
}

// catalogueTools adds catalogueUpstream's tools to s.
func catalogueTools(s *mcp.Server) {
	text := func(s string) []mcp.Content { return []mcp.Content{&mcp.TextContent{Text: s}} }
	tools := map[string]mcp.ToolHandler{
		"text": func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: text("hello")}, nil
		},
		"fails": func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: text("it failed"), IsError: true}, nil
		},
		"structured": func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: text(`{"n":1}`), StructuredContent: map[string]any{"n": 1, "list": []any{"a", 2.5, nil, true}, "obj": map[string]any{"deep": map[string]any{"x": "y"}}}}, nil
		},
		"several": func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{
				&mcp.TextContent{Text: "one"},
				&mcp.ImageContent{Data: []byte{0, 1, 2, 255}, MIMEType: "image/png"},
				&mcp.TextContent{Text: "two", Annotations: &mcp.Annotations{Priority: 0.5, Audience: []mcp.Role{"user"}}},
				&mcp.ResourceLink{URI: "mem://cat/x", Name: "x"},
				&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "mem://cat/y", MIMEType: "text/plain", Text: "why"}},
			}}, nil
		},
		"unicode": func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: text("héllo wörld — \u2028\u2029 \"quoted\" \\ back\\slash <tag> & \t\n\r \x00 \x1f 🎉 日本語 \ufffd")}, nil
		},
		"meta": func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: text("m"), Meta: mcp.Meta{"com.example/trace": "abc", "nested": map[string]any{"k": []any{1.0, "v"}}}}, nil
		},
		"rpcerror": func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return nil, &jsonrpc.Error{Code: -32602, Message: "bad arguments: \"x\" é", Data: json.RawMessage(`{"field":"x","why":["a",1]}`)}
		},
		"empty": func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		},
		// echo answers with the arguments and the request's _meta, as
		// the upstream decoded them.
		"echo": func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var args any
			if len(r.Params.Arguments) > 0 {
				if err := json.Unmarshal(r.Params.Arguments, &args); err != nil {
					return nil, err
				}
			}
			return &mcp.CallToolResult{Content: text("echo"), StructuredContent: map[string]any{"arguments": args, "meta": r.Params.Meta}}, nil
		},
	}
	for name, h := range tools {
		secTool(s, name, h)
	}
}

// hotCatalogue are tools/call params for catalogueUpstream's tools, by the
// tool's own name.
var hotCatalogue = []struct{ tool, rest string }{
	{"text", `,"arguments":{}`},
	{"fails", `,"arguments":{}`},
	{"structured", `,"arguments":{}`},
	{"several", `,"arguments":{}`},
	{"unicode", `,"arguments":{}`},
	{"meta", `,"arguments":{}`},
	{"rpcerror", `,"arguments":{}`},
	{"empty", `,"arguments":{}`},
	{"empty", ``},
	{"echo", `,"arguments":{"s":"é\u00e9\ud83c\udf89 \"q\"","n":12345678901234567890,"f":1.5e-7,"nested":{"a":[1,{"b":null}]}}`},
	{"echo", ` , "arguments" : { "spaced" : true } , "_meta" : {"com.example/k":"v","n":[1,2]} `},
	{"echo", `,"arguments":null`},
}

// TestHotPathParity: for each kind of upstream result the hot path's
// answer decodes to what the SDK's way answers (hot_path = false), on /mcp
// (namespaced names) and /mcp/<upstream> (the upstream's own names), and
// each call was counted on the path it took.
func TestHotPathParity(t *testing.T) {
	up := startHTTPUpstream(t, catalogueUpstream())
	gHot, urlHot := hotGateway(t, upstreamBlock("cat", up), true, nil, HTTPOptions{})
	gSDK, urlSDK := hotGateway(t, upstreamBlock("cat", up), false, nil, HTTPOptions{})
	waitTargetsReady(t, gHot, 1)
	waitTargetsReady(t, gSDK, 1)

	for _, ep := range []struct{ path, prefix string }{{"/mcp", "cat__"}, {"/mcp/cat", ""}} {
		hot := newRawClientWith(t, urlHot+ep.path, "", `{}`)
		sdk := newRawClientWith(t, urlSDK+ep.path, "", `{}`)
		for i, c := range hotCatalogue {
			t.Run(fmt.Sprintf("%s/%d-%s", ep.path, i, c.tool), func(t *testing.T) {
				params := fmt.Sprintf(`{"name":%q%s}`, ep.prefix+c.tool, c.rest)
				hotBefore, sdkBefore := hotCount(t, gHot, "hot", ""), hotCount(t, gSDK, "sdk", "off")
				h := hot.callTool(100+i, params)
				s := sdk.callTool(100+i, params)
				if !hotReached(t, gHot, "hot", "", hotBefore+1) {
					t.Errorf("hot path taken %v times, want 1", hotCount(t, gHot, "hot", "")-hotBefore)
				}
				if got := hotCount(t, gSDK, "sdk", "off") - sdkBefore; got != 1 {
					t.Errorf("with hot_path = false: SDK path (off) taken %v times, want 1", got)
				}
				if h.Status != http.StatusOK || h.Msg == nil {
					t.Fatalf("hot: HTTP %d %s: %s", h.Status, h.ContentType, h.Body)
				}
				if h.ContentType != "application/json" {
					t.Errorf("hot: Content-Type %q, want application/json", h.ContentType)
				}
				if s.Status != http.StatusOK || s.Msg == nil {
					t.Fatalf("sdk: HTTP %d: %s", s.Status, s.Body)
				}
				for _, k := range []string{"jsonrpc", "id", "result", "error"} {
					if hv, sv := h.decoded(k), s.decoded(k); !reflect.DeepEqual(hv, sv) {
						t.Errorf("%s differs:\nhot: %s\nsdk: %s", k, h.Body, s.Body)
					}
				}
				if len(h.Msg) != len(s.Msg) {
					t.Errorf("members differ:\nhot: %s\nsdk: %s", h.Body, s.Body)
				}
				t.Logf("hot: %s", h.Body)
			})
		}
	}
}

// TestHotPathFallbackReasons: calls that do not qualify take the SDK's way,
// counted with the reason, and are still answered as the SDK answers them:
// params the hot path does not read, an unknown tool, a message that is
// not JSON-RPC 2.0, headers the SDK's handler judges, an upstream of the
// 2026-07-28 protocol, a cached tool, and the hot path turned off by a
// live reload (and on again). Clients with capabilities and calls with a
// progress token qualify.
func TestHotPathFallbackReasons(t *testing.T) {
	up := startHTTPUpstream(t, catalogueUpstream())
	hello := func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello"}}}, nil
	}
	ro := legacyOnly("ro", nil)
	ro.AddTool(&mcp.Tool{Name: "text", InputSchema: json.RawMessage(`{"type":"object"}`), Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, hello)
	ro.AddTool(&mcp.Tool{Name: "other", InputSchema: json.RawMessage(`{"type":"object"}`)}, hello)
	toml := upstreamBlock("cat", up) + upstreamBlock("new", statelessReporter(t)) +
		upstreamBlock("ro", startHTTPUpstream(t, ro), "[upstreams.cache]", `ttl = "1h"`)
	g, url := hotGateway(t, toml, true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 3)

	// expect makes one call and checks the path it took and its answer.
	expect := func(t *testing.T, c *rawClient, id int, params, path, reason string, wantErr bool) {
		t.Helper()
		before := hotCount(t, g, path, reason)
		a := c.callTool(id, params)
		if !hotReached(t, g, path, reason, before+1) {
			got := hotCount(t, g, path, reason) - before
			t.Errorf("path %s (%q) taken %v times, want 1", path, reason, got)
		}
		if a.Status != http.StatusOK || a.Msg == nil {
			t.Fatalf("HTTP %d: %s", a.Status, a.Body)
		}
		if got := a.decoded("id"); got != float64(id) {
			t.Errorf("answer id %v, want %d", got, id)
		}
		if _, isErr := a.Msg["error"]; isErr != wantErr {
			t.Errorf("answer %s, want an error: %v", a.Body, wantErr)
		}
		if res, _ := a.decoded("result").(map[string]any); !wantErr && (res["content"] == nil || res["isError"] == true) {
			t.Errorf("result %s", a.Body)
		}
	}
	const helloCall = `{"name":"cat__text","arguments":{}}`

	// Clients that can be asked things, and calls that ask for progress,
	// are the hot path's too (the questions and the progress go on the
	// call's own stream).
	for _, caps := range []string{`{"roots":{}}`, `{"roots":{"listChanged":true}}`, `{"sampling":{}}`, `{"elicitation":{}}`, `{"elicitation":{"form":{}}}`} {
		t.Run("capabilities "+caps, func(t *testing.T) {
			c := newRawClientWith(t, url+"/mcp", "", caps)
			expect(t, c, 1, helloCall, "hot", "", false)
		})
	}
	c := newRawClientWith(t, url+"/mcp", "", `{"experimental":{"x":{}}}`)
	t.Run("control", func(t *testing.T) {
		expect(t, c, 2, helloCall, "hot", "", false)
	})
	t.Run("progress token", func(t *testing.T) {
		expect(t, c, 3, `{"name":"cat__text","arguments":{},"_meta":{"progressToken":"p1"}}`, "hot", "", false)
	})
	t.Run("params only the SDK's way reads", func(t *testing.T) {
		expect(t, c, 10, `{"name":"cat__text","arguments":{},"_meta":{"`+MetaExplain+`":true}}`, "sdk", "params", false)
		expect(t, c, 11, `{"name":"cat__text","arguments":{},"_meta":{"io.modelcontextprotocol/clientInfo":{"name":"x","version":"1"}}}`, "sdk", "params", false)
		expect(t, c, 12, `{"name":"cat__text","arguments":{},"requestState":"abc"}`, "sdk", "params", false)
		expect(t, c, 13, `{"name":"cat__text","arguments":{},"_meta":"not an object"}`, "sdk", "params", true)
		expect(t, c, 14, `{"name":7,"arguments":{}}`, "sdk", "params", true)
	})
	t.Run("unknown tool", func(t *testing.T) {
		expect(t, c, 4, `{"name":"cat__nonesuch","arguments":{}}`, "sdk", "item", true)
		expect(t, c, 5, `{"name":"nonesuch","arguments":{}}`, "sdk", "item", true)
	})
	t.Run("upstream of the 2026-07-28 protocol", func(t *testing.T) {
		expect(t, c, 40, `{"name":"new__caps","arguments":{}}`, "hot", "", false)
		// An argument that goes in a header of its own: the SDK's way.
		expect(t, c, 43, `{"name":"new__hdr","arguments":{"region":"eu"}}`, "sdk", "upstream", false)
	})
	t.Run("cached read-only tool", func(t *testing.T) {
		expect(t, c, 41, `{"name":"ro__text","arguments":{}}`, "sdk", "cache", false)
		expect(t, c, 42, `{"name":"ro__other","arguments":{}}`, "hot", "", false)
	})
	t.Run("unknown tool on /mcp/cat", func(t *testing.T) {
		per := newRawClientWith(t, url+"/mcp/cat", "", `{}`)
		expect(t, per, 6, `{"name":"cat__text","arguments":{}}`, "sdk", "item", true)
		expect(t, per, 7, `{"name":"text","arguments":{}}`, "hot", "", false)
	})
	t.Run("not JSON-RPC 2.0", func(t *testing.T) {
		// The SDK's handler refuses these (HTTP 400); the hot path must
		// not serve them.
		for i, msg := range []string{
			`{"id":%d,"method":"tools/call","params":{"name":"cat__text","arguments":{}}}`,
			`{"jsonrpc":"1.0","id":%d,"method":"tools/call","params":{"name":"cat__text","arguments":{}}}`,
		} {
			before := hotCount(t, g, "sdk", "jsonrpc")
			a := c.exchange(fmt.Sprintf(msg, 20+i))
			if a.Status != http.StatusBadRequest || a.Msg["result"] != nil {
				t.Errorf("%s: HTTP %d: %s, want the SDK's 400", msg, a.Status, a.Body)
			}
			if hotCount(t, g, "sdk", "jsonrpc")-before != 1 {
				t.Errorf("%s: not counted as sdk/jsonrpc", msg)
			}
		}
	})
	t.Run("headers", func(t *testing.T) {
		for _, tc := range []struct {
			reason string
			mutate func(*http.Request)
		}{
			{"protocol_version", func(r *http.Request) { r.Header.Del("Mcp-Protocol-Version") }},
			{"protocol_version", func(r *http.Request) { r.Header.Set("Mcp-Protocol-Version", "2024-11-05") }},
			{"accept", func(r *http.Request) { r.Header.Set("Accept", "application/json") }},
			{"accept", func(r *http.Request) { r.Header.Set("Accept", "text/event-stream") }},
		} {
			before, hot := hotCount(t, g, "sdk", tc.reason), hotCount(t, g, "hot", "")
			a := c.exchange(`{"jsonrpc":"2.0","id":30,"method":"tools/call","params":`+helloCall+`}`, tc.mutate)
			if hotCount(t, g, "sdk", tc.reason) != before+1 || !hotReached(t, g, "hot", "", hot) {
				t.Errorf("%s: not counted as sdk/%s (HTTP %d: %s)", tc.reason, tc.reason, a.Status, a.Body)
			}
			if a.Status == http.StatusOK && a.Msg["result"] == nil {
				t.Errorf("%s: HTTP 200 without a result: %s", tc.reason, a.Body)
			}
			t.Logf("%s: HTTP %d", tc.reason, a.Status)
		}
		// The SDK's handler answers as it pleases, but Accept with both
		// types in another spelling is still the hot path's.
		expectWith := func(accept string) {
			hot := hotCount(t, g, "hot", "")
			a := c.exchange(`{"jsonrpc":"2.0","id":31,"method":"tools/call","params":`+helloCall+`}`, func(r *http.Request) { r.Header.Set("Accept", accept) })
			if a.Msg["result"] == nil || !hotReached(t, g, "hot", "", hot+1) {
				t.Errorf("Accept %q: HTTP %d %s (hot %v)", accept, a.Status, a.Body, hotCount(t, g, "hot", "")-hot)
			}
		}
		expectWith("*/*")
		expectWith("text/event-stream;q=0.9, Application/JSON")
	})
	t.Run("hot_path = false, live", func(t *testing.T) {
		apply := func(hot bool) {
			cfg, err := config.Parse("review.toml", []byte(fmt.Sprintf("[server]\nhot_path = %v\n", hot)+toml))
			if err != nil {
				t.Fatal(err)
			}
			g.Apply(context.Background(), cfg)
		}
		apply(false)
		expect(t, c, 8, helloCall, "sdk", "off", false)
		apply(true)
		expect(t, c, 9, helloCall, "hot", "", false)
	})
}

// TestHotPathParityOddResults: results that are valid but that no go-sdk
// server writes — no content, content null, the upstream's serverInfo in
// _meta — are answered on the hot path as on the SDK's way.
func TestHotPathParityOddResults(t *testing.T) {
	results := map[string]string{
		"no_content":    `{}`,
		"null_content":  `{"content":null}`,
		"only_is_error": `{"isError":true}`,
		"server_info":   `{"content":[{"type":"text","text":"x"}],"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"up","version":"9"},"k":"v"}}`,
		"only_info":     `{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"up","version":"9"}}}`,
		"structured":    `{"structuredContent":{"a":[1,2]}}`,
		"annotations":   `{"content":[{"type":"text","text":"x","annotations":{"lastModified":"2025-01-01T00:00:00Z"}}]}`,
	}
	answers := map[string]hostileAnswer{}
	var names []string
	for name, r := range results {
		answers[name] = hostileResult(r)
		names = append(names, name)
	}
	slices.Sort(names)
	h := newHotHostile(t, answers)
	gHot, urlHot := hotGateway(t, upstreamBlock("h", h.url), true, nil, HTTPOptions{})
	gSDK, urlSDK := hotGateway(t, upstreamBlock("h", h.url), false, nil, HTTPOptions{})
	waitTargetsReady(t, gHot, 1)
	waitTargetsReady(t, gSDK, 1)
	hot := newRawClientWith(t, urlHot+"/mcp", "", `{}`)
	sdk := newRawClientWith(t, urlSDK+"/mcp", "", `{}`)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			before := hotCount(t, gHot, "hot", "")
			params := `{"name":"h__` + name + `","arguments":{}}`
			ha, sa := hot.callTool(i, params), sdk.callTool(i, params)
			if !hotReached(t, gHot, "hot", "", before+1) {
				t.Error("the call did not take the hot path")
			}
			if ha.Msg == nil || sa.Msg == nil {
				t.Fatalf("hot: HTTP %d %s\nsdk: HTTP %d %s", ha.Status, ha.Body, sa.Status, sa.Body)
			}
			for _, k := range []string{"result", "error"} {
				if !reflect.DeepEqual(ha.decoded(k), sa.decoded(k)) {
					t.Errorf("%s differs:\nhot: %s\nsdk: %s", k, ha.Body, sa.Body)
				}
			}
			t.Logf("hot: %s", ha.Body)
		})
	}
}

// TestStripServerInfo: the upstream's serverInfo annotation leaves a
// result's _meta, which goes when nothing else is left; every other byte
// stays as it came.
func TestStripServerInfo(t *testing.T) {
	si := `"` + mcp.MetaKeyServerInfo + `":{"name":"s","version":"1"}`
	for _, c := range []struct{ in, want string }{
		{`{"content":[],"_meta":{` + si + `}}`, `{"content":[]}`},
		{`{"_meta":{"a":1,` + si + `,"b":[2]},"content":[{"type":"text","text":"x"}]}`, `{"_meta":{"a":1,"b":[2]},"content":[{"type":"text","text":"x"}]}`},
		{`{"content":[],"_meta":null}`, `{"content":[],"_meta":null}`},
		{`{"content":[] , "isError" : true}`, `{"content":[],"isError":true}`},
	} {
		got, err := stripServerInfo([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("stripServerInfo(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
}
