package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// countingServer is a real MCP server over Streamable HTTP whose one
// tool, "bump", is neither read-only nor idempotent; it counts the calls
// it ran and the sessions that initialized.
type countingServer struct {
	srv           *httptest.Server
	calls, inits  atomic.Int64
	name, toolArg string
}

func newCountingServer(t *testing.T, name string) *countingServer {
	c := &countingServer{name: name}
	up := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{
		InitializedHandler: func(context.Context, *mcp.InitializedRequest) { c.inits.Add(1) },
	})
	mcp.AddTool(up, &mcp.Tool{Name: "bump", Description: "counts its calls"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		n := c.calls.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s %d", name, n)}}}, nil, nil
	})
	c.srv = httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	t.Cleanup(func() {
		c.srv.CloseClientConnections()
		c.srv.Close()
	})
	return c
}

// TestReloadUnderLoad runs `mcpedge serve` with two upstreams and a
// closed loop of tools/call from 8 clients, and rewrites the
// configuration file (then SIGHUP) several times meanwhile: the url of
// one upstream changes (twice), its timeout changes (in place: no new
// connection), another upstream is added and removed, a plan changes.
// Every call must succeed: none may find its tool unknown or its
// upstream unavailable because the gateway was reconnecting.
func TestReloadUnderLoad(t *testing.T) {
	x, y, z, s := newCountingServer(t, "x"), newCountingServer(t, "y"), newCountingServer(t, "z"), newCountingServer(t, "s")
	conf := func(mainURL, timeout string, extra bool, planRate int) string {
		// The operator's plan (enterprise) must not rate-limit the load.
		b := fmt.Sprintf(`
[plans.enterprise]
key_per_minute = 100000000
key_burst = 1000000
tenant_per_minute = 100000000
tenant_burst = 1000000

[plans.spare]
key_per_minute = %d

[[upstreams]]
name = "main"
url = %q
timeout = %q

[[upstreams]]
name = "stable"
url = %q
`, planRate, mainURL+"/mcp", timeout, s.srv.URL+"/mcp")
		if extra {
			b += fmt.Sprintf("\n[[upstreams]]\nname = \"extra\"\nurl = %q\n", z.srv.URL+"/mcp")
		}
		return b
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "mcpedge.toml")
	write := func(body string) {
		// Atomically, so that the file watcher never reads half a file.
		tmp := filepath.Join(dir, "next.toml")
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(conf(x.srv.URL, "10s", false, 100))
	p := startServe(t, nil, "--config", path)
	p.waitReady(t, "main", "stable")

	// The load: 8 clients, each its own session, calling main__bump and
	// stable__bump in turn until the reloads are done (at least 3000
	// calls, at most 30000, at most 2 minutes).
	const clients, minCalls, maxCalls = 8, 3000, 30000
	var (
		total, failed atomic.Int64
		errMu         sync.Mutex
		firstErrs     []string
		stop          = make(chan struct{})
		wg            sync.WaitGroup
	)
	deadline := time.Now().Add(2 * time.Minute)
	for i := range clients {
		cs := connect(t, p.URL+"/mcp")
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					if total.Load() >= minCalls {
						return
					}
				default:
				}
				if total.Load() >= maxCalls || time.Now().After(deadline) {
					return
				}
				tool := "main__bump"
				if (n+i)%2 == 1 {
					tool = "stable__bump"
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool})
				cancel()
				total.Add(1)
				if err == nil && res.IsError {
					err = fmt.Errorf("tool error: %v", res.Content)
				}
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, fmt.Sprintf("client %d, %s, after %d calls: %v", i, tool, total.Load(), err))
					}
					errMu.Unlock()
				}
			}
		})
	}

	reloads := func() int { return strings.Count(p.stderr.String(), `"msg":"configuration reloaded"`) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("timed out waiting for %s; %d calls, %d failed %v\n%s", what, total.Load(), failed.Load(), firstErrs, tail(p.stderr.String(), 3000))
			}
		}
	}
	listed := func(name string) bool {
		for _, u := range p.readyz(t)["upstreams"].([]any) {
			if um := u.(map[string]any); um["name"] == name && um["state"] == "ready" {
				return true
			}
		}
		return false
	}
	atLeast := func(c *atomic.Int64, n int64) func() bool { return func() bool { return c.Load() >= n } }
	reload := func(body string) {
		t.Helper()
		n := reloads()
		write(body)
		_ = p.cmd.Process.Signal(syscall.SIGHUP)
		waitFor("the reload", func() bool { return reloads() > n })
		// Let the load run on the new configuration before the next.
		waitFor("calls after the reload", atLeast(&total, total.Load()+300))
	}
	waitFor("calls under way", atLeast(&x.calls, 50))
	callsBefore := total.Load()

	// 1. main's url changes: its calls move to y.
	reload(conf(y.srv.URL, "10s", false, 100))
	waitFor("calls to reach y", atLeast(&y.calls, 50))

	// 2. main's timeout changes: applied in place, no new session on y.
	inits := y.inits.Load()
	reload(conf(y.srv.URL, "20s", false, 100))
	waitFor("more calls on y", atLeast(&y.calls, y.calls.Load()+100))
	if got := y.inits.Load(); got != inits {
		t.Errorf("a timeout change reconnected: %d sessions on y before, %d after", inits, got)
	}

	// 3. an upstream is added, 4. removed, and a plan changes.
	reload(conf(y.srv.URL, "20s", true, 100))
	waitFor("extra to be ready", func() bool { return listed("extra") })
	reload(conf(y.srv.URL, "20s", false, 200))
	waitFor("extra to be gone", func() bool { return !listed("extra") })

	// 5. main's url and timeout change back together: calls return to
	// x; and once more to y and back.
	for _, to := range []*countingServer{x, y, x} {
		n := to.calls.Load()
		reload(conf(to.srv.URL, "10s", false, 200))
		waitFor("calls to move to "+to.name, atLeast(&to.calls, n+50))
	}
	during := total.Load() - callsBefore

	close(stop)
	wg.Wait()
	t.Logf("%d calls (%d while reloading), %d failed; x ran %d, y %d, stable %d", total.Load(), during, failed.Load(), x.calls.Load(), y.calls.Load(), s.calls.Load())
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d calls failed across the reloads; the first: %s", f, total.Load(), strings.Join(firstErrs, "\n"))
	}
	if total.Load() < minCalls || during == 0 {
		t.Fatalf("the load did not run through the reloads: %d calls, %d while reloading", total.Load(), during)
	}
	if z.calls.Load() != 0 {
		t.Errorf("extra's server ran %d calls; no client called it", z.calls.Load())
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
