package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/telemetry"
)

func TestLatencyEMA(t *testing.T) {
	var l latencyEMA
	if l.get() != 0 {
		t.Fatal("not zero before the first observation")
	}
	l.observe(100 * time.Millisecond)
	if l.get() != 100*time.Millisecond {
		t.Errorf("first observation: %s", l.get())
	}
	for range 20 {
		l.observe(10 * time.Millisecond)
	}
	if got := l.get(); got < 10*time.Millisecond || got > 12*time.Millisecond {
		t.Errorf("after 20 fast calls: %s, want about 10ms", got)
	}
	// An old average is not trusted: the slow target is measured again.
	defer func(d time.Duration) { latencyTTL = d }(latencyTTL)
	latencyTTL = time.Millisecond
	time.Sleep(3 * time.Millisecond)
	if got := l.get(); got != 0 {
		t.Errorf("stale average %s, want 0 (unknown)", got)
	}
}

// TestPolicyForQueuedDelivery: a call the gateway makes for a tenant
// without a client request (a queued call's delivery) still gets the
// tenant's local-only rule.
func TestPolicyForQueuedDelivery(t *testing.T) {
	cfg, err := config.Parse("t.toml", []byte(`
[routing]
local_only_tenants = ["clinic"]
[[upstreams]]
name = "ev"
[[upstreams.targets]]
url = "http://127.0.0.1:1/mcp"
[[upstreams.targets]]
url = "http://10.0.0.1/mcp"
allow_private = ["10.0.0.0/8"]
`))
	if err != nil {
		t.Fatal(err)
	}
	g := New(cfg, slog.New(slog.DiscardHandler), telemetry.NewMetrics())
	gr := &group{cfg: cfg.Upstreams[0]}
	if in := g.policyFor(WithCallerTenant(context.Background(), "clinic"), gr, nil, "echo"); !strings.Contains(in.LocalOnly, `tenant "clinic" is local-only`) {
		t.Errorf("delivery for a local-only tenant: %+v", in)
	}
	if in := g.policyFor(WithCallerTenant(context.Background(), "other"), gr, nil, "echo"); in.LocalOnly != "" {
		t.Errorf("delivery for another tenant: %+v", in)
	}
	if in := g.policyFor(context.Background(), gr, nil, "echo"); in.LocalOnly != "" {
		t.Errorf("no tenant: %+v", in)
	}
}
