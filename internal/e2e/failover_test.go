package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/devload"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bumpServer is an MCP server over Streamable HTTP with one tool, "bump",
// that is neither read-only nor idempotent (it counts its calls): a call
// that may have run must never be sent twice.
//
// A quiet server leaves the gateway no connection to it between calls: it
// closes every connection after its response (no keep-alive, so the
// gateway's HTTP transport keeps no idle connection to it) and offers no
// standalone SSE stream (GET answers 405, which the spec allows). When a
// quiet server dies, the gateway has no way to notice until it sends the
// next request, and that request cannot be written to a connection the
// server has just closed: the transport must dial, and the dial is
// refused.
func bumpServer(t *testing.T, name string, quiet bool) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	up := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "bump", Description: "counts its calls"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		v := n.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s %d", name, v)}}}, nil, nil
	})
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil)
	if quiet {
		stream := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				w.Header().Set("Allow", "POST, DELETE")
				http.Error(w, "no standalone SSE stream", http.StatusMethodNotAllowed)
				return
			}
			stream.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewUnstartedServer(h)
	if quiet {
		srv.Config.SetKeepAlivesEnabled(false)
	}
	srv.Start()
	closeFixture(t, srv)
	return srv, &n
}

// TestFailoverWhenNeverSent: an upstream with a local and a remote
// target, both real MCP servers over Streamable HTTP. The local server
// dies (its listener and every connection closed, as when its process is
// killed): the very next call of a tool that is not safe to repeat fails
// on the local target with "connection refused" — the request never left
// the gateway — and goes on at once to the remote target, which answers.
// Before the breaker has opened, every such call succeeds; none is lost
// and none runs twice.
//
// The local server is quiet (see bumpServer): the gateway holds no
// connection to it when it dies, so nothing tells the gateway of the death
// before the first call (the target is still "ready" then, and the router
// tries it first), and that call's request is never written to a
// connection the server closed — a race the gateway would rightly count
// as "maybe sent" (net/http reports EOF after writing the request; the
// server may have read it), so that the call would not fail over.
func TestFailoverWhenNeverSent(t *testing.T) {
	local, localCalls := bumpServer(t, "local", true)
	remote, remoteCalls := bumpServer(t, "remote", false)
	gw := startGateway(t, fmt.Sprintf(`
[routing]
latency_factor = 1000

[[upstreams]]
name = "up"
timeout = "10s"
retries = 0

[upstreams.breaker]
failures = 5
open_for = "1h"

[[upstreams.targets]]
name = "local"
url = %q
locality = "local"

[[upstreams.targets]]
name = "remote"
url = %q
locality = "remote"
`, local.URL, remote.URL))
	// The machine running the tests may be busy: the device's load is
	// the test's to set.
	gw.SetLoadSource(func() devload.Sample { return devload.Sample{CPU: 0.1, Memory: 0.2, OK: true} })
	for _, n := range []string{"up@local", "up@remote"} {
		if s := status(gw, n); s.State != "ready" {
			t.Fatalf("target %s: %+v", n, s)
		}
	}
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	bump := func() (*mcp.CallToolResult, map[string]any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Meta: mcp.Meta{gateway.MetaExplain: true}, Name: "up__bump"})
		if err != nil {
			return nil, nil, err
		}
		route, _ := res.Meta[gateway.MetaRoute].(map[string]any)
		return res, route, nil
	}

	res, route, err := bump()
	if err != nil || res.IsError || route["target"] != "local" {
		t.Fatalf("before: %v %+v %v", err, res, route)
	}

	// The local server dies: connections dropped, port closed.
	local.CloseClientConnections()
	local.Listener.Close()
	// The gateway cannot have noticed: it had no connection to lose.
	if s := status(gw, "up@local"); s.State != "ready" {
		t.Fatalf("target up@local right after its server died: %+v", s)
	}

	for i := range 5 {
		res, route, err := bump()
		if err != nil {
			t.Fatalf("call %d after the local target died: %v", i+1, err)
		}
		if res.IsError || route["target"] != "remote" {
			t.Fatalf("call %d: %+v, route %v", i+1, res, route)
		}
		if !strings.HasPrefix(text(t, res), "remote ") {
			t.Fatalf("call %d answered %q", i+1, text(t, res))
		}
		if i == 0 {
			// The first call tried the local target, failed before
			// sending, and fell back within the same call.
			attempts := fmt.Sprint(route["attempts"])
			if !strings.Contains(attempts, "target:local") || !strings.Contains(attempts, "ok:true target:remote") {
				t.Fatalf("first call's attempts: %s", attempts)
			}
		}
	}
	if got := localCalls.Load(); got != 1 {
		t.Errorf("the local server ran bump %d times, want the 1 call made before it died", got)
	}
	if got := remoteCalls.Load(); got != 5 {
		t.Errorf("the remote server ran bump %d times, want 5", got)
	}
	m := get(t, gw.URL+"/metrics")
	if !strings.Contains(m, `mcpedge_route_fallbacks_total{from="local",to="remote",upstream="up"}`) {
		t.Errorf("fallback not counted:\n%s", grepLines(m, "mcpedge_route"))
	}
}

