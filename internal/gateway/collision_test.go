package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestCrossUpstreamNameCollisionRefused: two upstreams without a prefix
// both offer a tool "same" (and a prompt "same"). The one registered first
// keeps the aggregated name; the second's is refused on /mcp (it stays on
// /mcp/<name>), rather than silently taking over calls meant for the
// first. The second upstream is added by a reload so that the order is
// known.
func TestCrossUpstreamNameCollisionRefused(t *testing.T) {
	server := func(name string) *mcp.Server {
		s := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
		secTool(s, "same", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "from " + name}}}, nil
		})
		s.AddPrompt(&mcp.Prompt{Name: "same"}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "from " + name}}}}, nil
		})
		return s
	}
	first := upstreamBlock("first", startHTTPUpstream(t, server("first")), `prefix = ""`)
	second := upstreamBlock("second", startHTTPUpstream(t, server("second")), `prefix = ""`)
	g, url := startGateway(t, "[server]\n"+first)
	waitTargetsReady(t, g, 1)
	cfg, err := config.Parse("review.toml", []byte("[server]\n"+first+second))
	if err != nil {
		t.Fatal(err)
	}
	if added, _, _ := g.Apply(context.Background(), cfg); len(added) != 1 {
		t.Fatalf("added = %v", added)
	}
	waitTargetsReady(t, g, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25")
	n := 0
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if tool.Name == "same" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("/mcp lists %d tools named \"same\", want 1", n)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "same", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; got != "from first" {
		t.Errorf("tools/call same on /mcp answered %q, want \"from first\" (the upstream that registered it first)", got)
	}
	pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "same"})
	if err != nil {
		t.Fatal(err)
	}
	if got := pr.Messages[0].Content.(*mcp.TextContent).Text; got != "from first" {
		t.Errorf("prompts/get same on /mcp answered %q, want \"from first\"", got)
	}
	g.mu.RLock()
	tr, pt := g.tools["same"], g.prompts["same"]
	g.mu.RUnlock()
	if tr.up != "first" || pt.up != "first" {
		t.Errorf("routes: tool → %q, prompt → %q, want both \"first\"", tr.up, pt.up)
	}

	// The second upstream's tool is still reachable on its own endpoint.
	per := dialClient(t, url+"/mcp/second", nil, "2025-11-25")
	res, err = per.CallTool(ctx, &mcp.CallToolParams{Name: "same", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; got != "from second" {
		t.Errorf("tools/call same on /mcp/second answered %q", got)
	}
}
