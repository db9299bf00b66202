package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func echoServer(name string, logging bool) *mcp.Server {
	opts := &mcp.ServerOptions{}
	if logging {
		opts.Capabilities = &mcp.ServerCapabilities{Logging: &mcp.LoggingCapabilities{}, Tools: &mcp.ToolCapabilities{}}
	}
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, opts)
	s.AddTool(&mcp.Tool{Name: "echo", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			_ = r.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "debug", Logger: name, Data: "debug from " + name})
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
		})
	return s
}

// rawPost sends one JSON-RPC message on a stateful session and returns the
// session id and status.
func rawPost(t *testing.T, url, session string, msg map[string]any) (string, int) {
	t.Helper()
	b, _ := json.Marshal(msg)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.ReadAll(resp.Body)
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		session = id
	}
	return session, resp.StatusCode
}

// TestSessionWithoutInitializedLeaksPerSessionConnection: the SDK
// server accepts requests once `initialize` is answered; `notifications/
// initialized` is not required. sessionOpened runs only from the
// InitializedHandler, so a session that skips that notification is never
// tracked: its per-session upstream connection (a child process for stdio)
// is never released, not when the client deletes the session nor when it
// idles out. Any client can spawn unbounded children this way.
func TestSessionWithoutInitializedLeaksPerSessionConnection(t *testing.T) {
	up := startHTTPUpstream(t, echoServer("iso", false))
	g, url := startGateway(t, "[server]\n"+upstreamBlock("iso", up, `isolation = "session"`))
	u, _ := g.Upstream("iso")
	for i := range 3 {
		sid, _ := rawPost(t, url+"/mcp", "", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
			"protocolVersion": "2025-11-25", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "raw", "version": "1"}}})
		// No notifications/initialized.
		_, code := rawPost(t, url+"/mcp", sid, map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": map[string]any{"name": "iso__echo", "arguments": map[string]any{}}})
		if code != 200 {
			t.Fatalf("tools/call: HTTP %d", code)
		}
		req, _ := http.NewRequest(http.MethodDelete, url+"/mcp", nil)
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		_ = i
	}
	if !waitFor(t, "per-session connections released", 3*time.Second, func() bool { return u.SessionCount() == 0 }) {
		t.Fatalf("3 client sessions ended, %d per-session upstream connections still open", u.SessionCount())
	}
}

// TestLogLevelNeverReachesPerSessionConnection: the usual order is
// initialize, logging/setLevel, then calls. With isolation = "session" the
// client's own upstream connection does not exist yet when setLevel is
// forwarded (u.Sessions() has only the shared one), levels.applied records
// the level anyway, and a connection opened later is never told: the
// client's logs from its own connection never arrive.
func TestLogLevelNeverReachesPerSessionConnection(t *testing.T) {
	up := startHTTPUpstream(t, echoServer("iso", true))
	_, url := startGateway(t, "[server]\n"+upstreamBlock("iso", up, `isolation = "session"`))
	var got atomic.Int32
	cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{LoggingMessageHandler: func(ctx context.Context, r *mcp.LoggingMessageRequest) { got.Add(1) }}, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "iso__echo", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, "log message", 2*time.Second, func() bool { return got.Load() > 0 }) {
		t.Fatal("client set level debug, the upstream logged at debug on the client's own connection, the client got nothing")
	}
}

