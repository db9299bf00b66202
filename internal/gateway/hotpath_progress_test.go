package gateway

// Progress and prompts on the hot path: the client's progress token, the
// upstream's progress on the call's own stream, and prompts/get.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// progressUpstream's tool "steps" reports n steps of progress, then
// answers with the progress token it was given.
func progressUpstream() *mcp.Server {
	s := legacyOnly("prog", nil)
	secTool(s, "steps", func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		tok := r.Params.GetProgressToken()
		if tok != nil {
			for i := 1; i <= 5; i++ {
				if err := r.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i), Total: 5, Message: fmt.Sprintf("step %d é", i)}); err != nil {
					return nil, err
				}
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
	})
	return s
}

// TestHotPathProgress: a hot-path call with a progress token gets the
// upstream's progress on its own stream, with its own token, in order,
// before the answer — as on the SDK's way — and the upstream never sees
// the client's token (the gateway's own keeps clients apart).
func TestHotPathProgress(t *testing.T) {
	up := startHTTPUpstream(t, progressUpstream())
	gHot, urlHot := hotGateway(t, upstreamBlock("prog", up), true, nil, HTTPOptions{})
	gSDK, urlSDK := hotGateway(t, upstreamBlock("prog", up), false, nil, HTTPOptions{})
	waitTargetsReady(t, gHot, 1)
	waitTargetsReady(t, gSDK, 1)
	hot := newRawClientWith(t, urlHot+"/mcp", "", `{}`)
	sdk := newRawClientWith(t, urlSDK+"/mcp", "", `{}`)
	noQuestions := func(method string, _ json.RawMessage) (string, string) {
		t.Errorf("the client was asked %s", method)
		return "error", `{"code":-32601,"message":"no"}`
	}
	for i, tok := range []string{`"tok-1"`, `42`, `"é\u0000\"x"`} {
		t.Run(tok, func(t *testing.T) {
			params := `{"name":"prog__steps","arguments":{},"_meta":{"progressToken":` + tok + `}}`
			before := hotCount(t, gHot, "hot", "")
			ha, hseen := hot.callAnswering(i, params, noQuestions)
			sa, sseen := sdk.callAnswering(i, params, noQuestions)
			if !hotReached(t, gHot, "hot", "", before+1) {
				t.Error("not served on the hot path")
			}
			if ha.Msg == nil || !reflect.DeepEqual(ha.decoded("result"), sa.decoded("result")) {
				t.Fatalf("answers differ:\nhot: %s\nsdk: %s", ha.Body, sa.Body)
			}
			var want any
			_ = json.Unmarshal([]byte(tok), &want)
			progress := func(seen []string) []any {
				var out []any
				for _, s := range seen {
					var m struct {
						Method string
						Params map[string]any
					}
					if json.Unmarshal([]byte(s), &m) == nil && m.Method == "notifications/progress" {
						if !reflect.DeepEqual(m.Params["progressToken"], want) {
							t.Errorf("progress with token %v, want the client's %v", m.Params["progressToken"], want)
						}
						out = append(out, m.Params)
					}
				}
				return out
			}
			hp, sp := progress(hseen), progress(sseen)
			if len(hp) != 5 || !reflect.DeepEqual(hp, sp) {
				t.Errorf("progress differs:\nhot: %v\nsdk: %v", hp, sp)
			}
		})
	}
	// The control: without a token, the answer is plain JSON.
	a := hot.callTool(10, `{"name":"prog__steps","arguments":{}}`)
	if a.ContentType != "application/json" || a.Msg["result"] == nil {
		t.Errorf("without a progress token: %s %s", a.ContentType, a.Body)
	}
}

// promptUpstream offers prompts of each kind the hot path relays.
func promptUpstream() *mcp.Server {
	s := legacyOnly("pr", nil)
	add := func(name string, h mcp.PromptHandler) {
		s.AddPrompt(&mcp.Prompt{Name: name, Arguments: []*mcp.PromptArgument{{Name: "who"}}}, h)
	}
	add("greet", func(_ context.Context, r *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Description: "a greeting", Messages: []*mcp.PromptMessage{
			{Role: "user", Content: &mcp.TextContent{Text: "hello " + r.Params.Arguments["who"] + " \u2028 \"é\""}},
			{Role: "assistant", Content: &mcp.ImageContent{Data: []byte{1, 2, 3}, MIMEType: "image/png"}},
		}}, nil
	})
	add("meta", func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Meta: mcp.Meta{"k": []any{1.0, "v"}}, Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "m"}}}}, nil
	})
	add("empty", func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{}, nil
	})
	add("fails", func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return nil, fmt.Errorf("no prompt for you")
	})
	return s
}

