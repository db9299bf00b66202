package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// requireService returns the environment variable env, skipping the test
// when it is unset (failing when MCPEDGE_REQUIRE_SERVICES=1).
func requireService(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s is not set and MCPEDGE_REQUIRE_SERVICES=1", env)
		}
		t.Skipf("%s is not set", env)
	}
	return v
}

// replicaUpstream is an upstream every replica connects to, which tells
// which replica called it (each replica's configuration sends its own
// X-Replica header) and has a resource whose changes it announces to
// every connection subscribed to it.
type replicaUpstream struct {
	srv     *mcp.Server
	URL     string
	slowBy  chan string // the replica a "slow" call came through
	seenMu  sync.Mutex
	seenBy  map[string]int
	subsNow atomic.Int32
}

func newReplicaUpstream(t *testing.T) *replicaUpstream {
	u := &replicaUpstream{slowBy: make(chan string, 4), seenBy: map[string]int{}}
	u.srv = mcp.NewServer(&mcp.Implementation{Name: "docs", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { u.subsNow.Add(1); return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
		Capabilities: &mcp.ServerCapabilities{
			Tools: &mcp.ToolCapabilities{}, Resources: &mcp.ResourceCapabilities{Subscribe: true},
		},
	})
	replica := func(r *mcp.CallToolRequest) string {
		if r.Extra == nil || r.Extra.Header == nil {
			return ""
		}
		return r.Extra.Header.Get("X-Replica")
	}
	u.srv.AddTool(&mcp.Tool{Name: "whoami", InputSchema: map[string]any{"type": "object"}}, func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		who := replica(r)
		u.seenMu.Lock()
		u.seenBy[who]++
		u.seenMu.Unlock()
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: who}}}, nil
	})
	u.srv.AddTool(&mcp.Tool{Name: "slow", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		u.slowBy <- replica(r)
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Second):
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "slow done"}}}, nil
	})
	u.srv.AddResource(&mcp.Resource{URI: "res://doc", Name: "doc"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "res://doc", Text: "doc"}}}, nil
	})
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return u.srv }, nil))
	closeFixture(t, hs)
	u.URL = hs.URL
	return u
}

// startHAProxy runs HAProxy in front of backends, round robin without
// affinity: every request goes to the next replica. A connection that a
// replica refuses is retried on another (the request never reached it);
// a replica that stops answering /healthz leaves the rotation.
func startHAProxy(t *testing.T, backends []string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatal("haproxy is not installed and MCPEDGE_REQUIRE_SERVICES=1 (scripts/test.sh installs it)")
		}
		t.Skip("haproxy is not installed (scripts/test.sh installs it)")
	}
	addr := freeAddr(t)
	var b strings.Builder
	fmt.Fprintf(&b, `global
	maxconn 512
defaults
	mode http
	timeout connect 2s
	timeout client 90s
	timeout server 90s
	retries 3
	option redispatch 1
	retry-on conn-failure
frontend mcp
	bind %s
	default_backend replicas
backend replicas
	balance roundrobin
	option httpchk
	http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host localhost
`, addr)
	for i, be := range backends {
		fmt.Fprintf(&b, "\tserver r%d %s check inter 250ms fall 1 rise 2\n", i, be)
	}
	cfg := writeFile(t, "haproxy.cfg", b.String())
	cmd := exec.Command(bin, "-db", "-f", cfg)
	out := &lockedLog{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy:\n%s", tailLines(out.String(), 20))
		}
	})
	waitFor(t, "haproxy to answer", 15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return "http://" + addr
}

