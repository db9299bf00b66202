package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/faultproxy"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestFaults puts a fault-injecting proxy between the gateway and the real
// everything server over Streamable HTTP and checks failure handling: the
// circuit breaker under resets and a blackhole, retries of safe calls only,
// per-tool timeouts, and that nothing is left behind afterwards.
func TestFaults(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	children := childPIDs(t)
	t.Run("everything", func(t *testing.T) {
		target := nodeclient.StartEverythingHTTP(t)
		t.Run("breaker", func(t *testing.T) { testBreaker(t, target) })
		t.Run("retries", func(t *testing.T) { testRetries(t, target) })
		t.Run("tool-timeout", func(t *testing.T) { testToolTimeout(t, target) })
	})
	if t.Failed() {
		return
	}
	// Every gateway, proxy, client and the server are gone now.
	http.DefaultClient.CloseIdleConnections()
	const tolerance = 5
	deadline := time.Now().Add(15 * time.Second)
	for runtime.NumGoroutine() > goroutines+tolerance && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines+tolerance {
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("goroutines: %d before, %d after (tolerance %d)\n%s", goroutines, n, tolerance, b.String())
	}
	deadline = time.Now().Add(10 * time.Second)
	var left []int
	for {
		left = slices.DeleteFunc(childPIDs(t), func(pid int) bool { return slices.Contains(children, pid) })
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("child processes left behind: %v", left)
	}
}

// faultGateway starts a gateway whose upstream "ev" is the everything server
// at target, reached through a fault proxy.
func faultGateway(t *testing.T, target string, extra ...string) (*testGateway, *faultproxy.Proxy) {
	t.Helper()
	p, via := nodeclient.ProxyTo(t, target)
	gw := startGateway(t, "[server]\n"+upstreamBlock("ev", "http", "url = "+q(via), extra...))
	if s := status(gw, "ev"); s.State != "ready" {
		t.Fatalf("upstream through the proxy: %+v", s)
	}
	return gw, p
}

