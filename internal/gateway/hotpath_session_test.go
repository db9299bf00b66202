package gateway

// The hot path and the session table (clients.go): which sessions it
// serves, and their idle timeout.

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestHotPathSessionBinding: the hot path serves only sessions the SDK's
// handler would: an unknown session id and a deleted session get the
// SDK's 404, never an answer.
func TestHotPathSessionBinding(t *testing.T) {
	up := startHTTPUpstream(t, catalogueUpstream())
	g, url := hotGateway(t, upstreamBlock("cat", up), true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)
	const hello = `{"name":"cat__text","arguments":{}}`

	c := newRawClientWith(t, url+"/mcp", "", `{}`)
	if a := c.callTool(1, hello); a.Status != http.StatusOK || a.Msg["result"] == nil || !hotReached(t, g, "hot", "", 1) {
		t.Fatalf("control: HTTP %d (hot calls %v): %s", a.Status, hotCount(t, g, "hot", ""), a.Body)
	}

	stranger := &rawClient{t: t, url: url + "/mcp", session: "no-such-session"}
	before := hotCount(t, g, "sdk", "session")
	if a := stranger.callTool(2, hello); a.Status != http.StatusNotFound {
		t.Errorf("unknown session: HTTP %d, want 404: %s", a.Status, a.Body)
	}
	if hotCount(t, g, "sdk", "session")-before != 1 {
		t.Error("unknown session: not counted as sdk/session")
	}

	// Each round deletes a fresh session and calls on it at once: the
	// session must be gone for the hot path as soon as DELETE answered
	// (the race this catches, the table forgetting the session on another
	// goroutine, is lost in about one round of a few hundred).
	for i := range 500 {
		d := newRawClientWith(t, url+"/mcp", "", `{}`)
		if st := d.delete(); st != http.StatusNoContent {
			t.Fatalf("DELETE: HTTP %d", st)
		}
		if g.clients.get(d.session) != nil {
			t.Fatalf("round %d: the session is still in the gateway's table after DELETE answered", i)
		}
		hot := hotCount(t, g, "hot", "")
		a := d.callTool(10+i, hello)
		if a.Status != http.StatusNotFound {
			t.Fatalf("round %d: tools/call after DELETE: HTTP %d, want 404: %s", i, a.Status, a.Body)
		}
		if !hotReached(t, g, "hot", "", hot) {
			t.Fatalf("round %d: tools/call after DELETE was served on the hot path", i)
		}
	}
}

// TestHotPathIdleTimeout: the gateway's idle timeout closes a session that
// makes no request, and hot-path calls (which never reach the SDK's
// handler) keep a session open.
func TestHotPathIdleTimeout(t *testing.T) {
	const timeout = 600 * time.Millisecond
	up := startHTTPUpstream(t, catalogueUpstream())
	g, url := hotGateway(t, upstreamBlock("cat", up), true, nil, HTTPOptions{SessionTimeout: timeout})
	waitTargetsReady(t, g, 1)
	const hello = `{"name":"cat__text","arguments":{}}`

	idle := newRawClientWith(t, url+"/mcp", "", `{}`)
	busy := newRawClientWith(t, url+"/mcp", "", `{}`)
	start := time.Now()
	var idleGone time.Duration
	for i := 0; time.Since(start) < 4*timeout; i++ {
		if a := busy.callTool(100+i, hello); a.Status != http.StatusOK || a.Msg["result"] == nil {
			t.Fatalf("busy session, call %d after %v: HTTP %d: %s", i, time.Since(start), a.Status, a.Body)
		}
		if idleGone == 0 && g.clients.get(idle.session) == nil {
			idleGone = time.Since(start)
		}
		time.Sleep(timeout / 6)
	}
	if hot := hotCount(t, g, "hot", ""); hot < 4 {
		t.Fatalf("only %v calls on the hot path", hot)
	}
	if g.clients.get(busy.session) == nil {
		t.Fatal("the busy session was closed")
	}
	if idleGone == 0 {
		if !waitFor(t, "idle session closed", 10*time.Second, func() bool { return g.clients.get(idle.session) == nil }) {
			t.Fatal("the idle session was never closed")
		}
	} else if idleGone < timeout/2 {
		t.Errorf("the idle session was closed after %v, before its timeout (%v)", idleGone, timeout)
	}
	if a := idle.callTool(1, hello); a.Status != http.StatusNotFound {
		t.Errorf("tools/call on the idled-out session: HTTP %d, want 404: %s", a.Status, a.Body)
	}
}

// TestHotPathIsolatedUpstream: with isolation = "session", each client's
// hot-path calls go to its own upstream session — the same one its calls
// on the SDK's way use — and never to another client's.
func TestHotPathIsolatedUpstream(t *testing.T) {
	s := legacyOnly("iso", nil)
	secTool(s, "whoami", func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: r.Session.ID()}}}, nil
	})
	g, url := hotGateway(t, upstreamBlock("iso", startHTTPUpstream(t, s), `isolation = "session"`), true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)

	whoami := func(c *rawClient, id int, meta string) string {
		t.Helper()
		a := c.callTool(id, `{"name":"iso__whoami","arguments":{}`+meta+`}`)
		var r struct{ Content []struct{ Text string } }
		if a.Msg["result"] == nil || json.Unmarshal(a.Msg["result"], &r) != nil || len(r.Content) != 1 || r.Content[0].Text == "" {
			t.Fatalf("HTTP %d: %s", a.Status, a.Body)
		}
		return r.Content[0].Text
	}
	a, b := newRawClientWith(t, url+"/mcp", "", `{}`), newRawClientWith(t, url+"/mcp", "", `{}`)
	a1, b1 := whoami(a, 1, ""), whoami(b, 1, "")
	a2 := whoami(a, 2, "")
	aSDK := whoami(a, 3, `,"_meta":{"`+MetaExplain+`":true}`) // the SDK's way
	if !hotReached(t, g, "hot", "", 3) || hotCount(t, g, "sdk", "params") != 1 {
		t.Errorf("paths: hot %v, sdk (params) %v", hotCount(t, g, "hot", ""), hotCount(t, g, "sdk", "params"))
	}
	if a1 != a2 || a1 != aSDK {
		t.Errorf("client A's calls went to upstream sessions %q, %q and (SDK's way) %q", a1, a2, aSDK)
	}
	if a1 == b1 {
		t.Errorf("clients A and B share the upstream session %q", a1)
	}
}
