package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestCancellationReachesUpstream cancels a call at the client and checks
// that the upstream's handler sees its context cancelled, for a shared
// upstream over Streamable HTTP.
func TestCancellationReachesUpstream(t *testing.T) {
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	up := mcp.NewServer(&mcp.Implementation{Name: "blocker", Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "block", Description: "blocks until cancelled"}, func(ctx context.Context, r *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		started <- struct{}{}
		select {
		case <-ctx.Done():
			cancelled <- struct{}{}
			return nil, nil, ctx.Err()
		case <-time.After(20 * time.Second):
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "not cancelled"}}}, nil, nil
		}
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	closeFixture(t, srv)
	gw := startGateway(t, "[server]\n"+upstreamBlock("b", "http", "url = "+q(srv.URL)))
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "b__block", Arguments: map[string]any{}})
		errc <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream tool never started")
	}
	cancel()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream never saw the cancellation")
	}
	if err := <-errc; err == nil {
		t.Error("cancelled call returned no error")
	}
	// The session is still usable.
	if _, err := cs.ListTools(ctxT(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
}
