package gateway

// The hot path's cancellation: the client's notifications/cancelled and
// the call's timeout reach the upstream.

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// slowUpstream's tool "wait" blocks until its context is done: started
// receives once it runs, cancelled once its context ended. Its tool
// "quick" answers at once.
func slowUpstream(started, cancelled chan<- struct{}) *mcp.Server {
	s := legacyOnly("slow", nil)
	secTool(s, "quick", nil)
	secTool(s, "wait", func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- struct{}{}
		return nil, ctx.Err()
	})
	return s
}

// TestHotPathCancellation: a client's notifications/cancelled reaches a
// call in flight on the hot path: the upstream's handler sees its context
// cancelled (a session-era upstream does not take a closed POST for a
// cancellation: it must be told) and the call ends, as on the SDK's way.
func TestHotPathCancellation(t *testing.T) {
	for _, hot := range []bool{true, false} {
		t.Run(fmt.Sprintf("hot_path=%v", hot), func(t *testing.T) {
			started, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
			up := startHTTPUpstream(t, slowUpstream(started, cancelled))
			g, url := hotGateway(t, upstreamBlock("slow", up), hot, nil, HTTPOptions{})
			waitTargetsReady(t, g, 1)
			c := newRawClientWith(t, url+"/mcp", "", `{}`)

			done := make(chan rawAnswer, 1)
			go func() {
				resp, err := c.send(`{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{"name":"slow__wait","arguments":{}}}`)
				if err != nil {
					done <- rawAnswer{Body: []byte(err.Error())}
					return
				}
				defer resp.Body.Close()
				done <- readRawAnswer(t, resp)
			}()
			select {
			case <-started:
			case a := <-done:
				t.Fatalf("the call ended before reaching the upstream: HTTP %d: %s", a.Status, a.Body)
			case <-time.After(20 * time.Second):
				t.Fatal("the call never reached the upstream")
			}
			if a := c.exchange(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"call-7","reason":"changed my mind"}}`); a.Status != http.StatusAccepted {
				t.Fatalf("notifications/cancelled: HTTP %d: %s", a.Status, a.Body)
			}
			select {
			case <-cancelled:
			case <-time.After(20 * time.Second):
				t.Fatal("the upstream's handler was never cancelled")
			}
			select {
			case a := <-done:
				t.Logf("the call ended: HTTP %d: %s", a.Status, a.Body)
				if strings.Contains(string(a.Body), up) {
					t.Errorf("the answer names the upstream's URL: %s", a.Body)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the call did not end after its cancellation")
			}
			path, reason := "hot", ""
			if !hot {
				path, reason = "sdk", "off"
			}
			if !hotReached(t, g, path, reason, 1) {
				t.Errorf("the call was not counted on the %s path", path)
			}
		})
	}
}

// TestHotPathTimeout: a call that outlives the upstream's timeout is
// answered with the gateway's timeout error, the same on both ways, and
// the upstream is told to stop (its handler's context ends).
func TestHotPathTimeout(t *testing.T) {
	answers := map[bool]rawAnswer{}
	for _, hot := range []bool{true, false} {
		t.Run(fmt.Sprintf("hot_path=%v", hot), func(t *testing.T) {
			started, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
			up := startHTTPUpstream(t, slowUpstream(started, cancelled))
			g, url := hotGateway(t, upstreamBlock("slow", up, `timeout = "500ms"`), hot, nil, HTTPOptions{})
			waitTargetsReady(t, g, 1)
			c := newRawClientWith(t, url+"/mcp", "", `{}`)
			a := c.callTool(3, `{"name":"slow__wait","arguments":{}}`)
			select {
			case <-started:
			default:
				t.Fatalf("the call never reached the upstream: HTTP %d: %s", a.Status, a.Body)
			}
			select {
			case <-cancelled:
			case <-time.After(20 * time.Second):
				t.Fatal("the upstream's handler was never cancelled")
			}
			if a.Status != http.StatusOK || a.Msg["error"] == nil {
				t.Fatalf("HTTP %d: %s, want a JSON-RPC error", a.Status, a.Body)
			}
			if strings.Contains(string(a.Body), up) {
				t.Errorf("the answer names the upstream's URL: %s", a.Body)
			}
			answers[hot] = a
		})
	}
	if h, s := answers[true], answers[false]; h.Msg != nil && s.Msg != nil && !reflect.DeepEqual(h.decoded("error"), s.decoded("error")) {
		t.Errorf("timeout errors differ:\nhot: %s\nsdk: %s", h.Body, s.Body)
	}
}

// TestHotPathDuplicateID: a call whose id is that of a hot-path call still
// in flight on the session is not tracked a second time (the client's
// cancellation could not tell them apart): it takes the SDK's way and is
// answered, and a cancellation of that id still reaches the first call.
func TestHotPathDuplicateID(t *testing.T) {
	started, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
	up := startHTTPUpstream(t, slowUpstream(started, cancelled))
	g, url := hotGateway(t, upstreamBlock("slow", up), true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)
	c := newRawClientWith(t, url+"/mcp", "", `{}`)

	done := make(chan rawAnswer, 1)
	go func() {
		done <- c.exchange(`{"jsonrpc":"2.0","id":"same","method":"tools/call","params":{"name":"slow__wait","arguments":{}}}`)
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the first call never reached the upstream")
	}
	a := c.exchange(`{"jsonrpc":"2.0","id":"same","method":"tools/call","params":{"name":"slow__quick","arguments":{}}}`)
	if a.Status != http.StatusOK || string(a.Msg["result"]) != `{"content":[{"type":"text","text":"quick"}]}` {
		t.Errorf("the second call: HTTP %d: %s", a.Status, a.Body)
	}
	if hotCount(t, g, "sdk", "duplicate_id") != 1 {
		t.Errorf("the second call was not counted as sdk/duplicate_id")
	}
	if a := c.exchange(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"same"}}`); a.Status != http.StatusAccepted {
		t.Fatalf("notifications/cancelled: HTTP %d: %s", a.Status, a.Body)
	}
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the first call's upstream handler was never cancelled")
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the first call never ended")
	}
	if !hotReached(t, g, "hot", "", 1) {
		t.Errorf("hot-path calls: %v, want 1", hotCount(t, g, "hot", ""))
	}
	// The id is free again.
	if a := c.exchange(`{"jsonrpc":"2.0","id":"same","method":"tools/call","params":{"name":"slow__quick","arguments":{}}}`); a.Msg["result"] == nil || !hotReached(t, g, "hot", "", 2) {
		t.Errorf("the id once the first call ended: HTTP %d: %s (hot %v)", a.Status, a.Body, hotCount(t, g, "hot", ""))
	}
}
