package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devload"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/stage/explain"
	routestage "github.com/mcpedge/mcpedge/internal/stage/route"
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
	MetaExplain = explain.MetaExplain
	// MetaRoute is the routing decision in a result's _meta.
	MetaRoute = explain.MetaRoute
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
	if in.LocalOnly == "" {
		return u, nil
	}
	for _, t := range gr.targets {
		if t.Config().EffectiveLocality() == config.LocalityLocal {
			return t, nil
		}
	}
	g.routeMetrics.refusals.WithLabelValues(gr.cfg.Name).Inc()
	return nil, &jsonrpc.Error{Code: mcpwire.CodeRoutingRefused, Message: "upstream " + gr.cfg.Name + ": " + in.LocalOnly +
		", and no target of this upstream runs on the device; the subscription was not sent anywhere"}
}

// candidates describes the group's targets now.
func (g *Gateway) candidates(gr *group) []routestage.Candidate[*upstream.Upstream] {
	out := make([]routestage.Candidate[*upstream.Upstream], 0, len(gr.targets))
	for _, t := range gr.targets {
		c := routestage.Candidate[*upstream.Upstream]{Target: t, Name: targetName(t), Local: t.Config().EffectiveLocality() == config.LocalityLocal}
		e := g.edgeOf(t)
		c.Latency = e.latency()
		switch {
		case t.Catalog().Init == nil:
			c.Down = "(not connected)"
		case e.breaker != nil:
			if st, _ := e.breaker.status(); st == "open" {
				c.Down = "(circuit breaker open)"
			}
		}
		out = append(out, c)
	}
	return out
}

