package wasmtool_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/mcpedge/mcpedge/internal/wasmtool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/tetratelabs/wazero"
)

// BenchmarkWASMCall measures one tools/call of the textstats example:
//
//   - cold: compile the module (with an empty compilation cache), run one
//     instance, close: what the first call after a start or a module change
//     costs.
//   - warm: run one fresh instance from the compiled module: what every
//     call costs.
//   - warm-mcp: the same through the module's MCP server and the SDK
//     client over in-memory transports, as a wasm upstream is reached.
//
// Run it with
//
//	go test -run '^$' -bench WASMCall -benchmem ./internal/wasmtool
func BenchmarkWASMCall(b *testing.B) {
	path := module(b, "textstats")
	bin, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	args := json.RawMessage(`{"text":"the quick brown fox\njumps over the lazy dog\n"}`)
	ctx := context.Background()
	check := func(b *testing.B, res *mcp.CallToolResult, err error) {
		if err != nil || res.IsError {
			b.Fatalf("call: %v %+v", err, res)
		}
	}

	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			cache := wazero.NewCompilationCache()
			m, err := wasmtool.Compile(ctx, "textstats", bin, wasmtool.Sandbox{}, &wasmtool.Options{Cache: cache})
			if err != nil {
				b.Fatal(err)
			}
			res, err := m.CallTool(ctx, "textstats", args)
			check(b, res, err)
			_ = m.Close(ctx)
			_ = cache.Close(ctx)
		}
	})

	b.Run("warm", func(b *testing.B) {
		m, err := wasmtool.Compile(ctx, "textstats", bin, wasmtool.Sandbox{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close(ctx)
		for b.Loop() {
			res, err := m.CallTool(ctx, "textstats", args)
			check(b, res, err)
		}
	})

	b.Run("warm-mcp", func(b *testing.B) {
		m, err := wasmtool.Compile(ctx, "textstats", bin, wasmtool.Sandbox{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close(ctx)
		srv, err := m.NewServer(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ct, st := mcp.NewInMemoryTransports()
		ss, err := srv.Connect(ctx, st, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ss.Close()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, ct, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		params := &mcp.CallToolParams{Name: "textstats", Arguments: args}
		for b.Loop() {
			res, err := cs.CallTool(ctx, params)
			check(b, res, err)
		}
	})
}
