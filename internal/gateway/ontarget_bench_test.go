package gateway

import (
	"context"
	"log/slog"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/mcpedge/mcpedge/internal/upstream"
)

// BenchmarkOnTarget is what reload safety adds to every routed attempt:
// looking for a pending replacement and holding the connection for the
// attempt (onTarget), against running the attempt directly.
func BenchmarkOnTarget(b *testing.B) {
	cfg := config.Default()
	g := New(cfg, slog.New(slog.DiscardHandler), telemetry.NewMetrics())
	u := upstream.New(config.Upstream{Name: "echo", Transport: "http", URL: "http://127.0.0.1:1/mcp"}, nil)
	g.mu.Lock()
	g.upstreams["echo"] = u
	g.pending = map[string]*upstream.Upstream{}
	g.swapped = make(chan struct{})
	g.mu.Unlock()
	run := func(context.Context, *upstream.Upstream) (int, error) { return 1, nil }
	ctx := context.Background()
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n, _ := run(ctx, u); n != 1 {
				b.Fatal(n)
			}
		}
	})
	b.Run("onTarget", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n, _ := onTarget(g, ctx, u, run); n != 1 {
				b.Fatal(n)
			}
		}
	})
	b.Run("onTarget-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if n, _ := onTarget(g, ctx, u, run); n != 1 {
					b.Error(n)
					return
				}
			}
		})
	})
}
