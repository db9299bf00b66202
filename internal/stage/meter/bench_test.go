package meter

import (
	"context"
	"sync"
	"testing"

	"github.com/mcpedge/mcpedge/internal/metering"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkCall is the per-call cost of metering: the same compiled
// chain (meter stage + terminal) against the terminal alone, serially
// and from every CPU at once (contention on the meter's map). The meter
// counts into memory only here: its store writes happen in its own loop,
// off the call path. docs/benchmarks.md records a run.
func BenchmarkCall(b *testing.B) {
	res := &mcp.CallToolResult{}
	term := terminal{pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (mcp.Result, error) { return res, nil })}
	p := &principal.Principal{Kind: principal.KindKey, ID: "k1", TenantID: "t1"}
	var mu sync.RWMutex
	listed := map[string]map[string]bool{"fs": {"read": true}}
	for _, tc := range []struct {
		name   string
		stages []pipeline.Stage
	}{
		{"off", nil},
		// known looks the tool up under a read lock, as the gateway does.
		{"on", []pipeline.Stage{New(metering.New(metering.Options{}), func(c *pipeline.Call) bool {
			mu.RLock()
			defer mu.RUnlock()
			return listed[c.Upstream][c.Item]
		})}},
	} {
		ch, err := pipeline.Compile(tc.stages, term)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				c := &pipeline.Call{Method: pipeline.MethodCallTool, Upstream: "fs", Item: "read", Principal: p}
				if _, err := ch.Handle(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					c := &pipeline.Call{Method: pipeline.MethodCallTool, Upstream: "fs", Item: "read", Principal: p}
					if _, err := ch.Handle(ctx, c); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
