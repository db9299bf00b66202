package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// e2eAdminKey is the bootstrap owner key of the gateways these tests start.
const e2eAdminKey = "mcpe_e2esessionskey0123456789abcdefghijklmnop"

// sessionClient connects the go-sdk client to url with the admin key,
// collecting the log messages and resource updates its session gets. It
// retries a lost event stream (a restart takes a moment).
type sessionClient struct {
	cs      *mcp.ClientSession
	mu      sync.Mutex
	logs    []string
	updates []string
}

func (c *sessionClient) counts() (logs, updates int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.logs), len(c.updates)
}

func connectSession(t testing.TB, url, token string) *sessionClient {
	t.Helper()
	sc := &sessionClient{}
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e-sessions", Version: "1"}, &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			sc.mu.Lock()
			sc.logs = append(sc.logs, string(r.Params.Level))
			sc.mu.Unlock()
		},
		ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
			sc.mu.Lock()
			sc.updates = append(sc.updates, r.Params.URI)
			sc.mu.Unlock()
		},
	})
	hc := &http.Client{Transport: bearerTransport{token: token, base: http.DefaultTransport}}
	cs, err := c.Connect(ctxT(t, 30*time.Second), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: 12},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	sc.cs = cs
	return sc
}

// TestSessionSurvivesRestart: one gateway on its SQLite store; a session
// sets its log level and subscribes to a resource; the gateway is stopped
// (SIGTERM) and started again on the same address and store; the same
// client, with the same session id, calls tools, and gets the resource's
// updates and the upstream's log messages — which the gateway sends only
// to a session whose level is set — without doing either again.
func TestSessionSurvivesRestart(t *testing.T) {
	addr := freeAddr(t)
	data := t.TempDir()
	cfg := writeFile(t, "mcpedge.toml", "[server]\nshutdown_grace = \"5s\"\n"+everythingStdio(t, "ev"))
	env := []string{"XDG_DATA_HOME=" + data, "MCPEDGE_ADMIN_KEY=" + e2eAdminKey}
	p := startProc(t, cfg, addr, env...)
	p.waitReady(t, e2eAdminKey, "ev")

	c := connectSession(t, p.URL+"/mcp", e2eAdminKey)
	id := c.cs.ID()
	ctx := ctxT(t, 90*time.Second)
	if err := c.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	const uri = "demo://resource/dynamic/text/1"
	if err := c.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
		t.Fatal(err)
	}

	p.stop(t, syscall.SIGTERM)
	p2 := startProc(t, cfg, addr, env...)
	p2.waitReady(t, e2eAdminKey, "ev")
	if !strings.Contains(p2.stderr.String(), `"store"`) {
		t.Logf("second start: %s", tailLines(p2.stderr.String(), 5))
	}

	// The same session, with no new initialize: calls work...
	res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "after restart"}})
	if err != nil || res.IsError || !strings.Contains(text(t, res), "after restart") {
		t.Fatalf("tools/call after the restart: %v %+v", err, res)
	}
	if c.cs.ID() != id {
		t.Fatalf("session id changed: %q -> %q", id, c.cs.ID())
	}
	tools, err := c.cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) == 0 {
		t.Fatalf("tools/list after the restart: %v", err)
	}
	// ...and the subscription and the level are in force: the new upstream
	// process is told to send updates and logs, and they reach the client.
	logs0, updates0 := c.counts()
	for _, tool := range []string{"ev__toggle-subscriber-updates", "ev__toggle-simulated-logging"} {
		if res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: tool}); err != nil || res.IsError {
			t.Fatalf("%s: %v %+v", tool, err, res)
		}
	}
	waitFor(t, "a resource update and a log message after the restart", 30*time.Second, func() bool {
		l, u := c.counts()
		return l > logs0 && u > updates0
	})
	if !strings.Contains(p2.stderr.String(), "session re-created from the store") {
		t.Error("the restarted gateway did not log re-creating the session")
	}
	// Another session id is not found after the restart either.
	req, _ := http.NewRequest(http.MethodPost, p2.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+e2eAdminKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	// Another id: the last character changed (never to itself: an id
	// that already ends in X gets a Y).
	last := "X"
	if strings.HasSuffix(strings.ToUpper(id), "X") {
		last = "Y"
	}
	req.Header.Set("Mcp-Session-Id", strings.ToUpper(id[:len(id)-1])+last)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown session id after the restart: HTTP %d, want 404", resp.StatusCode)
	}
}
