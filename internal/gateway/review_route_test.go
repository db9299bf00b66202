package gateway

// Review tests of routing across an upstream's targets (route.go) and of
// kept and saved catalogs (offline.go).

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	routeInit      = `{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"records","version":"1"}}`
	routeToolsList = `{"tools":[{"name":"records","inputSchema":{"type":"object"}}]}`
)

// countingUpstream is a hostile upstream with one tool that counts the
// tools/call requests it receives.
func countingUpstream(t *testing.T, calls *atomic.Int32, text string) string {
	return hostileUpstreamFunc(t, func(method string) (string, bool) {
		switch method {
		case "initialize":
			return routeInit, true
		case "tools/list":
			return routeToolsList, true
		case "tools/call":
			calls.Add(1)
			return `{"content":[{"type":"text","text":"` + text + `"}]}`, true
		}
		return "", false
	})
}

// TestRoutingResumeKeepsLocalOnly: a tools/call carrying an upstream's own
// requestState (the second round of a multi-round-trip call) is still
// subject to local-only rules. It used to go straight to the target whose
// catalog is offered — here the remote one, listed first — so a client
// could send a local-only tool's arguments and input responses off the
// device just by adding a requestState.
func TestRoutingResumeKeepsLocalOnly(t *testing.T) {
	var cloudCalls, localCalls atomic.Int32
	cloud := countingUpstream(t, &cloudCalls, "cloud")
	local := countingUpstream(t, &localCalls, "local")
	g, gw := reviewGateway(t, fmt.Sprintf(`
[[upstreams]]
name = "rec"
local_only = ["records"]
[[upstreams.targets]]
name = "cloud"
url = %q
locality = "remote"
[[upstreams.targets]]
name = "local"
url = %q
`, cloud, local))
	if !reviewWait(t, "both targets connected", 20*time.Second, func() bool {
		n := 0
		for _, s := range g.Statuses() {
			if s.State == upstream.StateReady {
				n++
			}
		}
		return n == 2
	}) {
		t.Fatalf("targets not ready: %+v", g.Statuses())
	}
	cs := reviewClient(t, gw+"/mcp", nil, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "rec__records", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("first round: %+v %v", res, err)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "rec__records", Arguments: map[string]any{"secret": 1}, RequestState: "upstream-state-1"})
	if err != nil {
		t.Fatalf("resumed call: %v", err)
	}
	if n := cloudCalls.Load(); n != 0 {
		t.Errorf("the remote target received %d calls of a local-only tool", n)
	}
	if n := localCalls.Load(); n != 2 {
		t.Errorf("the local target received %d calls, want 2 (%+v)", n, res)
	}
}

// TestRoutingResumeRefusedWithoutLocalTarget: with no local target, a
// local-only call is refused with or without a requestState.
func TestRoutingResumeRefusedWithoutLocalTarget(t *testing.T) {
	var cloudCalls atomic.Int32
	cloud := countingUpstream(t, &cloudCalls, "cloud")
	g, gw := reviewGateway(t, fmt.Sprintf(`
[[upstreams]]
name = "rec"
local_only = ["*"]
[[upstreams.targets]]
url = %q
locality = "remote"
`, cloud))
	if !reviewWait(t, "target connected", 20*time.Second, func() bool {
		u, ok := g.Upstream("rec")
		return ok && u.Status().State == upstream.StateReady
	}) {
		t.Fatalf("target not ready: %+v", g.Statuses())
	}
	cs := reviewClient(t, gw+"/mcp", nil, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, state := range []string{"", "upstream-state-1"} {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "rec__records", Arguments: map[string]any{}, RequestState: state})
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) || werr.Code != CodeRoutingRefused {
			t.Errorf("requestState %q: %v, want code %d", state, err, CodeRoutingRefused)
		}
	}
	if n := cloudCalls.Load(); n != 0 {
		t.Errorf("the remote target received %d calls of a local-only upstream", n)
	}
}

