package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devload"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestDecide shows the choice between a local and a remote target
// changing with health, latency, load, power profile and sensitivity.
func TestDecide(t *testing.T) {
	local := candidate{name: "local", local: true, latency: 10 * time.Millisecond}
	cloud := candidate{name: "cloud", latency: 40 * time.Millisecond}
	down := func(c candidate, why string) candidate { c.down = why; return c }
	lat := func(c candidate, d time.Duration) candidate { c.latency = d; return c }
	balanced := config.DefaultRouting()
	with := func(f func(*config.Routing)) config.Routing { r := balanced; f(&r); return r }
	quiet := devload.Sample{CPU: 0.2, Memory: 0.3, OK: true}
	busy := devload.Sample{CPU: 0.97, Memory: 0.3, OK: true}
	full := devload.Sample{CPU: 0.1, Memory: 0.95, OK: true}

	tests := []struct {
		name    string
		cands   []candidate
		in      policyInput
		want    []string // order of target names
		factor  string
		reason  string // a reason must contain this ("" none expected)
		refusal string
	}{
		{"priority", []candidate{local, cloud}, policyInput{routing: balanced, load: quiet}, []string{"local", "cloud"}, factorPriority, "", ""},
		{"single target", []candidate{cloud}, policyInput{routing: balanced}, []string{"cloud"}, factorOnly, "", ""},
		{"local down", []candidate{down(local, "(not connected)"), cloud}, policyInput{routing: balanced, load: quiet},
			[]string{"cloud", "local"}, factorHealth, "local (not connected)", ""},
		{"local breaker open", []candidate{down(local, "(circuit breaker open)"), cloud}, policyInput{routing: balanced},
			[]string{"cloud", "local"}, factorHealth, "circuit breaker open", ""},
		{"local slow", []candidate{lat(local, 200*time.Millisecond), cloud}, policyInput{routing: balanced, load: quiet},
			[]string{"cloud", "local"}, factorLatency, "target cloud answers in 40ms on average, local in 200ms", ""},
		{"local slower but within the factor", []candidate{lat(local, 70*time.Millisecond), cloud}, policyInput{routing: balanced},
			[]string{"local", "cloud"}, factorPriority, "", ""},
		{"latency unknown", []candidate{lat(local, 0), lat(cloud, time.Millisecond)}, policyInput{routing: balanced},
			[]string{"local", "cloud"}, factorPriority, "", ""},
		{"cpu load", []candidate{local, cloud}, policyInput{routing: balanced, load: busy},
			[]string{"cloud", "local"}, factorLoad, "device CPU use 97% is above max_cpu 85%", ""},
		{"memory load", []candidate{local, cloud}, policyInput{routing: balanced, load: full},
			[]string{"cloud", "local"}, factorLoad, "memory use 95%", ""},
		{"load unknown", []candidate{local, cloud}, policyInput{routing: balanced, load: devload.Sample{CPU: 1}},
			[]string{"local", "cloud"}, factorPriority, "", ""},
		{"load but remote down", []candidate{local, down(cloud, "(not connected)")}, policyInput{routing: balanced, load: busy},
			[]string{"local", "cloud"}, factorHealth, "cloud (not connected)", ""},
		{"saver", []candidate{local, cloud}, policyInput{routing: with(func(r *config.Routing) { r.Power = config.PowerSaver })},
			[]string{"cloud", "local"}, factorPower, "power profile saver", ""},
		{"performance under load", []candidate{cloud, local}, policyInput{routing: with(func(r *config.Routing) { r.Power = config.PowerPerformance }), load: busy},
			[]string{"local", "cloud"}, factorPower, "power profile performance", ""},
		{"local-only keeps remote out", []candidate{local, cloud}, policyInput{routing: balanced, load: busy, localOnly: `tenant "clinic" is local-only`},
			[]string{"local"}, factorPriority, "remote targets cloud excluded", ""},
		{"local-only with local down", []candidate{cloud, down(local, "(not connected)")}, policyInput{routing: balanced, localOnly: `tool "x" is local-only`},
			[]string{"local"}, factorSensitivity, "remote targets cloud excluded", ""},
		{"local-only without local target", []candidate{cloud}, policyInput{routing: balanced, localOnly: `tool "x" is local-only`},
			nil, factorSensitivity, "", `tool "x" is local-only, and no target of this upstream runs on the device`},
		{"faster but by too little", []candidate{lat(local, 7*time.Millisecond), lat(cloud, 3*time.Millisecond)}, policyInput{routing: balanced},
			[]string{"local", "cloud"}, factorPriority, "", ""},
		{"probe an unmeasured target", []candidate{local, lat(cloud, 0)}, policyInput{routing: balanced, probe: true},
			[]string{"cloud", "local"}, factorLatency, "probe: target cloud has no recent latency measure", ""},
		{"no probe while the first is unmeasured", []candidate{lat(local, 0), lat(cloud, 0)}, policyInput{routing: balanced, probe: true},
			[]string{"local", "cloud"}, factorPriority, "", ""},
		{"no probe of a target that is down", []candidate{local, down(lat(cloud, 0), "(not connected)")}, policyInput{routing: balanced, probe: true},
			[]string{"local", "cloud"}, factorPriority, "cloud (not connected)", ""},
		{"latency within the preferred class only", []candidate{local, lat(cloud, time.Millisecond), {name: "cloud2", latency: 20 * time.Millisecond}},
			policyInput{routing: balanced, load: busy}, []string{"cloud", "cloud2", "local"}, factorLoad, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(tt.cands, tt.in)
			if d.refusal != tt.refusal && !strings.Contains(d.refusal, tt.refusal) || (tt.refusal == "") != (d.refusal == "") {
				t.Fatalf("refusal %q, want %q", d.refusal, tt.refusal)
			}
			var got []string
			for _, c := range d.order {
				got = append(got, c.name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("order %v, want %v (reasons %q)", got, tt.want, d.reasons)
			}
			if d.factor != tt.factor {
				t.Errorf("factor %q, want %q (reasons %q)", d.factor, tt.factor, d.reasons)
			}
			if tt.reason != "" && !strings.Contains(strings.Join(d.reasons, " | "), tt.reason) {
				t.Errorf("reasons %q lack %q", d.reasons, tt.reason)
			}
			if tt.reason == "" && tt.factor == factorPriority && len(d.reasons) > 0 {
				t.Errorf("unexpected reasons %q", d.reasons)
			}
		})
	}
}

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

