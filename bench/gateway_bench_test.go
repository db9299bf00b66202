package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/fixture"
	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/telemetry"
)

// setup starts the minimal echo upstream and, if viaGateway, an in-process
// gateway in front of it; it returns the MCP endpoint and the tool name.
func setup(tb testing.TB, viaGateway bool) (url, tool string) {
	tb.Helper()
	up := httptest.NewServer(fixture.MinEcho())
	tb.Cleanup(up.Close)
	if !viaGateway {
		return up.URL + "/mcp", "echo"
	}
	cfg, err := config.Parse("bench.toml", fmt.Appendf(nil, `
[server]
listen = "127.0.0.1:0"
log_level = "error"
[[upstreams]]
name = "echo"
transport = "http"
url = %q
`, up.URL+"/mcp"))
	if err != nil {
		tb.Fatal(err)
	}
	_, gw := serveGateway(tb, cfg, nil)
	return gw + "/mcp", "echo__echo"
}

// serveGateway starts an in-process gateway on cfg, set up first by setup
// (if not nil), waits until every upstream connection is ready and serves
// the gateway from an httptest server, whose URL it returns. Both stop at
// cleanup.
func serveGateway(tb testing.TB, cfg *config.Config, setup func(*gateway.Gateway)) (*gateway.Gateway, string) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := gateway.New(cfg, slog.New(slog.DiscardHandler), telemetry.NewMetrics())
	if setup != nil {
		setup(g)
	}
	g.Start(ctx)
	tb.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		defer scancel()
		g.Stop(sctx)
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		ready := 0
		st := g.Statuses()
		for _, s := range st {
			if s.State == "ready" {
				ready++
			}
		}
		if ready == len(st) && ready > 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("upstreams not ready: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	gw := httptest.NewServer(g.Handler(gateway.HTTPOptions{
		MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxJSONDepth: cfg.Server.MaxJSONDepth,
	}))
	tb.Cleanup(gw.Close)
	return g, gw.URL
}

func open(tb testing.TB, url, tool string) *rawmcp.Session {
	tb.Helper()
	hc := rawmcp.NewHTTPClient(4)
	tb.Cleanup(hc.CloseIdleConnections)
	s, err := rawmcp.Open(context.Background(), hc, url)
	if err != nil {
		tb.Fatal(err)
	}
	s.Prepare(tool, "hello")
	return s
}

// TestGatewayEcho checks the fixtures end to end (and keeps them compiling
// under go test ./...): one call direct, one through the gateway.
func TestGatewayEcho(t *testing.T) {
	for _, via := range []bool{false, true} {
		url, tool := setup(t, via)
		s := open(t, url, tool)
		if err := s.Call(context.Background()); err != nil {
			t.Fatalf("via gateway %v: %v", via, err)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatalf("via gateway %v: close: %v", via, err)
		}
	}
}

func benchCalls(b *testing.B, viaGateway bool) {
	url, tool := setup(b, viaGateway)
	b.Run("serial", func(b *testing.B) {
		s := open(b, url, tool)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Call(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			s := open(b, url, tool)
			ctx := context.Background()
			for pb.Next() {
				if err := s.Call(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkDirect calls the minimal echo upstream with the raw client.
func BenchmarkDirect(b *testing.B) { benchCalls(b, false) }

// BenchmarkGateway makes the same calls through an in-process gateway. The
// difference from BenchmarkDirect (time and allocs per op) is the gateway's,
// client and upstream sharing the process.
func BenchmarkGateway(b *testing.B) { benchCalls(b, true) }

// BenchmarkIdleSession opens b.N sessions on the in-process gateway and holds
// them, reporting the Go heap and stack they retain (after a GC) per
// session: the part of the per-session RSS that is state rather than GC
// headroom. Use -benchtime 200x.
func BenchmarkIdleSession(b *testing.B) {
	url, _ := setup(b, true)
	hc := rawmcp.NewHTTPClient(4)
	defer hc.CloseIdleConnections()
	ctx := context.Background()
	sessions := make([]*rawmcp.Session, 0, b.N)
	defer func() {
		for _, s := range sessions {
			_ = s.Close(ctx)
		}
	}()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	b.ResetTimer()
	for range b.N {
		s, err := rawmcp.Open(ctx, hc, url)
		if err != nil {
			b.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	b.StopTimer()
	time.Sleep(50 * time.Millisecond) // let per-session goroutines settle
	runtime.GC()
	runtime.ReadMemStats(&m1)
	n := float64(b.N)
	b.ReportMetric(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/n, "heap-B/session")
	b.ReportMetric(float64(int64(m1.StackInuse)-int64(m0.StackInuse))/n, "stack-B/session")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/session")
}