// policyFor gathers what decides besides the targets: the routing
// settings, the device's load and whether the call is local-only.
func (g *Gateway) policyFor(ctx context.Context, gr *group, req mcp.Request, tool string) routestage.Input {
	cfg := g.cfg.Load()
	in := routestage.Input{Routing: cfg.Routing}
	if gr.routed() {
		in.Load = g.deviceLoad()
	}
	switch {
	case tool != "" && gr.cfg.IsLocalOnly(tool):
		in.LocalOnly = fmt.Sprintf("tool %q of upstream %s is local-only", tool, gr.cfg.Name)
	case len(gr.cfg.LocalOnly) == 1 && gr.cfg.LocalOnly[0] == "*":
		in.LocalOnly = fmt.Sprintf("upstream %s is local-only", gr.cfg.Name)
	default:
		t := tenantOf(req)
		if req == nil {
			t, _ = ctx.Value(callerTenantKey{}).(string)
		}
		if cfg.Routing.TenantLocalOnly(t) {
			in.LocalOnly = fmt.Sprintf("tenant %q is local-only", t)
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

// routeTargets is the gateway's side of the route stage
// (internal/stage/route): the targets of the call's upstream, each attempt
// held on its connection, and what the router observes.
type routeTargets struct{ g *Gateway }

// Plan implements route.Targets. c.Target is the connection whose handler
// the client called (the group's catalog source). A call resuming a
// multi-round-trip exchange the gateway holds goes back to the target
// that started it; one carrying an upstream's own requestState is routed
// like a new call: its arguments and input responses are the call's data,
// so local-only rules hold for it too, and the targets are replicas of
// one server, whose state a 2026-07-28 server must accept on any of its
// instances.
func (rt routeTargets) Plan(ctx context.Context, c *pipeline.Call) routestage.Plan[*upstream.Upstream] {
	g, u := rt.g, target(c)
	p := routestage.Plan[*upstream.Upstream]{Direct: u}
	gr := g.routeOf(u)
	if gr == nil {
		return p
	}
	p.Group = gr.cfg.Name
	if state := requestState(c.Request); state != "" {
		if cont, ours := g.conts.get(state); ours && cont != nil && groupName(cont.up) == gr.cfg.Name {
			// Resumed on the target it was issued on; another upstream's
			// continuation is routed like a new call, and runNewEra
			// refuses it.
			p.Direct = cont.up
			return p
		}
	}
	if len(gr.targets) == 0 {
		return p // being replaced by a reload
	}
	if !gr.routed() && len(gr.cfg.LocalOnly) == 0 && len(g.cfg.Load().Routing.LocalOnlyTenants) == 0 {
		// The common case: one target, nothing local-only.
		p.Candidates = []routestage.Candidate[*upstream.Upstream]{{Target: gr.targets[0], Name: targetName(gr.targets[0])}}
		p.Simple = true
		return p
	}
	tool := ""
	if c.Method == pipeline.MethodCallTool {
		tool = c.Item
	}
	p.Input = g.policyFor(ctx, gr, c.Request, tool)
	p.Input.Probe = gr.routed() && gr.calls.Add(1)%routestage.ProbeEvery == 0
	p.Candidates = g.candidates(gr)
	return p
}

// requestState is the requestState a 2026-07-28 client sent back with
// req, if any.
func requestState(req mcp.Request) string {
	switch r := req.(type) {
	case *mcp.CallToolRequest:
		return r.Params.RequestState
	case *mcp.GetPromptRequest:
		return r.Params.RequestState
	case *mcp.ReadResourceRequest:
		return r.Params.RequestState
	}
	return ""
}

// Try implements route.Targets (onTarget).
func (rt routeTargets) Try(ctx context.Context, t *upstream.Upstream, run func(context.Context, *upstream.Upstream) (mcp.Result, error)) (mcp.Result, error) {
	return onTarget(rt.g, ctx, t, run)
}

// Repeatable implements route.Targets.
func (rt routeTargets) Repeatable(c *pipeline.Call, t *upstream.Upstream) bool {
	tool := ""
	if c.Method == pipeline.MethodCallTool {
		tool = c.Item
	}
	return rt.g.safeToRepeat(t, c.Method, tool)
}

// Decided implements route.Targets: the explanation, and for a counted
// decision its metrics and logs (observeDecision).
func (rt routeTargets) Decided(ctx context.Context, group string, d routestage.Decision[*upstream.Upstream], counted bool) {
	if counted {
		rt.g.observeDecision(group, d)
	}
	if d.Refusal != "" {
		explain.From(ctx).Record(group, "", d.Factor, []string{d.Refusal})
	} else {
		explain.From(ctx).Record(group, d.First(), d.Factor, d.Reasons)
	}
}

// Tried implements route.Targets.
func (rt routeTargets) Tried(ctx context.Context, target string, err error) {
	explain.From(ctx).Attempt(target, err)
}

// FellBack implements route.Targets.
func (rt routeTargets) FellBack(ctx context.Context, c *pipeline.Call, group, from, to string, maybeSent bool, err error) {
	rt.g.routeMetrics.fallbacks.WithLabelValues(group, from, to).Inc()
	rt.g.log.Warn("routing: falling back to the next target", "upstream", group, "from", from, "to", to,
		"method", c.Method, "tool", c.Item, "maybe_sent", maybeSent, "err", err)
	explain.From(ctx).Chose(to)
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
	att := routestage.AttemptFrom(ctx)
	if att == nil {
		ctx, att = routestage.WithAttempt(ctx)
	}
	t = g.awaitReplacement(ctx, t, false)
	res, err := holding(g, ctx, t, run)
	if err == nil || errCode(err) != mcpwire.CodeUpstreamUnavailable || att.Answered.Load() || att.MayHaveRun() {
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

// observeDecision counts and logs a decision: at debug every time, at info
// when the group's first choice changed since its previous decision, so
// the log tells when and why traffic moved without a line per call.
func (g *Gateway) observeDecision(group string, d routestage.Decision[*upstream.Upstream]) {
	if d.Refusal != "" {
		g.routeMetrics.refusals.WithLabelValues(group).Inc()
		g.log.Info("routing: call refused", "upstream", group, "reason", d.Refusal)
		return
	}
	chosen := d.First()
	g.routeMetrics.decisions.WithLabelValues(group, chosen, d.Factor).Inc()
	prev, _ := g.lastChoice.Swap(group, chosen)
	if prev != nil && prev.(string) != chosen {
		g.log.Info("routing: first choice changed", "upstream", group, "from", prev, "to", chosen, "factor", d.Factor, "reasons", d.Reasons)
	} else if g.log.Enabled(context.Background(), slog.LevelDebug) {
		g.log.Debug("routing decision", "upstream", group, "target", chosen, "factor", d.Factor, "reasons", d.Reasons)
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
