package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// slowServer is an MCP server over Streamable HTTP whose tool "work"
// answers with the server's name once release is closed (at once when
// release is nil), signalling started when a call begins.
func slowServer(t *testing.T, name string, release chan struct{}, started chan string) (*httptest.Server, *mcp.Server) {
	up := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "work"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		if started != nil {
			started <- name
		}
		if release != nil {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	closeFixture(t, srv)
	return srv, up
}

func sessions(s *mcp.Server) int {
	n := 0
	for range s.Sessions() {
		n++
	}
	return n
}

func mainConf(url string) string {
	return fmt.Sprintf("[[upstreams]]\nname = \"main\"\nurl = %q\ntimeout = \"20s\"\nretries = 0\n", url)
}

func apply(t *testing.T, gw *testGateway, toml string) {
	t.Helper()
	cfg, err := config.Parse("reload.toml", []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	gw.Apply(context.Background(), cfg)
}

// TestReloadDrainsInFlightCalls changes an upstream's url while a call
// is in flight on the old connection: new calls go to the new server as
// soon as it is ready, the call in flight finishes on the old one, and
// only then is the old connection closed.
func TestReloadDrainsInFlightCalls(t *testing.T) {
	release, started := make(chan struct{}), make(chan string, 4)
	x, xs := slowServer(t, "x", release, started)
	y, _ := slowServer(t, "y", nil, nil)
	gw := startGateway(t, mainConf(x.URL))
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	ctx := ctxT(t, 60*time.Second)

	inflight := make(chan string, 1)
	go func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "main__work"})
		if err != nil {
			inflight <- "error: " + err.Error()
			return
		}
		inflight <- text(t, res)
	}()
	if got := <-started; got != "x" {
		t.Fatalf("started on %s", got)
	}

	apply(t, gw, mainConf(y.URL))
	waitFor(t, "the new connection to take over", 15*time.Second, func() bool {
		u, ok := gw.Upstream("main")
		return ok && u.Config().URL == y.URL && u.Catalog().Init != nil
	})
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "main__work"})
	if err != nil || text(t, res) != "y" {
		t.Fatalf("a call after the new connection took over: %v %v", err, res)
	}
	if n := sessions(xs); n == 0 {
		t.Fatal("the old connection was closed with a call in flight on it")
	}
	close(release)
	if got := <-inflight; got != "x" {
		t.Fatalf("the call in flight during the reload: %s", got)
	}
	waitFor(t, "the old connection to close", 15*time.Second, func() bool { return sessions(xs) == 0 })
}

// TestReloadCallWaitsForReplacement: the old server is gone and the new
// one is slow to accept its first connection. A call made meanwhile
// waits for the new connection (within its timeout) and succeeds there,
// instead of failing with "unavailable".
func TestReloadCallWaitsForReplacement(t *testing.T) {
	x, _ := slowServer(t, "x", nil, nil)
	_, yMCP := slowServer(t, "y", nil, nil)
	gate := make(chan struct{})
	arrived := make(chan struct{}, 1)
	inner := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return yMCP }, nil)
	y := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-gate // y accepts nothing until the test says so
		inner.ServeHTTP(w, r)
	}))
	closeFixture(t, y)
	gw := startGateway(t, mainConf(x.URL))
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	ctx := ctxT(t, 60*time.Second)
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "main__work"}); err != nil || text(t, res) != "x" {
		t.Fatalf("before: %v", err)
	}

	apply(t, gw, mainConf(y.URL))
	<-arrived // the new connection is being made
	x.CloseClientConnections()
	x.Listener.Close()
	// The old server is gone, and the gateway knows it: a call sent to it
	// before the gateway noticed may have reached it, and is not moved
	// (att.mayHaveRun).
	waitFor(t, "the gateway to notice the old server is gone", 15*time.Second, func() bool {
		u, ok := gw.Upstream("main")
		return ok && u.Config().URL == x.URL && u.Catalog().Init == nil
	})

	done := make(chan string, 1)
	go func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "main__work"})
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		done <- text(t, res)
	}()
	select {
	case got := <-done:
		t.Fatalf("the call did not wait for the new connection: %s", got)
	case <-time.After(300 * time.Millisecond):
		// Not a synchronisation: the call must not have failed by now.
		// Whether it arrived before the gate opened or not, it may only
		// succeed on y.
	}
	close(gate)
	if got := <-done; got != "y" {
		t.Fatalf("the call made while reconnecting: %s", got)
	}
}

