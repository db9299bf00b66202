package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestContinuationOnlyResumedByItsOwnRequest: a 2026-era client gets an
// input-required result from a legacy upstream's tool. Retrying with that
// requestState through another method (prompts/get) or against another
// upstream's tool is refused and leaves the pending call alone: the real
// retry then still gets the tool's result.
func TestContinuationOnlyResumedByItsOwnRequest(t *testing.T) {
	legacy := startHTTPUpstream(t, legacyAsker())
	other := startHTTPUpstream(t, legacyAsker())
	_, url := startGateway(t, "[server]\n"+upstreamBlock("legacy", legacy)+upstreamBlock("other", other))
	cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true}}, "2026-07-28")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__ask", Arguments: map[string]any{}})
	if err != nil || res.RequestState == "" || len(res.InputRequests) != 1 {
		t.Fatalf("first round: %v %+v", err, res)
	}
	answers := mcp.InputResponseMap{}
	for id := range res.InputRequests {
		answers[id] = &mcp.ListRootsResult{Roots: []*mcp.Root{{URI: "file:///x"}}}
	}

	pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "legacy__p", RequestState: res.RequestState, InputResponses: answers})
	if err == nil || !strings.Contains(err.Error(), "different request") {
		t.Errorf("prompts/get with a tools/call requestState: %+v %v, want refused", pr, err)
	}
	wrong, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "other__ask", Arguments: map[string]any{}, RequestState: res.RequestState, InputResponses: answers})
	if err == nil || !strings.Contains(err.Error(), "different request") {
		t.Errorf("tools/call other__ask with legacy__ask's requestState: %+v %v, want refused", wrong, err)
	}

	done, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__ask", Arguments: map[string]any{}, RequestState: res.RequestState, InputResponses: answers})
	if err != nil {
		t.Fatalf("the real retry after the refused ones: %v", err)
	}
	if done.RequestState != "" || len(done.Content) != 1 || done.Content[0].(*mcp.TextContent).Text != "done" {
		t.Fatalf("the real retry: %+v, want the tool's result", done)
	}
}
