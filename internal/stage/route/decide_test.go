package route

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devload"
)

// TestDecide shows the choice between a local and a remote target
// changing with health, latency, load, power profile and sensitivity.
func TestDecide(t *testing.T) {
	local := Candidate[string]{Name: "local", Local: true, Latency: 10 * time.Millisecond}
	cloud := Candidate[string]{Name: "cloud", Latency: 40 * time.Millisecond}
	down := func(c Candidate[string], why string) Candidate[string] { c.Down = why; return c }
	lat := func(c Candidate[string], d time.Duration) Candidate[string] { c.Latency = d; return c }
	balanced := config.DefaultRouting()
	with := func(f func(*config.Routing)) config.Routing { r := balanced; f(&r); return r }
	quiet := devload.Sample{CPU: 0.2, Memory: 0.3, OK: true}
	busy := devload.Sample{CPU: 0.97, Memory: 0.3, OK: true}
	full := devload.Sample{CPU: 0.1, Memory: 0.95, OK: true}

	tests := []struct {
		name    string
		cands   []Candidate[string]
		in      Input
		want    []string // order of target names
		factor  string
		reason  string // a reason must contain this ("" none expected)
		refusal string
	}{
		{"priority", []Candidate[string]{local, cloud}, Input{Routing: balanced, Load: quiet}, []string{"local", "cloud"}, FactorPriority, "", ""},
		{"single target", []Candidate[string]{cloud}, Input{Routing: balanced}, []string{"cloud"}, FactorOnly, "", ""},
		{"local down", []Candidate[string]{down(local, "(not connected)"), cloud}, Input{Routing: balanced, Load: quiet},
			[]string{"cloud", "local"}, FactorHealth, "local (not connected)", ""},
		{"local breaker open", []Candidate[string]{down(local, "(circuit breaker open)"), cloud}, Input{Routing: balanced},
			[]string{"cloud", "local"}, FactorHealth, "circuit breaker open", ""},
		{"local slow", []Candidate[string]{lat(local, 200*time.Millisecond), cloud}, Input{Routing: balanced, Load: quiet},
			[]string{"cloud", "local"}, FactorLatency, "target cloud answers in 40ms on average, local in 200ms", ""},
		{"local slower but within the factor", []Candidate[string]{lat(local, 70*time.Millisecond), cloud}, Input{Routing: balanced},
			[]string{"local", "cloud"}, FactorPriority, "", ""},
		{"latency unknown", []Candidate[string]{lat(local, 0), lat(cloud, time.Millisecond)}, Input{Routing: balanced},
			[]string{"local", "cloud"}, FactorPriority, "", ""},
		{"cpu load", []Candidate[string]{local, cloud}, Input{Routing: balanced, Load: busy},
			[]string{"cloud", "local"}, FactorLoad, "device CPU use 97% is above max_cpu 85%", ""},
		{"memory load", []Candidate[string]{local, cloud}, Input{Routing: balanced, Load: full},
			[]string{"cloud", "local"}, FactorLoad, "memory use 95%", ""},
		{"load unknown", []Candidate[string]{local, cloud}, Input{Routing: balanced, Load: devload.Sample{CPU: 1}},
			[]string{"local", "cloud"}, FactorPriority, "", ""},
		{"load but remote down", []Candidate[string]{local, down(cloud, "(not connected)")}, Input{Routing: balanced, Load: busy},
			[]string{"local", "cloud"}, FactorHealth, "cloud (not connected)", ""},
		{"saver", []Candidate[string]{local, cloud}, Input{Routing: with(func(r *config.Routing) { r.Power = config.PowerSaver })},
			[]string{"cloud", "local"}, FactorPower, "power profile saver", ""},
		{"performance under load", []Candidate[string]{cloud, local}, Input{Routing: with(func(r *config.Routing) { r.Power = config.PowerPerformance }), Load: busy},
			[]string{"local", "cloud"}, FactorPower, "power profile performance", ""},
		{"local-only keeps remote out", []Candidate[string]{local, cloud}, Input{Routing: balanced, Load: busy, LocalOnly: `tenant "clinic" is local-only`},
			[]string{"local"}, FactorPriority, "remote targets cloud excluded", ""},
		{"local-only with local down", []Candidate[string]{cloud, down(local, "(not connected)")}, Input{Routing: balanced, LocalOnly: `tool "x" is local-only`},
			[]string{"local"}, FactorSensitivity, "remote targets cloud excluded", ""},
		{"local-only without local target", []Candidate[string]{cloud}, Input{Routing: balanced, LocalOnly: `tool "x" is local-only`},
			nil, FactorSensitivity, "", `tool "x" is local-only, and no target of this upstream runs on the device`},
		{"faster but by too little", []Candidate[string]{lat(local, 7*time.Millisecond), lat(cloud, 3*time.Millisecond)}, Input{Routing: balanced},
			[]string{"local", "cloud"}, FactorPriority, "", ""},
		{"probe an unmeasured target", []Candidate[string]{local, lat(cloud, 0)}, Input{Routing: balanced, Probe: true},
			[]string{"cloud", "local"}, FactorLatency, "probe: target cloud has no recent latency measure", ""},
		{"no probe while the first is unmeasured", []Candidate[string]{lat(local, 0), lat(cloud, 0)}, Input{Routing: balanced, Probe: true},
			[]string{"local", "cloud"}, FactorPriority, "", ""},
		{"no probe of a target that is down", []Candidate[string]{local, down(lat(cloud, 0), "(not connected)")}, Input{Routing: balanced, Probe: true},
			[]string{"local", "cloud"}, FactorPriority, "cloud (not connected)", ""},
		{"latency within the preferred class only", []Candidate[string]{local, lat(cloud, time.Millisecond), {Name: "cloud2", Latency: 20 * time.Millisecond}},
			Input{Routing: balanced, Load: busy}, []string{"cloud", "cloud2", "local"}, FactorLoad, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.cands, tt.in)
			if d.Refusal != tt.refusal && !strings.Contains(d.Refusal, tt.refusal) || (tt.refusal == "") != (d.Refusal == "") {
				t.Fatalf("refusal %q, want %q", d.Refusal, tt.refusal)
			}
			var got []string
			for _, c := range d.Order {
				got = append(got, c.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("order %v, want %v (reasons %q)", got, tt.want, d.Reasons)
			}
			if d.Factor != tt.factor {
				t.Errorf("factor %q, want %q (reasons %q)", d.Factor, tt.factor, d.Reasons)
			}
			if tt.reason != "" && !strings.Contains(strings.Join(d.Reasons, " | "), tt.reason) {
				t.Errorf("reasons %q lack %q", d.Reasons, tt.reason)
			}
			if tt.reason == "" && tt.factor == FactorPriority && len(d.Reasons) > 0 {
				t.Errorf("unexpected reasons %q", d.Reasons)
			}
		})
	}
}

// BenchmarkDecide is the routing policy alone, for a local and a remote
// target under load (the longest path: a preference and a latency check).
func BenchmarkDecide(b *testing.B) {
	cands := []Candidate[string]{{Name: "local", Local: true, Latency: 30 * time.Millisecond}, {Name: "cloud", Latency: 5 * time.Millisecond}}
	in := Input{Routing: config.DefaultRouting(), Load: devload.Sample{CPU: 0.5, Memory: 0.5, OK: true}}
	b.ReportAllocs()
	for b.Loop() {
		if d := Decide(cands, in); len(d.Order) != 2 {
			b.Fatal(d)
		}
	}
}
