package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func status(gw *testGateway, name string) upstream.Status {
	for _, s := range gw.Statuses() {
		if s.Name == name {
			return s.Status
		}
	}
	return upstream.Status{}
}

func freeClosedPort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestBadUpstreamsDoNotBlock configures a missing command, a closed port and
// a server that never answers initialize next to a good upstream: a client
// initializes and lists at once, sees the good tools, and /readyz says why
// the others are down.
func TestBadUpstreamsDoNotBlock(t *testing.T) {
	// A listener that accepts and never answers: the slow upstream.
	slow, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	go func() {
		for {
			c, err := slow.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	gw := startGateway(t, "[server]\n"+
		upstreamBlock("missing", "stdio", `command = "/nonexistent/mcp-server"`)+
		upstreamBlock("closed", "http", "url = "+q("http://"+freeClosedPort(t)+"/mcp"))+
		upstreamBlock("silent", "http", "url = "+q("http://"+slow.Addr().String()+"/mcp"), `connect_timeout = "1s"`)+
		everythingStdio(t, "good"))
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	res, err := cs.ListTools(ctxT(t, 10*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("listing took %s with bad upstreams", took)
	}
	var good int
	for _, tl := range res.Tools {
		if strings.HasPrefix(tl.Name, "good__") {
			good++
		}
		if strings.HasPrefix(tl.Name, "missing__") || strings.HasPrefix(tl.Name, "closed__") || strings.HasPrefix(tl.Name, "silent__") {
			t.Errorf("tool %s of a dead upstream is listed", tl.Name)
		}
	}
	if good == 0 {
		t.Fatal("no tools of the good upstream")
	}
	resp, err := http.Get(gw.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rd struct {
		Ready     bool
		Upstreams []struct {
			Name, State string
			LastError   string `json:"last_error"`
		}
	}
	if err := json.Unmarshal(body, &rd); err != nil {
		t.Fatalf("readyz: %v: %s", err, body)
	}
	for _, u := range rd.Upstreams {
		switch u.Name {
		case "good":
			if u.State != "ready" {
				t.Errorf("good upstream state %s", u.State)
			}
		default:
			if u.State == "ready" || u.LastError == "" {
				t.Errorf("readyz for %s: state %s, last_error %q; want a failure with its cause", u.Name, u.State, u.LastError)
			}
		}
	}
	if !strings.Contains(string(body), "/nonexistent/mcp-server") {
		t.Errorf("readyz does not name the missing command: %s", body)
	}
}

// TestUpstreamKilledMidSession SIGKILLs the stdio child under a live client
// session: the gateway reports the failure, restarts the child with backoff,
// tells the client through list_changed, and the same session calls the
// upstream again.
func TestUpstreamKilledMidSession(t *testing.T) {
	gw := startGateway(t, "[server]\n"+everythingStdio(t, "ev"))
	var changed atomic.Int32
	cs := goClient(t, gw.URL+"/mcp", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed.Add(1) },
	}, "2025-11-25")
	ctx := ctxT(t, 60*time.Second)
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "before"}}); err != nil {
		t.Fatal(err)
	}
	pid := status(gw, "ev").PID
	if pid == 0 {
		t.Fatal("no child pid in status")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failure to be noticed", 10*time.Second, func() bool { return status(gw, "ev").State != "ready" || status(gw, "ev").PID != pid })
	// While it is down, a call fails with a clear error instead of hanging.
	waitFor(t, "the upstream to come back", 30*time.Second, func() bool {
		s := status(gw, "ev")
		return s.State == "ready" && s.PID != 0 && s.PID != pid
	})
	if s := status(gw, "ev"); s.Restarts < 1 {
		t.Errorf("restarts = %d", s.Restarts)
	}
	if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
		if b, _ := os.ReadFile("/proc/" + itoa(pid) + "/stat"); !strings.Contains(string(b), ") Z") {
			t.Errorf("killed child %d still exists", pid)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "after"}})
	if err != nil {
		t.Fatalf("call after restart: %v", err)
	}
	if text(t, res) != "Echo: after" {
		t.Errorf("after restart: %q", text(t, res))
	}
	waitFor(t, "list_changed notifications", 5*time.Second, func() bool { return changed.Load() >= 1 })
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestReloadKeepsUnchangedUpstreams applies a new configuration mid-session:
// the unchanged upstream keeps its child process and the client's session,
// the added one appears through list_changed, the removed one disappears.
func TestReloadKeepsUnchangedUpstreams(t *testing.T) {
	keep := everythingStdio(t, "keep")
	gw := startGateway(t, "[server]\n"+keep+everythingStdio(t, "gone"))
	var changed atomic.Int32
	cs := goClient(t, gw.URL+"/mcp", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed.Add(1) },
	}, "2025-11-25")
	ctx := ctxT(t, 60*time.Second)
	waitFor(t, "both upstreams", 30*time.Second, func() bool {
		return status(gw, "keep").State == "ready" && status(gw, "gone").State == "ready"
	})
	pid := status(gw, "keep").PID
	before := changed.Load()

	cfg, err := config.Parse("reload.toml", []byte("[server]\n"+keep+everythingStdio(t, "added")))
	if err != nil {
		t.Fatal(err)
	}
	added, removed, chg := gw.Apply(ctx, cfg)
	if len(added) != 1 || added[0] != "added" || len(removed) != 1 || removed[0] != "gone" || len(chg) != 0 {
		t.Fatalf("apply: added %v removed %v changed %v", added, removed, chg)
	}
	waitFor(t, "the added upstream", 30*time.Second, func() bool { return status(gw, "added").State == "ready" })
	if got := status(gw, "keep").PID; got != pid {
		t.Errorf("unchanged upstream restarted: pid %d -> %d", pid, got)
	}
	waitFor(t, "list_changed", 5*time.Second, func() bool { return changed.Load() > before })
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sawAdded, sawGone bool
	for _, tl := range res.Tools {
		sawAdded = sawAdded || strings.HasPrefix(tl.Name, "added__")
		sawGone = sawGone || strings.HasPrefix(tl.Name, "gone__")
	}
	if !sawAdded || sawGone {
		t.Errorf("after reload: added listed %v, removed listed %v", sawAdded, sawGone)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "keep__echo", Arguments: map[string]any{"message": "same session"}}); err != nil {
		t.Errorf("call on the kept upstream in the same session: %v", err)
	}

	// A changed timeout is applied in place: same child, new setting.
	cfg2, err := config.Parse("reload2.toml", []byte("[server]\n"+everythingStdio(t, "keep", `timeout = "45s"`)+everythingStdio(t, "added")))
	if err != nil {
		t.Fatal(err)
	}
	_, _, chg = gw.Apply(ctx, cfg2)
	if len(chg) != 1 || chg[0] != "keep" {
		t.Fatalf("changed = %v", chg)
	}
	u, _ := gw.Upstream("keep")
	if got := status(gw, "keep"); got.PID != pid || got.State != "ready" || u.Config().Timeout.D() != 45*time.Second {
		t.Fatalf("after a timeout change: pid %d -> %d, state %s, timeout %s", pid, got.PID, got.State, u.Config().Timeout.D())
	}

	// A changed connection (new environment) is replaced: the new child
	// is started next to the old one, which serves until it is ready.
	cfg3, err := config.Parse("reload3.toml", []byte("[server]\n"+everythingStdio(t, "keep", `timeout = "45s"`, `env = { MCPEDGE_RELOAD = "3" }`)+everythingStdio(t, "added")))
	if err != nil {
		t.Fatal(err)
	}
	_, _, chg = gw.Apply(ctx, cfg3)
	if len(chg) != 1 || chg[0] != "keep" {
		t.Fatalf("changed = %v", chg)
	}
	if s := status(gw, "keep"); s.State != "ready" || s.PID != pid {
		t.Fatalf("the old connection stopped serving before its replacement was ready: %+v", s)
	}
	waitFor(t, "the changed upstream", 30*time.Second, func() bool { s := status(gw, "keep"); return s.State == "ready" && s.PID != pid })
	waitFor(t, "the old child to be stopped", 30*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })
}

