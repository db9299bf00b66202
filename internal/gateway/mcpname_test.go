package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMcpNameHeaderChecked: the Mcp-Name header must name what the body
// names. A request whose header and body disagree (an intermediary routed
// or authorised it by the header) is refused with 400 before anything
// reaches an upstream, for stateless 2026-07-28 requests and on a
// 2025-11-25 session alike; a matching header is let through.
func TestMcpNameHeaderChecked(t *testing.T) {
	var called atomic.Int32
	s := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	for _, name := range []string{"echo", "other"} {
		secTool(s, name, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			called.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
		})
	}
	_, url := startGateway(t, "[server]\n"+upstreamBlock("up", startHTTPUpstream(t, s)))

	// A 2025-11-25 session for the stateful cases.
	legacy := dialClient(t, url+"/mcp", nil, "2025-11-25")

	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"up__echo","arguments":{}}}`
	statelessCall := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"up__echo","arguments":{},"_meta":{` +
		`"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},` +
		`"io.modelcontextprotocol/clientCapabilities":{}}}}`
	list := `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{}}`
	cases := []struct {
		name    string
		session bool
		version string
		body    string
		header  string
		refused bool
	}{
		{"stateless mismatch", false, "2026-07-28", statelessCall, "up__other", true},
		{"stateless match", false, "2026-07-28", statelessCall, "up__echo", false},
		{"session mismatch", true, "2025-11-25", call, "up__other", true},
		{"session case differs", true, "2025-11-25", call, "UP__ECHO", true},
		{"session match", true, "2025-11-25", call, "up__echo", false},
		{"name header on a method without a name", true, "2025-11-25", list, "up__echo", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := called.Load()
			req, _ := http.NewRequest(http.MethodPost, url+"/mcp", strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Protocol-Version", c.version)
			if c.session {
				req.Header.Set("Mcp-Session-Id", legacy.ID())
			}
			var env struct {
				Method string `json:"method"`
			}
			if err := json.Unmarshal([]byte(c.body), &env); err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Mcp-Method", env.Method)
			req.Header.Set("Mcp-Name", c.header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			reached := called.Load() > before
			if !c.refused {
				if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "Mcp-Name") {
					t.Fatalf("HTTP %d %s, want the request through", resp.StatusCode, body)
				}
				if strings.Contains(c.body, "tools/call") && !reached {
					t.Errorf("the call never reached the upstream: %s", body)
				}
				return
			}
			var msg struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			_ = json.Unmarshal(body, &msg)
			if resp.StatusCode != http.StatusBadRequest || msg.Error.Code != mcpwire.CodeInvalidRequest || !strings.Contains(msg.Error.Message, "Mcp-Name header") {
				t.Errorf("HTTP %d %s, want 400 with an Mcp-Name error", resp.StatusCode, body)
			}
			if reached {
				t.Error("the refused call reached the upstream")
			}
		})
	}
}