// testBreaker (a): resets mid-stream and a blackhole. Every call gets an
// answer or a clear error in time, the breaker opens after the configured
// failures, later calls fail fast, /readyz and /metrics say so; when the
// proxy passes traffic again the breaker half-opens after open_for, a probe
// succeeds and it closes.
func testBreaker(t *testing.T, target string) {
	const timeout = 2 * time.Second
	gw, p := faultGateway(t, target, `timeout = "2s"`, "retries = 0",
		`tool_timeouts = { "trigger-long-running-operation" = "10s" }`,
		"[upstreams.breaker]\nfailures = 3\nopen_for = \"300ms\"")
	var mu sync.Mutex
	progressed := map[any]bool{}
	cs := goClient(t, gw.URL+"/mcp", &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progressed[r.Params.ProgressToken] = true
			mu.Unlock()
		},
	}, "2025-11-25")
	echo := func(ctx context.Context) (*mcp.CallToolResult, error) {
		return cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "hi"}})
	}

	// Resets mid-stream: long operations that are sending progress.
	const calls = 3
	type result struct {
		err  error
		took time.Duration
	}
	results := make(chan result, calls)
	start := time.Now()
	for i := range calls {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			t0 := time.Now()
			_, err := cs.CallTool(ctx, &mcp.CallToolParams{
				Meta: mcp.Meta{"progressToken": "op-" + strconv.Itoa(i)},
				Name: "ev__trigger-long-running-operation", Arguments: map[string]any{"duration": 8, "steps": 16},
			})
			results <- result{err, time.Since(t0)}
		}()
	}
	waitFor(t, "progress from every operation", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(progressed) == calls
	})
	p.Set(faultproxy.Reset())
	for range calls {
		select {
		case r := <-results:
			// The operations would take 8s: each must end long before, with
			// a clear error (or, if the SDK resumed the stream in time, an
			// answer).
			if r.err != nil && !isWire(r.err) {
				t.Errorf("call through a reset: %v (not a JSON-RPC error)", r.err)
			}
			t.Logf("call through a mid-stream reset ended after %s: %v", r.took.Round(time.Millisecond), r.err)
		case <-time.After(20 * time.Second):
			t.Fatal("a call through a reset hangs")
		}
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("calls through resets took %s", took)
	}
	// Three failed calls opened the breaker (it may be probing already).
	if st := breakerState(gw); st == "closed" {
		t.Errorf("breaker still closed after %d failures", calls)
	}

	p.Set(faultproxy.Pass())
	waitFor(t, "calls to work again after the resets", 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := echo(ctx)
		return err == nil && text(t, res) == "Echo: hi"
	})
	if st := breakerState(gw); st != "closed" {
		t.Errorf("breaker %q once calls work again, want closed", st)
	}

	// Blackhole: calls time out; the configured failures open the breaker.
	p.Set(faultproxy.Blackhole())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			t0 := time.Now()
			_, err := echo(ctx)
			if code(err) != mcpwire.CodeUpstreamTimeout {
				t.Errorf("call into a blackhole: %v, want code %d", err, mcpwire.CodeUpstreamTimeout)
			}
			if took := time.Since(t0); took > timeout+5*time.Second {
				t.Errorf("call into a blackhole took %s with a %s timeout", took, timeout)
			}
		})
	}
	wg.Wait()
	if st := breakerState(gw); st != "open" {
		t.Fatalf("breaker %q after 3 timeouts, want open", st)
	}
	t0 := time.Now()
	_, err := echo(ctxT(t, 10*time.Second))
	fast := time.Since(t0)
	if code(err) != mcpwire.CodeUpstreamUnavailable || !strings.Contains(err.Error(), "circuit breaker open after 3 consecutive failures") || !strings.Contains(err.Error(), "probes again at") {
		t.Fatalf("call on an open breaker: %v", err)
	}
	t.Logf("open breaker: refused in %s (timeout %s): %v", fast.Round(time.Microsecond), timeout, err)
	if fast > timeout/4 {
		t.Errorf("an open breaker took %s to refuse, want far below the %s timeout", fast, timeout)
	}
	readyz := get(t, gw.URL+"/readyz")
	if !strings.Contains(readyz, `"breaker":"open"`) || !strings.Contains(readyz, "3 consecutive failures") {
		t.Errorf("readyz with an open breaker: %s", readyz)
	}
	metrics := get(t, gw.URL+"/metrics")
	for _, want := range []string{`mcpedge_upstream_breaker_state{upstream="ev"} 2`, `mcpedge_upstream_breaker_rejections_total{upstream="ev"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Pass again: after open_for a probe goes through and closes the breaker.
	p.Set(faultproxy.Pass())
	time.Sleep(400 * time.Millisecond)
	waitFor(t, "the probe to close the breaker", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := echo(ctx)
		return err == nil
	})
	if st := breakerState(gw); st != "closed" {
		t.Errorf("breaker %q after a good probe, want closed", st)
	}
	if m := get(t, gw.URL+"/metrics"); !strings.Contains(m, `mcpedge_upstream_breaker_state{upstream="ev"} 0`) {
		t.Error("metrics do not show the breaker closed again")
	}
}

// testRetries (b): a read-only tool and resources/read are sent again,
// transparently, across one reset; a tool that is neither read-only nor
// idempotent is not. The proxy counts how often each request reached it.
func testRetries(t *testing.T, target string) {
	gw, p := faultGateway(t, target, `timeout = "10s"`)
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	ctx := ctxT(t, 60*time.Second)

	echo := p.Watch(`"name":"echo"`, 1)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "again"}})
	if err != nil || text(t, res) != "Echo: again" {
		t.Fatalf("read-only tool across one reset: %v %v", res, err)
	}
	if echo.Seen() != 2 || echo.Failed() != 1 {
		t.Errorf("echo reached the proxy %d times (%d failed), want 2 (1)", echo.Seen(), echo.Failed())
	}

	u, _ := gw.Upstream("ev")
	if len(u.Catalog().Resources) == 0 {
		t.Fatal("the everything server lists no resources")
	}
	uri := u.Catalog().Resources[0].URI
	read := p.Watch(`"method":"resources/read"`, 1)
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); err != nil {
		t.Fatalf("resources/read across one reset: %v", err)
	}
	if read.Seen() != 2 {
		t.Errorf("resources/read reached the proxy %d times, want 2", read.Seen())
	}

	// toggle-simulated-logging is neither read-only nor idempotent.
	toggle := p.Watch(`"name":"toggle-simulated-logging"`, 1)
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__toggle-simulated-logging", Arguments: map[string]any{}})
	if code(err) != mcpwire.CodeUpstreamUnavailable {
		t.Fatalf("non-idempotent tool across a reset: %v, want code %d", err, mcpwire.CodeUpstreamUnavailable)
	}
	if toggle.Seen() != 1 {
		t.Errorf("the non-idempotent tool reached the proxy %d times, want 1", toggle.Seen())
	}

	m := get(t, gw.URL+"/metrics")
	for _, want := range []string{
		`mcpedge_upstream_retries_total{method="tools/call",upstream="ev"} 1`,
		`mcpedge_upstream_retries_total{method="resources/read",upstream="ev"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if st := breakerState(gw); st != "closed" {
		t.Errorf("breaker %q after single failures, want closed", st)
	}
}

// testToolTimeout (c): a tool timeout shorter than the upstream's timeout
// ends a slow call, and the timed-out call is not retried.
func testToolTimeout(t *testing.T, target string) {
	gw, p := faultGateway(t, target, `timeout = "30s"`, `tool_timeouts = { "trigger-long-running-operation" = "1s" }`)
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	slow := p.Watch(`"name":"trigger-long-running-operation"`, 0)
	t0 := time.Now()
	_, err := cs.CallTool(ctxT(t, 30*time.Second), &mcp.CallToolParams{
		Name: "ev__trigger-long-running-operation", Arguments: map[string]any{"duration": 10, "steps": 2},
	})
	took := time.Since(t0)
	if code(err) != mcpwire.CodeUpstreamTimeout || !strings.Contains(err.Error(), "tool timeout of 1s") {
		t.Fatalf("slow tool: %v, want a tool timeout", err)
	}
	t.Logf("tool timeout of 1s (upstream timeout 30s) ended the call after %s", took.Round(time.Millisecond))
	if took < time.Second || took > 8*time.Second {
		t.Errorf("the 1s tool timeout took %s", took)
	}
	if slow.Seen() != 1 {
		t.Errorf("the timed-out call reached the proxy %d times, want 1", slow.Seen())
	}
	// Other tools keep the upstream's timeout.
	if _, err := cs.CallTool(ctxT(t, 30*time.Second), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "x"}}); err != nil {
		t.Errorf("echo: %v", err)
	}
}

func breakerState(gw *testGateway) string {
	for _, s := range gw.Statuses() {
		if s.Name == "ev" {
			return s.Breaker
		}
	}
	return ""
}

func code(err error) int64 {
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		return werr.Code
	}
	return 0
}

func isWire(err error) bool { return code(err) != 0 }

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(url, "/readyz") && !json.Valid(b) {
		t.Fatalf("readyz: %s", b)
	}
	return string(b)
}

// childPIDs lists the processes whose parent is this test binary (Linux;
// elsewhere it returns nothing).
func childPIDs(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == self {
				out = append(out, pid)
			}
		}
	}
	return out
}
