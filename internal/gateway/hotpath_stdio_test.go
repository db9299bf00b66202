package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"
)

// stdioTestServer is the server the test binary runs as a stdio child
// (TestMain) for MCPEDGE_TEST_STDIO_SERVER=kind, nil for another kind:
// "catalogue" (catalogueUpstream's tools, a "steps" tool that reports
// progress, a "hang" tool that answers only when cancelled, a "big" tool,
// a prompt and a resource); "catalogue-2026" the same and a tool that asks
// the client for input the 2026-07-28 way, on a server that offers that
// protocol (which the gateway then speaks).
func stdioTestServer(kind string) *mcp.Server {
	var s *mcp.Server
	switch kind {
	case "catalogue":
		s = catalogueUpstream()
	case "catalogue-2026":
		s = mcp.NewServer(&mcp.Implementation{Name: "cat", Version: "1"}, nil)
		catalogueTools(s)
		// ask asks the client's name and a sample, then answers with
		// what it got, in a second round.
		secTool(s, "ask", func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			el, ok1 := r.Params.InputResponses["name"].(*mcp.ElicitResult)
			cm, ok2 := r.Params.InputResponses["sample"].(*mcp.CreateMessageWithToolsResult)
			if !ok1 || !ok2 {
				return &mcp.CallToolResult{RequestState: "round-1", InputRequests: mcp.InputRequestMap{
					"name":   &mcp.ElicitParams{Message: "name?", RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}}}`)},
					"sample": &mcp.CreateMessageParams{MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}},
				}}, nil
			}
			b, _ := json.Marshal(map[string]any{"state": r.Params.RequestState, "elicitation": el, "sampling": cm})
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil
		})
	default:
		return nil
	}
	secTool(s, "steps", func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if tok := r.Params.GetProgressToken(); tok != nil {
			for i := 1; i <= 5; i++ {
				if err := r.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i), Total: 5}); err != nil {
					return nil, err
				}
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
	})
	secTool(s, "hang", func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		<-ctx.Done()
		if f := os.Getenv("MCPEDGE_TEST_STDIO_CANCELLED"); f != "" {
			_ = os.WriteFile(f, []byte("cancelled"), 0o600)
		}
		return nil, ctx.Err()
	})
	secTool(s, "logs", func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		_ = r.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "cat", Data: "working é"})
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "logged"}}}, nil
	})
	secTool(s, "big", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("é-big-", 50_000)}}}, nil
	})
	s.AddPrompt(&mcp.Prompt{Name: "greet", Arguments: []*mcp.PromptArgument{{Name: "who"}}}, func(_ context.Context, r *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hello " + r.Params.Arguments["who"]}}}}, nil
	})
	s.AddResource(&mcp.Resource{URI: "mem://cat/readme", Name: "readme", MIMEType: "text/plain"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "mem://cat/readme", MIMEType: "text/plain", Text: "read me"}}}, nil
	})
	return s
}

// stdioBlock is the [[upstreams]] block of a stdio child running
// stdioTestServer(kind), with extra env entries.
func stdioBlock(name, kind string, env ...string) string {
	e := fmt.Sprintf("MCPEDGE_TEST_STDIO_SERVER = %q", kind)
	for i := 0; i+1 < len(env); i += 2 {
		e += fmt.Sprintf(", %s = %q", env[i], env[i+1])
	}
	return fmt.Sprintf("\n[[upstreams]]\nname = %q\ncommand = %q\nenv = { %s }\n", name, os.Args[0], e)
}

// waitTool waits until the gateway serves the tool name on /mcp.
func waitTool(t *testing.T, g *Gateway, name string) {
	t.Helper()
	if !waitFor(t, "tool "+name, 20*time.Second, func() bool {
		g.mu.RLock()
		defer g.mu.RUnlock()
		_, ok := g.tools[name]
		return ok
	}) {
		t.Fatalf("no tool %s: %+v", name, g.Statuses())
	}
}

// pipeOf is the framed pipe of an upstream's shared stdio connection.
func pipeOf(t *testing.T, g *Gateway, name string) *upstream.Pipe {
	t.Helper()
	u, ok := g.Upstream(name)
	if !ok {
		t.Fatalf("no upstream %s", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := u.Session(ctx, "")
	if err != nil {
		t.Fatalf("upstream %s: %v", name, err)
	}
	p := u.PipeOf(cs)
	if p == nil {
		t.Fatalf("upstream %s's connection has no framed pipe", name)
	}
	return p
}

// TestHotPathStdioParity: a stdio upstream's tools/call, prompts/get and
// resources/read go through its framed pipe as bytes, and each answer
// decodes to what the SDK's way answers (hot_path = false), for every kind
// of result catalogueUpstream has, with a child of the session era and one
// of the 2026-07-28 era (whose requests carry that era's _meta and whose
// results lose their serverInfo, as on the SDK's way).
func TestHotPathStdioParity(t *testing.T) {
	for _, kind := range []string{"catalogue", "catalogue-2026"} {
		t.Run(kind, func(t *testing.T) { stdioParity(t, kind) })
	}
}

// stdioParity is TestHotPathStdioParity for one kind of stdioTestServer.
func stdioParity(t *testing.T, kind string) {
	gHot, urlHot := hotGateway(t, stdioBlock("cat", kind), true, nil, HTTPOptions{})
	gSDK, urlSDK := hotGateway(t, stdioBlock("cat", kind), false, nil, HTTPOptions{})
	waitTargetsReady(t, gHot, 1)
	waitTargetsReady(t, gSDK, 1)
	waitTool(t, gHot, "cat__text")
	waitTool(t, gSDK, "cat__text")
	pipe := pipeOf(t, gHot, "cat")
	hot := newRawClientWith(t, urlHot+"/mcp", "", `{}`)
	sdk := newRawClientWith(t, urlSDK+"/mcp", "", `{}`)

	same := func(t *testing.T, h, s rawAnswer) {
		t.Helper()
		if h.Status != http.StatusOK || h.Msg == nil || s.Status != http.StatusOK || s.Msg == nil {
			t.Fatalf("hot: HTTP %d %s\nsdk: HTTP %d %s", h.Status, h.Body, s.Status, s.Body)
		}
		for _, k := range []string{"jsonrpc", "id", "result", "error"} {
			if hv, sv := h.decoded(k), s.decoded(k); !reflect.DeepEqual(hv, sv) {
				t.Errorf("%s differs:\nhot: %s\nsdk: %s", k, h.Body, s.Body)
			}
		}
	}
	for i, c := range append(hotCatalogue, struct{ tool, rest string }{"big", `,"arguments":{}`}) {
		t.Run(fmt.Sprintf("tools/call/%d-%s", i, c.tool), func(t *testing.T) {
			before := pipe.Answered()
			params := fmt.Sprintf(`{"name":"cat__%s"%s}`, c.tool, c.rest)
			same(t, hot.callTool(200+i, params), sdk.callTool(200+i, params))
			if got := pipe.Answered() - before; got != 1 {
				t.Errorf("the pipe answered %d hot calls, want 1", got)
			}
		})
	}
	for i, m := range []struct{ method, params string }{
		{"prompts/get", `{"name":"cat__greet","arguments":{"who":"you"}}`},
		{"resources/read", `{"uri":"mem://cat/readme"}`},
	} {
		t.Run(m.method, func(t *testing.T) {
			before := pipe.Answered()
			msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, 300+i, m.method, m.params)
			same(t, hot.exchange(msg), sdk.exchange(msg))
			if got := pipe.Answered() - before; got != 1 {
				t.Errorf("the pipe answered %d hot calls, want 1", got)
			}
		})
	}
}

// TestHotPathStdioProgressAndCancel: a hot call to a stdio child gets the
// child's progress (which comes through the SDK client) before its
// answer; a call the client cancels is cancelled in the child too, and
// the pipe goes on serving.
func TestHotPathStdioProgressAndCancel(t *testing.T) {
	flag := t.TempDir() + "/cancelled"
	g, url := hotGateway(t, stdioBlock("cat", "catalogue", "MCPEDGE_TEST_STDIO_CANCELLED", flag), true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)
	pipe := pipeOf(t, g, "cat")
	c := newRawClientWith(t, url+"/mcp", "", `{}`)
	a, seen := c.callAnswering(1, `{"name":"cat__steps","arguments":{},"_meta":{"progressToken":"p1"}}`, func(method string, _ json.RawMessage) (string, string) {
		t.Errorf("the client was asked %s", method)
		return "error", `{"code":-32601,"message":"no"}`
	})
	if a.Msg["result"] == nil {
		t.Fatalf("steps: HTTP %d: %s", a.Status, a.Body)
	}
	n := 0
	for _, s := range seen {
		if strings.Contains(s, `"notifications/progress"`) && strings.Contains(s, `"progressToken":"p1"`) {
			n++
		}
	}
	// Progress through the SDK client is waited for within a bound
	// (progressTable.settle); a loaded machine may lose the last.
	if n < 4 {
		t.Errorf("saw %d of 5 progress notifications with the client's token before the answer: %q", n, seen)
	}

	done := make(chan rawAnswer, 1)
	before := hotCount(t, g, "hot", "")
	go func() { done <- c.callTool(2, `{"name":"cat__hang","arguments":{}}`) }()
	if !hotReached(t, g, "hot", "", before) || !waitFor(t, "the hang call in flight", 10*time.Second, func() bool { return g.inflight.count() > 0 }) {
		t.Fatal("the hang call never started")
	}
	if r := c.exchange(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"test"}}`); r.Status != http.StatusAccepted {
		t.Fatalf("cancel: HTTP %d %s", r.Status, r.Body)
	}
	if !waitFor(t, "the child's tool cancelled", 10*time.Second, func() bool { _, err := os.Stat(flag); return err == nil }) {
		t.Fatal("the child never saw the cancellation")
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the cancelled call never returned")
	}
	b := pipe.Answered()
	if r := c.callTool(3, `{"name":"cat__text","arguments":{}}`); r.Msg["result"] == nil {
		t.Fatalf("a call after the cancelled one: %s", r.Body)
	}
	if pipe.Answered() != b+1 {
		t.Error("the call after the cancelled one did not go through the pipe")
	}
}

// TestHotPathStdio2026Questions: a 2026-07-28 stdio child that needs the
// client's input answers a hot call with input_required; the pipe does the
// round as the SDK server does it for a session-era client — the questions
// put to the client on the call's stream, the answers sent back with the
// child's requestState — and the client gets the same answer as on the
// SDK's way.
func TestHotPathStdio2026Questions(t *testing.T) {
	type run struct {
		a    rawAnswer
		asks []any
	}
	runs := map[bool]run{}
	for _, hot := range []bool{true, false} {
		g, url := hotGateway(t, stdioBlock("cat", "catalogue-2026"), hot, nil, HTTPOptions{})
		waitTargetsReady(t, g, 1)
		var before uint64
		if hot {
			before = pipeOf(t, g, "cat").Answered()
		}
		c := newRawClientWith(t, url+"/mcp", "", `{"sampling":{},"elicitation":{}}`)
		var asks []any
		a, _ := c.callAnswering(1, `{"name":"cat__ask","arguments":{}}`, func(method string, params json.RawMessage) (string, string) {
			var p any
			_ = json.Unmarshal(params, &p)
			asks = append(asks, map[string]any{"method": method, "params": p})
			switch method {
			case "sampling/createMessage":
				return "result", `{"role":"assistant","content":{"type":"text","text":"sampled"},"model":"m"}`
			case "elicitation/create":
				return "result", `{"action":"accept","content":{"name":"Ada"}}`
			}
			return "error", `{"code":-32601,"message":"no"}`
		})
		if hot {
			if !hotReached(t, g, "hot", "", 1) {
				t.Error("not served on the hot path")
			}
			if got := pipeOf(t, g, "cat").Answered() - before; got != 2 {
				t.Errorf("the pipe answered %d rounds, want 2", got)
			}
		}
		sort.Slice(asks, func(i, j int) bool { return fmt.Sprint(asks[i]) < fmt.Sprint(asks[j]) }) // the SDK asks at once
		runs[hot] = run{a, asks}
	}
	h, s := runs[true], runs[false]
	if len(s.asks) != 2 {
		t.Fatalf("the SDK's way asked the client %v: %s", s.asks, s.a.Body)
	}
	if !reflect.DeepEqual(h.asks, s.asks) {
		t.Errorf("the client was asked differently:\nhot: %v\nsdk: %v", h.asks, s.asks)
	}
	if !reflect.DeepEqual(h.a.decoded("result"), s.a.decoded("result")) || h.a.Msg["result"] == nil {
		t.Errorf("answers differ:\nhot: %s\nsdk: %s", h.a.Body, s.a.Body)
	}
}

// TestAppendPipeRequest: the 2026-07-28 _meta members join the client's
// _meta (after the edit) or make one, and the next round's members join
// the params; the result is valid JSON either way.
func TestAppendPipeRequest(t *testing.T) {
	meta := []byte(`"io.modelcontextprotocol/protocolVersion":"2026-07-28"`)
	more := []byte(`"inputResponses":{"a":{"action":"accept"}},"requestState":"s"`)
	for _, c := range []struct {
		params     string
		meta, more []byte
		want       string
	}{
		{`{"name":"x"}`, meta, nil, `{"name":"t","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`},
		{`{"name":"x","_meta":{"progressToken":1}}`, meta, more, `{"name":"t","_meta":{"progressToken":"g","io.modelcontextprotocol/protocolVersion":"2026-07-28"},"inputResponses":{"a":{"action":"accept"}},"requestState":"s"}`},
		{`{"name":"x","_meta":{ }}`, meta, nil, `{"name":"t","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`},
		{`{"name":"x","_meta":null,"arguments":{"k":[1]}}`, meta, nil, `{"name":"t","arguments":{"k":[1]},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`},
		{`{"name":"x"}`, nil, nil, `{"name":"t"}`},
	} {
		b, err := appendPipeRequest(nil, "id-1", "tools/call", []byte(c.params), paramsEdit("t", "g"), trace.SpanContext{}, c.meta, c.more)
		if err != nil {
			t.Fatalf("%s: %v", c.params, err)
		}
		var msg struct {
			Params json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(b, &msg); err != nil {
			t.Fatalf("%s: not JSON: %s", c.params, b)
		}
		var got, want any
		_ = json.Unmarshal(msg.Params, &got)
		_ = json.Unmarshal([]byte(c.want), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", c.params, msg.Params, c.want)
		}
	}
}

// TestAppendPipeRequestTraced: the trace context and the 2026-07-28 keys
// share one _meta, made or joined.
func TestAppendPipeRequestTraced(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}, TraceFlags: trace.FlagsSampled})
	meta := []byte(`"io.modelcontextprotocol/protocolVersion":"2026-07-28"`)
	for _, params := range []string{`{"name":"x"}`, `{"name":"x","_meta":{"k":1}}`, `{"name":"x","_meta":null}`} {
		for _, m := range [][]byte{nil, meta} {
			b, err := appendPipeRequest(nil, "id-1", "tools/call", []byte(params), paramsEdit("t", ""), sc, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			var msg struct {
				Params struct {
					Meta map[string]any `json:"_meta"`
				} `json:"params"`
			}
			if err := json.Unmarshal(b, &msg); err != nil || jsonguard.Check(b, jsonguard.Limits{}) != nil {
				t.Fatalf("%s: not valid JSON: %s", params, b)
			}
			if strings.Contains(params, "null") && m == nil {
				continue // a _meta that is not an object goes on as the client sent it (traceEdit)
			}
			if tp, _ := msg.Params.Meta["traceparent"].(string); !strings.Contains(tp, sc.TraceID().String()) {
				t.Errorf("%s %s: no traceparent in %s", params, m, b)
			}
			if m != nil && msg.Params.Meta["io.modelcontextprotocol/protocolVersion"] != "2026-07-28" {
				t.Errorf("%s: no protocol version in %s", params, b)
			}
		}
	}
}

// TestInputRequired reads what a 2026-07-28 result asks, and refuses what
// does not make sense.
func TestInputRequired(t *testing.T) {
	asks, state, need, err := inputRequired([]byte(`{"resultType":"input_required","inputRequests":{"a":{"method":"roots/list"}},"requestState":"st"}`))
	if err != nil || !need || state != "st" || string(asks) != `{"a":{"method":"roots/list"}}` {
		t.Fatalf("got %s %q %v %v", asks, state, need, err)
	}
	if _, _, need, err := inputRequired([]byte(`{"content":[],"resultType":"complete"}`)); need || err != nil {
		t.Fatalf("a complete result: need=%v err=%v", need, err)
	}
	for _, bad := range []string{
		`{"resultType":"input_required"}`,
		`{"resultType":"input_required","inputRequests":[1]}`,
		`{"resultType":"input_required","inputRequests":{},"requestState":5}`,
	} {
		if _, _, _, err := inputRequired([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestHotPathStateless2026Parity: a Streamable HTTP upstream of the
// 2026-07-28 protocol (stateless) is served on the hot path — its requests
// with that protocol's headers and _meta, its input_required rounds done
// on the call's stream — and every answer decodes to what the SDK's way
// answers, the questions included.
func TestHotPathStateless2026Parity(t *testing.T) {
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return stdioTestServer("catalogue-2026") },
		&mcp.StreamableHTTPOptions{Stateless: true}))
	t.Cleanup(srv.Close)
	block := upstreamBlock("cat", srv.URL)
	gHot, urlHot := hotGateway(t, block, true, nil, HTTPOptions{})
	gSDK, urlSDK := hotGateway(t, block, false, nil, HTTPOptions{})
	waitTargetsReady(t, gHot, 1)
	waitTargetsReady(t, gSDK, 1)
	waitTool(t, gHot, "cat__text")
	waitTool(t, gSDK, "cat__text")
	hot := newRawClientWith(t, urlHot+"/mcp", "", `{"sampling":{},"elicitation":{}}`)
	sdk := newRawClientWith(t, urlSDK+"/mcp", "", `{"sampling":{},"elicitation":{}}`)
	for i, c := range hotCatalogue {
		t.Run(fmt.Sprintf("%d-%s", i, c.tool), func(t *testing.T) {
			before := hotCount(t, gHot, "hot", "")
			params := fmt.Sprintf(`{"name":"cat__%s"%s}`, c.tool, c.rest)
			h, s := hot.callTool(400+i, params), sdk.callTool(400+i, params)
			if !hotReached(t, gHot, "hot", "", before+1) {
				t.Error("not served on the hot path")
			}
			if h.Msg == nil || s.Msg == nil {
				t.Fatalf("hot: %s\nsdk: %s", h.Body, s.Body)
			}
			for _, k := range []string{"result", "error"} {
				if hv, sv := h.decoded(k), s.decoded(k); !reflect.DeepEqual(hv, sv) {
					t.Errorf("%s differs:\nhot: %s\nsdk: %s", k, h.Body, s.Body)
				}
			}
		})
	}
	answer := func(asks *[]string) func(string, json.RawMessage) (string, string) {
		return func(method string, params json.RawMessage) (string, string) {
			*asks = append(*asks, method+" "+string(params))
			if method == "sampling/createMessage" {
				return "result", `{"role":"assistant","content":{"type":"text","text":"sampled"},"model":"m"}`
			}
			return "result", `{"action":"accept","content":{"name":"Ada"}}`
		}
	}
	var hAsks, sAsks []string
	h, _ := hot.callAnswering(500, `{"name":"cat__ask","arguments":{}}`, answer(&hAsks))
	s, _ := sdk.callAnswering(500, `{"name":"cat__ask","arguments":{}}`, answer(&sAsks))
	sort.Strings(hAsks)
	sort.Strings(sAsks)
	if len(sAsks) != 2 || !reflect.DeepEqual(hAsks, sAsks) {
		t.Errorf("the client was asked differently:\nhot: %q\nsdk: %q", hAsks, sAsks)
	}
	if !reflect.DeepEqual(h.decoded("result"), s.decoded("result")) || h.Msg["result"] == nil {
		t.Errorf("answers differ:\nhot: %s\nsdk: %s", h.Body, s.Body)
	}
}

// TestHotPathStdioLogsOnTheCallStream: a log message a stdio child sends
// during a hot call (it comes through the SDK client) reaches the client on
// the call's own stream, before the answer, as on the HTTP hot path — the
// only stream a client behind a balancer is sure to read.
func TestHotPathStdioLogsOnTheCallStream(t *testing.T) {
	for _, kind := range []string{"catalogue", "catalogue-2026"} {
		t.Run(kind, func(t *testing.T) {
			g, url := hotGateway(t, stdioBlock("cat", kind), true, nil, HTTPOptions{})
			waitTargetsReady(t, g, 1)
			waitTool(t, g, "cat__logs")
			c := newRawClientWith(t, url+"/mcp", "", `{}`)
			if r := c.exchange(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}`); r.Msg["result"] == nil {
				t.Fatalf("setLevel: %s", r.Body)
			}
			u, _ := g.Upstream("cat")
			if !waitFor(t, "the level applied upstream", 10*time.Second, func() bool {
				g.levels.mu.Lock()
				defer g.levels.mu.Unlock()
				_, ok := g.levels.applied[u]
				return ok
			}) {
				t.Fatal("the log level never reached the upstream")
			}
			before := pipeOf(t, g, "cat").Answered()
			for i := range 10 {
				a, seen := c.callAnswering(10+i, `{"name":"cat__logs","arguments":{}}`, func(method string, _ json.RawMessage) (string, string) {
					return "error", `{"code":-32601,"message":"no"}`
				})
				if a.Msg["result"] == nil {
					t.Fatalf("call %d: %s", i, a.Body)
				}
				n := 0
				for _, m := range seen {
					if strings.Contains(m, `"notifications/message"`) && strings.Contains(m, "working é") {
						n++
					}
				}
				if n != 1 {
					t.Fatalf("call %d: %d log messages on the call's stream before the answer, want 1: %q", i, n, seen)
				}
			}
			if got := pipeOf(t, g, "cat").Answered() - before; got != 10 {
				t.Errorf("the pipe answered %d of the 10 calls", got)
			}
		})
	}
}

// TestAppendPipeRequestOneLine: a client's params may hold line breaks as
// whitespace between JSON tokens; the request written to a stdio child
// must still be one line, or a line-framed child (the Node and Python
// SDKs) would read the pieces as messages of their own — and a piece that
// is a whole JSON-RPC request (a tool the guard never saw) would run.
func TestAppendPipeRequestOneLine(t *testing.T) {
	smuggled := "{\"name\":\"x\",\"arguments\":{\"a\":[\r\n" +
		`{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"forbidden","arguments":{}}}` +
		"\n]},\"_meta\":{\n\"k\":1}}"
	more := []byte("\"inputResponses\":{\"a\":{\n\"action\":\"accept\"}}")
	meta := []byte(`"io.modelcontextprotocol/protocolVersion":"2026-07-28"`)
	b, err := appendPipeRequest(nil, "id-1", "tools/call", []byte(smuggled), paramsEdit("t", ""), trace.SpanContext{}, meta, more)
	if err != nil {
		t.Fatal(err)
	}
	if i := strings.IndexAny(string(b), "\r\n"); i >= 0 {
		t.Fatalf("the request has a line break at %d: %q", i, b)
	}
	var msg struct {
		Params struct {
			Name      string         `json:"name"`
			Arguments map[string]any `json:"arguments"`
		} `json:"params"`
	}
	if err := json.Unmarshal(b, &msg); err != nil || msg.Params.Name != "t" || len(msg.Params.Arguments["a"].([]any)) != 1 {
		t.Fatalf("not the same request: %v %s", err, b)
	}
}
