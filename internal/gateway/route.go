package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devload"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
)

// Routing: an upstream with [[upstreams.targets]] is one upstream to
// clients (one catalog, one namespace, one policy name) and several
// connections inside the gateway, one per target, each named
// "<upstream>@<target>" with its own supervisor, breaker, retry budget and
// latency average. The catalog clients see is the one of the first target
// (in configuration order) that is connected. Every tools/call,
// resources/read and prompts/get is routed: decide orders the targets for
// this call, and the call goes to the first, falling back to the next when
// a target cannot be reached (see docs/edge.md, "Routing").

// Request and result _meta keys of routing.
const (
	// MetaExplain in a request's _meta (true) asks for the routing
	// decision in the result's _meta under MetaRoute.
	MetaExplain = "io.mcpedge/explain"
	// MetaRoute is the routing decision in a result's _meta.
	MetaRoute = "io.mcpedge/route"
)

// mcpwire.CodeRoutingRefused is the JSON-RPC error of a call the routing policy
// may send nowhere: it is local-only and its upstream has no local
// target. Unlike mcpwire.CodeUpstreamUnavailable it is never queued: waiting does
// not make a remote target local.

// group is one configured upstream and the connections it routes to.
type group struct {
	cfg     config.Upstream
	targets []*upstream.Upstream // in configuration order: the order of preference
	calls   atomic.Uint64        // routed calls, for probing (probeEvery)
}

// routed reports whether the group has several targets to choose from.
// (A single target may still need a decision: local-only rules may refuse
// it; routed's caller checks those separately.)
func (gr *group) routed() bool { return len(gr.targets) > 1 }

// groupName is the configured upstream a connection belongs to: target
// "search@cloud" belongs to "search"; any other connection to itself.
// Configured names cannot contain "@", so the cut is unambiguous.
func groupName(u *upstream.Upstream) string {
	n, _, _ := strings.Cut(u.Name(), "@")
	return n
}

// targetName is a connection's name within its upstream ("cloud" for
// "search@cloud"; the upstream's name for an upstream without targets).
func targetName(u *upstream.Upstream) string {
	n := u.Name()
	if _, t, ok := strings.Cut(n, "@"); ok {
		return t
	}
	return n
}

// routeOf returns u's group, nil for a connection the gateway no longer
// configures.
func (g *Gateway) routeOf(u *upstream.Upstream) *group {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.groups[groupName(u)]
}

// configured reports whether name is a configured upstream (or a
// built-in), with or without targets; a target's connection name
// ("search@cloud") is not one.
func (g *Gateway) configured(name string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.groups[name] != nil
}

// lookupLocked resolves a configured upstream name to the connection that
// serves its catalog: the upstream itself, or for an upstream with targets
// the target whose catalog is registered (nil while none is connected).
// g.mu must be held.
func (g *Gateway) lookupLocked(name string) *upstream.Upstream {
	if u := g.upstreams[name]; u != nil {
		return u
	}
	if gr := g.groups[name]; gr != nil {
		return catalogSource(gr)
	}
	return nil
}

// catalogSource is the target whose catalog the group offers: the first
// connected one in configuration order, else nil.
func catalogSource(gr *group) *upstream.Upstream {
	for _, t := range gr.targets {
		if t.Catalog().Init != nil {
			return t
		}
	}
	return nil
}

// refreshGroupLocked registers the catalog of the group's current source
// target under the group's name, or withdraws the group's items while no
// target is connected. g.mu must be held.
func (g *Gateway) refreshGroupLocked(name string) {
	gr := g.groups[name]
	if gr == nil {
		g.unregisterLocked(name)
		return
	}
	src := catalogSource(gr)
	if src == nil {
		if g.keepOfflineLocked(name) {
			return
		}
		g.unregisterLocked(name)
		return
	}
	g.registerLocked(name, src, src.Catalog())
}

