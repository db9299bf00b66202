package e2e

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestBuiltinUpstream serves an in-process MCP server as the reserved
// upstream "lattice": namespaced on /mcp, unchanged on /mcp/lattice, and
// kept across a reload that does not mention it.
func TestBuiltinUpstream(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "builtin-fixture", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "hello", InputSchema: json.RawMessage(`{"type":"object"}`)}, func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hi from inside"}}}, nil
	})
	g := gateway.New(config.Default(), logger(t), telemetry.NewMetrics())
	g.AddBuiltin("lattice", srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g.Start(ctx)
	hs := httptest.NewServer(g.Handler(gateway.HTTPOptions{MaxBodyBytes: 1 << 20}))
	t.Cleanup(func() { g.CloseSessions(context.Background()); hs.Close(); g.Stop(context.Background()) })
	g.WaitAttempted(ctx, 10*time.Second)

	cs := goClient(t, hs.URL+"/mcp", nil, "2025-11-25")
	res, err := cs.CallTool(ctxT(t, 10*time.Second), &mcp.CallToolParams{Name: "lattice__hello", Arguments: map[string]any{}})
	if err != nil || text(t, res) != "hi from inside" {
		t.Fatalf("aggregated builtin call: %v %v", res, err)
	}
	per := goClient(t, hs.URL+"/mcp/lattice", nil, "2025-11-25")
	if per.InitializeResult().ServerInfo.Name != "builtin-fixture" {
		t.Errorf("per-upstream server info = %+v", per.InitializeResult().ServerInfo)
	}
	if _, err := per.CallTool(ctxT(t, 10*time.Second), &mcp.CallToolParams{Name: "hello", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	added, removed, changed := g.Apply(ctx, config.Default())
	if len(added)+len(removed)+len(changed) != 0 {
		t.Errorf("reload touched the builtin: %v %v %v", added, removed, changed)
	}
}
