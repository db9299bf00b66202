package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/faultproxy"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestDeferred puts the real everything server behind a fault proxy and
// the offline queue behind the gateway: while the upstream is unreachable
// a deferrable call is queued and answered at once with the entry's id,
// a call that is not deferrable fails as before, a full queue says so;
// when the upstream is back the queued calls are delivered, their results
// are read with mcpedge__queue_result, and the client is told.
func TestDeferred(t *testing.T) {
	p, evURL := nodeclient.StartEverythingProxied(t)

	withQueue, _, stopQueue := offlineQueue(t, t.TempDir(), queue.Options{
		MaxEntries: 3, MaxAttempts: 1000, BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second,
		PollInterval: 200 * time.Millisecond,
	})
	gw := startGatewayWith(t, "[server]\n"+upstreamBlock("ev", "http", "url = "+q(evURL),
		`timeout = "5s"`, "retries = 0", `deferrable = ["echo"]`,
		"[upstreams.breaker]\nfailures = 1\nopen_for = \"500ms\""), withQueue)
	// Runs before the gateway's own cleanup: the loop stops, then the
	// queue closes, then the gateway stops.
	t.Cleanup(stopQueue)
	if s := status(gw, "ev"); s.State != "ready" {
		t.Fatalf("upstream through the proxy: %+v", s)
	}

	var mu sync.Mutex
	announced := map[string]string{}
	cs := goClient(t, gw.URL+"/mcp", &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			if r.Params.Logger != "mcpedge.queue" {
				return
			}
			b, _ := json.Marshal(r.Params.Data)
			var d struct{ ID, State string }
			_ = json.Unmarshal(b, &d)
			mu.Lock()
			announced[d.ID] = d.State
			mu.Unlock()
		},
	}, "2025-11-25")
	if err := cs.SetLoggingLevel(ctxT(t, 10*time.Second), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	call := func(name string, meta mcp.Meta, args map[string]any) (*mcp.CallToolResult, error) {
		return cs.CallTool(ctxT(t, 30*time.Second), &mcp.CallToolParams{Name: name, Meta: meta, Arguments: args})
	}
	queued := func(what string, res *mcp.CallToolResult, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v, want a queued answer", what, err)
		}
		var out struct {
			Queued     bool
			ID, Target string
			Note       string
		}
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, &out); err != nil || !out.Queued || out.ID == "" || out.Target != "ev" || res.IsError {
			t.Fatalf("%s: %s (isError %v), want a queued answer", what, b, res.IsError)
		}
		if m, _ := res.Meta[gateway.MetaQueued].(map[string]any); m["id"] != out.ID {
			t.Errorf("%s: _meta %v, want %s = {id: %s}", what, res.Meta, gateway.MetaQueued, out.ID)
		}
		if !strings.Contains(text(t, res), out.ID) {
			t.Errorf("%s: text %q does not name the entry", what, text(t, res))
		}
		t.Logf("%s: queued %s: %s", what, out.ID, out.Note)
		return out.ID
	}

	// The upstream's connections are reset: the first call fails in
	// transport (and opens the breaker), the next finds the breaker open.
	p.Set(faultproxy.Reset())
	t0 := time.Now()
	res, err := call("ev__echo", nil, map[string]any{"message": "one"})
	id1 := queued("deferrable call, transport failure", res, err)
	if st := breakerState(gw); st == "closed" {
		t.Errorf("breaker still closed after a reset")
	}
	res, err = call("ev__echo", mcp.Meta{gateway.MetaIdempotencyKey: "k-two"}, map[string]any{"message": "two"})
	id2 := queued("deferrable call, breaker open", res, err)
	if took := time.Since(t0); took > 15*time.Second {
		t.Errorf("queued answers took %s", took)
	}
	// The same idempotency key names the same entry.
	res, err = call("ev__echo", mcp.Meta{gateway.MetaIdempotencyKey: "k-two"}, map[string]any{"message": "two again"})
	if again := queued("same idempotency key", res, err); again != id2 {
		t.Errorf("same idempotency key: entry %s, want %s", again, id2)
	}
	// Not deferrable: the usual error.
	_, err = call("ev__get-sum", nil, map[string]any{"a": 1, "b": 2})
	if code(err) != mcpwire.CodeUpstreamUnavailable {
		t.Errorf("non-deferrable call: %v, want code %d", err, mcpwire.CodeUpstreamUnavailable)
	}
	// A client may opt out of, and into, queueing.
	_, err = call("ev__echo", mcp.Meta{gateway.MetaDefer: false}, map[string]any{"message": "no"})
	if code(err) != mcpwire.CodeUpstreamUnavailable {
		t.Errorf("deferrable call with _meta defer=false: %v, want code %d", err, mcpwire.CodeUpstreamUnavailable)
	}
	res, err = call("ev__get-sum", mcp.Meta{gateway.MetaDefer: true}, map[string]any{"a": 1, "b": 2})
	id3 := queued("opted-in call", res, err)
	// Three entries fill the queue.
	_, err = call("ev__echo", nil, map[string]any{"message": "four"})
	if code(err) != mcpwire.CodeQueueFull || !strings.Contains(err.Error(), "full") {
		t.Errorf("call on a full queue: %v, want code %d", err, mcpwire.CodeQueueFull)
	}

	// A queued call is pending, and the others' ids are not found.
	result := func(id string) (*gateway.QueuedCall, error) {
		res, err := call("mcpedge__queue_result", nil, map[string]any{"id": id})
		if err != nil {
			return nil, err
		}
		var qc gateway.QueuedCall
		if err := json.Unmarshal([]byte(text(t, res)), &qc); err != nil {
			t.Fatalf("queue_result: %v: %s", err, text(t, res))
		}
		return &qc, nil
	}
	if qc, err := result(id1); err != nil || (qc.State != "pending" && qc.State != "delivering") || qc.Tool != "echo" || qc.Target != "ev" {
		t.Errorf("queue_result while the upstream is down: %+v, %v", qc, err)
	}
	if _, err := result("nosuchid"); err == nil || !strings.Contains(err.Error(), "no queued call") {
		t.Errorf("queue_result of a missing id: %v", err)
	}

	// The upstream is back: every entry is delivered.
	p.Set(faultproxy.Pass())
	want := map[string]string{id1: "Echo: one", id2: "Echo: two", id3: "3"}
	for id, w := range want {
		var qc *gateway.QueuedCall
		waitFor(t, "delivery of "+id, 90*time.Second, func() bool {
			var err error
			qc, err = result(id)
			return err == nil && (qc.State == "done" || qc.State == "failed")
		})
		if qc.State != "done" {
			t.Fatalf("entry %s: %+v", id, qc)
		}
		var r mcp.CallToolResult
		if err := json.Unmarshal(qc.Result, &r); err != nil {
			t.Fatalf("entry %s result: %v: %s", id, err, qc.Result)
		}
		if got := text(t, &r); !strings.Contains(got, w) || r.IsError {
			t.Errorf("entry %s result %q (isError %v), want %q", id, got, r.IsError, w)
		}
		t.Logf("entry %s delivered after %d attempts: %s", id, qc.Attempts, text(t, &r))
	}
	waitFor(t, "completion announced to the client", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return announced[id1] == "done" && announced[id2] == "done" && announced[id3] == "done"
	})
	// The upstream answers directly again.
	res, err = call("ev__echo", nil, map[string]any{"message": "direct"})
	if err != nil || text(t, res) != "Echo: direct" {
		t.Errorf("direct call after recovery: %v, %v", res, err)
	}
}