// subscriptionTarget is the connection a resources/subscribe or
// unsubscribe goes to: u (the group's catalog source), unless the caller's
// calls to the group are local-only (the whole upstream, or the tenant)
// and u is remote; then the group's first local target in configuration
// order — the same one every time, so an unsubscription finds its
// subscription — or, with none, a refusal: the URI names the caller's
// data as much as a read of it does.
func (g *Gateway) subscriptionTarget(ctx context.Context, u *upstream.Upstream, req mcp.Request) (*upstream.Upstream, error) {
	gr := g.routeOf(u)
	if gr == nil || u.Config().EffectiveLocality() == config.LocalityLocal {
		return u, nil
	}
	in := g.policyFor(ctx, gr, req, "")
	if in.localOnly == "" {
		return u, nil
	}
	for _, t := range gr.targets {
		if t.Config().EffectiveLocality() == config.LocalityLocal {
			return t, nil
		}
	}
	g.routeMetrics.refusals.WithLabelValues(gr.cfg.Name).Inc()
	return nil, &jsonrpc.Error{Code: mcpwire.CodeRoutingRefused, Message: "upstream " + gr.cfg.Name + ": " + in.localOnly +
		", and no target of this upstream runs on the device; the subscription was not sent anywhere"}
}

// candidate is one target as the policy sees it at the moment of a call.
type candidate struct {
	u       *upstream.Upstream
	name    string        // the target's name
	local   bool          // runs on the device
	down    string        // why it cannot serve now; "" when it can
	latency time.Duration // moving average of answered calls; 0 unknown
}

// policyInput is what decides besides the targets themselves.
type policyInput struct {
	routing   config.Routing
	load      devload.Sample
	localOnly string // non-empty: why this call must stay on the device
	// probe asks decide to send this call to a healthy target whose
	// latency is unknown, so that it gets measured (one call in
	// probeEvery).
	probe bool
}

// probeEvery is how often a routed upstream's call goes to a target whose
// latency is unknown (never measured, or older than latencyTTL) instead
// of the preferred one: without it a target that never gets traffic could
// never show that it is faster.
const probeEvery = 10

// minLatencyGain is the least a target must save, besides being
// latency_factor times faster, to take a call from the preferred one:
// between two fast targets (3 ms against 7 ms) the difference is noise,
// and chasing it would move traffic back and forth.
const minLatencyGain = 10 * time.Millisecond

// decision is the order in which a call tries the targets, and why.
type decision struct {
	order   []candidate
	factor  string   // what decided the first choice (a metric label)
	reasons []string // every rule that changed the order, in plain words
	refusal string   // non-empty: no target may serve the call
}

// Factors: what made the first choice what it is.
const (
	factorOnly        = "only"        // a single target
	factorPriority    = "priority"    // configuration order, nothing else mattered
	factorHealth      = "health"      // a preferred target is down or its breaker open
	factorSensitivity = "sensitivity" // local-only data kept remote targets out
	factorPower       = "power"       // the power profile
	factorLoad        = "load"        // the device is loaded
	factorLatency     = "latency"     // a faster target
)

