package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestGoClientBothEras drives the gateway with the go-sdk client in the
// stateful 2025-11-25 era and in the stateless 2026-07-28 era, against the
// everything server (a 2025-era upstream), including a sampling round trip
// that the gateway must translate for the 2026 client.
func TestGoClientBothEras(t *testing.T) {
	gw := startGateway(t, "[server]\n"+everythingStdio(t, "everything"))
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			var sampled int
			cs := goClient(t, gw.URL+"/mcp", &mcp.ClientOptions{
				CreateMessageHandler: func(ctx context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
					sampled++
					return &mcp.CreateMessageResult{Model: "go-test", Role: "assistant", Content: &mcp.TextContent{Text: "sampled-by-go"}}, nil
				},
			}, version)
			ctx := ctxT(t, 30*time.Second)
			if got := cs.InitializeResult().ProtocolVersion; got != version {
				t.Errorf("negotiated %s, want %s", got, version)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "everything__echo", Arguments: map[string]any{"message": "era " + version}})
			if err != nil {
				t.Fatalf("echo: %v", err)
			}
			if got := text(t, res); got != "Echo: era "+version {
				t.Errorf("echo text = %q", got)
			}
			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "everything__trigger-sampling-request", Arguments: map[string]any{"prompt": "hi"}})
			if err != nil {
				t.Fatalf("sampling tool: %v", err)
			}
			if !strings.Contains(text(t, res), "sampled-by-go") || sampled != 1 {
				t.Errorf("sampling round trip: handler called %d times, result %q", sampled, text(t, res))
			}
		})
	}
}

// legacyInteractive is a go-sdk upstream restricted to the 2025-11-25
// protocol whose tool, prompt and resource ask the client things mid-call.
func legacyInteractive() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "legacy", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	s.AddTool(&mcp.Tool{Name: "two-rounds", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			roots, err := r.Session.ListRoots(ctx, nil)
			if err != nil {
				return nil, err
			}
			el, err := r.Session.Elicit(ctx, &mcp.ElicitParams{Message: "colour?", RequestedSchema: map[string]any{
				"type": "object", "properties": map[string]any{"colour": map[string]any{"type": "string", "enum": []any{"red", "blue"}, "default": "red"}}}})
			if err != nil {
				return nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("root=%s action=%s colour=%v", roots.Roots[0].URI, el.Action, el.Content["colour"])}}}, nil
		})
	s.AddPrompt(&mcp.Prompt{Name: "sampled"}, func(ctx context.Context, r *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		res, err := r.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "q"}}}})
		if err != nil {
			return nil, err
		}
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: res.Content}}}, nil
	})
	return s
}

// TestStatelessClientLegacyUpstream runs a 2026-07-28 client against a
// 2025-era upstream that sends roots, elicitation and sampling requests in
// the middle of a tool call and a prompt: the gateway turns each into an
// input-required round and feeds the answers back to the waiting upstream.
// The same calls from a 2025 client are plain server-to-client requests.
func TestStatelessClientLegacyUpstream(t *testing.T) {
	up := legacyInteractive()
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	closeFixture(t, srv)
	gw := startGateway(t, "[server]\n"+upstreamBlock("legacy", "http", "url = "+q(srv.URL)))
	if p := status(gw, "legacy").Protocol; p != "2025-11-25" {
		t.Fatalf("upstream negotiated %q", p)
	}
	for _, version := range []string{"2026-07-28", "2025-11-25"} {
		t.Run(version, func(t *testing.T) {
			var asked []string
			c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, &mcp.ClientOptions{
				ElicitationHandler: func(ctx context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
					asked = append(asked, "elicit")
					return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"colour": "blue"}}, nil
				},
				CreateMessageHandler: func(ctx context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
					asked = append(asked, "sample")
					return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "sampled"}}, nil
				},
			})
			c.AddRoots(&mcp.Root{URI: "file:///work", Name: "w"})
			ctx := ctxT(t, 30*time.Second)
			cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: gw.URL + "/mcp", MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			if got := cs.InitializeResult().ProtocolVersion; got != version {
				t.Fatalf("negotiated %s", got)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__two-rounds", Arguments: map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			if got := text(t, res); got != "root=file:///work action=accept colour=blue" {
				t.Errorf("tool result %q", got)
			}
			pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "legacy__sampled"})
			if err != nil {
				t.Fatal(err)
			}
			if tc, ok := pr.Messages[0].Content.(*mcp.TextContent); !ok || tc.Text != "sampled" {
				t.Errorf("prompt result %+v", pr.Messages[0].Content)
			}
			if strings.Join(asked, ",") != "elicit,sample" {
				t.Errorf("client was asked %v", asked)
			}
		})
	}
}

// TestLegacyClientStatelessUpstream runs a 2025-11-25 client against a
// 2026-07-28 upstream whose tool asks for input with an input-required
// result: the gateway hands the input request to the SDK server, which asks
// the stateful client with a real elicitation/create, and the call is
// retried upstream with the answer and the upstream's requestState.
func TestLegacyClientStatelessUpstream(t *testing.T) {
	up := mcp.NewServer(&mcp.Implementation{Name: "modern", Version: "1"}, nil)
	var rounds atomic.Int32
	up.AddTool(&mcp.Tool{Name: "ask", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			rounds.Add(1)
			if ans, ok := r.Params.InputResponses["colour"].(*mcp.ElicitResult); ok && r.Params.RequestState == "state-1" {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("got %v", ans.Content["colour"])}}}, nil
			}
			return &mcp.CallToolResult{
				InputRequests: mcp.InputRequestMap{"colour": &mcp.ElicitParams{Message: "colour?", RequestedSchema: map[string]any{
					"type": "object", "properties": map[string]any{"colour": map[string]any{"type": "string"}}}}},
				RequestState: "state-1",
			}, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, &mcp.StreamableHTTPOptions{Stateless: true}))
	closeFixture(t, srv)
	gw := startGateway(t, "[server]\n"+upstreamBlock("modern", "http", "url = "+q(srv.URL)))
	if p := status(gw, "modern").Protocol; p != "2026-07-28" {
		t.Fatalf("upstream negotiated %q, want the stateless revision", p)
	}
	var asked atomic.Int32
	c := mcp.NewClient(&mcp.Implementation{Name: "old", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(ctx context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked.Add(1)
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"colour": "green"}}, nil
		},
	})
	ctx := ctxT(t, 30*time.Second)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: gw.URL + "/mcp", MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "modern__ask", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); got != "got green" || asked.Load() != 1 || rounds.Load() != 2 {
		t.Errorf("result %q, client asked %d times, upstream rounds %d", got, asked.Load(), rounds.Load())
	}
}
