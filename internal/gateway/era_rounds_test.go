package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// legacyAllAtOnce is a 2025-11-25-only upstream whose tool asks the client
// for roots, a sample and an elicitation at the same time, as a go-sdk
// server fulfilling its own input-required result for an old client does.
func legacyAllAtOnce() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "legacy", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	s.AddTool(&mcp.Tool{Name: "three", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var wg sync.WaitGroup
			var mu sync.Mutex
			var got []string
			note := func(what string, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					what += " refused"
				}
				got = append(got, what)
			}
			wg.Go(func() { _, err := r.Session.ListRoots(ctx, nil); note("roots", err) })
			wg.Go(func() {
				_, err := r.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 5, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "q"}}}})
				note("sampling", err)
			})
			wg.Go(func() {
				_, err := r.Session.Elicit(ctx, &mcp.ElicitParams{Message: "name?", RequestedSchema: map[string]any{"type": "object"}})
				note("elicitation", err)
			})
			wg.Wait()
			sort.Strings(got)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Join(got, ",")}}}, nil
		})
	return s
}

func inputMethods(m mcp.InputRequestMap) []string {
	var out []string
	for _, r := range m {
		switch r.(type) {
		case *mcp.ListRootsParams:
			out = append(out, "roots")
		case *mcp.CreateMessageParams, *mcp.CreateMessageWithToolsParams:
			out = append(out, "sampling")
		case *mcp.ElicitParams:
			out = append(out, "elicitation")
		default:
			out = append(out, fmt.Sprintf("%T", r))
		}
	}
	sort.Strings(out)
	return out
}

func answerAll(m mcp.InputRequestMap) mcp.InputResponseMap {
	out := mcp.InputResponseMap{}
	for id, r := range m {
		switch r.(type) {
		case *mcp.ListRootsParams:
			out[id] = &mcp.ListRootsResult{Roots: []*mcp.Root{{URI: "file:///x"}}}
		case *mcp.CreateMessageParams, *mcp.CreateMessageWithToolsParams:
			out[id] = &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "a"}}
		case *mcp.ElicitParams:
			out[id] = &mcp.ElicitResult{Action: "decline"}
		}
	}
	return out
}

// TestEraRoundGathersConcurrentRequests: a 2026 client gets the requests a
// 2025 upstream sends together in one input-required round, and none it
// declared no capability for; those are refused to the upstream.
func TestEraRoundGathersConcurrentRequests(t *testing.T) {
	up := startHTTPUpstream(t, legacyAllAtOnce())
	_, url := startGateway(t, "[server]\n"+upstreamBlock("legacy", up))
	for _, tc := range []struct {
		name  string
		caps  *mcp.ClientCapabilities
		round []string
		final string
	}{
		{"all declared", &mcp.ClientCapabilities{RootsV2: &mcp.RootCapabilities{}, Sampling: &mcp.SamplingCapabilities{}, Elicitation: &mcp.ElicitationCapabilities{}},
			[]string{"elicitation", "roots", "sampling"}, "elicitation,roots,sampling"},
		{"sampling only", &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{}},
			[]string{"sampling"}, "elicitation refused,roots refused,sampling"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{Capabilities: tc.caps, MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true}}, "2026-07-28")
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__three", Arguments: map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			if got := inputMethods(res.InputRequests); strings.Join(got, ",") != strings.Join(tc.round, ",") || res.RequestState == "" {
				t.Fatalf("first round asks %v (state %q), want %v in one round", got, res.RequestState, tc.round)
			}
			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__three", Arguments: map[string]any{}, RequestState: res.RequestState, InputResponses: answerAll(res.InputRequests)})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.InputRequests) != 0 {
				t.Fatalf("second round asks again: %v", inputMethods(res.InputRequests))
			}
			var text string
			for _, c := range res.Content {
				if tc, ok := c.(*mcp.TextContent); ok {
					text += tc.Text
				}
			}
			if text != tc.final {
				t.Errorf("upstream saw %q, want %q", text, tc.final)
			}
		})
	}
}

// statelessReporter is a stateless (2026-07-28) upstream whose tool reports
// the client capabilities it was told and logs at info.
func statelessReporter(t *testing.T) string {
	s := mcp.NewServer(&mcp.Implementation{Name: "new", Version: "1"}, nil)
	s.AddTool(&mcp.Tool{Name: "caps", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			_ = r.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "hello"})
			var got []string
			if c := r.ClientCapabilities(); c != nil {
				if c.Sampling != nil {
					got = append(got, "sampling")
				}
				if c.Elicitation != nil {
					got = append(got, "elicitation")
				}
				if c.RootsV2 != nil {
					got = append(got, "roots")
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Join(got, ",")}}}, nil
		})
	// hdr's argument travels in a header of its own too (x-mcp-header).
	s.AddTool(&mcp.Tool{Name: "hdr", InputSchema: json.RawMessage(`{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}}}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(r.Params.Arguments)}}}, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestStatelessUpstreamGetsClientCapabilitiesAndLevel: a stateless upstream
// is told the client's capabilities, not the gateway's, and the log level
// the client asked for, for a client of either era.
func TestStatelessUpstreamGetsClientCapabilitiesAndLevel(t *testing.T) {
	g, url := startGateway(t, "[server]\n"+upstreamBlock("new", statelessReporter(t)))
	if u, _ := g.Upstream("new"); u.Catalog().Init == nil || u.Catalog().Init.ProtocolVersion != statelessVersion {
		t.Fatalf("upstream did not negotiate %s", statelessVersion)
	}
	text := func(res *mcp.CallToolResult) string {
		var s string
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				s += tc.Text
			}
		}
		return s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	// 2026: only sampling declared.
	cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{}}}, "2026-07-28")
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "new__caps", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(res); got != "sampling" {
		t.Errorf("2026 client: upstream was told capabilities %q, want %q", got, "sampling")
	}

	// 2025: elicitation only, and a log level.
	logs := make(chan string, 4)
	cs = dialClient(t, url+"/mcp", &mcp.ClientOptions{
		Capabilities:          &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{}},
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) { logs <- fmt.Sprint(r.Params.Data) },
	}, "2025-11-25")
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "new__caps", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(res); got != "elicitation" {
		t.Errorf("2025 client: upstream was told capabilities %q, want %q", got, "elicitation")
	}
	select {
	case msg := <-logs:
		if msg != "hello" {
			t.Errorf("log = %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Error("2025 client: no log message from the stateless upstream")
	}
}