// decide orders the candidates for one call. It is a pure function of its
// inputs, so every decision can be reproduced and explained:
//
//  1. Sensitivity: a local-only call drops every remote target; with none
//     left it is refused, never sent off the device.
//  2. Preference by locality: the power profile "performance" puts local
//     targets first, "saver" remote ones; "balanced" keeps configuration
//     order unless the device's CPU or memory use is above its threshold,
//     then remote targets go first.
//  3. Latency: a target of the same locality class as the first choice
//     whose moving average is LatencyFactor times lower takes its place.
//  4. Health: targets that cannot serve now (not connected, breaker open)
//     go last, in the same order; they are still tried if all else fails,
//     and fail fast.
func decide(cands []candidate, in policyInput) decision {
	d := decision{factor: factorPriority}
	if len(cands) == 1 && in.localOnly == "" {
		d.order, d.factor = cands, factorOnly
		return d
	}
	order := slices.Clone(cands)
	first := func() string {
		if len(order) == 0 {
			return ""
		}
		return order[0].name
	}
	changed := func(before, factor, why string) {
		d.reasons = append(d.reasons, why)
		if first() != before {
			d.factor = factor
		}
	}

	if in.localOnly != "" {
		before := first()
		var dropped []string
		order = slices.DeleteFunc(order, func(c candidate) bool {
			if !c.local {
				dropped = append(dropped, c.name)
			}
			return !c.local
		})
		if len(order) == 0 {
			d.refusal = in.localOnly + ", and no target of this upstream runs on the device; the call was not sent anywhere"
			d.factor = factorSensitivity
			return d
		}
		if len(dropped) > 0 {
			changed(before, factorSensitivity, fmt.Sprintf("%s: remote targets %s excluded", in.localOnly, strings.Join(dropped, ", ")))
		}
	}

	preferRemote, why, factor := false, "", ""
	r := in.routing
	switch {
	case r.Power == config.PowerPerformance:
		why, factor = "power profile performance: local targets first", factorPower
	case r.Power == config.PowerSaver:
		preferRemote, why, factor = true, "power profile saver: remote targets first", factorPower
	case in.load.OK && in.load.CPU > r.MaxCPU:
		preferRemote, factor = true, factorLoad
		why = fmt.Sprintf("device CPU use %.0f%% is above max_cpu %.0f%%: remote targets first", in.load.CPU*100, r.MaxCPU*100)
	case in.load.OK && in.load.Memory > r.MaxMemory:
		preferRemote, factor = true, factorLoad
		why = fmt.Sprintf("device memory use %.0f%% is above max_memory %.0f%%: remote targets first", in.load.Memory*100, r.MaxMemory*100)
	}
	classOf := func(c candidate) int { // lower goes first
		if factor == "" || c.local != preferRemote {
			return 0
		}
		return 1
	}
	if factor != "" {
		before := first()
		slices.SortStableFunc(order, func(a, b candidate) int { return classOf(a) - classOf(b) })
		if first() != before {
			changed(before, factor, why)
		}
	}

	// Latency, among the healthy targets of the first choice's class.
	healthy := func(c candidate) bool { return c.down == "" }
	if i := slices.IndexFunc(order, healthy); i >= 0 && order[i].latency > 0 {
		best := i
		if in.probe {
			if j := slices.IndexFunc(order[i+1:], func(c candidate) bool {
				return healthy(c) && c.latency == 0 && classOf(c) == classOf(order[i])
			}); j >= 0 {
				before := first()
				c := order[i+1+j]
				order = slices.Delete(order, i+1+j, i+2+j)
				order = slices.Insert(order, i, c)
				changed(before, factorLatency, fmt.Sprintf("probe: target %s has no recent latency measure, this call measures it", c.name))
				best = -1
			}
		}
		for j := i + 1; best >= 0 && j < len(order); j++ {
			c := order[j]
			if healthy(c) && classOf(c) == classOf(order[i]) && c.latency > 0 &&
				float64(order[best].latency) > r.LatencyFactor*float64(c.latency) &&
				order[best].latency-c.latency >= minLatencyGain {
				best = j
			}
		}
		if best >= 0 && best != i {
			before := first()
			c := order[best]
			order = slices.Delete(order, best, best+1)
			order = slices.Insert(order, i, c)
			changed(before, factorLatency, fmt.Sprintf("target %s answers in %s on average, %s in %s (latency_factor %g)",
				c.name, roundMs(c.latency), order[i+1].name, roundMs(order[i+1].latency), r.LatencyFactor))
		}
	}

	before := first()
	var down []string
	for _, c := range order {
		if !healthy(c) {
			down = append(down, c.name+" "+c.down)
		}
	}
	slices.SortStableFunc(order, func(a, b candidate) int {
		return btoi(!healthy(a)) - btoi(!healthy(b))
	})
	if len(down) > 0 {
		changed(before, factorHealth, "unavailable, tried last: "+strings.Join(down, "; "))
	}
	d.order = order
	return d
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func roundMs(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

// candidates describes the group's targets now.
func (g *Gateway) candidates(gr *group) []candidate {
	out := make([]candidate, 0, len(gr.targets))
	for _, t := range gr.targets {
		c := candidate{u: t, name: targetName(t), local: t.Config().EffectiveLocality() == config.LocalityLocal}
		e := g.edgeOf(t)
		c.latency = e.latency()
		switch {
		case t.Catalog().Init == nil:
			c.down = "(not connected)"
		case e.breaker != nil:
			if st, _ := e.breaker.status(); st == "open" {
				c.down = "(circuit breaker open)"
			}
		}
		out = append(out, c)
	}
	return out
}

// policyFor gathers what decides besides the targets: the routing
// settings, the device's load and whether the call is local-only.
func (g *Gateway) policyFor(ctx context.Context, gr *group, req mcp.Request, tool string) policyInput {
	cfg := g.cfg.Load()
	in := policyInput{routing: cfg.Routing}
	if gr.routed() {
		in.load = g.deviceLoad()
	}
	switch {
	case tool != "" && gr.cfg.IsLocalOnly(tool):
		in.localOnly = fmt.Sprintf("tool %q of upstream %s is local-only", tool, gr.cfg.Name)
	case len(gr.cfg.LocalOnly) == 1 && gr.cfg.LocalOnly[0] == "*":
		in.localOnly = fmt.Sprintf("upstream %s is local-only", gr.cfg.Name)
	default:
		t := tenantOf(req)
		if req == nil {
			t, _ = ctx.Value(callerTenantKey{}).(string)
		}
		if cfg.Routing.TenantLocalOnly(t) {
			in.localOnly = fmt.Sprintf("tenant %q is local-only", t)
		}
	}
	return in
}

// deviceLoad is the device's load, from the sampler or a test's source.
func (g *Gateway) deviceLoad() devload.Sample {
	if f := g.loadSource.Load(); f != nil {
		return (*f)()
	}
	return g.sampler.Load()
}

// SetLoadSource replaces the device load readings the router uses (tests,
// or a platform with its own sensors). nil restores /proc.
func (g *Gateway) SetLoadSource(f func() devload.Sample) {
	if f == nil {
		g.loadSource.Store(nil)
		return
	}
	g.loadSource.Store(&f)
}

type callerTenantKey struct{}

// WithCallerTenant marks a call the gateway makes on a tenant's behalf
// without a client request ([Gateway.CallUpstream] delivering a queued
// call), so that the tenant's routing rules (local-only) still apply.
func WithCallerTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, callerTenantKey{}, tenant)
}