// TestReloadFlipsUnderLoadRace is the in-process, race-detector run of
// what cmd/mcpedge's TestReloadUnderLoad does to the binary: 4 clients
// call in a closed loop while the upstream's url flips between two
// servers 10 times and its timeout changes; no call may fail.
func TestReloadFlipsUnderLoadRace(t *testing.T) {
	x, _ := slowServer(t, "x", nil, nil)
	y, _ := slowServer(t, "y", nil, nil)
	gw := startGateway(t, mainConf(x.URL))
	var (
		total, failed atomic.Int64
		firstErr      atomic.Value
		stop          = make(chan struct{})
		wg            sync.WaitGroup
	)
	for range 4 {
		cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
		wg.Go(func() {
			for total.Load() < 20000 {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "main__work"})
				cancel()
				total.Add(1)
				if err == nil && res.IsError {
					err = fmt.Errorf("tool error %v", res.Content)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	for i := range 10 {
		to := []string{y.URL, x.URL}[i%2]
		timeout := []string{"20s", "15s"}[(i/2)%2]
		apply(t, gw, fmt.Sprintf("[[upstreams]]\nname = \"main\"\nurl = %q\ntimeout = %q\nretries = 0\n", to, timeout))
		waitFor(t, "the new connection to take over", 15*time.Second, func() bool {
			u, ok := gw.Upstream("main")
			return ok && u.Config().URL == to && u.Catalog().Init != nil
		})
		n := total.Load()
		waitFor(t, "calls on the new connection", 15*time.Second, func() bool { return total.Load() >= n+50 })
	}
	close(stop)
	wg.Wait()
	t.Logf("%d calls, %d failed", total.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d calls failed across the reloads; the first: %v", failed.Load(), total.Load(), firstErr.Load())
	}
}

// TestReloadDrainsStdioCall replaces a stdio upstream (its environment
// changes) while a 6 s call runs on its child: the call finishes on the
// old child, which is stopped only afterwards. Stopping a connection used
// to give its calls 5 s before killing the child.
func TestReloadDrainsStdioCall(t *testing.T) {
	gw := startGateway(t, "[server]\n"+everythingStdio(t, "keep", `timeout = "30s"`))
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	ctx := ctxT(t, 60*time.Second)
	waitFor(t, "the upstream", 30*time.Second, func() bool { return status(gw, "keep").State == "ready" })
	pid := status(gw, "keep").PID

	inflight := make(chan error, 1)
	go func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "keep__trigger-long-running-operation", Arguments: map[string]any{"duration": 6, "steps": 3}})
		if err == nil && res.IsError {
			err = fmt.Errorf("tool error: %v", res.Content)
		}
		inflight <- err
	}()
	// The call is running on the old child once the gateway counts it in
	// flight.
	waitFor(t, "the call to be in flight", 10*time.Second, func() bool {
		return strings.Contains(get(t, gw.URL+"/metrics"), `mcpedge_requests_total{method="tools/call",upstream="keep"} 1`)
	})

	apply(t, gw, "[server]\n"+everythingStdio(t, "keep", `timeout = "30s"`, `env = { MCPEDGE_RELOAD = "drain" }`))
	waitFor(t, "the new child to take over", 30*time.Second, func() bool {
		s := status(gw, "keep")
		return s.State == "ready" && s.PID != 0 && s.PID != pid
	})
	if syscall.Kill(pid, 0) != nil {
		t.Fatal("the old child was stopped with a call in flight on it")
	}
	if err := <-inflight; err != nil {
		t.Fatalf("the call in flight during the reload: %v", err)
	}
	waitFor(t, "the old child to be stopped", 15*time.Second, func() bool {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		return err != nil || strings.Contains(string(b), ") Z")
	})
}