// TestFailoverStdioChildKilled: an upstream with two targets, both the
// real everything server over stdio. The first target's child is killed
// (SIGKILL); once it is dead — whether or not the gateway has noticed —
// the next call of a tool that is not safe to repeat succeeds on the
// second target: writing to a dead child's pipe, or to a connection the
// SDK knows is broken, or finding no connection, all mean the request
// never left the gateway.
func TestFailoverStdioChildKilled(t *testing.T) {
	gw := startGateway(t, "[routing]\nlatency_factor = 1000\n"+
		"\n[[upstreams]]\nname = \"ev\"\ntimeout = \"10s\"\nretries = 0\n"+
		"[upstreams.breaker]\nfailures = 5\nopen_for = \"1h\"\n"+
		strings.Replace(strings.Replace(everythingStdio(t, "first"), "[[upstreams]]", "[[upstreams.targets]]", 1), "transport = \"stdio\"\n", "locality = \"local\"\n", 1)+
		strings.Replace(strings.Replace(everythingStdio(t, "second"), "[[upstreams]]", "[[upstreams.targets]]", 1), "transport = \"stdio\"\n", "locality = \"remote\"\n", 1))
	gw.SetLoadSource(func() devload.Sample { return devload.Sample{CPU: 0.1, Memory: 0.2, OK: true} })
	waitFor(t, "both targets", 30*time.Second, func() bool {
		return status(gw, "ev@first").State == "ready" && status(gw, "ev@second").State == "ready"
	})
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	toggle := func() (*mcp.CallToolResult, map[string]any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Meta: mcp.Meta{gateway.MetaExplain: true}, Name: "ev__toggle-simulated-logging"})
		if err != nil {
			return nil, nil, err
		}
		route, _ := res.Meta[gateway.MetaRoute].(map[string]any)
		return res, route, nil
	}
	if res, route, err := toggle(); err != nil || res.IsError || route["target"] != "first" {
		t.Fatalf("before: %v %+v %v", err, res, route)
	}
	pid := status(gw, "ev@first").PID
	if pid == 0 {
		t.Fatal("no child pid in status")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Dead means that no thread of the child is left to hold its stdin:
	// the main thread turns zombie as soon as it exits, while the other
	// threads of a killed node process may still be exiting and keep the
	// shared descriptor table (and so the pipe's read end) open, so that a
	// write to the pipe still succeeds. Those threads are gone from
	// /proc/PID/task once they have exited and released the table.
	waitFor(t, "the child to die", 10*time.Second, func() bool {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		if !strings.Contains(string(b), ") Z") {
			return false
		}
		tasks, err := os.ReadDir("/proc/" + itoa(pid) + "/task")
		return err != nil || len(tasks) <= 1
	})
	res, route, err := toggle()
	if err != nil {
		t.Fatalf("the call right after the child died: %v", err)
	}
	if res.IsError || route["target"] != "second" {
		t.Fatalf("the call right after the child died: %+v, route %v", res, route)
	}
}