// attemptNote tells routed what happened to one attempt on a target: the
// gateway got a connection for the request (sent, set by begin), the
// request was handed to that connection (dispatched) and at least one
// dispatch may have reached the upstream (maybeSent, see neverSent), or
// the target answered with its own error (answered, set by end).
type attemptNote struct {
	sent, answered        atomic.Bool
	dispatched, maybeSent atomic.Bool
}

// dispatch records one dispatch of the request and how it ended (attempt,
// failure.go). A nil note records nothing.
func (n *attemptNote) dispatch(err error) {
	if n == nil {
		return
	}
	n.dispatched.Store(true)
	if !neverSent(err) {
		n.maybeSent.Store(true)
	}
}

// mayHaveRun reports whether the upstream may have received the request:
// a connection was obtained and the request was dispatched (or, if it was
// not, we cannot tell) and not every dispatch failed before sending.
func (n *attemptNote) mayHaveRun() bool {
	return n.sent.Load() && (!n.dispatched.Load() || n.maybeSent.Load())
}

type attemptKey struct{}

func attemptFrom(ctx context.Context) *attemptNote {
	n, _ := ctx.Value(attemptKey{}).(*attemptNote)
	return n
}

// routeNote collects the decision and attempts of one call for the
// caller, when it asked (MetaExplain).
type routeNote struct {
	mu sync.Mutex
	// full: the caller may see the reasons (the device's load, power,
	// which rules matched) and the attempts (the targets' errors, which
	// name hosts and addresses). In multi-tenant mode only operators may:
	// for another tenant's caller that is the device's business, not its
	// own.
	full     bool
	upstream string
	chosen   string
	factor   string
	reasons  []string
	attempts []map[string]any
	// cache is how the response cache answered: "hit" (not routed at
	// all), "stale" (routed, failed, answered with a stale result), or ""
	// (not from the cache).
	cache string
}

