package admin

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Plan sources.
const (
	PlanFromConfig = "config" // [plans.NAME] or a built-in plan
	PlanFromStore  = "store"  // an override set with PUT /api/plans/{name}
)

// PlanInfo is an effective plan: the configured one, or the store's
// override of it.
type PlanInfo struct {
	store.Plan
	// Source is PlanFromConfig or PlanFromStore.
	Source string `json:"source"`
	// Configured reports whether the configuration defines this plan
	// (deleting the override then falls back to it).
	Configured bool `json:"configured"`
	// UpdatedAt shadows Plan.UpdatedAt to leave it out for configured
	// plans, which were never updated through the API.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

func planInfo(p store.Plan, source string, configured bool) PlanInfo {
	return PlanInfo{Plan: p, Source: source, Configured: configured, UpdatedAt: p.UpdatedAt}
}

// PlanLimits are the limits PUT /api/plans/{name} sets. A limit left out
// keeps its current value (or the configured one; 0 for a new plan).
// Rates are per minute; 0 means unlimited.
type PlanLimits struct {
	KeyPerMinute     *int64 `json:"key_per_minute,omitempty"`
	KeyBurst         *int64 `json:"key_burst,omitempty"`
	TenantPerMinute  *int64 `json:"tenant_per_minute,omitempty"`
	TenantBurst      *int64 `json:"tenant_burst,omitempty"`
	IPPerMinute      *int64 `json:"ip_per_minute,omitempty"`
	IPBurst          *int64 `json:"ip_burst,omitempty"`
	MonthlyQuota     *int64 `json:"monthly_quota,omitempty"`
	LatticeMaxPoints *int64 `json:"lattice_max_points,omitempty"`
	LatticeTimeoutMS *int64 `json:"lattice_timeout_ms,omitempty"`
}

// fields pairs each limit with its name and its place in a store.Plan.
func (l *PlanLimits) fields(p *store.Plan) []struct {
	name string
	in   *int64
	out  *int64
} {
	return []struct {
		name string
		in   *int64
		out  *int64
	}{
		{"key_per_minute", l.KeyPerMinute, &p.KeyPerMinute},
		{"key_burst", l.KeyBurst, &p.KeyBurst},
		{"tenant_per_minute", l.TenantPerMinute, &p.TenantPerMinute},
		{"tenant_burst", l.TenantBurst, &p.TenantBurst},
		{"ip_per_minute", l.IPPerMinute, &p.IPPerMinute},
		{"ip_burst", l.IPBurst, &p.IPBurst},
		{"monthly_quota", l.MonthlyQuota, &p.MonthlyQuota},
		{"lattice_max_points", l.LatticeMaxPoints, &p.LatticeMaxPoints},
		{"lattice_timeout_ms", l.LatticeTimeoutMS, &p.LatticeTimeoutMS},
	}
}

func configPlan(p config.Plan) store.Plan {
	return store.Plan{
		Name: p.Name, KeyPerMinute: p.KeyPerMinute, KeyBurst: p.KeyBurst,
		TenantPerMinute: p.TenantPerMinute, TenantBurst: p.TenantBurst,
		IPPerMinute: p.IPPerMinute, IPBurst: p.IPBurst, MonthlyQuota: p.MonthlyQuota,
		LatticeMaxPoints: p.LatticeMaxPoints, LatticeTimeoutMS: p.LatticeTimeout.D().Milliseconds(),
	}
}

// effectivePlans merges the configured plans and the store's overrides,
// by name.
func (o *Ops) effectivePlans(ctx context.Context) ([]PlanInfo, error) {
	stored, err := o.st.ListPlans(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]PlanInfo{}
	for name, p := range o.plans {
		p.Name = name
		byName[name] = planInfo(configPlan(p), PlanFromConfig, true)
	}
	for _, p := range stored {
		_, configured := o.plans[p.Name]
		byName[p.Name] = planInfo(p, PlanFromStore, configured)
	}
	out := make([]PlanInfo, 0, len(byName))
	for _, p := range byName {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b PlanInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (o *Ops) plan(ctx context.Context, name string) (*PlanInfo, error) {
	ps, err := o.effectivePlans(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.Name == name {
			return &p, nil
		}
	}
	return nil, nil
}

// planExists fails with 400 unless name is a configured or stored plan.
func (o *Ops) planExists(ctx context.Context, name string) error {
	p, err := o.plan(ctx, name)
	if err != nil {
		return err
	}
	if p == nil {
		ps, _ := o.effectivePlans(ctx)
		names := make([]string, len(ps))
		for i, p := range ps {
			names[i] = p.Name
		}
		return invalid("plan %q does not exist; plans: %s", clip(name), strings.Join(names, ", "))
	}
	return nil
}

// ListPlans lists the effective plans by name: anyone who may read the
// admin API may see them (they are the gateway's price list, not a
// tenant's data).
func (o *Ops) ListPlans(ctx context.Context) (_ []PlanInfo, err error) {
	c := o.beginRead(ctx, "plan.list")
	defer c.end(&err)
	if err := c.need(read); err != nil {
		return nil, err
	}
	return o.effectivePlans(ctx)
}

// PutPlan creates or changes a plan override (operator admins only).
func (o *Ops) PutPlan(ctx context.Context, name string, l PlanLimits) (_ *PlanInfo, err error) {
	c := o.begin(ctx, "plan.put")
	defer c.end(&err)
	c.target = "plan:" + clip(name)
	if err := c.needOperator(write); err != nil {
		return nil, err
	}
	if err := validName("plan", name); err != nil {
		return nil, err
	}
	cur, err := o.plan(ctx, name)
	if err != nil {
		return nil, err
	}
	p := store.Plan{Name: name}
	if cur != nil {
		p = cur.Plan
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	for _, f := range l.fields(&p) {
		if f.in == nil {
			continue
		}
		*f.out = *f.in
		c.detail[f.name] = *f.in
	}
	if p.LatticeMaxPoints > config.MaxLatticePoints {
		return nil, invalid("lattice_max_points must be at most %d, got %d", config.MaxLatticePoints, p.LatticeMaxPoints)
	}
	if err := o.st.PutPlan(ctx, &p); err != nil {
		return nil, err
	}
	_, configured := o.plans[name]
	pi := planInfo(p, PlanFromStore, configured)
	return &pi, nil
}

// DeletePlan removes a plan override (operator admins only). A configured
// plan falls back to its configuration; a plan only the store defines can
// not be removed while tenants use it.
func (o *Ops) DeletePlan(ctx context.Context, name string) (err error) {
	c := o.begin(ctx, "plan.delete")
	defer c.end(&err)
	c.target = "plan:" + clip(name)
	if err := c.needOperator(write); err != nil {
		return err
	}
	stored, err := o.st.ListPlans(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(stored, func(p store.Plan) bool { return p.Name == name }) {
		if _, ok := o.plans[name]; ok {
			return errorf(CodeNotFound, "plan %q has no override to delete (it comes from the configuration)", clip(name))
		}
		return errorf(CodeNotFound, "plan %q not found", clip(name))
	}
	if _, configured := o.plans[name]; !configured {
		ts, err := o.st.ListTenants(ctx)
		if err != nil {
			return err
		}
		var users []string
		for _, t := range ts {
			if t.Plan == name {
				users = append(users, t.Name)
			}
		}
		if len(users) > 0 {
			return errorf(CodeConflict, "plan %q is used by tenants %s; move them to another plan first", name, strings.Join(users, ", "))
		}
	}
	return storeErr(o.st.DeletePlan(ctx, name), "plan \""+clip(name)+"\"")
}

// VirtualServerSpec is a virtual server (POST and PUT
// /api/tenants/{tenant}/virtual-servers). PUT replaces upstreams and
// tools; its name, if given, must be the current one.
type VirtualServerSpec struct {
	Name      string   `json:"name,omitempty"`
	Upstreams []string `json:"upstreams"`
	// Tools are globs on namespaced tool names; empty: all tools of the
	// upstreams.
	Tools []string `json:"tools,omitempty"`
}

func (s *VirtualServerSpec) check() error {
	if err := validUpstreams(s.Upstreams); err != nil {
		return err
	}
	if len(s.Tools) > maxListItems {
		return invalid("at most %d tool globs", maxListItems)
	}
	for _, g := range s.Tools {
		if err := validGlob("tool glob", g); err != nil {
			return err
		}
	}
	s.Upstreams, s.Tools = dedupe(s.Upstreams), dedupe(s.Tools)
	return nil
}

// ListVirtualServers lists a tenant's virtual servers by name.
func (o *Ops) ListVirtualServers(ctx context.Context, tenantRef string) (_ []store.VirtualServer, err error) {
	c := o.beginRead(ctx, "virtual_server.list")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, read)
	if err != nil {
		return nil, err
	}
	vs, err := o.st.ListVirtualServers(ctx, t.ID)
	for i := range vs {
		normVS(&vs[i])
	}
	return vs, err
}

// CreateVirtualServer adds a virtual server to a tenant.
func (o *Ops) CreateVirtualServer(ctx context.Context, tenantRef string, s VirtualServerSpec) (_ *store.VirtualServer, err error) {
	c := o.begin(ctx, "virtual_server.create")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, write)
	if err != nil {
		return nil, err
	}
	if err := c.mayWidenVS(); err != nil {
		return nil, err
	}
	c.target = "virtual_server:" + clip(s.Name)
	if err := validName("virtual server", s.Name); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	c.detail["name"], c.detail["upstreams"], c.detail["tools"] = s.Name, s.Upstreams, s.Tools
	v := &store.VirtualServer{TenantID: t.ID, Name: s.Name, Upstreams: s.Upstreams, Tools: s.Tools}
	if err := o.st.CreateVirtualServer(ctx, v); err != nil {
		return nil, storeErr(err, "virtual server \""+s.Name+"\"")
	}
	c.target = "virtual_server:" + v.ID
	normVS(v)
	return v, nil
}

// UpdateVirtualServer replaces a virtual server's upstreams and tools.
func (o *Ops) UpdateVirtualServer(ctx context.Context, tenantRef, ref string, s VirtualServerSpec) (_ *store.VirtualServer, err error) {
	c := o.begin(ctx, "virtual_server.update")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, write)
	if err != nil {
		return nil, err
	}
	if err := c.mayWidenVS(); err != nil {
		return nil, err
	}
	v, err := o.lookupVS(c, t.ID, ref)
	if err != nil {
		return nil, err
	}
	if s.Name != "" && s.Name != v.Name {
		return nil, invalid("virtual servers can not be renamed (name %q, current %q): create a new one", clip(s.Name), v.Name)
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	c.detail["name"], c.detail["upstreams"], c.detail["tools"] = v.Name, s.Upstreams, s.Tools
	v.Upstreams, v.Tools = s.Upstreams, s.Tools
	if err := o.st.UpdateVirtualServer(ctx, v); err != nil {
		return nil, storeErr(err, "virtual server \""+clip(ref)+"\"")
	}
	normVS(v)
	return v, nil
}

// DeleteVirtualServer removes a virtual server.
func (o *Ops) DeleteVirtualServer(ctx context.Context, tenantRef, ref string) (err error) {
	c := o.begin(ctx, "virtual_server.delete")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, write)
	if err != nil {
		return err
	}
	v, err := o.lookupVS(c, t.ID, ref)
	if err != nil {
		return err
	}
	c.detail["name"] = v.Name
	return storeErr(o.st.DeleteVirtualServer(ctx, t.ID, v.ID), "virtual server \""+clip(ref)+"\"")
}

// mayWidenVS checks that the caller may create or change virtual servers.
// They are what the operator sold the tenant: its own admins may narrow
// access (rules, deleting a virtual server) but never widen it.
func (c *call) mayWidenVS() error {
	if !operatorAdmin(c.p) {
		return c.forbid("only administrators of an operator tenant decide which upstreams a tenant may use; narrow access with rules instead")
	}
	return nil
}

// lookupVS finds a tenant's virtual server by id or name.
func (o *Ops) lookupVS(c *call, tenantID, ref string) (*store.VirtualServer, error) {
	c.target = "virtual_server:" + clip(ref)
	vs, err := o.st.ListVirtualServers(c.ctx, tenantID)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if v.ID == ref || v.Name == ref {
			c.target = "virtual_server:" + v.ID
			return &v, nil
		}
	}
	return nil, errorf(CodeNotFound, "virtual server %q not found", clip(ref))
}

func normVS(v *store.VirtualServer) {
	v.Upstreams, v.Tools = nonNil(v.Upstreams), nonNil(v.Tools)
}

// Rule effects.
const (
	EffectAllow = "allow"
	EffectDeny  = "deny"
)

// maxPriority bounds rule priorities (ordering needs no more).
const maxPriority = 1_000_000

// RuleSpec is a new rule (POST /api/tenants/{tenant}/rules).
type RuleSpec struct {
	Tool     string   `json:"tool"`
	Effect   string   `json:"effect"`
	Roles    []string `json:"roles,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
	Priority int      `json:"priority,omitempty"`
}

// ListRules lists a tenant's rules in evaluation order.
func (o *Ops) ListRules(ctx context.Context, tenantRef string) (_ []store.Rule, err error) {
	c := o.beginRead(ctx, "rule.list")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, read)
	if err != nil {
		return nil, err
	}
	rs, err := o.st.ListRules(ctx, t.ID)
	for i := range rs {
		normRule(&rs[i])
	}
	return rs, err
}

// CreateRule adds a tool rule to a tenant.
func (o *Ops) CreateRule(ctx context.Context, tenantRef string, s RuleSpec) (_ *store.Rule, err error) {
	c := o.begin(ctx, "rule.create")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, write)
	if err != nil {
		return nil, err
	}
	c.target = "rule"
	if err := validGlob("tool", s.Tool); err != nil {
		return nil, err
	}
	if s.Effect != EffectAllow && s.Effect != EffectDeny {
		return nil, invalid("effect must be %q or %q, got %q", EffectAllow, EffectDeny, clip(s.Effect))
	}
	if err := validRoles(s.Roles); err != nil {
		return nil, err
	}
	if err := validScopes(s.Scopes); err != nil {
		return nil, err
	}
	if s.Priority < -maxPriority || s.Priority > maxPriority {
		return nil, invalid("priority must be between %d and %d", -maxPriority, maxPriority)
	}
	r := &store.Rule{TenantID: t.ID, Tool: s.Tool, Effect: s.Effect, Roles: dedupe(s.Roles), Scopes: dedupe(s.Scopes), Priority: s.Priority}
	c.detail["tool"], c.detail["effect"], c.detail["roles"], c.detail["scopes"], c.detail["priority"] = r.Tool, r.Effect, r.Roles, r.Scopes, r.Priority
	if err := o.st.CreateRule(ctx, r); err != nil {
		return nil, storeErr(err, "rule")
	}
	c.target = "rule:" + r.ID
	normRule(r)
	return r, nil
}

// DeleteRule removes a rule by id.
func (o *Ops) DeleteRule(ctx context.Context, tenantRef, id string) (err error) {
	c := o.begin(ctx, "rule.delete")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, write)
	if err != nil {
		return err
	}
	c.target = "rule:" + clip(id)
	err = o.st.DeleteRule(ctx, t.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(CodeNotFound, "rule %q not found", clip(id))
	}
	return err
}

func normRule(r *store.Rule) { r.Roles, r.Scopes = nonNil(r.Roles), nonNil(r.Scopes) }
