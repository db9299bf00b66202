package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestPolicyChangedSendsListChanged: when the policy changes, the
// replica's clients are told their tool, prompt and resource lists may
// have changed (what a tenant sees depends on its virtual servers and
// rules), so they list again.
func TestPolicyChangedSendsListChanged(t *testing.T) {
	s := legacyOnly("docs", nil)
	secTool(s, "echo", nil)
	up := startHTTPUpstream(t, s)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("docs", up))
	waitTargetsReady(t, g, 1)
	changed := make(chan struct{}, 8)
	cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	}, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Drain what the session's start may have produced.
	for drained := false; !drained; {
		select {
		case <-changed:
		case <-time.After(300 * time.Millisecond):
			drained = true
		}
	}
	g.PolicyChanged()
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("no tools/list_changed after the policy changed")
	}
	res, err := cs.ListTools(ctx, nil)
	if err != nil || len(res.Tools) == 0 {
		t.Fatalf("listing again: %v %+v", err, res)
	}
}
