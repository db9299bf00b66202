package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestStatusShowsAReplacementThatDoesNotComeUp: a reload points an
// upstream at an address where nothing listens. The running connection
// keeps serving (its tools stay callable), and its status says that a
// replacement is being built and why it does not come up, so /readyz and
// mcpedge__status show what the reload is waiting for.
func TestStatusShowsAReplacementThatDoesNotComeUp(t *testing.T) {
	up := startHTTPUpstream(t, echoServer("shared", false))
	g, url := startGateway(t, "[server]\n"+upstreamBlock("shared", up, `connect_timeout = "1s"`))
	dead := "http://" + closedPort(t) + "/mcp"

	cfg := *g.cfg.Load()
	cfg.Upstreams = append(cfg.Upstreams[:0:0], cfg.Upstreams...)
	cfg.Upstreams[0].URL = dead
	g.Apply(context.Background(), &cfg)

	var st UpstreamStatus
	if !waitFor(t, "a failing replacement in the status", 15*time.Second, func() bool {
		for _, s := range g.Statuses() {
			if s.Name == "shared" {
				st = s
			}
		}
		return st.Replacing != nil && st.Replacing.LastError != ""
	}) {
		t.Fatalf("status while the replacement cannot connect: %+v (replacing %+v)", st, st.Replacing)
	}
	if st.State != "ready" || st.Replacing.State == "ready" {
		t.Fatalf("the running connection should serve while the replacement is %s: %+v", st.Replacing.State, st)
	}
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "shared__echo", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("the running connection stopped serving: %v %v", res, err)
	}
}