type routeNoteKey struct{}

// explained returns a context that collects the routing decision when the
// request's _meta asks for it, and the note to attach afterwards (nil when
// not asked). full says whether the note may show everything (see
// routeNote.full; [Gateway.explainsFully]).
func explained(ctx context.Context, meta mcp.Meta, full bool) (context.Context, *routeNote) {
	if v, _ := meta[MetaExplain].(bool); !v {
		return ctx, nil
	}
	n := &routeNote{full: full}
	return context.WithValue(ctx, routeNoteKey{}, n), n
}

// explainsFully reports whether req's caller may see a routing note in
// full: always in single-user mode, and in multi-tenant mode only an
// operator.
func (g *Gateway) explainsFully(req mcp.Request) bool {
	if g.security == nil {
		return true
	}
	p := principalOf(req)
	return p != nil && p.Operator
}

// noteCache tells the call's note, if it has one, how the response cache
// answered ("hit" or "stale").
func noteCache(ctx context.Context, how string) {
	if n, _ := ctx.Value(routeNoteKey{}).(*routeNote); n != nil {
		n.mu.Lock()
		n.cache = how
		n.mu.Unlock()
	}
}

// attach puts the note into the result's _meta under MetaRoute. A result
// answered from the cache was not routed; the note then says so. A stale
// result stands in for a call that was routed and failed: the note says
// "stale" as well as how it was routed and (when full) the failed
// attempts.
func (n *routeNote) attach(res interface {
	GetMeta() map[string]any
	SetMeta(map[string]any)
}) {
	if n == nil || res == nil || isNilResult(res) {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	v := map[string]any{}
	if n.cache == "hit" || (n.upstream == "" && n.cache == "") {
		v["cached"] = true
	} else {
		if n.upstream != "" {
			v["upstream"] = n.upstream
			v["target"] = n.chosen
			v["factor"] = n.factor
		}
		if n.full {
			v["reasons"] = slices.Clone(n.reasons)
			v["attempts"] = slices.Clone(n.attempts)
		}
		if n.cache == "stale" {
			v["stale"] = true
		}
	}
	m := res.GetMeta()
	if m == nil {
		m = map[string]any{}
	}
	m[MetaRoute] = v
	res.SetMeta(m)
}

func isNilResult(r any) bool {
	switch v := r.(type) {
	case *mcp.CallToolResult:
		return v == nil
	case *mcp.ReadResourceResult:
		return v == nil
	case *mcp.GetPromptResult:
		return v == nil
	}
	return false
}

// routed runs one call on the target the policy chooses for it, falling
// back to the next target when one cannot be reached. u is the connection
// whose handler the client called (the group's catalog source). A call
// resuming a multi-round-trip exchange the gateway holds goes back to the
// target that started it; one carrying an upstream's own requestState is
// decided like any other call.
//
// Fallback happens only when the gateway itself could not get an answer
// (-32010: breaker open, no connection, transport failure), never after
// the target's own error, a tool error or a timeout (the time is spent).
// A call that never left the gateway (see neverSent: breaker open, no
// connection, connection refused, DNS or TLS handshake failure) falls back
// at once, whatever the tool; one that may have reached the target only
// when it is safe to repeat (see safeToRepeat): a call that may have run
// is not run twice.
func routed[R any](g *Gateway, ctx context.Context, u *upstream.Upstream, req mcp.Request, method, tool, state string,
	run func(context.Context, *upstream.Upstream) (R, error)) (R, error) {
	var zero R
	plain := run
	run = func(ctx context.Context, t *upstream.Upstream) (R, error) { return onTarget(g, ctx, t, plain) }
	gr := g.routeOf(u)
	if gr == nil {
		return run(ctx, u)
	}
	if cont, ours := g.conts.get(state); state != "" && ours && cont != nil && groupName(cont.up) == gr.cfg.Name {
		// Resumed on the target it was issued on; another upstream's
		// continuation is routed like a new call, and runNewEra refuses it.
		return run(ctx, cont.up)
	}
	// Any other requestState (an upstream's own) is routed like a new
	// call: its arguments and input responses are the call's data, so
	// local-only rules hold for it too, and the targets are replicas of
	// one server, whose state a 2026-07-28 server must accept on any of
	// its instances.
	note, _ := ctx.Value(routeNoteKey{}).(*routeNote)
	if len(gr.targets) == 0 {
		return run(ctx, u) // being replaced by a reload
	}
	if !gr.routed() && len(gr.cfg.LocalOnly) == 0 && len(g.cfg.Load().Routing.LocalOnlyTenants) == 0 {
		// The common case: one target, nothing local-only.
		if note == nil {
			return run(ctx, gr.targets[0])
		}
		note.record(gr.cfg.Name, targetName(gr.targets[0]), factorOnly, nil)
		res, err := run(ctx, gr.targets[0])
		note.attempt(targetName(gr.targets[0]), err)
		return res, err
	}
	in := g.policyFor(ctx, gr, req, tool)
	in.probe = gr.routed() && gr.calls.Add(1)%probeEvery == 0
	d := decide(g.candidates(gr), in)
	g.observeDecision(gr, d)
	if d.refusal != "" {
		if note != nil {
			note.record(gr.cfg.Name, "", d.factor, []string{d.refusal})
		}
		return zero, &jsonrpc.Error{Code: mcpwire.CodeRoutingRefused, Message: "upstream " + gr.cfg.Name + ": " + d.refusal}
	}
	if note != nil {
		note.record(gr.cfg.Name, d.order[0].name, d.factor, d.reasons)
	}
	for i, c := range d.order {
		att := &attemptNote{}
		res, err := run(context.WithValue(ctx, attemptKey{}, att), c.u)
		if note != nil {
			note.attempt(c.name, err)
		}
		if err == nil || i == len(d.order)-1 {
			return res, err
		}
		if errCode(err) != mcpwire.CodeUpstreamUnavailable || att.answered.Load() {
			return res, err
		}
		if att.mayHaveRun() && !g.safeToRepeat(c.u, method, tool) {
			return res, err
		}
		next := d.order[i+1]
		g.routeMetrics.fallbacks.WithLabelValues(gr.cfg.Name, c.name, next.name).Inc()
		g.log.Warn("routing: falling back to the next target", "upstream", gr.cfg.Name, "from", c.name, "to", next.name,
			"method", method, "tool", tool, "maybe_sent", att.mayHaveRun(), "err", err)
		if note != nil {
			note.mu.Lock()
			note.chosen = next.name
			note.mu.Unlock()
		}
	}
	return zero, &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: "upstream " + gr.cfg.Name + ": no target"}
}

