// Package policy decides what each tenant may see and use: its virtual
// servers (which upstreams and tools) and its per-tool rules (by role and
// key scope), and which plan limits apply to it.
//
// Decisions are made against an in-memory snapshot of the store, because
// the gateway asks for every item of every list it serves. The snapshot is
// reloaded whenever the store's PolicyVersion changes (polled, and on
// demand through Invalidate), so a change made on any replica or with the
// CLI is in force everywhere within one poll interval.
package policy

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Source is the part of the store the engine reads.
type Source interface {
	PolicyVersion(ctx context.Context) (int64, error)
	ListTenants(ctx context.Context) ([]store.Tenant, error)
	ListVirtualServers(ctx context.Context, tenantID string) ([]store.VirtualServer, error)
	ListRules(ctx context.Context, tenantID string) ([]store.Rule, error)
	ListPlans(ctx context.Context) ([]store.Plan, error)
}

// GatewayUpstream is the name of the gateway's own tools (mcpedge__status):
// they describe every tenant's upstreams, so only operators see them.
const GatewayUpstream = "mcpedge"

// Engine answers policy questions from a snapshot.
type Engine struct {
	src   Source
	plans map[string]config.Plan
	log   *slog.Logger
	snap  atomic.Pointer[snapshot]
	kick  chan struct{}
	every atomic.Int64 // the poll interval of Run, in nanoseconds; SetPollInterval changes it
	mu    sync.Mutex   // serialises loads
	// lastCatchUp is when catchUp last reloaded (unix nanoseconds).
	lastCatchUp atomic.Int64
	// onChange runs after a load that replaced a loaded policy (OnChange).
	onChange atomic.Pointer[func()]
}

// OnChange makes fn run, on a goroutine of its own, each time a load finds
// the policy changed (not at the first load): tenants, plans, virtual
// servers, rules.
func (e *Engine) OnChange(fn func()) { e.onChange.Store(&fn) }

type snapshot struct {
	version int64
	tenants map[string]*tenantPolicy
	plans   map[string]config.Plan
}

type tenantPolicy struct {
	tenant store.Tenant
	all    bool            // some virtual server lists "*"
	ups    map[string]bool // upstreams named by some virtual server
	// tools, per upstream ("*" for virtual servers listing "*"): nil means
	// every tool; otherwise the globs of the virtual servers naming it.
	tools map[string][]string
	rules []store.Rule
}

// New returns an engine over src with the configured plans; call Load
// before use.
func New(src Source, plans map[string]config.Plan, log *slog.Logger) *Engine {
	e := &Engine{src: src, plans: plans, log: log, kick: make(chan struct{}, 1)}
	e.snap.Store(&snapshot{version: -1, tenants: map[string]*tenantPolicy{}, plans: plans})
	return e
}

// SetPlans replaces the configured plans (a configuration reload) and
// rebuilds the snapshot at once; plans defined in the store still override
// configured ones of the same name.
func (e *Engine) SetPlans(ctx context.Context, plans map[string]config.Plan) error {
	e.mu.Lock()
	e.plans = plans
	stale := *e.snap.Load()
	stale.version = -1 // the next Load rebuilds whatever the store's version
	e.snap.Store(&stale)
	e.mu.Unlock()
	return e.Load(ctx)
}

// Load reads the whole policy from the store if its version changed.
func (e *Engine) Load(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.src.PolicyVersion(ctx)
	if err != nil {
		return fmt.Errorf("reading policy version: %w", err)
	}
	if v == e.snap.Load().version {
		return nil
	}
	s := &snapshot{version: v, tenants: map[string]*tenantPolicy{}, plans: map[string]config.Plan{}}
	for k, p := range e.plans {
		s.plans[k] = p
	}
	overrides, err := e.src.ListPlans(ctx)
	if err != nil {
		return fmt.Errorf("reading plans: %w", err)
	}
	for _, o := range overrides {
		s.plans[o.Name] = config.Plan{
			Name: o.Name, KeyPerMinute: o.KeyPerMinute, KeyBurst: o.KeyBurst,
			TenantPerMinute: o.TenantPerMinute, TenantBurst: o.TenantBurst,
			IPPerMinute: o.IPPerMinute, IPBurst: o.IPBurst, MonthlyQuota: o.MonthlyQuota,
			LatticeMaxPoints: o.LatticeMaxPoints, LatticeTimeout: config.Duration(time.Duration(o.LatticeTimeoutMS) * time.Millisecond),
		}
	}
	tenants, err := e.src.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("reading tenants: %w", err)
	}
	for _, t := range tenants {
		vss, err := e.src.ListVirtualServers(ctx, t.ID)
		if err != nil {
			return fmt.Errorf("reading virtual servers of tenant %s: %w", t.Name, err)
		}
		rules, err := e.src.ListRules(ctx, t.ID)
		if err != nil {
			return fmt.Errorf("reading rules of tenant %s: %w", t.Name, err)
		}
		tp := &tenantPolicy{tenant: t, ups: map[string]bool{}, tools: map[string][]string{}, rules: rules}
		for _, vs := range vss {
			for _, u := range vs.Upstreams {
				if u == "*" {
					tp.all = true
				} else {
					tp.ups[u] = true
				}
				key := u
				prev, seen := tp.tools[key]
				switch {
				case seen && prev == nil:
					// already every tool
				case len(vs.Tools) == 0:
					tp.tools[key] = nil
				default:
					tp.tools[key] = append(slices.Clone(prev), vs.Tools...)
				}
			}
		}
		s.tenants[t.ID] = tp
	}
	prev := e.snap.Swap(s)
	if e.log != nil {
		e.log.Debug("policy loaded", "version", v, "tenants", len(tenants))
	}
	if fn := e.onChange.Load(); fn != nil && prev.version != -1 {
		go (*fn)()
	}
	return nil
}

