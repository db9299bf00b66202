package guard

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkWire measures what the stage adds to a hot-path tools/call on
// a 1 KB and a 100 KB text result: off (the policy lookup only), on with
// a clean ASCII result (the prefilter only), on with clean text that has
// non-ASCII characters (decoded and scanned, bytes still relayed), and on
// with a secret in it (decoded, scanned, re-encoded by the caller: the
// encoding is not in this number).
func BenchmarkWire(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		para := "The quick brown fox jumps over the lazy dog while the build runs; all tests passed in 3.2s. "
		plain := strings.Repeat(para, size/len(para)+1)[:size]
		accented := strings.Repeat("Größe ", size/7+1)[:size-2]
		secret := plain[:size-30] + " AKIAIOSFODNN7EXAMPLE"
		for _, c := range []struct {
			name string
			on   bool
			text string
		}{{"off", false, secret}, {"on-ascii-clean", true, plain}, {"on-unicode-clean", true, accented}, {"on-secret", true, secret}} {
			raw, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": c.text}}})
			b.Run(c.name+"-"+kb(size), func(b *testing.B) {
				s := New(policy{Redact: c.on}, nil)
				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				call := &pipeline.Call{Method: pipeline.MethodCallTool, Wire: &pipeline.Wire{}}
				sum := &mcp.CallToolResult{}
				next := pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (mcp.Result, error) {
					call.Wire.SetResult(raw, sum, nil)
					return sum, nil
				})
				for b.Loop() {
					if _, err := s.Handle(context.Background(), call, next); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func kb(n int) string {
	if n >= 1<<10 {
		return itoa(n>>10) + "KB"
	}
	return itoa(n) + "B"
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