// onTarget runs one attempt of a call on connection t, holding t for the
// whole attempt so that a reload that replaces t lets the call finish on
// it before stopping it (see [Gateway.Apply]). When t was already
// replaced, the attempt goes to its replacement. When t is down and a
// reload's replacement for it is still connecting, the call waits for the
// replacement (awaitReplacement) — before the attempt when the gateway
// knows t is down, and after it when the attempt failed without the
// request leaving the gateway — instead of failing.
func onTarget[R any](g *Gateway, ctx context.Context, t *upstream.Upstream, run func(context.Context, *upstream.Upstream) (R, error)) (R, error) {
	att := attemptFrom(ctx)
	if att == nil {
		att = &attemptNote{}
		ctx = context.WithValue(ctx, attemptKey{}, att)
	}
	t = g.awaitReplacement(ctx, t, false)
	res, err := holding(g, ctx, t, run)
	if err == nil || errCode(err) != mcpwire.CodeUpstreamUnavailable || att.answered.Load() || att.mayHaveRun() {
		return res, err
	}
	if next := g.awaitReplacement(ctx, t, true); next != t {
		return holding(g, ctx, next, run)
	}
	return res, err
}

// holding runs run on t while holding it, or on its replacement when t is
// being retired.
func holding[R any](g *Gateway, ctx context.Context, t *upstream.Upstream, run func(context.Context, *upstream.Upstream) (R, error)) (R, error) {
	for range 3 {
		if t.Hold() {
			defer t.Release()
			return run(ctx, t)
		}
		next := g.successor(t)
		if next == nil || next == t {
			break
		}
		t = next
	}
	return run(ctx, t) // removed by a reload: it answers that it is unavailable
}

