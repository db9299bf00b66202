package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestStalledClientBlocksEveryoneOnSharedUpstream: sink.Log calls
// ss.Log synchronously for every session, on the SDK client's notification
// goroutine for the shared upstream connection. The SDK server writes the
// notification straight into the session's standalone SSE response, so a
// client that keeps its GET stream open but stops reading blocks that
// goroutine once the socket buffers fill. The SDK client handles incoming
// notifications and server-to-client requests from one queue, in order, so
// from then on every other client's progress, logs, resources/updated,
// list_changed refreshes and sampling/elicitation/roots on that upstream
// are stuck too.
func TestStalledClientBlocksEveryoneOnSharedUpstream(t *testing.T) { stalledClient(t, true) }

// Control: the same without the GET stream that is never read.
func TestControlNoStalledClient(t *testing.T) { stalledClient(t, false) }

func stalledClient(t *testing.T, stall bool) {
	s := interactiveServer()
	big := strings.Repeat("x", 64<<10)
	s.AddTool(&mcp.Tool{Name: "spam", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			for range 200 {
				_ = r.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "error", Data: big})
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "spammed"}}}, nil
		})
	up := startHTTPUpstream(t, s)
	_, gwURL := startGateway(t, "[server]\n"+upstreamBlock("inter", up))

	// Client A: a session that asks for logs, opens its GET stream and never
	// reads from it.
	sid, _ := rawPost(t, gwURL+"/mcp", "", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
		"protocolVersion": "2025-11-25", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "stalled", "version": "1"}}})
	rawPost(t, gwURL+"/mcp", sid, map[string]any{"jsonrpc": "2.0", "method": "notifications/initialized"})
	rawPost(t, gwURL+"/mcp", sid, map[string]any{"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": map[string]any{"level": "debug"}})
	u, _ := url.Parse(gwURL)
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if stall {
		fmt.Fprintf(conn, "GET /mcp HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\nMcp-Protocol-Version: 2025-11-25\r\n\r\n", u.Host, sid)
	}

	// Client B: an ordinary client.
	b := dialClient(t, gwURL+"/mcp", &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{}}, nil
		},
	}, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // generous: 12.8 MB of logs under -race on a loaded machine; a stall would be unbounded
	defer cancel()
	if _, err := b.CallTool(ctx, &mcp.CallToolParams{Name: "inter__spam", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := b.CallTool(ctx, &mcp.CallToolParams{Name: "inter__elicit", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("client B's elicitation round trip failed after %s because client A stopped reading: %v %+v", time.Since(start).Round(time.Millisecond), err, res)
	}
}