// TestSessionsAcrossReplicas: three gateway processes on one PostgreSQL
// store and one Redis, behind HAProxy in round robin without affinity, so
// that every request of a session lands on another replica than the one
// before. The Go SDK client and the Node SDK client list, call across
// upstreams, get progress, set a level and subscribe; then the replica
// serving a call is killed (SIGKILL): that call fails, and the session
// goes on on the others.
func TestSessionsAcrossReplicas(t *testing.T) {
	pg := storetest.PostgresURL(t)
	rd := requireService(t, "MCPEDGE_TEST_REDIS")
	ev := nodeclient.StartEverythingHTTP(t)
	docs := newReplicaUpstream(t)
	root, err := nodeclient.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	confBin := buildEverythingServer(t, root)
	conf := startConformanceServer(t, confBin, false)
	confStateless := startConformanceServer(t, confBin, true)
	var key [32]byte
	_, _ = rand.Read(key[:])
	env := []string{"MCPEDGE_ADMIN_KEY=" + e2eAdminKey, "MCPEDGE_STORE_KEY=" + base64.StdEncoding.EncodeToString(key[:])}

	var procs []*gatewayProc
	var backends []string
	for i := range 3 {
		// Single-user mode (auth off, loopback): the conformance suite sends
		// no credential. Sessions bound to credentials and tenants across
		// replicas: TestChangesAcrossReplicas, TestKeptSessionBoundToCaller.
		cfg := fmt.Sprintf("[server]\nshutdown_grace = \"2s\"\n[auth]\nmode = \"off\"\n[store]\nurl = %s\n[redis]\nurl = %s\n", q(pg), q(rd)) +
			upstreamBlock("ev", "http", "url = "+q(ev)) +
			upstreamBlock("docs", "http", "url = "+q(docs.URL), fmt.Sprintf("headers = { \"X-Replica\" = \"r%d\" }", i)) +
			upstreamBlock("stateful", "http", "url = "+q(conf)) +
			upstreamBlock("stateless", "http", "url = "+q(confStateless)) +
			upstreamBlock("confstdio", "stdio", "command = "+q(confBin)) + // the conformance server over stdio: the SDK's server dispatches its calls
			everythingStdio(t, "evs") // calls to stdio upstreams are dispatched by the SDK's server, not the hot path
		addr := freeAddr(t)
		p := startProc(t, writeFile(t, "mcpedge.toml", cfg), addr, append(env, "XDG_DATA_HOME="+t.TempDir())...)
		p.waitReady(t, e2eAdminKey, "ev", "docs", "stateful", "stateless", "confstdio", "evs")
		procs, backends = append(procs, p), append(backends, addr)
	}
	lb := startHAProxy(t, backends) + "/mcp"

	// The Go SDK client.
	var progress atomic.Int32
	c := connectSession(t, lb, e2eAdminKey)
	ctx := ctxT(t, 3*time.Minute)
	tools, err := c.cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	names := map[string]bool{}
	for _, tl := range tools.Tools {
		names[tl.Name] = true
	}
	if !names["ev__echo"] || !names["docs__whoami"] {
		t.Fatalf("tools/list through the balancer: %v", names)
	}
	seen := map[string]bool{}
	for i := range 6 {
		res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "docs__whoami"})
		if err != nil || res.IsError {
			t.Fatalf("call %d: %v %+v", i, err, res)
		}
		seen[text(t, res)] = true
		res, err = c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": fmt.Sprint("m", i)}})
		if err != nil || res.IsError || !strings.Contains(text(t, res), fmt.Sprint("m", i)) {
			t.Fatalf("ev__echo %d: %v %+v", i, err, res)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("the session's calls reached replicas %v; want all three (round robin without affinity)", seen)
	}

	// Progress of a call, relayed on the call's own stream.
	prog := connectSessionWith(t, lb, e2eAdminKey, &mcp.ClientOptions{
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { progress.Add(1) },
	})
	res, err := prog.CallTool(ctx, &mcp.CallToolParams{Name: "ev__trigger-long-running-operation", Arguments: map[string]any{"duration": 1, "steps": 3},
		Meta: mcp.Meta{"progressToken": "p-1"}})
	if err != nil || res.IsError {
		t.Fatalf("long-running operation: %v %+v", err, res)
	}
	if progress.Load() == 0 {
		t.Error("no progress notification reached the client")
	}

	// A level and a subscription set through one replica are in force on
	// the one that holds the client's event stream, wherever that is.
	if err := c.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	if err := c.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "res://doc"}); err != nil {
		t.Fatal(err)
	}
	awaitUpdate := func(what string) {
		t.Helper()
		_, before := c.counts()
		waitFor(t, what, 30*time.Second, func() bool {
			_ = docs.srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: "res://doc"})
			time.Sleep(100 * time.Millisecond)
			_, n := c.counts()
			return n > before
		})
	}
	awaitUpdate("the resource update through the balancer")

	// The Node SDK client: each scenario is a session of its own.
	for _, sc := range []struct {
		name string
		arg  any
	}{
		{"list", map[string]any{"brief": true}},
		{"call", map[string]any{"name": "ev__echo", "arguments": map[string]any{"message": "node"}}},
		{"progress", map[string]any{"name": "ev__trigger-long-running-operation", "arguments": map[string]any{"duration": 1, "steps": 2}}},
		{"read", "res://doc"},
		// A question the upstream puts to the client during a call: the
		// client's answer is a POST of its own, which the balancer sends
		// to another replica than the one running the call (relayed
		// through Redis).
		{"sampling", map[string]any{"name": "ev__trigger-sampling-request"}},
		{"elicitation", map[string]any{"name": "ev__trigger-elicitation-request"}},
		{"sampling", map[string]any{"name": "ev__trigger-sampling-request"}},
		// The same through the SDK's server (a stdio upstream): the
		// gateway names those questions per replica, so that the answer
		// is relayed to the one that asked.
		{"sampling", map[string]any{"name": "evs__trigger-sampling-request"}},
		{"elicitation", map[string]any{"name": "evs__trigger-elicitation-request"}},
		{"roots", map[string]any{"name": "evs__get-roots-list"}},
	} {
		r := nodeclient.Run(t, lb, sc.name, sc.arg, nodeclient.WithHeader("Authorization", "Bearer "+e2eAdminKey), nodeclient.WithTimeout(60*time.Second))
		if r["ok"] != true {
			t.Errorf("node %s: %s", sc.name, jsonText(r))
		}
	}

	// A 2026-07-28 client through the balancer: a 2025-era upstream asks
	// for sampling during the call, which the gateway turns into an
	// input-required round; the client's retry with the answer lands on
	// another replica than the one running the call, which relays it
	// there (through Redis) and returns the call's result. Over HTTP (the
	// hot path's upstream) and stdio (the SDK's server) alike.
	var sampled atomic.Int32
	modern := mcp.NewClient(&mcp.Implementation{Name: "e2e-2026", Version: "1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			sampled.Add(1)
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "sampled-across-replicas"}}, nil
		},
	})
	mcs, err := modern.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: lb, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: bearerTransport{token: e2eAdminKey, base: http.DefaultTransport}}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"})
	if err != nil {
		t.Fatalf("2026-07-28 client: %v", err)
	}
	t.Cleanup(func() { _ = mcs.Close() })
	for _, tool := range []string{"ev__trigger-sampling-request", "evs__trigger-sampling-request"} {
		for i := range 3 {
			before := sampled.Load()
			res, err := mcs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"prompt": fmt.Sprint("p", i)}})
			if err != nil || res.IsError || !strings.Contains(text(t, res), "sampled-across-replicas") || sampled.Load() != before+1 {
				t.Errorf("2026-07-28 %s #%d through the balancer: %v %+v (sampled %d times)", tool, i, err, res, sampled.Load()-before)
			}
		}
	}
	// Every one of those retries reached another replica than the call's
	// and was relayed (round robin: the retry follows the first round).
	relayed := 0.0
	for _, p := range procs {
		relayed += metricValue(t, p.URL+"/metrics", e2eAdminKey, `mcpedge_continuation_relays_total{outcome="relayed"}`)
	}
	if relayed < 6 {
		t.Errorf("%v retries relayed to the replica running the call, want 6", relayed)
	}

	// The official conformance suite (server mode) through the balancer,
	// every request of a session on another replica than the one before:
	// each pairing of client era and upstream (conformance_test.go) passes
	// every scored scenario the client's era passes directly, but for the
	// pairing's known failures through one gateway (TestConformanceSuite
	// keeps that list exact). The conformance server over stdio is served
	// by the SDK's server, not the hot path: its logs during a call
	// (tools-call-with-logging) and its questions go by the call's stream
	// and the Redis relays.
	if node, missing := conformanceNode(root); missing != "" {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s and MCPEDGE_REQUIRE_SERVICES=1: %s", missing, nodeclient.InstallHint)
		}
		t.Logf("conformance suite skipped: %s", missing)
	} else {
		scored := map[string][]string{}
		for _, era := range []string{era2025, era2026} {
			scored[era] = scoredServerScenarios(t, filepath.Join(root, conformanceReq, era+".yaml"))
		}
		if v := upstreamProtocol(t, procs[0].URL, "confstdio"); v != era2026 {
			t.Fatalf("the conformance server over stdio negotiated %q; the known failures below assume %s", v, era2026)
		}
		base := strings.TrimSuffix(lb, "/mcp")
		direct := map[string]*conformanceRun{
			era2025: {name: "direct-2025/stateful", era: era2025, url: conf},
			era2026: {name: "direct-2026/stateless", era: era2026, url: confStateless},
		}
		through := []*conformanceRun{
			{name: "2025/stateful", era: era2025, url: base + "/mcp/stateful"},
			{name: "2026/stateless", era: era2026, url: base + "/mcp/stateless"},
			{name: "2025/stateless", era: era2025, url: base + "/mcp/stateless"},
			{name: "2026/stateful", era: era2026, url: base + "/mcp/stateful"},
			{name: "2025/stdio", era: era2025, url: base + "/mcp/confstdio"},
			{name: "2026/stdio", era: era2026, url: base + "/mcp/confstdio"},
		}
		runs := []*conformanceRun{direct[era2025], direct[era2026]}
		for _, r := range runs {
			runConformance(t, root, node, r)
		}
		for _, r := range through {
			runConformance(t, root, node, r)
			runs = append(runs, r)
		}
		logConformanceTable(t, runs, scored)
		for _, r := range through {
			for _, sc := range scored[r.era] {
				if !direct[r.era].results[sc] || r.results[sc] {
					continue
				}
				if why, ok := replicaConformanceKnown(r.name, sc); ok {
					t.Logf("known failure %s %s through the balancer: %s", r.name, sc, why)
					continue
				}
				t.Errorf("through the balancer, %s fails scored scenario %s (passes directly): %s", r.name, sc, r.failures[sc])
			}
		}
	}

	// SIGKILL the replica serving a call: the call fails, never hangs.
	callErr := make(chan error, 1)
	go func() {
		_, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "docs__slow"})
		callErr <- err
	}()
	var victim string
	select {
	case victim = <-docs.slowBy:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow call never reached the upstream")
	}
	var idx int
	if _, err := fmt.Sscanf(victim, "r%d", &idx); err != nil || idx < 0 || idx > 2 {
		t.Fatalf("the slow call came through %q", victim)
	}
	procs[idx].stop(t, syscall.SIGKILL)
	select {
	case err := <-callErr:
		if err == nil {
			t.Error("the call in flight on the killed replica succeeded")
		} else {
			t.Logf("the call in flight on the killed replica: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call in flight on the killed replica never ended: silence")
	}

	// The session goes on, on the two others.
	after := map[string]bool{}
	for i := range 6 {
		res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "docs__whoami"})
		if err != nil || res.IsError {
			t.Fatalf("call %d after the kill: %v %+v", i, err, res)
		}
		after[text(t, res)] = true
	}
	if after[victim] || len(after) != 2 {
		t.Errorf("after killing %s the calls reached %v", victim, after)
	}
	awaitUpdate("a resource update after the kill")
}