func TestRouteNote(t *testing.T) {
	ctx, n := explained(context.Background(), mcp.Meta{MetaExplain: true}, true)
	if n == nil || ctx.Value(routeNoteKey{}) != n {
		t.Fatal("explain not recorded")
	}
	if _, n2 := explained(context.Background(), mcp.Meta{MetaExplain: "yes"}, true); n2 != nil {
		t.Error("a non-boolean explain is honoured")
	}
	n.record("search", "local", factorPriority, []string{"why"})
	n.attempt("local", nil)
	res := &mcp.CallToolResult{}
	n.attach(res)
	v, _ := res.Meta[MetaRoute].(map[string]any)
	if v["target"] != "local" || v["upstream"] != "search" || v["factor"] != factorPriority {
		t.Errorf("route meta %v", res.Meta)
	}
	var nilRes *mcp.CallToolResult
	n.attach(nilRes) // no panic
	var none *routeNote
	none.attach(res) // not asked: nothing
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
	if in := g.policyFor(WithCallerTenant(context.Background(), "clinic"), gr, nil, "echo"); !strings.Contains(in.localOnly, `tenant "clinic" is local-only`) {
		t.Errorf("delivery for a local-only tenant: %+v", in)
	}
	if in := g.policyFor(WithCallerTenant(context.Background(), "other"), gr, nil, "echo"); in.localOnly != "" {
		t.Errorf("delivery for another tenant: %+v", in)
	}
	if in := g.policyFor(context.Background(), gr, nil, "echo"); in.localOnly != "" {
		t.Errorf("no tenant: %+v", in)
	}
}

// BenchmarkDecide is the routing policy alone, for a local and a remote
// target under load (the longest path: a preference and a latency check).
func BenchmarkDecide(b *testing.B) {
	cands := []candidate{{name: "local", local: true, latency: 30 * time.Millisecond}, {name: "cloud", latency: 5 * time.Millisecond}}
	in := policyInput{routing: config.DefaultRouting(), load: devload.Sample{CPU: 0.5, Memory: 0.5, OK: true}}
	b.ReportAllocs()
	for b.Loop() {
		if d := decide(cands, in); len(d.order) != 2 {
			b.Fatal(d)
		}
	}
}
