package admin

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Audit actions of the admin layer besides the per-object ones
// ("tenant.create", "user.update", "key.revoke", …).
const (
	// ActionDenied records an attempt on another tenant's objects (or on
	// a tenant that does not exist), which the caller sees as 404.
	ActionDenied = "authz.denied"
)

// Outcomes of audit entries.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeError  = "error"
)

type access int

const (
	read access = iota
	write
)

// canRead: viewers and up, with admin:read (or admin:write, which
// includes it: a caller allowed to change something may see it).
func canRead(p *principal.Principal) bool {
	return p.AtLeast(principal.RoleViewer) && (p.HasScope(principal.ScopeAdminRead) || p.HasScope(principal.ScopeAdminWrite))
}

// canWrite: admins and owners, with admin:write.
func canWrite(p *principal.Principal) bool {
	return p.AtLeast(principal.RoleAdmin) && p.HasScope(principal.ScopeAdminWrite)
}

// operatorAdmin: an admin or owner of an operator tenant, who administers
// every tenant (within what its scopes allow).
func operatorAdmin(p *principal.Principal) bool {
	return p != nil && p.Operator && p.AtLeast(principal.RoleAdmin)
}

// call is one Ops call in progress: who is calling, what they attempt,
// and the facts its audit entry will carry. Every method starts one with
// begin and ends it with a deferred c.end(&err).
type call struct {
	o      *Ops
	ctx    context.Context
	p      *principal.Principal
	action string
	// read calls are audited only when refused.
	read bool
	// credsAudit: the Credentials record this call's success themselves.
	credsAudit bool
	tenantID   string
	target     string
	detail     map[string]any
}

func (o *Ops) begin(ctx context.Context, action string) *call {
	return &call{o: o, ctx: ctx, p: principal.From(ctx), action: action, detail: map[string]any{}}
}

func (o *Ops) beginRead(ctx context.Context, action string) *call {
	c := o.begin(ctx, action)
	c.read = true
	return c
}

var errUnauthenticated = &Error{Code: CodeUnauthenticated, Message: "authentication required: send an API key or access token as a Bearer credential"}

// authenticated fails unless there is a caller.
func (c *call) authenticated() error {
	if c.p == nil {
		return errUnauthenticated
	}
	return nil
}

func (c *call) forbid(format string, args ...any) error {
	return errorf(CodeForbidden, format, args...)
}

// need checks the caller's right to read or write in its own scope.
func (c *call) need(acc access) error {
	if err := c.authenticated(); err != nil {
		return err
	}
	switch {
	case acc == read && !canRead(c.p):
		if !c.p.HasScope(principal.ScopeAdminRead) {
			return c.forbid("this credential is limited to scopes that do not include %s", principal.ScopeAdminRead)
		}
		return c.forbid("reading the admin API needs the viewer role or stronger")
	case acc == write && !canWrite(c.p):
		if !c.p.HasScope(principal.ScopeAdminWrite) {
			return c.forbid("this credential is limited to scopes that do not include %s", principal.ScopeAdminWrite)
		}
		return c.forbid("changing this needs the admin role or stronger (you are %s)", c.p.Role)
	}
	return nil
}

// needOperator checks that the caller administers the whole gateway.
func (c *call) needOperator(acc access) error {
	if err := c.need(acc); err != nil {
		return err
	}
	if !operatorAdmin(c.p) {
		return c.forbid("only administrators of an operator tenant may do this")
	}
	return nil
}

// needOwner checks that the caller is an owner, for changes to owners.
func (c *call) needOwner(what string) error {
	if c.p.Role != principal.RoleOwner {
		return c.forbid("only owners may %s", what)
	}
	return nil
}

// mayGrant checks that a credential of this role and these scopes gives
// nothing the caller does not have: its role is not above the caller's,
// and a scoped caller only hands out subsets of its own scopes.
func (c *call) mayGrant(role string, scopes []string) error {
	if principal.RoleRank(role) > principal.RoleRank(c.p.Role) {
		if role == principal.RoleOwner {
			return c.needOwner("create or manage owner keys")
		}
		return c.forbid("you can not hand out role %s, which is above your own (%s)", role, c.p.Role)
	}
	if len(c.p.Scopes) > 0 {
		if len(scopes) == 0 {
			return c.forbid("your credential is limited to scopes, so the keys you manage must list scopes too (a subset of %v)", c.p.Scopes)
		}
		for _, s := range scopes {
			if !slices.Contains(c.p.Scopes, s) {
				return c.forbid("scope %q is not one of your own scopes %v", s, c.p.Scopes)
			}
		}
	}
	return nil
}

