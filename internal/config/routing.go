package config

import (
	"net"
	"net/url"
	"slices"
	"strconv"
)

// Localities of an upstream target: where the server runs, as seen from
// the gateway's device.
const (
	LocalityLocal  = "local"
	LocalityRemote = "remote"
)

// Power profiles ([routing] power): how the router trades the device's own
// resources against the network.
const (
	// PowerPerformance prefers local targets whatever the device's load:
	// the device is mains-powered and has the headroom.
	PowerPerformance = "performance"
	// PowerBalanced follows the targets' order, and moves work to remote
	// targets while the device is loaded past max_cpu or max_memory.
	PowerBalanced = "balanced"
	// PowerSaver prefers remote targets, keeping work off a device on
	// battery or thermally constrained. Local-only calls still stay local.
	PowerSaver = "saver"
)

// Routing defaults and bounds.
const (
	DefaultMaxCPU        = 0.85
	DefaultMaxMemory     = 0.90
	DefaultLatencyFactor = 2.0
	// MaxTargets bounds [[upstreams.targets]] per upstream.
	MaxTargets = 16
)

// Routing is the device-wide routing policy (toml [routing]). Which target
// of an upstream serves a call is decided per call from the targets' order,
// health, measured latency and locality, the device's load, the power
// profile and data sensitivity; see docs/edge.md, "Routing".
type Routing struct {
	// Power is PowerPerformance, PowerBalanced (default) or PowerSaver.
	Power string
	// MaxCPU and MaxMemory are the device's CPU and memory use (fractions,
	// 0–1) above which balanced routing prefers remote targets (toml
	// "max_cpu", "max_memory"; defaults 0.85 and 0.90).
	MaxCPU, MaxMemory float64
	// LatencyFactor is how many times faster (by its moving average) a
	// later target must be than the preferred one to be chosen instead
	// (toml "latency_factor"; default 2, at least 1).
	LatencyFactor float64
	// LocalOnlyTenants are tenants whose calls never leave the device:
	// they go to local targets only, or fail (toml "local_only_tenants").
	LocalOnlyTenants []string
}

// DefaultRouting returns the routing policy of a file without [routing].
func DefaultRouting() Routing {
	return Routing{Power: PowerBalanced, MaxCPU: DefaultMaxCPU, MaxMemory: DefaultMaxMemory, LatencyFactor: DefaultLatencyFactor}
}

// TenantLocalOnly reports whether the tenant's calls must stay local.
func (r Routing) TenantLocalOnly(tenant string) bool {
	return tenant != "" && slices.Contains(r.LocalOnlyTenants, tenant)
}

// IsLocalOnly reports whether the upstream's tool is marked local-only
// (toml "local_only": tool names or ["*"]).
func (u Upstream) IsLocalOnly(tool string) bool {
	for _, t := range u.LocalOnly {
		if t == "*" || t == tool {
			return true
		}
	}
	return false
}

// EffectiveLocality is the upstream's (or target's) locality: the
// configured one, else inferred — child processes, WASM modules and
// built-ins run on the device, an HTTP server on a loopback address does
// too, anything else is remote.
func (u Upstream) EffectiveLocality() string {
	if u.Locality != "" {
		return u.Locality
	}
	switch u.Transport {
	case TransportHTTP, TransportSSE:
		if pu, err := url.Parse(u.URL); err == nil {
			h := pu.Hostname()
			if h == "localhost" {
				return LocalityLocal
			}
			if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
				return LocalityLocal
			}
		}
		return LocalityRemote
	default:
		return LocalityLocal
	}
}

// Expand returns the upstreams the gateway connects to for u: u itself
// when it has no targets, else one per target, each named
// "<upstream>@<target>" and carrying the upstream's other settings.
func (u Upstream) Expand() []Upstream {
	if len(u.Targets) == 0 {
		return []Upstream{u}
	}
	return u.Targets
}

// TargetKeys are the keys a [[upstreams.targets]] table may have: the
// transport fields, a name and the locality.
var targetKeys = []string{"name", "transport", "command", "args", "env", "inherit_env", "dir", "url", "headers", "allow_private", "module", "sandbox", "locality"}

// transportKeys are the upstream keys that belong in the targets when an
// upstream has targets.
var transportKeys = []string{"transport", "command", "args", "env", "inherit_env", "dir", "url", "headers", "allow_private", "module", "sandbox"}