// TestHotPathPromptParity: prompts/get on the hot path answers as on the
// SDK's way, on /mcp and /mcp/<upstream>, including the SDK's own errors
// (an unknown prompt, arguments that are not strings).
func TestHotPathPromptParity(t *testing.T) {
	up := startHTTPUpstream(t, promptUpstream())
	gHot, urlHot := hotGateway(t, upstreamBlock("pr", up), true, nil, HTTPOptions{})
	gSDK, urlSDK := hotGateway(t, upstreamBlock("pr", up), false, nil, HTTPOptions{})
	waitTargetsReady(t, gHot, 1)
	waitTargetsReady(t, gSDK, 1)
	count := func(t *testing.T, g *Gateway, path, reason string) float64 {
		return counterValue(t, g.edgeMetrics.hot.WithLabelValues(pipeline.MethodGetPrompt, path, reason))
	}
	for _, ep := range []struct{ path, prefix string }{{"/mcp", "pr__"}, {"/mcp/pr", ""}} {
		hot := newRawClientWith(t, urlHot+ep.path, "", `{}`)
		sdk := newRawClientWith(t, urlSDK+ep.path, "", `{}`)
		for i, tc := range []struct{ name, rest, path string }{
			{"greet", `,"arguments":{"who":"wörld"}`, "hot"},
			{"greet", ``, "hot"},
			{"meta", `,"arguments":{}`, "hot"},
			{"empty", `,"arguments":{}`, "hot"},
			{"fails", `,"arguments":{}`, "hot"},
			{"nonesuch", `,"arguments":{}`, "sdk"},
			{"greet", `,"arguments":{"who":7}`, "sdk"},
		} {
			t.Run(fmt.Sprintf("%s/%d-%s", ep.path, i, tc.name), func(t *testing.T) {
				msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"prompts/get","params":{"name":%q%s}}`, i, ep.prefix+tc.name, tc.rest)
				before := count(t, gHot, "hot", "")
				h, s := hot.exchange(msg), sdk.exchange(msg)
				if got := count(t, gHot, "hot", "") - before; (got == 1) != (tc.path == "hot") {
					t.Errorf("hot path taken %v times, want it %s", got, tc.path)
				}
				if h.Status != http.StatusOK || s.Status != http.StatusOK || h.Msg == nil || s.Msg == nil {
					t.Fatalf("hot HTTP %d %s\nsdk HTTP %d %s", h.Status, h.Body, s.Status, s.Body)
				}
				for _, k := range []string{"result", "error"} {
					if !reflect.DeepEqual(h.decoded(k), s.decoded(k)) {
						t.Errorf("%s differs:\nhot: %s\nsdk: %s", k, h.Body, s.Body)
					}
				}
				t.Logf("hot: %s", h.Body)
			})
		}
	}
}

// TestHotPathProgressThroughTheSDKClient: a hot-path call to an upstream
// the gateway reaches through the SDK client (here the legacy SSE
// transport; stdio alike) gets all of the upstream's progress before the
// answer, though the SDK client hands notifications to another goroutine
// than the answer.
func TestHotPathProgressThroughTheSDKClient(t *testing.T) {
	srv := httptest.NewServer(mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return progressUpstream() }, nil))
	t.Cleanup(srv.Close)
	g, url := hotGateway(t, "\n[[upstreams]]\nname = \"prog\"\ntransport = \"sse\"\nurl = \""+srv.URL+"\"\n", true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)
	c := newRawClientWith(t, url+"/mcp", "", `{}`)
	// The gateway waits for the notifications with a bound (progressTable
	// settle: quiet for 2 ms, at most 50 ms), as for every call through the
	// SDK client; a loaded machine (the race detector, tests in parallel)
	// may still lose one now and then. Without the wait a third of the
	// calls or more lose some.
	const calls, mayLose = 30, 3
	short := 0
	for i := range calls {
		a, seen := c.callAnswering(i, fmt.Sprintf(`{"name":"prog__steps","arguments":{},"_meta":{"progressToken":%d}}`, i), func(method string, _ json.RawMessage) (string, string) {
			t.Errorf("the client was asked %s", method)
			return "error", `{"code":-32601,"message":"no"}`
		})
		if a.Msg["result"] == nil {
			t.Fatalf("call %d: HTTP %d: %s", i, a.Status, a.Body)
		}
		n := 0
		for _, s := range seen {
			if strings.Contains(s, `"notifications/progress"`) {
				n++
			}
		}
		if n != 5 {
			short++
			t.Logf("call %d: %d progress notifications before the answer, want 5", i, n)
		}
	}
	if short > mayLose {
		t.Errorf("%d of %d calls lost progress notifications", short, calls)
	}
	if !hotReached(t, g, "hot", "", calls) {
		t.Errorf("%v calls on the hot path, want %d", hotCount(t, g, "hot", ""), calls)
	}
}
