package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stdioTestServer is the server the test binary runs as a stdio child
// (TestMain) for MCPEDGE_TEST_STDIO_SERVER=kind, nil for another kind:
// "catalogue" (catalogueUpstream's tools, a "steps" tool that reports
// progress, a "hang" tool that answers only when cancelled, a "big" tool,
// a prompt and a resource).
func stdioTestServer(kind string) *mcp.Server {
	var s *mcp.Server
	switch kind {
	case "catalogue":
		s = catalogueUpstream()
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
// of result catalogueUpstream has.
func TestHotPathStdioParity(t *testing.T) {
	gHot, urlHot := hotGateway(t, stdioBlock("cat", "catalogue"), true, nil, HTTPOptions{})
	gSDK, urlSDK := hotGateway(t, stdioBlock("cat", "catalogue"), false, nil, HTTPOptions{})
	waitTargetsReady(t, gHot, 1)
	waitTargetsReady(t, gSDK, 1)
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