// connectSessionWith connects the go-sdk client with opts through url.
func connectSessionWith(t testing.TB, url, token string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e-sessions", Version: "1"}, opts)
	hc := &http.Client{Transport: bearerTransport{token: token, base: http.DefaultTransport}}
	cs, err := c.Connect(ctxT(t, 30*time.Second), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: 12},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// metricValue reads one sample (name with its labels, as exposed) from a
// Prometheus endpoint; 0 when absent.
func metricValue(t *testing.T, url, token, sample string) float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d %v", url, resp.StatusCode, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %q", sample, line)
			}
			return f
		}
	}
	return 0
}

// replicaConformanceKnown reports whether scenario sc is a known failure of
// pairing through one gateway (conformanceKnownFailures). The conformance
// server over stdio speaks 2026-07-28 (checked by the test), like the
// stateless one over HTTP: its pairings share that one's known failures.
func replicaConformanceKnown(pairing, sc string) (string, bool) {
	pairing = strings.Replace(pairing, "/stdio", "/stateless", 1)
	why, ok := conformanceKnownFailures[pairing+" "+sc]
	return why, ok
}

// upstreamProtocol is the protocol version a replica negotiated with its
// upstream name, from /readyz (with the operator key).
func upstreamProtocol(t *testing.T, url, name string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Upstreams []struct {
			Name     string `json:"name"`
			Protocol string `json:"protocol_version"`
		} `json:"upstreams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("readyz: %v", err)
	}
	for _, u := range r.Upstreams {
		if u.Name == name {
			return u.Protocol
		}
	}
	return ""
}
