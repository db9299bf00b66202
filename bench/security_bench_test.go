package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/mcpedge/mcpedge/bench/internal/fixture"
	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/policy"
	"github.com/mcpedge/mcpedge/internal/ratelimit"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
	"github.com/mcpedge/mcpedge/internal/tenancy"
)

// secured is an in-process gateway in front of the minimal echo upstream,
// with (or without) the whole multi-tenant layer on the embedded SQLite
// store: authentication by API key, policy, in-memory rate limits and
// quota, and the audit log.
type secured struct {
	url, key string
	layer    *tenancy.Layer
	st       store.Store
}

func setupSecured(tb testing.TB, withSecurity bool) *secured {
	tb.Helper()
	up := httptest.NewServer(fixture.MinEcho())
	tb.Cleanup(up.Close)
	cfg, err := config.Parse("bench.toml", fmt.Appendf(nil, `
[server]
listen = "127.0.0.1:0"
log_level = "error"
[plans.bench]
key_per_minute = 60000000
key_burst = 1000000
tenant_per_minute = 60000000
tenant_burst = 1000000
ip_per_minute = 60000000
ip_burst = 1000000
monthly_quota = 1000000000
[[upstreams]]
name = "echo"
transport = "http"
url = %q
`, up.URL+"/mcp"))
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel) // last: after the gateway and the layer stopped
	s := &secured{}
	if withSecurity {
		st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "bench.db"))
		if err != nil {
			tb.Fatal(err)
		}
		s.st = st
		al := audit.NewLogger(st, log, audit.LoggerOptions{})
		as, err := auth.New(ctx, auth.Options{Store: st, Config: cfg.Auth, Audit: al.Record, Log: log})
		if err != nil {
			tb.Fatal(err)
		}
		as.Start(ctx)
		t := &store.Tenant{Name: "bench", Plan: "bench"}
		if err := st.CreateTenant(ctx, t); err != nil {
			tb.Fatal(err)
		}
		if err := st.CreateVirtualServer(ctx, &store.VirtualServer{TenantID: t.ID, Name: "all", Upstreams: []string{"*"}}); err != nil {
			tb.Fatal(err)
		}
		s.key, err = as.CreateKey(ctx, &store.APIKey{TenantID: t.ID, Name: "bench", Role: "member"}, 0)
		if err != nil {
			tb.Fatal(err)
		}
		pol := policy.New(st, cfg.Plans, log)
		if err := pol.Load(ctx); err != nil {
			tb.Fatal(err)
		}
		cip, _ := ratelimit.NewClientIP(nil)
		lim := ratelimit.NewMemory(nil)
		s.layer = tenancy.New(tenancy.Options{Auth: as, Policy: pol, Limiter: lim, Audit: al, ClientIP: cip, Config: cfg, Log: log})
		tb.Cleanup(func() {
			_ = al.Close(context.Background())
			_ = as.Close()
			_ = lim.Close()
			_ = st.Close()
		})
	}
	_, gw := serveGateway(tb, cfg, func(g *gateway.Gateway) {
		if s.layer != nil {
			g.SetSecurity(s.layer)
		}
	})
	s.url = gw + "/mcp"
	return s
}

// withKey sends the bearer key on every request of the raw client.
type withKey struct {
	key  string
	base http.RoundTripper
}

func (k withKey) RoundTrip(r *http.Request) (*http.Response, error) {
	if k.key != "" {
		r.Header.Set("Authorization", "Bearer "+k.key)
	}
	return k.base.RoundTrip(r)
}

func openKeyed(tb testing.TB, s *secured) *rawmcp.Session {
	tb.Helper()
	hc := rawmcp.NewHTTPClient(4)
	tb.Cleanup(hc.CloseIdleConnections)
	hc.Transport = withKey{key: s.key, base: hc.Transport}
	sess, err := rawmcp.Open(context.Background(), hc, s.url)
	if err != nil {
		tb.Fatal(err)
	}
	sess.Prepare("echo__echo", "hello")
	return sess
}

// TestSecuredEcho keeps the fixture honest: a keyed call through the
// secured gateway succeeds, an unkeyed one is refused.
func TestSecuredEcho(t *testing.T) {
	s := setupSecured(t, true)
	if err := openKeyed(t, s).Call(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := rawmcp.Open(context.Background(), rawmcp.NewHTTPClient(1), s.url); err == nil {
		t.Fatal("a session without a key was accepted")
	}
}

// BenchmarkSecurityOverhead makes tools/call requests through two
// in-process gateways, one without ("bare") and one with ("secured") the
// multi-tenant layer, alternating one call on each so that both see the
// same machine load, and reports each one's median (p50-bare-ns,
// p50-secured-ns) and their difference (added-p50-ns): what
// authentication, policy, rate limiting, the quota and the audit log add
// to a call (target: 50µs with the embedded store). ns/op covers both
// calls.
func BenchmarkSecurityOverhead(b *testing.B) {
	bare := openKeyed(b, setupSecured(b, false))
	sec := openKeyed(b, setupSecured(b, true))
	pb, ps := alternate(b, bare, sec)
	b.ReportMetric(float64(pb.Nanoseconds()), "p50-bare-ns")
	b.ReportMetric(float64(ps.Nanoseconds()), "p50-secured-ns")
	b.ReportMetric(float64((ps - pb).Nanoseconds()), "added-p50-ns")
}

// BenchmarkSecurityLayer measures the layer's own work for one tools/call,
// without HTTP or MCP around it: Authenticate, Admit (rate limits and
// quota), Allowed, and Record (the audit entry).
func BenchmarkSecurityLayer(b *testing.B) {
	s := setupSecured(b, true)
	req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+s.key)
	h := http.Header{}
	ctx := context.Background()
	rec := gateway.CallRecord{Upstream: "echo", Tool: "echo", Name: "echo__echo", Arguments: []byte(`{"message":"hello"}`), Outcome: "ok"}
	b.ReportAllocs()
	for b.Loop() {
		p, err := s.layer.Authenticate(req)
		if err != nil {
			b.Fatal(err)
		}
		if d := s.layer.Admit(req, h, p, "tools/call"); d != nil {
			b.Fatal(d.Message)
		}
		if !s.layer.Allowed(p, "echo", "tool", "echo") {
			b.Fatal("not allowed")
		}
		s.layer.Record(ctx, p, rec)
	}
}