// successor is the connection that serves t's name now: t itself, its
// replacement after a reload, or nil when the name is no longer
// configured.
func (g *Gateway) successor(t *upstream.Upstream) *upstream.Upstream {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.upstreams[t.Name()]
}

// awaitReplacement returns the connection a call for t should use. While
// t is not connected (or, with down, just failed to send) and a reload's
// replacement for it is making its first connection attempt, the call
// waits for the replacement to take over — at most until ctx is done or
// t's timeout passes — instead of failing: a reload must not fail calls
// that a moment later would succeed.
func (g *Gateway) awaitReplacement(ctx context.Context, t *upstream.Upstream, down bool) *upstream.Upstream {
	var timeout <-chan time.Time
	for {
		g.mu.RLock()
		name := t.Name()
		cur, p, swapped := g.upstreams[name], g.pending[name], g.swapped
		g.mu.RUnlock()
		if cur != nil && cur != t {
			t = cur // already replaced
		}
		if p == nil || p == t || (!down && t.Catalog().Init != nil) || p.Status().Attempted {
			return t
		}
		if timeout == nil {
			tm := time.NewTimer(t.Config().Timeout.D())
			defer tm.Stop()
			timeout = tm.C
		}
		select {
		case <-swapped:
		case <-ctx.Done():
			return t
		case <-timeout:
			return t
		}
	}
}

func (n *routeNote) record(up, chosen, factor string, reasons []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.upstream, n.chosen, n.factor, n.reasons = up, chosen, factor, reasons
}

func (n *routeNote) attempt(target string, err error) {
	a := map[string]any{"target": target, "ok": err == nil}
	if err != nil {
		a["error"] = truncateMsg(err.Error(), 300)
	}
	n.mu.Lock()
	n.attempts = append(n.attempts, a)
	n.mu.Unlock()
}

// observeDecision counts and logs a decision: at debug every time, at info
// when the group's first choice changed since its previous decision, so
// the log tells when and why traffic moved without a line per call.
func (g *Gateway) observeDecision(gr *group, d decision) {
	chosen := ""
	if len(d.order) > 0 {
		chosen = d.order[0].name
	}
	if d.refusal != "" {
		g.routeMetrics.refusals.WithLabelValues(gr.cfg.Name).Inc()
		g.log.Info("routing: call refused", "upstream", gr.cfg.Name, "reason", d.refusal)
		return
	}
	g.routeMetrics.decisions.WithLabelValues(gr.cfg.Name, chosen, d.factor).Inc()
	prev, _ := g.lastChoice.Swap(gr.cfg.Name, chosen)
	if prev != nil && prev.(string) != chosen {
		g.log.Info("routing: first choice changed", "upstream", gr.cfg.Name, "from", prev, "to", chosen, "factor", d.factor, "reasons", d.reasons)
	} else if g.log.Enabled(context.Background(), slog.LevelDebug) {
		g.log.Debug("routing decision", "upstream", gr.cfg.Name, "target", chosen, "factor", d.factor, "reasons", d.reasons)
	}
}

// routeMetrics are the router's Prometheus series.
type routeMetrics struct {
	decisions *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	refusals  *prometheus.CounterVec
	latency   *prometheus.GaugeVec
}

