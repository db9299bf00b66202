package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestSDKCallLogOnCallStream: a log message an upstream sends during a
// call the SDK's server dispatches (here an HTTP upstream with the hot
// path off, as stdio, SSE and WASM upstreams always are) reaches the
// calling client on the call's own stream, on the replica running the
// call, although the client set its level on another replica and holds
// no event stream on this one. Clients with no call in flight still get
// it on their standalone stream.
func TestSDKCallLogOnCallStream(t *testing.T) {
	s := legacyOnly("chat", &mcp.ServerOptions{Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}, Logging: &mcp.LoggingCapabilities{}}})
	secTool(s, "chatty", func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if err := r.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "during the call"}); err != nil {
			return nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
	})
	up := startHTTPUpstream(t, s)
	_, urls, gs := keptReplicas(t, 2, "[server]\nhot_path = false\n"+upstreamBlock("chat", up), nil)
	for _, g := range gs {
		waitTargetsReady(t, g, 1)
	}
	a := newRawClient(t, urls[0]+"/mcp")
	if st, _, msg := a.post(`{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"info"}}`); st != http.StatusOK || msg["result"] == nil {
		t.Fatalf("logging/setLevel on replica 0: HTTP %d %v", st, msg)
	}
	noAsk := func(string, json.RawMessage) (string, string) { return "error", `{"code":-32601,"message":"no"}` }
	call := func(id int, url string) []string {
		ans, seen := a.on(url+"/mcp").callAnswering(id, `{"name":"chat__chatty","arguments":{}}`, noAsk)
		if ans.Status != http.StatusOK || ans.Msg["result"] == nil {
			t.Fatalf("tools/call on %s: HTTP %d: %s", url, ans.Status, ans.Body)
		}
		return seen
	}
	logged := func(seen []string) bool {
		return slices.ContainsFunc(seen, func(m string) bool { return strings.Contains(m, "during the call") })
	}
	// Replica 1 re-creates the session at its first request and sends the
	// level on to its upstream connection, which takes effect a moment
	// later (upstream.SetLogLevel does not block): a call or two may come
	// before the upstream logs anything. Bounded.
	var seen []string
	for i := range 30 {
		if seen = call(10+i, urls[1]); logged(seen) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !logged(seen) {
		t.Errorf("the upstream's log during the call on replica 1 never reached the client on the call's stream: %q", seen)
	}
	if seen := call(50, urls[0]); !logged(seen) {
		t.Errorf("the upstream's log during the call on replica 0 did not reach the client on the call's stream: %q", seen)
	}
}