// decodeTargets reads [[upstreams.targets]] of an upstream already decoded
// into u. Each target starts as a copy of u (so it has the upstream's
// timeouts, failure handling, cache and isolation) with the transport
// fields replaced by the target's own.
func (d *decoder) decodeTargets(t *table, u *Upstream) []upstreamMeta {
	v := t.get("targets")
	if v == nil {
		return nil
	}
	l := t.loc("targets")
	if v.kind != kArray {
		d.add(l.pos, l.field, "expected an array of tables ([[upstreams.targets]]), got %s", d.kindName(v.kind))
		return nil
	}
	if len(v.arr) == 0 {
		d.add(l.pos, l.field, "must list at least one target, or be left out")
		return nil
	}
	if len(v.arr) > MaxTargets {
		d.add(l.pos, l.field, "at most %d targets, got %d", MaxTargets, len(v.arr))
		return nil
	}
	var metas []upstreamMeta
	for i, e := range v.arr {
		f := indexField(l.field, i)
		if e.kind != kTable {
			d.add(e.pos, f, "expected table, got %s", d.kindName(e.kind))
			continue
		}
		tt := d.table(e, f)
		tg := *u
		tg.Transport, tg.Command, tg.Args, tg.Env, tg.Dir, tg.URL, tg.Headers, tg.Module = "", "", nil, nil, "", "", nil, ""
		tg.Sandbox, tg.Targets, tg.InheritEnv, tg.AllowPrivate = Sandbox{}, nil, nil, nil
		m := upstreamMeta{t: tt, unsetVars: map[string]bool{}, target: true}
		tt.str("name", &tg.TargetName)
		tt.str("locality", &tg.Locality)
		d.decodeTransportFields(tt, &tg, &m, u.Disabled)
		tt.str("module", &tg.Module)
		d.decodeSandbox(tt, &m)
		tt.unknown(targetKeys)
		u.Targets = append(u.Targets, tg)
		metas = append(metas, m)
	}
	return metas
}

// validateTargets checks an upstream's targets (after the upstream itself
// was validated) and names them "<upstream>@<target>".
func (d *decoder) validateTargets(u *Upstream, m upstreamMeta) {
	for _, k := range transportKeys {
		if _, ok := m.t.v.fields[k]; ok {
			l := m.t.loc(k)
			d.add(l.pos, l.field, "is set per target when the upstream has [[upstreams.targets]]; move it into each target")
		}
	}
	for i := range u.Targets {
		t := &u.Targets[i]
		tm := m.targets[i]
		d.validateTransport(t, tm)
		switch t.Locality {
		case "", LocalityLocal, LocalityRemote:
		default:
			l := tm.loc("locality")
			d.add(l.pos, l.field, "must be %q or %q, got %q", LocalityLocal, LocalityRemote, truncate(t.Locality, 64))
		}
	}
	count := map[string]int{}
	for _, t := range u.Targets {
		count[t.EffectiveLocality()]++
	}
	seen := map[string]int{}
	for i := range u.Targets {
		t := &u.Targets[i]
		tm := m.targets[i]
		if t.TargetName == "" {
			// Default: the locality when no other target shares it, else
			// the locality and the target's position ("remote-2").
			loc := t.EffectiveLocality()
			t.TargetName = loc
			if count[loc] > 1 {
				t.TargetName = loc + "-" + strconv.Itoa(i+1)
			}
		} else if !nameRE.MatchString(t.TargetName) || len(t.TargetName) > MaxNameLen {
			l := tm.loc("name")
			d.add(l.pos, l.field, "%q must contain only lower-case letters, digits and - (at most %d characters)", truncate(t.TargetName, 64), MaxNameLen)
		}
		if j, dup := seen[t.TargetName]; dup {
			l := tm.loc("name")
			d.add(l.pos, l.field, "target name %q is also used by target %d; names must be unique within the upstream", t.TargetName, j+1)
		}
		seen[t.TargetName] = i
		t.Name = u.Name + "@" + t.TargetName
		if t.Prefix == nil {
			// The namespace stays the upstream's, not "<upstream>@<target>".
			p := u.Name
			t.Prefix = &p
		}
	}
}

// decodeRouting reads [routing].
func (d *decoder) decodeRouting(top *table, c *Config) {
	t := d.subTable(top, "routing")
	if t == nil {
		return
	}
	r := &c.Routing
	if t.str("power", &r.Power) {
		switch r.Power {
		case PowerPerformance, PowerBalanced, PowerSaver:
		default:
			l := t.loc("power")
			d.add(l.pos, l.field, "must be %q, %q or %q, got %q", PowerPerformance, PowerBalanced, PowerSaver, truncate(r.Power, 64))
		}
	}
	d.fraction(t, "max_cpu", &r.MaxCPU, 0.05, 1)
	d.fraction(t, "max_memory", &r.MaxMemory, 0.05, 1)
	d.fraction(t, "latency_factor", &r.LatencyFactor, 1, 1000)
	if t.strList("local_only_tenants", &r.LocalOnlyTenants) {
		for i, s := range r.LocalOnlyTenants {
			if s == "" {
				l := t.loc("local_only_tenants")
				d.add(l.pos, indexField(l.field, i), "tenant id must not be empty")
			}
		}
	}
	t.unknown([]string{"power", "max_cpu", "max_memory", "latency_factor", "local_only_tenants"})
}

// fraction reads a number (integer or float) in [lo, hi].
func (d *decoder) fraction(t *table, key string, dst *float64, lo, hi float64) {
	v := t.get(key)
	if v == nil {
		return
	}
	var f float64
	switch v.kind {
	case kInt:
		f = float64(v.i)
	case kFloat:
		f = v.f
	default:
		t.typeErr(key, v, "number")
		return
	}
	if f != f || f < lo || f > hi {
		l := t.loc(key)
		d.add(l.pos, l.field, "must be between %g and %g, got %g", lo, hi, f)
		return
	}
	*dst = f
}
