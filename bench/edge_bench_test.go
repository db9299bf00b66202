package bench

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/fixture"
	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devload"
	"github.com/mcpedge/mcpedge/internal/gateway"
)

// edgeGateway starts an in-process gateway whose configuration is
// upstreams (TOML; %[1]q is the minimal echo upstream's URL) and opens a
// raw session on it, prepared to call echo__echo.
func edgeGateway(tb testing.TB, upstreams string) (*rawmcp.Session, *gateway.Gateway) {
	tb.Helper()
	up := httptest.NewServer(fixture.MinEcho())
	tb.Cleanup(up.Close)
	cfg, err := config.Parse("bench.toml", fmt.Appendf(nil, "[server]\nlisten = \"127.0.0.1:0\"\nlog_level = \"error\"\n"+upstreams, up.URL+"/mcp"))
	if err != nil {
		tb.Fatal(err)
	}
	// The device's real load must not move calls between targets while
	// the benchmark runs.
	g, gw := serveGateway(tb, cfg, func(g *gateway.Gateway) {
		g.SetLoadSource(func() devload.Sample { return devload.Sample{CPU: 0.1, Memory: 0.1, OK: true} })
	})
	hc := rawmcp.NewHTTPClient(4)
	tb.Cleanup(hc.CloseIdleConnections)
	sess, err := rawmcp.Open(context.Background(), hc, gw+"/mcp")
	if err != nil {
		tb.Fatal(err)
	}
	sess.Prepare("echo__echo", "hello")
	return sess, g
}

// alternate calls a and c one after the other b.N times (swapping the order
// every iteration, so both see the same machine load; rawmcp.Alternate) and
// returns each one's median latency.
func alternate(b *testing.B, a, c *rawmcp.Session) (p50a, p50c time.Duration) {
	ctx := context.Background()
	both := []*rawmcp.Session{a, c}
	// Warm up connections, caches and averages.
	if _, err := rawmcp.Alternate(ctx, both, 200); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	lat, err := rawmcp.Alternate(ctx, both, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	da, dc := lat[0], lat[1]
	slices.Sort(da)
	slices.Sort(dc)
	return da[len(da)/2], dc[len(dc)/2]
}

const echoUpstream = "[[upstreams]]\nname = \"echo\"\nurl = %[1]q\n"

// BenchmarkCacheHit compares a read-only tools/call answered from the
// response cache with the same call sent to the upstream (a gateway
// without a cache), alternately: p50-miss-ns, p50-hit-ns and
// hit-to-miss, the hit's share of the uncached call's median.
func BenchmarkCacheHit(b *testing.B) {
	miss, _ := edgeGateway(b, echoUpstream)
	hit, _ := edgeGateway(b, echoUpstream+"[upstreams.cache]\nttl = \"1h\"\n")
	pm, ph := alternate(b, miss, hit)
	b.ReportMetric(float64(pm.Nanoseconds()), "p50-miss-ns")
	b.ReportMetric(float64(ph.Nanoseconds()), "p50-hit-ns")
	b.ReportMetric(float64(ph)/float64(pm), "hit-to-miss")
}

// BenchmarkRoutingOverhead compares a call to an upstream with one target
// with a call to an upstream with two (a local and a remote one, both the
// minimal echo upstream), alternately: what deciding per call adds
// (added-p50-ns; the candidates, the policy and its metrics).
func BenchmarkRoutingOverhead(b *testing.B) {
	single, _ := edgeGateway(b, echoUpstream)
	routed, g := edgeGateway(b, "[[upstreams]]\nname = \"echo\"\n[[upstreams.targets]]\nname = \"a\"\nurl = %[1]q\n[[upstreams.targets]]\nname = \"b\"\nurl = %[1]q\nlocality = \"remote\"\n")
	if st := g.Statuses(); len(st) != 2 {
		b.Fatalf("routed gateway connections: %+v", st)
	}
	ps, pr := alternate(b, single, routed)
	b.ReportMetric(float64(ps.Nanoseconds()), "p50-single-ns")
	b.ReportMetric(float64(pr.Nanoseconds()), "p50-routed-ns")
	b.ReportMetric(float64((pr - ps).Nanoseconds()), "added-p50-ns")
}
