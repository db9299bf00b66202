package gateway

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// legacyAsker is a 2025-11-25-only upstream whose tool asks the client for
// its roots once and whose prompt does the same.
func legacyAsker() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "legacy", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	s.AddTool(&mcp.Tool{Name: "ask", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if _, err := r.Session.ListRoots(ctx, nil); err != nil {
				return nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
		})
	s.AddPrompt(&mcp.Prompt{Name: "p"}, func(ctx context.Context, r *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		if _, err := r.Session.ListRoots(ctx, nil); err != nil {
			return nil, err
		}
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "p"}}}}, nil
	})
	return s
}

func countConts(g *Gateway) int {
	n := 0
	g.conts.m.Range(func(any, any) bool { n++; return true })
	return n
}

// TestContinuationLeaksWhenClientNeverReturns: a 2026 client gets an
// input-required result and never comes back. architecture.md says the
// pending call "is dropped after the upstream's timeout"; but the final
// event fits in the 4-slot events buffer, so the time.After branch in
// runNewEra never runs and nothing else drops the continuation (the
// expires field is never read). Each abandoned call leaks a map entry
// holding the final result, forever.
func TestContinuationLeaksWhenClientNeverReturns(t *testing.T) {
	up := startHTTPUpstream(t, legacyAsker())
	g, url := startGateway(t, "[server]\n"+upstreamBlock("legacy", up, `timeout = "1s"`))
	cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true}}, "2026-07-28")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__ask", Arguments: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		if res.RequestState == "" || len(res.InputRequests) != 1 {
			t.Fatalf("expected an input-required result, got %+v", res)
		}
		// ... and never come back.
	}
	if !waitFor(t, "continuations dropped", 4*time.Second, func() bool { return countConts(g) == 0 && g.inflight.count() == 0 }) {
		t.Fatalf("after 4x the upstream timeout: %d continuations still held, %d calls in flight", countConts(g), g.inflight.count())
	}
}

// TestContinuationAcrossMethodsCrashesGateway: a requestState minted
// for tools/call is accepted by prompts/get (runNewEra does not check the
// continuation's method/upstream). nextRound's `res, _ := ev.res.(R)` then
// yields a nil *GetPromptResult with a nil error, and the SDK server's
// setCompleteResultType dereferences it on the handler goroutine.
func TestContinuationAcrossMethodsCrashesGateway(t *testing.T) {
	out, ok := inChild(t, func(t *testing.T) {
		up := startHTTPUpstream(t, legacyAsker())
		_, url := startGateway(t, "[server]\n"+upstreamBlock("legacy", up))
		cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true}}, "2026-07-28")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__ask", Arguments: map[string]any{}})
		if err != nil || res.RequestState == "" {
			t.Fatalf("first round: %v %+v", err, res)
		}
		answers := mcp.InputResponseMap{}
		for id := range res.InputRequests {
			answers[id] = &mcp.ListRootsResult{Roots: []*mcp.Root{{URI: "file:///x"}}}
		}
		// Retry through prompts/get instead of tools/call.
		pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "legacy__p", RequestState: res.RequestState, InputResponses: answers})
		t.Logf("prompts/get with a tools/call requestState: %+v %v", pr, err)
		time.Sleep(500 * time.Millisecond)
	})
	checkChildSurvived(t, out, ok)
}

func countSessions(s *mcp.Server) int {
	n := 0
	for range s.Sessions() {
		n++
	}
	return n
}

// TestStopHangsOnPendingServerToClientRequest: the sink's handlers for
// server-to-client requests (continuation.ask here; ss.Elicit/CreateMessage/
// ListRoots for stateful clients) wait with only the upstream request's
// context, which a go-sdk upstream never cancels after the gateway's call
// timed out. jsonrpc2.Connection.Close waits for in-flight handlers, and
// conn.close calls cs.Close() before c.cancel() and killTree, so stopping the
// upstream never closes the connection (for stdio: never kills the child),
// and the supervisor goroutine is stuck in c.close forever.
func TestStopHangsOnPendingServerToClientRequest(t *testing.T) {
	srv := legacyAsker()
	up := startHTTPUpstream(t, srv)
	g, url := startGateway(t, "[server]\n"+upstreamBlock("legacy", up, `timeout = "1s"`))
	cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true}}, "2026-07-28")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__ask", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the upstream call times out (1s)
	if n := countSessions(srv); n != 1 {
		t.Fatalf("upstream has %d sessions before stop", n)
	}
	u, _ := g.Upstream("legacy")
	stopCtx, c := context.WithTimeout(context.Background(), 3*time.Second)
	defer c()
	u.Stop(stopCtx)
	if !waitFor(t, "upstream session closed", 5*time.Second, func() bool { return countSessions(srv) == 0 }) {
		t.Fatalf("Upstream.Stop returned but the upstream connection is still open %s later (ClientSession.Close is waiting for the sink's pending roots/list handler)", 5*time.Second)
	}
}