func newRouteMetrics(reg prometheus.Registerer, g *Gateway) *routeMetrics {
	m := &routeMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpedge_route_decisions_total",
			Help: "Routing decisions of upstreams with targets, by the target chosen first and the factor that decided it."}, []string{"upstream", "target", "factor"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpedge_route_fallbacks_total",
			Help: "Calls that fell back from a target that could not be reached to the next one."}, []string{"upstream", "from", "to"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpedge_route_refusals_total",
			Help: "Local-only calls refused because no local target exists."}, []string{"upstream"}),
		latency: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mcpedge_upstream_latency_ema_seconds",
			Help: "Moving average of the latency of answered calls, per upstream connection (target)."}, []string{"upstream"}),
	}
	reg.MustRegister(m.decisions, m.fallbacks, m.refusals, m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mcpedge_device_cpu_ratio", Help: "The device's CPU use (0-1) as the router sees it; NaN where unknown."},
			func() float64 { return orNaN(g.deviceLoad(), func(s devload.Sample) float64 { return s.CPU }) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mcpedge_device_memory_ratio", Help: "The device's memory use (0-1) as the router sees it; NaN where unknown."},
			func() float64 { return orNaN(g.deviceLoad(), func(s devload.Sample) float64 { return s.Memory }) }),
	)
	return m
}

func orNaN(s devload.Sample, f func(devload.Sample) float64) float64 {
	if !s.OK {
		return math.NaN()
	}
	return f(s)
}

// latencyEMA is a moving average of answered calls' latency.
type latencyEMA struct {
	ns atomic.Int64
	at atomic.Int64 // unix nanoseconds of the last observation
}

// latencyTTL is how long a moving average is trusted without a new
// observation. A target that lost the traffic because it was slow gets no
// more calls to measure; once its average is this old it counts as
// unknown, the policy's preferred target gets the next call and is
// measured again, so a target that recovered wins its traffic back.
var latencyTTL = 10 * time.Second

// emaWeight is the weight of a new observation: about the last ten calls
// dominate, so a target that slows down is noticed within a few calls.
const emaWeight = 0.2

func (l *latencyEMA) observe(d time.Duration) time.Duration {
	for {
		old := l.ns.Load()
		n := int64(d)
		if old != 0 {
			n = old + int64(emaWeight*float64(int64(d)-old))
		}
		if n <= 0 {
			n = 1
		}
		if l.ns.CompareAndSwap(old, n) {
			l.at.Store(time.Now().UnixNano())
			return time.Duration(n)
		}
	}
}

// get is the average, 0 when unknown or older than latencyTTL.
func (l *latencyEMA) get() time.Duration {
	if time.Since(time.Unix(0, l.at.Load())) > latencyTTL {
		return 0
	}
	return time.Duration(l.ns.Load())
}

// applyGroupsLocked rebuilds the groups from the configured upstreams
// (after the connections were started or stopped) and re-registers the
// catalogs of upstreams with targets, whose source may have changed.
// g.mu must be held.
func (g *Gateway) applyGroupsLocked(want map[string]config.Upstream) {
	old := g.groups
	groups := make(map[string]*group, len(want))
	for name, w := range want {
		gr := &group{cfg: w}
		for _, t := range w.Expand() {
			if u := g.upstreams[t.Name]; u != nil {
				gr.targets = append(gr.targets, u)
			}
		}
		groups[name] = gr
	}
	g.groups = groups
	for name, gr := range old {
		if groups[name] != nil {
			continue
		}
		g.unregisterLocked(name)
		g.lastChoice.Delete(name)
		for _, v := range []*prometheus.CounterVec{g.routeMetrics.decisions, g.routeMetrics.fallbacks, g.routeMetrics.refusals,
			g.argMetrics.Refused, g.argMetrics.Unchecked, g.argMetrics.SchemaErrors} {
			v.DeletePartialMatch(prometheus.Labels{"upstream": name})
		}
		if len(gr.cfg.Targets) > 0 {
			if per := g.per[name]; per != nil {
				go closeAll(context.Background(), per)
			}
			delete(g.per, name)
		}
	}
	for name, gr := range groups {
		if o := old[name]; len(gr.cfg.Targets) > 0 || (o != nil && len(o.cfg.Targets) > 0) {
			g.refreshGroupLocked(name)
		}
	}
	g.restoreCatalogsLocked()
}
