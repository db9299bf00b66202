package gateway

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
)

// Since a5fbb2b (diff-based withdraw in catalogChanged): a tool
// that is still listed by the upstream but is now refused (bad schema, SDK
// panic, conflict) is neither withdrawn (its name is in the new catalog) nor
// recorded in the new registration, so it stays on /mcp with its old
// definition and handler for good — even after the upstream is removed.
func TestRefusedToolIsOrphaned(t *testing.T) {
	var tools atomic.Value
	tools.Store(`{"tools":[{"name":"t","inputSchema":{"type":"object"}}]}`)
	url := hostileUpstreamFunc(t, func(method string) (string, bool) {
		switch method {
		case "initialize":
			return `{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"h","version":"1"}}`, true
		case "tools/list":
			return tools.Load().(string), true
		}
		return "", false
	})
	g, gw := startGateway(t, "[server]\n"+upstreamBlock("h", url))
	cs := dialClient(t, gw+"/mcp", nil, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	has := func() bool {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tl := range res.Tools {
			if tl.Name == "h__t" {
				return true
			}
		}
		return false
	}
	if !has() {
		t.Fatal("precondition: h__t not listed")
	}
	tools.Store(`{"tools":[{"name":"t","inputSchema":{"type":"string"}}]}`)
	u, _ := g.Upstream("h")
	u.Refresh()
	// Wait until the refreshed catalog was registered: its tool is then
	// reported as skipped for its schema.
	if !waitFor(t, "the refreshed catalog registered", 10*time.Second, func() bool {
		for _, s := range g.Statuses() {
			if s.Name == "h" && strings.Contains(strings.Join(s.Conflicts, "\n"), `tool "t" skipped`) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the refreshed catalog was never registered: %+v", g.Statuses())
	}
	// Remove the upstream altogether (Apply unregisters it before it
	// returns).
	cfg := *g.cfg.Load()
	cfg.Upstreams = []config.Upstream{}
	g.Apply(context.Background(), &cfg)
	if has() {
		t.Fatal("h__t is still offered on /mcp after upstream h was removed")
	}
}
