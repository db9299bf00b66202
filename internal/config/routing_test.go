package config

import (
	"strings"
	"testing"
	"time"
)

const targetsTOML = `
[routing]
power = "saver"
max_cpu = 0.5
max_memory = 1
latency_factor = 1.5
local_only_tenants = ["clinic"]

[[upstreams]]
name = "search"
timeout = "5s"
retries = 1
local_only = ["read-records"]
deferrable = ["*"]

[[upstreams.targets]]
command = "search-server"
args = ["--stdio"]

[[upstreams.targets]]
name = "cloud"
url = "https://search.example.com/mcp"
headers = { Authorization = "Bearer t" }

[[upstreams.targets]]
url = "http://127.0.0.1:9000/mcp"

[[upstreams]]
name = "plain"
url = "http://10.1.2.3/mcp"
allow_private = ["10.0.0.0/8"]
`

func TestTargetsParse(t *testing.T) {
	c, ps := parseT(t, targetsTOML, nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	r := c.Routing
	if r.Power != PowerSaver || r.MaxCPU != 0.5 || r.MaxMemory != 1 || r.LatencyFactor != 1.5 || !r.TenantLocalOnly("clinic") || r.TenantLocalOnly("other") || r.TenantLocalOnly("") {
		t.Errorf("routing %+v", r)
	}
	u := c.Upstreams[0]
	if len(u.Targets) != 3 {
		t.Fatalf("targets: %d", len(u.Targets))
	}
	if !u.IsLocalOnly("read-records") || u.IsLocalOnly("search") {
		t.Errorf("local_only %q", u.LocalOnly)
	}
	want := []struct{ name, transport, locality string }{
		{"search@local-1", TransportStdio, LocalityLocal},
		{"search@cloud", TransportHTTP, LocalityRemote},
		{"search@local-3", TransportHTTP, LocalityLocal}, // loopback URL: on the device
	}
	for i, w := range want {
		tg := u.Targets[i]
		if tg.Name != w.name || tg.Transport != w.transport || tg.EffectiveLocality() != w.locality {
			t.Errorf("target %d: %s %s %s, want %+v", i, tg.Name, tg.Transport, tg.EffectiveLocality(), w)
		}
		// Each target carries the upstream's other settings.
		if tg.Timeout.D() != 5*time.Second || tg.Retries == nil || *tg.Retries != 1 || !tg.IsDeferrable("x") || !tg.IsLocalOnly("read-records") {
			t.Errorf("target %d did not inherit the upstream's settings: %+v", i, tg)
		}
	}
	if got := u.Expand(); len(got) != 3 || got[1].Headers["Authorization"] != "Bearer t" {
		t.Errorf("Expand: %+v", got)
	}
	p := c.Upstreams[1]
	if got := p.Expand(); len(got) != 1 || got[0].Name != "plain" || p.EffectiveLocality() != LocalityRemote || len(got[0].AllowPrivate) != 1 {
		t.Errorf("plain upstream: %+v %s", got, p.EffectiveLocality())
	}
	if Default().Routing.Power != PowerBalanced {
		t.Error("default power profile")
	}
	// Changing only a target's locality reconnects it (the router reads
	// it from the running upstream's configuration).
	a, b := u.Targets[1], u.Targets[1]
	b.Locality = LocalityLocal
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("locality is not in the fingerprint")
	}
}

func TestRoutingProblems(t *testing.T) {
	const up = "[[upstreams]]\nname = \"a\"\n"
	tests := []struct {
		name, src string
		want      []string
	}{
		{"transport on a routed upstream", up + "url = \"http://127.0.0.1:1/mcp\"\n[[upstreams.targets]]\ncommand = \"x\"\n",
			[]string{"upstreams[0].url: is set per target"}},
		{"bad locality", up + "[[upstreams.targets]]\ncommand = \"x\"\nlocality = \"moon\"\n",
			[]string{`upstreams[0].targets[0].locality: must be "local" or "remote", got "moon"`}},
		{"duplicate names", up + "[[upstreams.targets]]\nname = \"x\"\ncommand = \"x\"\n[[upstreams.targets]]\nname = \"x\"\ncommand = \"y\"\n",
			[]string{`upstreams[0].targets[1].name: target name "x" is also used by target 1`}},
		{"bad name", up + "[[upstreams.targets]]\nname = \"X Y\"\ncommand = \"x\"\n",
			[]string{`upstreams[0].targets[0].name: "X Y" must contain only`}},
		{"no transport", up + "[[upstreams.targets]]\nname = \"x\"\n",
			[]string{"upstreams[0].targets[0].command: one of command"}},
		{"unknown target key", up + "[[upstreams.targets]]\ncommand = \"x\"\ntimeout = \"1s\"\n",
			[]string{"upstreams[0].targets[0].timeout"}},
		{"empty targets", up + "targets = []\n", []string{"upstreams[0].targets: must list at least one target"}},
		{"targets not tables", up + "targets = [1]\n", []string{"upstreams[0].targets[0]: expected table"}},
		{"bad power", "[routing]\npower = \"turbo\"\n", []string{`routing.power: must be "performance", "balanced" or "saver", got "turbo"`}},
		{"cpu out of range", "[routing]\nmax_cpu = 1.5\n", []string{"routing.max_cpu: must be between 0.05 and 1, got 1.5"}},
		{"factor below 1", "[routing]\nlatency_factor = 0.5\n", []string{"routing.latency_factor: must be between 1 and 1000"}},
		{"cpu not a number", "[routing]\nmax_cpu = \"high\"\n", []string{"routing.max_cpu: expected number"}},
		{"unknown routing key", "[routing]\nturbo = true\n", []string{"routing.turbo"}},
		{"local_only not a list", up + "command = \"x\"\nlocal_only = \"*\"\n", []string{"upstreams[0].local_only: expected array"}},
		{"locality on a routed upstream", up + "locality = \"local\"\n[[upstreams.targets]]\ncommand = \"x\"\n",
			[]string{"upstreams[0].locality: is set per target"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := parseT(t, tt.src, nil)
			if len(ps) != len(tt.want) {
				t.Fatalf("problems %q, want %d matching %q", ps, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(ps[i], w) {
					t.Errorf("problem %q does not contain %q", ps[i], w)
				}
			}
		})
	}
}
