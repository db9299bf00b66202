package gateway

// Review tests of routing across an upstream's targets (route.go) and of
// kept and saved catalogs (offline.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	routestage "github.com/mcpedge/mcpedge/internal/stage/route"
	"github.com/mcpedge/mcpedge/internal/telemetry"
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
	g, gw := startGateway(t, fmt.Sprintf(`
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
	waitTargetsReady(t, g, 2)
	cs := dialClient(t, gw+"/mcp", nil, "")
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
	g, gw := startGateway(t, fmt.Sprintf(`
[[upstreams]]
name = "rec"
local_only = ["*"]
[[upstreams.targets]]
url = %q
locality = "remote"
`, cloud))
	if !waitFor(t, "target connected", 20*time.Second, func() bool {
		u, ok := g.Upstream("rec")
		return ok && u.Status().State == upstream.StateReady
	}) {
		t.Fatalf("target not ready: %+v", g.Statuses())
	}
	cs := dialClient(t, gw+"/mcp", nil, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, state := range []string{"", "upstream-state-1"} {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "rec__records", Arguments: map[string]any{}, RequestState: state})
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) || werr.Code != mcpwire.CodeRoutingRefused {
			t.Errorf("requestState %q: %v, want code %d", state, err, mcpwire.CodeRoutingRefused)
		}
	}
	if n := cloudCalls.Load(); n != 0 {
		t.Errorf("the remote target received %d calls of a local-only upstream", n)
	}
}

// TestRoutingPerUpstreamWhileNoTargetConnected: /mcp/<name> of an upstream
// with targets, none of them connected, still exists. With its catalog
// kept (here: restored from a saved catalog at start) it serves that
// catalog, as /mcp/<name> of an upstream without targets does; it used to
// answer 404 "no upstream named ... is configured", because the lookup
// found no connected target.
func TestRoutingPerUpstreamWhileNoTargetConnected(t *testing.T) {
	dir := t.TempDir()
	saved, _ := json.Marshal(savedCatalog{Version: savedCatalogVersion, Upstream: "rec", Init: &mcp.InitializeResult{ProtocolVersion: "2025-11-25",
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}}, ServerInfo: &mcp.Implementation{Name: "records", Version: "1"}},
		Tools: []*mcp.Tool{{Name: "records", InputSchema: map[string]any{"type": "object"}}}})
	if err := os.WriteFile(filepath.Join(dir, "rec.json"), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("t.toml", []byte(`
[[upstreams]]
name = "rec"
keep_catalog = true
[[upstreams.targets]]
url = "http://127.0.0.1:1/mcp"
[[upstreams.targets]]
url = "http://127.0.0.1:2/mcp"
locality = "remote"
[[upstreams]]
name = "gone"
[[upstreams.targets]]
url = "http://127.0.0.1:3/mcp"
`))
	if err != nil {
		t.Fatal(err)
	}
	_, gw, ctx := startTestGateway(t, cfg, true, func(g *Gateway) { g.SetCatalogDir(dir) })

	cs := dialClient(t, gw+"/mcp/rec", nil, "")
	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	defer lcancel()
	res, err := cs.ListTools(lctx, nil)
	if err != nil || len(res.Tools) != 1 || res.Tools[0].Name != "records" {
		t.Fatalf("/mcp/rec tools: %+v %v", res, err)
	}
	_, err = cs.CallTool(lctx, &mcp.CallToolParams{Name: "records", Arguments: map[string]any{}})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != mcpwire.CodeUpstreamUnavailable {
		t.Errorf("call while no target is connected: %v, want code %d", err, mcpwire.CodeUpstreamUnavailable)
	}

	// An upstream with targets that never connected is not ready (503),
	// not unknown; a target's connection name is not an upstream.
	for path, want := range map[string]int{"/mcp/gone": http.StatusServiceUnavailable, "/mcp/rec@local": http.StatusNotFound, "/mcp/nope": http.StatusNotFound} {
		resp, err := http.Post(gw+path, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d %s, want %d", path, resp.StatusCode, body, want)
		}
	}
}

// TestRoutingCompletionKeepsLocalOnly: completion/complete carries what the
// user is typing into a prompt's arguments; for a local-only upstream it
// must not go to a remote target. It went to the target whose catalog is
// offered, here the remote one, listed first.
func TestRoutingCompletionKeepsLocalOnly(t *testing.T) {
	var cloudCalls, localCalls atomic.Int32
	upstreamFor := func(calls *atomic.Int32) string {
		return hostileUpstreamFunc(t, func(method string) (string, bool) {
			switch method {
			case "initialize":
				return `{"protocolVersion":"2025-11-25","capabilities":{"prompts":{},"completions":{}},"serverInfo":{"name":"records","version":"1"}}`, true
			case "prompts/list":
				return `{"prompts":[{"name":"patient","arguments":[{"name":"id"}]}]}`, true
			case "completion/complete":
				calls.Add(1)
				return `{"completion":{"values":["p-1"]}}`, true
			}
			return "", false
		})
	}
	cloud, local := upstreamFor(&cloudCalls), upstreamFor(&localCalls)
	g, gw := startGateway(t, fmt.Sprintf(`
[[upstreams]]
name = "rec"
local_only = ["*"]
[[upstreams.targets]]
name = "cloud"
url = %q
locality = "remote"
[[upstreams.targets]]
name = "local"
url = %q
`, cloud, local))
	waitTargetsReady(t, g, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, path := range []string{"/mcp", "/mcp/rec"} {
		cs := dialClient(t, gw+path, nil, "")
		name := "rec__patient"
		if path != "/mcp" {
			name = "patient"
		}
		res, err := cs.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: name},
			Argument: mcp.CompleteParamsArgument{Name: "id", Value: "confidential-"}})
		if err != nil || res == nil || len(res.Completion.Values) != 1 {
			t.Errorf("%s: complete: %+v %v", path, res, err)
		}
	}
	if n := cloudCalls.Load(); n != 0 {
		t.Errorf("the remote target received %d completions of a local-only upstream", n)
	}
	if n := localCalls.Load(); n != 2 {
		t.Errorf("the local target received %d completions, want 2", n)
	}
}

// TestRoutingMetricsOfRemovedTargets: a reload that removes a target, or
// an upstream with targets, removes their routing series too, as
// mcpedge_upstream_state does: a removed target's latency average stayed
// on /metrics with its last value.
func TestRoutingMetricsOfRemovedTargets(t *testing.T) {
	parse := func(toml string) *config.Config {
		cfg, err := config.Parse("t.toml", []byte(toml))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	both := parse(`
[[upstreams]]
name = "ev"
[[upstreams.targets]]
url = "http://127.0.0.1:1/mcp"
[[upstreams.targets]]
url = "http://127.0.0.1:2/mcp"
locality = "remote"
[[upstreams]]
name = "other"
[[upstreams.targets]]
url = "http://127.0.0.1:3/mcp"
[[upstreams.targets]]
url = "http://127.0.0.1:4/mcp"
locality = "remote"
`)
	m := telemetry.NewMetrics()
	g := New(both, slog.New(slog.DiscardHandler), m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g.Start(ctx)
	defer func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		g.Stop(stop)
	}()
	for _, c := range []string{"ev@local", "ev@remote", "other@local", "other@remote"} {
		g.routeMetrics.latency.WithLabelValues(c).Set(0.01)
	}
	g.routeMetrics.decisions.WithLabelValues("other", "local", routestage.FactorPriority).Inc()
	g.routeMetrics.fallbacks.WithLabelValues("other", "local", "remote").Inc()
	g.routeMetrics.refusals.WithLabelValues("other").Inc()

	g.Apply(ctx, parse(`
[[upstreams]]
name = "ev"
[[upstreams.targets]]
url = "http://127.0.0.1:1/mcp"
`))
	series := map[string]bool{}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "upstream" {
					series[mf.GetName()+"/"+l.GetValue()] = true
				}
			}
		}
	}
	if !series["mcpedge_upstream_latency_ema_seconds/ev@local"] {
		t.Error("the kept target's latency average is gone")
	}
	for _, s := range []string{"mcpedge_upstream_latency_ema_seconds/ev@remote", "mcpedge_upstream_latency_ema_seconds/other@local",
		"mcpedge_route_decisions_total/other", "mcpedge_route_fallbacks_total/other", "mcpedge_route_refusals_total/other"} {
		if series[s] {
			t.Errorf("%s still exported after its removal", s)
		}
	}
}

// TestSavedCatalogLastWins: catalogs registered one after the other are
// saved in that order, so the file holds the latest. Each save ran on its
// own goroutine, and goroutines do not start in the order they were
// created: an older catalog could overwrite a newer one, and a device
// restarted offline then listed a catalog the upstream no longer had.
func TestSavedCatalogLastWins(t *testing.T) {
	cfg, err := config.Parse("t.toml", []byte(`
[[upstreams]]
name = "ev"
keep_catalog = true
url = "http://127.0.0.1:1/mcp"
`))
	if err != nil {
		t.Fatal(err)
	}
	g := New(cfg, slog.New(slog.DiscardHandler), telemetry.NewMetrics())
	dir := t.TempDir()
	g.SetCatalogDir(dir)
	g.mu.Lock()
	g.groups["ev"] = &group{cfg: cfg.Upstreams[0]}
	g.mu.Unlock()
	catalog := func(tool string) *upstream.Catalog {
		return &upstream.Catalog{Init: &mcp.InitializeResult{ProtocolVersion: "2025-11-25"},
			Tools: []*mcp.Tool{{Name: tool, InputSchema: map[string]any{"type": "object"}}}}
	}
	for i := range 20 {
		g.mu.Lock()
		for j := range 5 {
			g.catalogRegisteredLocked("ev", catalog(fmt.Sprintf("t%d-%d", i, j)))
		}
		g.mu.Unlock()
		want := fmt.Sprintf("t%d-4", i)
		var got string
		waitFor(t, "saved", 5*time.Second, func() bool {
			b, err := os.ReadFile(filepath.Join(dir, "ev.json"))
			if err != nil {
				return false
			}
			cat, err := decodeSavedCatalog(b, "ev")
			if err != nil || len(cat.Tools) != 1 {
				return false
			}
			got = cat.Tools[0].Name
			return got == want
		})
		// Any save still running finishes: nothing is pending, and the
		// writer that took the last pending catalog (it holds cs.mu while
		// it writes) is done; writers yet to start find nothing to write.
		cs := g.catalogs
		if !waitFor(t, "no pending save", 5*time.Second, func() bool {
			cs.pmu.Lock()
			defer cs.pmu.Unlock()
			return len(cs.pending) == 0
		}) {
			t.Fatal("catalog saves still pending")
		}
		cs.mu.Lock()
		cs.mu.Unlock()
		b, _ := os.ReadFile(filepath.Join(dir, "ev.json"))
		if cat, err := decodeSavedCatalog(b, "ev"); err != nil || cat.Tools[0].Name != want {
			t.Fatalf("round %d: saved %s (%v), want %s", i, got, err, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left in the catalog directory: %v", entries)
	}
}

// TestRoutingKeptCatalogQueuesAfterReload: while no target is connected
// and the catalog is kept, a reload that renames the targets keeps the
// catalog listed, and a deferrable tool's call is still queued. The kept
// catalog's handlers belong to the old target, whose settings the reload
// removed, so the call was not recognised as deferrable and failed.
func TestRoutingKeptCatalogQueuesAfterReload(t *testing.T) {
	dir := t.TempDir()
	saved, _ := json.Marshal(savedCatalog{Version: savedCatalogVersion, Upstream: "rec", Init: &mcp.InitializeResult{ProtocolVersion: "2025-11-25",
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}}, ServerInfo: &mcp.Implementation{Name: "records", Version: "1"}},
		Tools: []*mcp.Tool{{Name: "records", InputSchema: map[string]any{"type": "object"}}}})
	if err := os.WriteFile(filepath.Join(dir, "rec.json"), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(toml string) *config.Config {
		cfg, err := config.Parse("t.toml", []byte(toml))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := parse(`
[[upstreams]]
name = "rec"
deferrable = ["records"]
[[upstreams.targets]]
name = "a"
url = "http://127.0.0.1:1/mcp"
`)
	fd := &fakeDeferrer{}
	g, gw, ctx := startTestGateway(t, cfg, true, func(g *Gateway) {
		g.SetCatalogDir(dir)
		g.SetDeferrer(fd)
	})
	g.Apply(ctx, parse(`
[[upstreams]]
name = "rec"
deferrable = ["records"]
[[upstreams.targets]]
name = "b"
url = "http://127.0.0.1:2/mcp"
`))
	g.WaitAttempted(ctx, 20*time.Second)

	cs := dialClient(t, gw+"/mcp", nil, "")
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "rec__records", Arguments: map[string]any{"x": 1}})
	if err != nil || res.IsError {
		t.Fatalf("call while offline after a reload: %+v %v, want a queued answer", res, err)
	}
	if fd.count() != 1 || fd.calls[0].upstream != "rec" || fd.calls[0].tool != "records" {
		t.Errorf("queued %+v, want one call of rec's records", fd.calls)
	}
}

// TestMain lets this test binary be a stdio MCP server for the tests that
// need an upstream they can kill (MCPEDGE_TEST_STDIO_SERVER set): one
// read-only tool, "lookup", or the server stdioTestServer names. It refuses to start while the file named by
// MCPEDGE_TEST_STDIO_DEAD exists, so a killed server stays down.
func TestMain(m *testing.M) {
	if os.Getenv("MCPEDGE_TEST_STDIO_SERVER") == "" {
		os.Exit(m.Run())
	}
	if _, err := os.Stat(os.Getenv("MCPEDGE_TEST_STDIO_DEAD")); err == nil {
		os.Exit(3)
	}
	if srv := stdioTestServer(os.Getenv("MCPEDGE_TEST_STDIO_SERVER")); srv != nil {
		_ = srv.Run(context.Background(), &mcp.StdioTransport{})
		os.Exit(0)
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "stdio-test", Version: "1"}, nil)
	var n atomic.Int32
	s.AddTool(&mcp.Tool{Name: "lookup", InputSchema: json.RawMessage(`{"type":"object"}`), Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("answer %d", n.Add(1))}}}, nil
		})
	_ = s.Run(context.Background(), &mcp.StdioTransport{})
	os.Exit(0)
}

// TestKeptCatalogAnswersFromCache: while an upstream's connection is lost
// and its catalog kept, a read-only tool's call is answered from the
// response cache, as docs/edge.md says. The cache asked the live
// connection's catalog whether the tool is read-only, and that catalog is
// empty while the connection is lost, so the call failed instead.
func TestKeptCatalogAnswersFromCache(t *testing.T) {
	dead := filepath.Join(t.TempDir(), "dead")
	g, gw := startGateway(t, fmt.Sprintf(`
[[upstreams]]
name = "kv"
command = %q
env = { MCPEDGE_TEST_STDIO_SERVER = "1", MCPEDGE_TEST_STDIO_DEAD = %q }
[upstreams.cache]
ttl = "1h"
serve_stale = true
`, os.Args[0], dead))
	u, ok := g.Upstream("kv")
	if !ok || !waitFor(t, "ready", 20*time.Second, func() bool { return u.Status().State == upstream.StateReady }) {
		t.Fatalf("upstream not ready: %+v", g.Statuses())
	}
	cs := dialClient(t, gw+"/mcp", nil, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "kv__lookup", Arguments: map[string]any{"k": "a"}})
	if err != nil || first.IsError {
		t.Fatalf("first call: %+v %v", first, err)
	}

	if err := os.WriteFile(dead, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pid := u.Status().PID
	p, err := os.FindProcess(pid)
	if pid == 0 || err != nil {
		t.Fatalf("no child to kill: pid %d %v", pid, err)
	}
	_ = p.Kill()
	if !waitFor(t, "catalog kept", 20*time.Second, func() bool {
		for _, s := range g.Statuses() {
			if s.Name == "kv" && s.CatalogKept {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("catalog not kept: %+v", g.Statuses())
	}
	again, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "kv__lookup", Arguments: map[string]any{"k": "a"}})
	if err != nil || again.IsError {
		t.Fatalf("call while the connection is lost: %+v %v, want the cached answer", again, err)
	}
	a, b := first.Content[0].(*mcp.TextContent).Text, again.Content[0].(*mcp.TextContent).Text
	if a != b {
		t.Errorf("answered %q, want the cached %q", b, a)
	}
}

// TestKeptCatalogResourceOwner: while an upstream with targets has no
// target connected and its catalog is kept, the owner of its listed
// resources is still that upstream — the name authorization checks in
// multi-tenant mode. It was "", so every tenant was told the kept
// resources did not exist, and the response cache could not answer them.
func TestKeptCatalogResourceOwner(t *testing.T) {
	dir := t.TempDir()
	saved, _ := json.Marshal(savedCatalog{Version: savedCatalogVersion, Upstream: "rec", Init: &mcp.InitializeResult{ProtocolVersion: "2025-11-25",
		Capabilities: &mcp.ServerCapabilities{Resources: &mcp.ResourceCapabilities{}}, ServerInfo: &mcp.Implementation{Name: "records", Version: "1"}},
		Resources: []*mcp.Resource{{URI: "rec://index", Name: "index"}},
		Templates: []*mcp.ResourceTemplate{{URITemplate: "rec://patients/{id}", Name: "patient"}}})
	if err := os.WriteFile(filepath.Join(dir, "rec.json"), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("t.toml", []byte(`
[[upstreams]]
name = "rec"
keep_catalog = true
[[upstreams.targets]]
url = "http://127.0.0.1:1/mcp"
`))
	if err != nil {
		t.Fatal(err)
	}
	g := New(cfg, slog.New(slog.DiscardHandler), telemetry.NewMetrics())
	g.SetCatalogDir(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g.Start(ctx)
	defer func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		g.Stop(stop)
	}()
	g.WaitAttempted(ctx, 20*time.Second)
	for _, tt := range []struct{ only, uri string }{{"", "rec://index"}, {"", "rec://patients/7"}, {"rec", "rec://index"}} {
		if got := g.uriOwner(tt.only, tt.uri); got != "rec" {
			t.Errorf("uriOwner(%q, %q) = %q, want rec", tt.only, tt.uri, got)
		}
	}
	if got := g.uriOwner("", "other://x"); got != "" {
		t.Errorf("owner of an unlisted URI: %q", got)
	}
}

// TestRoutingSubscriptionKeepsLocalOnly: a subscription to a local-only
// upstream's resource names the resource (a URI a template may fill with
// the caller's data) and must not reach a remote target. It went to the
// target whose catalog is offered, here the remote one, listed first.
func TestRoutingSubscriptionKeepsLocalOnly(t *testing.T) {
	var cloudSubs, localSubs atomic.Int32
	upstreamFor := func(subs *atomic.Int32) string {
		return hostileUpstreamFunc(t, func(method string) (string, bool) {
			switch method {
			case "initialize":
				return `{"protocolVersion":"2025-11-25","capabilities":{"resources":{"subscribe":true}},"serverInfo":{"name":"records","version":"1"}}`, true
			case "resources/list":
				return `{"resources":[{"uri":"rec://index","name":"index"}]}`, true
			case "resources/templates/list":
				return `{"resourceTemplates":[]}`, true
			case "resources/subscribe", "resources/unsubscribe":
				subs.Add(1)
				return `{}`, true
			}
			return "", false
		})
	}
	cloud, local := upstreamFor(&cloudSubs), upstreamFor(&localSubs)
	g, gw := startGateway(t, fmt.Sprintf(`
[[upstreams]]
name = "rec"
local_only = ["*"]
[[upstreams.targets]]
name = "cloud"
url = %q
locality = "remote"
[[upstreams.targets]]
name = "local"
url = %q
`, cloud, local))
	waitTargetsReady(t, g, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, path := range []string{"/mcp", "/mcp/rec"} {
		cs := dialClient(t, gw+path, nil, "2025-11-25")
		if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "rec://index"}); err != nil {
			t.Fatalf("%s: subscribe: %v", path, err)
		}
		if err := cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "rec://index"}); err != nil {
			t.Fatalf("%s: unsubscribe: %v", path, err)
		}
	}
	if n := cloudSubs.Load(); n != 0 {
		t.Errorf("the remote target received %d (un)subscriptions of a local-only upstream", n)
	}
	if n := localSubs.Load(); n != 4 {
		t.Errorf("the local target received %d (un)subscriptions, want 4", n)
	}
}