// TestLogLevelLostWhenUpstreamReplaced: levels.applied is keyed by
// upstream name and never reset, so after a reload replaces the upstream
// (or after it reconnects) the new connection is never sent the level the
// clients asked for.
func TestLogLevelLostWhenUpstreamReplaced(t *testing.T) {
	// The gateway sends the level to the upstream asynchronously (to the
	// open connection) or while connecting (to a replacement): the test
	// waits until the upstream has handled logging/setLevel before calling
	// the tool whose debug log it expects, instead of hoping it came first.
	srv := echoServer("shared", true)
	levelSet := make(chan mcp.LoggingLevel, 8)
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if p, ok := req.GetParams().(*mcp.SetLoggingLevelParams); ok && method == "logging/setLevel" && err == nil {
				levelSet <- p.Level
			}
			return res, err
		}
	})
	waitLevelSet := func(when string) {
		t.Helper()
		select {
		case l := <-levelSet:
			if l != "debug" {
				t.Fatalf("%s: the upstream was set to %q, want debug", when, l)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the upstream was never sent the client's logging level", when)
		}
	}
	up := startHTTPUpstream(t, srv)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("shared", up))
	var got atomic.Int32
	cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{LoggingMessageHandler: func(ctx context.Context, r *mcp.LoggingMessageRequest) { got.Add(1) }}, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	waitLevelSet("before the reload")
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "shared__echo", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, "log before reload", 10*time.Second, func() bool { return got.Load() > 0 }) {
		t.Fatal("precondition: no log before the reload")
	}
	// Reload with changed headers: the upstream is replaced (a changed
	// timeout alone is applied in place, without a new connection).
	cfg := *g.cfg.Load()
	cfg.Upstreams = append(cfg.Upstreams[:0:0], cfg.Upstreams...)
	cfg.Upstreams[0].Headers = map[string]string{"X-Reload": "1"}
	_, _, changed := g.Apply(context.Background(), &cfg)
	if len(changed) != 1 {
		t.Fatalf("changed = %v", changed)
	}
	// The replacement is sent the level while it connects (the bug: never).
	waitLevelSet("after the reload")
	if !waitFor(t, "ready again", 10*time.Second, func() bool {
		u, _ := g.Upstream("shared")
		return u.Status().State == "ready"
	}) {
		t.Fatal("the replaced upstream never became ready")
	}
	before := got.Load()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "shared__echo", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, "log after reload", 10*time.Second, func() bool { return got.Load() > before }) {
		t.Fatal("after the upstream was replaced, its debug logs no longer reach the client that asked for debug")
	}
}

// TestFailedFirstSubscribePoisonsRefcount: subscribe adds the session
// to the set before the upstream call; when that call fails the SDK server
// does not record the subscription, but the gateway's set keeps it, so every
// later subscriber is "not first" and never subscribed upstream.
func TestFailedFirstSubscribePoisonsRefcount(t *testing.T) {
	var calls atomic.Int32
	s := mcp.NewServer(&mcp.Implementation{Name: "sub", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler: func(ctx context.Context, r *mcp.SubscribeRequest) error {
			if calls.Add(1) == 1 {
				return fmt.Errorf("transient failure")
			}
			return nil
		},
		UnsubscribeHandler: func(ctx context.Context, r *mcp.UnsubscribeRequest) error { return nil },
	})
	s.AddResource(&mcp.Resource{URI: "mem://r", Name: "r"}, func(ctx context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "mem://r", Text: "x"}}}, nil
	})
	up := startHTTPUpstream(t, s)
	_, url := startGateway(t, "[server]\n"+upstreamBlock("sub", up))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := dialClient(t, url+"/mcp", nil, "2025-11-25")
	if err := a.Subscribe(ctx, &mcp.SubscribeParams{URI: "mem://r"}); err == nil {
		t.Fatal("precondition: first subscribe should fail")
	}
	var updated atomic.Int32
	b := dialClient(t, url+"/mcp", &mcp.ClientOptions{ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { updated.Add(1) }}, "2025-11-25")
	if err := b.Subscribe(ctx, &mcp.SubscribeParams{URI: "mem://r"}); err != nil {
		t.Fatalf("second subscribe: %v", err)
	}
	if calls.Load() < 2 {
		t.Fatalf("client B's subscribe succeeded but the upstream was never asked (upstream saw %d subscribe calls); B will never get updates", calls.Load())
	}
}

// Control for the test above: the same flow with notifications/initialized
// releases the per-session connection.
func TestControlSessionWithInitializedReleases(t *testing.T) {
	up := startHTTPUpstream(t, echoServer("iso", false))
	g, url := startGateway(t, "[server]\n"+upstreamBlock("iso", up, `isolation = "session"`))
	u, _ := g.Upstream("iso")
	sid, _ := rawPost(t, url+"/mcp", "", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
		"protocolVersion": "2025-11-25", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "raw", "version": "1"}}})
	rawPost(t, url+"/mcp", sid, map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"})
	rawPost(t, url+"/mcp", sid, map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": map[string]any{"name": "iso__echo", "arguments": map[string]any{}}})
	if u.SessionCount() != 1 {
		t.Fatalf("precondition: %d per-session connections", u.SessionCount())
	}
	req, _ := http.NewRequest(http.MethodDelete, url+"/mcp", nil)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !waitFor(t, "released", 3*time.Second, func() bool { return u.SessionCount() == 0 }) {
		t.Fatalf("%d per-session connections still open", u.SessionCount())
	}
}

// TestDeadPerSessionConnectionIsNeverReplaced: Upstream.Session
// returns the cached per-session connection without checking that it is
// alive, and nothing removes it when it ends, so once a client's own
// upstream connection drops, every later call of that client fails until
// the client session ends (the shared connection, by contrast, reconnects).
func TestDeadPerSessionConnectionIsNeverReplaced(t *testing.T) {
	s := echoServer("iso", false)
	up := startHTTPUpstream(t, s)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("iso", up, `isolation = "session"`))
	u, _ := g.Upstream("iso")
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "iso__echo", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if u.SessionCount() != 1 {
		t.Fatalf("precondition: %d per-session connections", u.SessionCount())
	}
	// The upstream drops the newest of its sessions: the per-session one.
	var last *mcp.ServerSession
	for ss := range s.Sessions() {
		last = ss
	}
	_ = last.Close()
	// The gateway forgets a per-session connection once it sees it die.
	if !waitFor(t, "the dead per-session connection forgotten", 10*time.Second, func() bool { return u.SessionCount() == 0 }) {
		t.Fatalf("the per-session connection the upstream closed is still held (%d)", u.SessionCount())
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "iso__echo", Arguments: map[string]any{}}); err != nil {
		t.Fatalf("the client's per-session upstream connection dropped once; its calls now fail for good: %v", err)
	}
}

