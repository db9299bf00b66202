package admin

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// DefaultVirtualServer is the virtual server every new tenant gets.
const DefaultVirtualServer = "all"

// Me describes the caller (GET /api/me).
type Me struct {
	Kind       string    `json:"kind"`
	ID         string    `json:"id"`
	UserID     string    `json:"user_id,omitempty"`
	KeyID      string    `json:"key_id,omitempty"`
	TenantID   string    `json:"tenant_id"`
	TenantName string    `json:"tenant_name"`
	Plan       string    `json:"plan"`
	Operator   bool      `json:"operator"`
	Role       string    `json:"role"`
	Scopes     []string  `json:"scopes"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
}

// Me returns who the caller is. It needs no scope: any credential may
// learn what it is.
func (o *Ops) Me(ctx context.Context) (*Me, error) {
	p := principal.From(ctx)
	if p == nil {
		return nil, errUnauthenticated
	}
	return &Me{
		Kind: p.Kind, ID: p.ID, UserID: p.UserID, KeyID: p.KeyID,
		TenantID: p.TenantID, TenantName: p.TenantName, Plan: p.Plan, Operator: p.Operator,
		Role: p.Role, Scopes: nonNil(p.Scopes), ExpiresAt: p.ExpiresAt,
	}, nil
}

// TenantSpec is a new tenant (POST /api/tenants).
type TenantSpec struct {
	Name string `json:"name"`
	// Plan defaults to config.DefaultPlan.
	Plan        string   `json:"plan,omitempty"`
	IPAllowlist []string `json:"ip_allowlist,omitempty"`
	// Upstreams of the tenant's first virtual server, "all"; default
	// ["*"], every upstream.
	Upstreams []string `json:"upstreams,omitempty"`
	// Operator makes the tenant administer the whole gateway; only owners
	// of an operator tenant may create one.
	Operator bool `json:"operator,omitempty"`
}

// TenantPatch changes a tenant (PATCH /api/tenants/{tenant}); nil fields
// stay as they are.
type TenantPatch struct {
	Plan        *string   `json:"plan,omitempty"`
	IPAllowlist *[]string `json:"ip_allowlist,omitempty"`
	Disabled    *bool     `json:"disabled,omitempty"`
}

// ListTenants returns every tenant to operator admins, and the caller's
// own tenant to everyone else who may read.
func (o *Ops) ListTenants(ctx context.Context) (_ []store.Tenant, err error) {
	c := o.beginRead(ctx, "tenant.list")
	defer c.end(&err)
	if err := c.need(read); err != nil {
		return nil, err
	}
	if operatorAdmin(c.p) {
		ts, err := o.st.ListTenants(ctx)
		for i := range ts {
			normTenant(&ts[i])
		}
		return ts, err
	}
	t, err := o.st.GetTenant(ctx, c.p.TenantID)
	if err != nil {
		return nil, err
	}
	normTenant(t)
	return []store.Tenant{*t}, nil
}

// GetTenant returns one tenant by id or name.
func (o *Ops) GetTenant(ctx context.Context, ref string) (_ *store.Tenant, err error) {
	c := o.beginRead(ctx, "tenant.get")
	defer c.end(&err)
	t, err := c.tenant(ref, read)
	if err != nil {
		return nil, err
	}
	normTenant(t)
	return t, nil
}

// CreateTenant creates a tenant and its virtual server "all" (operator
// admins only).
func (o *Ops) CreateTenant(ctx context.Context, s TenantSpec) (_ *store.Tenant, err error) {
	c := o.begin(ctx, "tenant.create")
	defer c.end(&err)
	c.target = "tenant:" + clip(s.Name)
	if err := c.needOperator(write); err != nil {
		return nil, err
	}
	if s.Operator {
		if err := c.needOwner("create operator tenants"); err != nil {
			return nil, err
		}
	}
	if err := validName("tenant", s.Name); err != nil {
		return nil, err
	}
	if s.Plan == "" {
		s.Plan = config.DefaultPlan
	}
	if err := o.planExists(ctx, s.Plan); err != nil {
		return nil, err
	}
	allow, err := validCIDRs(s.IPAllowlist)
	if err != nil {
		return nil, err
	}
	if len(s.Upstreams) == 0 {
		s.Upstreams = []string{"*"}
	}
	if err := validUpstreams(s.Upstreams); err != nil {
		return nil, err
	}
	c.detail["name"], c.detail["plan"], c.detail["upstreams"], c.detail["operator"] = s.Name, s.Plan, dedupe(s.Upstreams), s.Operator
	if len(allow) > 0 {
		c.detail["ip_allowlist"] = allow
	}
	t := &store.Tenant{Name: s.Name, Plan: s.Plan, Operator: s.Operator, IPAllowlist: allow}
	if err := o.st.CreateTenant(ctx, t); err != nil {
		return nil, storeErr(err, "tenant \""+s.Name+"\"")
	}
	c.tenantID, c.target = t.ID, "tenant:"+t.ID
	vs := &store.VirtualServer{TenantID: t.ID, Name: DefaultVirtualServer, Upstreams: dedupe(s.Upstreams), Tools: []string{}}
	if err := o.st.CreateVirtualServer(ctx, vs); err != nil {
		// Without a virtual server the tenant could see nothing; do not
		// leave it half made.
		if derr := o.st.DeleteTenant(context.WithoutCancel(ctx), t.ID); derr != nil {
			o.log.Error("removing a half-created tenant", "tenant", t.Name, "err", derr)
		}
		return nil, err
	}
	normTenant(t)
	return t, nil
}

// UpdateTenant changes a tenant's plan, IP allowlist or disabled flag.
// Only operator admins change plans and disable tenants; a tenant's own
// admins may change its IP allowlist, but not to one that excludes their
// own address.
func (o *Ops) UpdateTenant(ctx context.Context, ref string, patch TenantPatch) (_ *store.Tenant, err error) {
	c := o.begin(ctx, "tenant.update")
	defer c.end(&err)
	t, err := c.tenant(ref, write)
	if err != nil {
		return nil, err
	}
	c.target = "tenant:" + t.ID
	if (patch.Plan != nil || patch.Disabled != nil) && !operatorAdmin(c.p) {
		return nil, c.forbid("only administrators of an operator tenant may change a tenant's plan or disable it")
	}
	var changed []string
	if patch.Plan != nil {
		if err := o.planExists(ctx, *patch.Plan); err != nil {
			return nil, err
		}
		t.Plan = *patch.Plan
		c.detail["plan"] = t.Plan
		changed = append(changed, "plan")
	}
	if patch.IPAllowlist != nil {
		allow, err := validCIDRs(*patch.IPAllowlist)
		if err != nil {
			return nil, err
		}
		if t.ID == c.p.TenantID && !allows(allow, ClientIPFrom(ctx)) {
			return nil, errorf(CodeConflict, "the new ip_allowlist does not include your own address %s: you would lock yourself out", ClientIPFrom(ctx))
		}
		t.IPAllowlist = allow
		c.detail["ip_allowlist"] = allow
		changed = append(changed, "ip_allowlist")
	}
	if patch.Disabled != nil {
		if *patch.Disabled && t.ID == c.p.TenantID {
			return nil, errorf(CodeConflict, "you can not disable the tenant you are signed in with")
		}
		t.Disabled = *patch.Disabled
		c.detail["disabled"] = t.Disabled
		changed = append(changed, "disabled")
	}
	if len(changed) == 0 {
		return nil, invalid("nothing to change: give plan, ip_allowlist or disabled")
	}
	c.detail["changed"] = changed
	if err := o.st.UpdateTenant(ctx, t); err != nil {
		return nil, storeErr(err, "tenant \""+clip(ref)+"\"")
	}
	normTenant(t)
	return t, nil
}

// DeleteTenant removes a tenant and everything it owns except its audit
// entries (operator admins only; never the caller's own tenant).
func (o *Ops) DeleteTenant(ctx context.Context, ref string) (err error) {
	c := o.begin(ctx, "tenant.delete")
	defer c.end(&err)
	t, err := c.tenant(ref, write)
	if err != nil {
		return err
	}
	c.target = "tenant:" + t.ID
	c.detail["name"] = t.Name
	if !operatorAdmin(c.p) {
		return c.forbid("only administrators of an operator tenant may delete tenants")
	}
	if t.ID == c.p.TenantID {
		return errorf(CodeConflict, "you can not delete the tenant you are signed in with")
	}
	// The check and the delete are not one transaction: two operators
	// removing the last two operator tenants at the same moment could
	// both pass. Both would be operator owners acting on purpose, and
	// mcpedge bootstrap recovers such a store (never silently).
	if last, err := o.lastOperator(ctx, t); err != nil {
		return err
	} else if last {
		return errLastOperator(t.Name)
	}
	return storeErr(o.st.DeleteTenant(ctx, t.ID), "tenant \""+clip(ref)+"\"")
}

// allows reports whether ip is inside allowlist (empty: everything). An
// unknown address ("", as from the command line) is allowed.
func allows(allowlist []string, ip string) bool {
	if len(allowlist) == 0 || ip == "" {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return true
	}
	a = a.Unmap()
	return slices.ContainsFunc(allowlist, func(s string) bool {
		p, err := netip.ParsePrefix(s)
		return err == nil && p.Contains(a)
	})
}

func normTenant(t *store.Tenant) { t.IPAllowlist = nonNil(t.IPAllowlist) }

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