// TestSessionIsolation gives each client session its own upstream process
// and checks that sampling requests reach exactly the client that caused
// them, even with two clients calling at the same time.
func TestSessionIsolation(t *testing.T) {
	gw := startGateway(t, "[server]\n"+everythingStdio(t, "iso", `isolation = "session"`))
	mk := func(tag string) *mcp.ClientSession {
		return goClient(t, gw.URL+"/mcp", &mcp.ClientOptions{
			CreateMessageHandler: func(ctx context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
				time.Sleep(100 * time.Millisecond) // overlap the two calls
				return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "answer-from-" + tag}}, nil
			},
		}, "2025-11-25")
	}
	a, b := mk("a"), mk("b")
	ctx := ctxT(t, 60*time.Second)
	type out struct {
		text string
		err  error
	}
	ra, rb := make(chan out, 1), make(chan out, 1)
	for _, x := range []struct {
		cs *mcp.ClientSession
		ch chan out
	}{{a, ra}, {b, rb}} {
		go func() {
			res, err := x.cs.CallTool(ctx, &mcp.CallToolParams{Name: "iso__trigger-sampling-request", Arguments: map[string]any{"prompt": "who"}})
			if err != nil {
				x.ch <- out{err: err}
				return
			}
			x.ch <- out{text: text(t, res)}
		}()
	}
	oa, ob := <-ra, <-rb
	if oa.err != nil || ob.err != nil {
		t.Fatalf("calls: %v / %v", oa.err, ob.err)
	}
	if !strings.Contains(oa.text, "answer-from-a") || !strings.Contains(ob.text, "answer-from-b") {
		t.Errorf("sampling crossed sessions:\na: %s\nb: %s", oa.text, ob.text)
	}
	u, _ := gw.Upstream("iso")
	if n := u.SessionCount(); n != 2 {
		t.Errorf("per-session upstream connections = %d, want 2", n)
	}
	_ = a.Close()
	waitFor(t, "the closed session's upstream process to go", 10*time.Second, func() bool { return u.SessionCount() == 1 })
}

// TestSSEUpstream federates an upstream over the legacy HTTP+SSE transport.
func TestSSEUpstream(t *testing.T) {
	url := nodeclient.StartEverythingSSE(t)
	gw := startGateway(t, "[server]\n"+upstreamBlock("legacy", "sse", "url = "+q(url)))
	if s := status(gw, "legacy"); s.State != "ready" {
		t.Fatalf("sse upstream: %+v", s)
	}
	r := nodeclient.Run(t, gw.URL+"/mcp", "call", map[string]any{"name": "legacy__echo", "arguments": map[string]any{"message": "over sse"}})
	if !strings.Contains(jsonText(r["result"]), "Echo: over sse") {
		t.Errorf("result = %s", jsonText(r))
	}
}
