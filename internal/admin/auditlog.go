package admin

import (
	"context"
	"time"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Audit listing bounds.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditQuery selects audit entries (GET /api/audit). Zero fields do not
// filter.
type AuditQuery struct {
	// Tenant is a tenant id or name. Callers who do not administer the
	// whole gateway only ever see their own tenant's entries.
	Tenant string
	Actor  string
	// Action is exact, or a prefix ending in "." such as "key.".
	Action string
	Since  time.Time
	Until  time.Time
	// After returns entries with a greater seq: pass the last seq of one
	// page to get the next.
	After int64
	// Limit defaults to DefaultAuditLimit, at most MaxAuditLimit.
	Limit int
}

// flusher is implemented by audit loggers that buffer (*audit.Logger), so
// that a listing shows what was just recorded.
type flusher interface {
	Flush(ctx context.Context) error
}

// ListAudit returns audit entries in seq order. Reading the audit log
// needs the admin role: it tells who did what, from where.
func (o *Ops) ListAudit(ctx context.Context, q AuditQuery) (_ []store.AuditEntry, err error) {
	c := o.beginRead(ctx, "audit.list")
	defer c.end(&err)
	if err := c.need(read); err != nil {
		return nil, err
	}
	f := store.AuditFilter{Actor: q.Actor, Action: q.Action, Since: q.Since, Until: q.Until, AfterSeq: q.After, Limit: q.Limit}
	switch {
	case q.Tenant != "":
		t, err := c.tenant(q.Tenant, read)
		if err != nil {
			return nil, err
		}
		f.TenantID = t.ID
	case !operatorAdmin(c.p):
		f.TenantID = c.p.TenantID
	}
	if !c.p.AtLeast(principal.RoleAdmin) {
		return nil, c.forbid("reading the audit log needs the admin role or stronger (you are %s)", c.p.Role)
	}
	switch {
	case f.Limit < 0:
		return nil, invalid("limit must not be negative")
	case f.Limit == 0:
		f.Limit = DefaultAuditLimit
	case f.Limit > MaxAuditLimit:
		f.Limit = MaxAuditLimit
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return nil, invalid("until is before since")
	}
	if fl, ok := o.audit.(flusher); ok {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = fl.Flush(fctx) // best effort: a slow store still answers
		cancel()
	}
	es, err := o.st.ListAudit(ctx, f)
	return nonNil(es), err
}

// VerifyAudit walks the whole audit chain (audit.Verify) and reports
// whether it is intact. The chain spans every tenant, so only
// administrators of an operator tenant may run it, as on the command line.
func (o *Ops) VerifyAudit(ctx context.Context) (_ audit.Report, err error) {
	c := o.beginRead(ctx, "audit.verify")
	defer c.end(&err)
	if err := c.needOperator(read); err != nil {
		return audit.Report{}, err
	}
	if fl, ok := o.audit.(flusher); ok {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = fl.Flush(fctx)
		cancel()
	}
	return audit.Verify(ctx, o.st)
}