// tenant resolves ref (an id or a name) to a tenant the caller may act on
// with acc. A tenant that is not the caller's, unless the caller is an
// operator admin, is answered exactly like one that does not exist, and
// the attempt is audited as authz.denied.
func (c *call) tenant(ref string, acc access) (*store.Tenant, error) {
	if err := c.authenticated(); err != nil {
		return nil, err
	}
	t, err := c.o.lookupTenant(c.ctx, ref)
	if err != nil && !IsCode(err, CodeNotFound) {
		return nil, err
	}
	if t == nil || (t.ID != c.p.TenantID && !operatorAdmin(c.p)) {
		c.target = "tenant:" + clip(ref)
		if t == nil && operatorAdmin(c.p) {
			return nil, errorf(CodeNotFound, "tenant %q not found", clip(ref))
		}
		return nil, c.denyElsewhere("tenant %q not found", clip(ref))
	}
	c.tenantID = t.ID
	if err := c.need(acc); err != nil {
		return nil, err
	}
	return t, nil
}

// denyElsewhere audits an attempt aimed outside the caller's reach and
// returns the 404 the caller sees.
func (c *call) denyElsewhere(format string, args ...any) error {
	c.record(&store.AuditEntry{
		TenantID: c.p.TenantID,
		Action:   ActionDenied,
		Target:   c.target,
		Outcome:  OutcomeDenied,
	}, map[string]any{"attempted": c.action})
	e := errorf(CodeNotFound, format, args...)
	e.audited = true
	return e
}

// end records the call's outcome in the audit log. Successful reads are
// not recorded; neither is a call without a caller (the authenticator
// audits those) nor one already recorded as authz.denied.
func (c *call) end(errp *error) {
	err := *errp
	outcome := OutcomeOK
	if err != nil {
		e := AsError(err)
		switch {
		case e.audited, e.Code == CodeUnauthenticated:
			return
		case e.Code == CodeForbidden:
			outcome = OutcomeDenied
			c.detail["reason"] = e.Message
		default:
			outcome = OutcomeError
			c.detail["error"] = e.Code
			if e.Code == CodeInternal || e.Code == CodeUnavailable {
				c.o.log.Error("admin operation failed", "action", c.action, "target", c.target, "err", err)
			}
		}
	}
	if (c.read || c.credsAudit) && outcome == OutcomeOK {
		return
	}
	tenantID := c.tenantID
	if outcome != OutcomeOK && tenantID == "" {
		tenantID = c.p.TenantID
	}
	c.record(&store.AuditEntry{TenantID: tenantID, Action: c.action, Target: c.target, Outcome: outcome}, c.detail)
}

// record fills in the actor and time and hands e to the audit log.
func (c *call) record(e *store.AuditEntry, detail map[string]any) {
	if c.o.audit == nil || c.p == nil {
		return
	}
	e.Time = c.o.now().UTC()
	e.Actor = c.p.ID
	e.ActorKind = c.p.Kind
	if e.ActorKind == "" {
		e.ActorKind = principal.KindAnonymous
	}
	e.ClientIP = ClientIPFrom(c.ctx)
	if len(detail) > 0 {
		if b, err := json.Marshal(detail); err == nil {
			e.Detail = b
		}
	}
	// The audit entry must be written even when the caller's request was
	// canceled halfway: the change may have happened.
	c.o.audit.Record(context.WithoutCancel(c.ctx), e)
}

// lookupTenant finds a tenant by id, then by name.
func (o *Ops) lookupTenant(ctx context.Context, ref string) (*store.Tenant, error) {
	if ref == "" {
		return nil, errorf(CodeNotFound, "tenant \"\" not found")
	}
	t, err := o.st.GetTenant(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		t, err = o.st.GetTenantByName(ctx, ref)
	}
	if err != nil {
		return nil, storeErr(err, "tenant \""+clip(ref)+"\"")
	}
	return t, nil
}