// TestSubscriptionsLostWhenUpstreamReconnects: the refcount table
// says "already subscribed upstream", but the upstream connection it was
// made on is gone after a reconnect or a reload that replaces the upstream;
// nothing re-subscribes the new connection, so subscribed clients silently
// stop getting notifications/resources/updated.
func TestSubscriptionsLostWhenUpstreamReconnects(t *testing.T) {
	var subscribed atomic.Int32 // subscriptions the upstream accepted
	s := mcp.NewServer(&mcp.Implementation{Name: "sub", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { subscribed.Add(1); return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	s.AddResource(&mcp.Resource{URI: "mem://r", Name: "r"}, func(ctx context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "mem://r", Text: "x"}}}, nil
	})
	up := startHTTPUpstream(t, s)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("sub", up))
	var updated atomic.Int32
	cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { updated.Add(1) }}, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "mem://r"}); err != nil {
		t.Fatal(err)
	}
	_ = s.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: "mem://r"})
	if !waitFor(t, "update", 2*time.Second, func() bool { return updated.Load() == 1 }) {
		t.Fatal("precondition: no update before the reload")
	}
	// Changed headers replace the connection (a changed timeout alone is
	// applied in place).
	cfg := *g.cfg.Load()
	cfg.Upstreams = append(cfg.Upstreams[:0:0], cfg.Upstreams...)
	cfg.Upstreams[0].Headers = map[string]string{"X-Reload": "1"}
	g.Apply(context.Background(), &cfg)
	waitFor(t, "ready again", 5*time.Second, func() bool { u, _ := g.Upstream("sub"); return u.Status().State == "ready" })
	// The update is only heard once the new connection is subscribed.
	if !waitFor(t, "re-subscribed", 10*time.Second, func() bool { return subscribed.Load() >= 2 }) {
		t.Fatalf("the replaced upstream connection was never subscribed again (%d subscriptions)", subscribed.Load())
	}
	_ = s.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: "mem://r"})
	if !waitFor(t, "update after reload", 2*time.Second, func() bool { return updated.Load() == 2 }) {
		t.Fatal("the client is still subscribed (per the gateway) but no longer gets updates once the upstream connection was replaced")
	}
}

// TestStatelessClientsShareSessionIsolatedUpstream: a 2026-07-28
// client has no session id, and Upstream.Session sends clientID == "" to the
// shared connection even for isolation = "session". Every stateless client
// then shares one upstream connection (the shell, browser or login that
// isolation exists to keep apart), contrary to docs/security.md ("isolation
// = "session" gives a client its own upstream connection").
func TestStatelessClientsShareSessionIsolatedUpstream(t *testing.T) {
	var sessions atomic.Int32
	srv := mcp.NewServer(&mcp.Implementation{Name: "iso", Version: "1"}, &mcp.ServerOptions{
		InitializedHandler: func(context.Context, *mcp.InitializedRequest) { sessions.Add(1) },
	})
	srv.AddTool(&mcp.Tool{Name: "echo", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
		})
	up := startHTTPUpstream(t, srv)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("iso", up, `isolation = "session"`))
	u, _ := g.Upstream("iso")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		cs := dialClient(t, url+"/mcp", nil, "2026-07-28")
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "iso__echo", Arguments: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	// The shared (catalog) connection plus one connection per stateless call.
	if n := sessions.Load(); n < 3 {
		t.Fatalf("two stateless calls to a session-isolated upstream opened %d upstream session(s) in all (the shared one included)", n)
	}
	// Per-call connections are released when the call ends.
	if n := u.SessionCount(); n != 0 {
		t.Errorf("%d per-call connections still open", n)
	}
}