// catchUp reloads the policy for a tenant the snapshot does not know, at
// most every catchUpEvery, so that unknown tenants cannot make every
// request query the store.
func (e *Engine) catchUp(tenantID string) (*tenantPolicy, bool) {
	now := time.Now().UnixNano()
	last := e.lastCatchUp.Load()
	if now-last < int64(catchUpEvery) || !e.lastCatchUp.CompareAndSwap(last, now) {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Load(ctx); err != nil {
		if e.log != nil {
			e.log.Warn("policy reload failed", "error", err)
		}
		return nil, false
	}
	tp, ok := e.snap.Load().tenants[tenantID]
	return tp, ok
}

const catchUpEvery = 100 * time.Millisecond

// Invalidate asks the Run loop to reload now (a change was announced).
func (e *Engine) Invalidate() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run reloads the policy every interval (cheaply: one version query) until
// ctx ends.
func (e *Engine) Run(ctx context.Context, every time.Duration) {
	e.every.CompareAndSwap(0, int64(every))
	t := time.NewTimer(time.Duration(e.every.Load()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.kick:
		}
		if err := e.Load(ctx); err != nil && ctx.Err() == nil && e.log != nil {
			e.log.Warn("policy reload failed; keeping the previous policy", "error", err)
		}
		t.Reset(time.Duration(e.every.Load()))
	}
}

// SetPollInterval changes how often Run looks in the store (a reload's
// [auth] revocation_poll): Run loads once now and then waits the new
// interval. Zero or less is ignored.
func (e *Engine) SetPollInterval(every time.Duration) {
	if every > 0 && e.every.Swap(int64(every)) != int64(every) {
		e.Invalidate()
	}
}

// Plan returns the limits of the named plan (store overrides over config);
// an unknown plan gets the "free" plan's limits, the most restrictive
// default.
func (e *Engine) Plan(name string) config.Plan {
	s := e.snap.Load()
	if p, ok := s.plans[name]; ok {
		return p
	}
	return s.plans[config.DefaultPlan]
}

// Tenant returns the tenant as of the last load.
func (e *Engine) Tenant(id string) (store.Tenant, bool) {
	tp, ok := e.snap.Load().tenants[id]
	if !ok {
		return store.Tenant{}, false
	}
	return tp.tenant, true
}

// CanonicalName is the name rules and virtual-server tool globs match: the
// upstream's configured name, two underscores, and the item's own name at
// that upstream (what /mcp shows unless the upstream sets a prefix).
func CanonicalName(upstream, name string) string { return upstream + "__" + name }

// Allowed reports whether p may see and use an item (see
// gateway.Security.Allowed for the arguments). Unknown tenants, disabled
// tenants and a nil principal get nothing.
func (e *Engine) Allowed(p *principal.Principal, upstream, kind, name string) bool {
	if p == nil {
		return false
	}
	if upstream == GatewayUpstream {
		return p.Operator && p.AtLeast(principal.RoleAdmin)
	}
	if p.Kind == principal.KindAnonymous {
		return true
	}
	tp, ok := e.snap.Load().tenants[p.TenantID]
	if !ok {
		// A credential of a tenant created since the last load (the CLI
		// or another replica made it): catch up now rather than answer
		// "nothing" until the next poll.
		tp, ok = e.catchUp(p.TenantID)
	}
	if !ok || tp.tenant.Disabled {
		return false
	}
	if !tp.all && !tp.ups[upstream] {
		return false
	}
	if kind != "tool" && kind != "prompt" {
		return true
	}
	canon := CanonicalName(upstream, name)
	if !tp.toolVisible(upstream, canon) {
		return false
	}
	if kind != "tool" {
		return true
	}
	return ruleDecision(tp.rules, p, canon)
}

// toolVisible applies the virtual servers' tool globs.
func (tp *tenantPolicy) toolVisible(upstream, canon string) bool {
	for _, key := range []string{upstream, "*"} {
		globs, ok := tp.tools[key]
		if !ok {
			continue
		}
		if globs == nil {
			return true
		}
		for _, g := range globs {
			if globMatch(g, canon) {
				return true
			}
		}
	}
	return false
}

// ruleDecision applies per-tool rules, in the store's order (priority,
// deny first): the first rule that matches the tool and applies to the
// caller decides. A tool some rule matches but none applies to is denied:
// naming a tool in a rule restricts it to whom the rules name. A tool no
// rule matches is allowed (the virtual servers already decided).
func ruleDecision(rules []store.Rule, p *principal.Principal, canon string) bool {
	matched := false
	for _, r := range rules {
		if !globMatch(r.Tool, canon) {
			continue
		}
		matched = true
		if !applies(r, p) {
			continue
		}
		return r.Effect == "allow"
	}
	return !matched
}

func applies(r store.Rule, p *principal.Principal) bool {
	if len(r.Roles) == 0 && len(r.Scopes) == 0 {
		return true
	}
	if slices.Contains(r.Roles, p.Role) {
		return true
	}
	for _, s := range r.Scopes {
		if slices.Contains(p.Scopes, s) {
			return true
		}
	}
	return false
}
