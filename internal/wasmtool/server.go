package wasmtool

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// NewServer asks the module for its tools (one run) and returns an MCP
// server that offers them, each call answered by a fresh instance. The
// tool list is fixed for the server's life; a changed module is a new
// Module and a new server.
//
// A call whose run fails (see [Module.Run]) or prints no valid result is
// answered with an isError result that says why — "time limit exceeded",
// "exit status 2", "malformed output" — as a tool failure, not as a
// protocol error, so that the model sees it. The module's stderr goes to
// the log only.
func (m *Module) NewServer(ctx context.Context) (*mcp.Server, error) {
	tools, err := m.ListTools(ctx)
	if err != nil {
		return nil, err
	}
	version := m.hash
	if len(version) > 12 {
		version = version[:12]
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "wasm:" + m.name, Version: version}, &mcp.ServerOptions{
		Logger: m.log,
		// Tools only, and a fixed list: no list_changed, no logging.
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}},
	})
	for _, t := range tools {
		if err := addTool(srv, t, m.toolHandler(t.Name)); err != nil {
			return nil, err
		}
	}
	if len(tools) == 0 {
		m.log.Warn("wasm module lists no tools", "module", m.name)
	}
	return srv, nil
}

// addTool is Server.AddTool, which panics on a tool it cannot serve.
// ListTools has checked for every reason known; should the SDK find
// another, that is an error of this module, not a crash of the gateway.
func addTool(srv *mcp.Server, t *mcp.Tool, h mcp.ToolHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("tools/list: %w: %v", ErrBadOutput, p)
		}
	}()
	srv.AddTool(t, h)
	return nil
}

func (m *Module) toolHandler(name string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var args json.RawMessage
		if req.Params != nil {
			args = req.Params.Arguments
		}
		start := time.Now()
		res, err := m.CallTool(ctx, name, args)
		if err != nil {
			if ctx.Err() != nil {
				// The caller is gone or gave up; its own error says so.
				return nil, err
			}
			m.log.Debug("wasm tool call failed", "module", m.name, "tool", name, "err", err, "took", time.Since(start))
			return &mcp.CallToolResult{
				Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("tool %q failed: %v", name, err)}},
				IsError: true,
			}, nil
		}
		return res, nil
	}
}
