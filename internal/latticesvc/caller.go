package latticesvc

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/lattice"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Who is calling. Every Service method takes the caller from its context:
// principal.From(ctx) — which the gateway attaches to REST requests before
// the handler runs, and which the MCP tools set from the call's
// "io.mcpedge/principal" _meta (principal.FromMeta) — or, without
// one, Options.DefaultTenant. The tenant scopes stored lattices; the plan
// selects the limits.

// caller is who one operation runs for.
type caller struct {
	p      *principal.Principal // nil in single-user mode
	tenant string               // p's tenant, else Options.DefaultTenant
	face   string               // "mcp" or "rest" ("" for Go callers), for the audit log
}

type faceKey struct{}

// withFace records which face (mcp, rest) an operation came through.
func withFace(ctx context.Context, face string) context.Context {
	return context.WithValue(ctx, faceKey{}, face)
}

func (s *Service) caller(ctx context.Context) caller {
	c := caller{p: principal.From(ctx), tenant: s.defaultTenant}
	c.face, _ = ctx.Value(faceKey{}).(string)
	if c.p != nil && c.p.TenantID != "" {
		c.tenant = c.p.TenantID
	}
	return c
}

func (c caller) plan() string {
	if c.p == nil {
		return ""
	}
	return c.p.Plan
}

// mcpContext returns ctx carrying the principal the gateway put in the
// call's _meta (the gateway strips any value a client sends), if any.
func mcpContext(ctx context.Context, req *mcp.CallToolRequest) context.Context {
	if req != nil && req.Params != nil {
		if pm := principal.FromMeta(req.Params.Meta); pm != nil {
			ctx = principal.With(ctx, &principal.Principal{
				Kind: kindOf(pm), ID: pm.ID, TenantID: pm.TenantID, TenantName: pm.Tenant,
				Plan: pm.Plan, Operator: pm.Operator, Role: pm.Role,
			})
		}
	}
	return withFace(ctx, "mcp")
}

// kindOf is the principal's kind: as the gateway says, or, from an older
// gateway that did not say, recognisable OIDC ids ("oidc:<sub>") only.
func kindOf(pm *principal.Meta) string {
	if pm.Kind != "" {
		return pm.Kind
	}
	if strings.HasPrefix(pm.ID, "oidc:") {
		return principal.KindOIDC
	}
	return ""
}

// tenantFor returns the tenant whose stored lattices c may use, or why it
// may use none.
func (s *Service) tenantFor(c caller) (string, error) {
	if c.tenant == "" && s.persisted {
		return "", errorf(CodeTenantRequired, "stored lattices belong to a tenant, and this call has none (no authenticated caller, and no default tenant is configured); pass the lattice inline instead")
	}
	if s.importErr != nil && c.tenant == s.importTenant {
		return "", s.importErr
	}
	return c.tenant, nil
}

// auditNotFound reports a lookup by id that found nothing in the caller's
// tenant: an id of another tenant answers exactly like one that does not
// exist, so this record is where probing for ids shows.
func (s *Service) auditNotFound(ctx context.Context, c caller, op, id string) {
	if s.audit == nil {
		return
	}
	e := &store.AuditEntry{
		Time: time.Now().UTC(), TenantID: c.tenant,
		Action: "lattice.not_found", Target: id, Outcome: "denied",
	}
	if c.p != nil {
		e.Actor, e.ActorKind = c.p.ID, c.p.Kind
	} else {
		e.ActorKind = principal.KindAnonymous
	}
	detail := map[string]string{"operation": op}
	if c.face != "" {
		detail["via"] = c.face
	}
	e.Detail, _ = json.Marshal(detail)
	s.audit(context.WithoutCancel(ctx), e)
}

// callLimits are the limits of one operation: the configured ones with the
// caller's plan applied, and the names of where the plan-dependent ones
// came from, for error messages.
type callLimits struct {
	Limits
	plan        string // the caller's plan, "" without one
	pointsFrom  string // "lattice.max_points" or "plans.NAME.lattice_max_points"
	timeoutFrom string // "lattice.operation_timeout" or "plans.NAME.lattice_timeout"
}

// limitsFor returns the limits for c.
func (s *Service) limitsFor(c caller) callLimits {
	cl := callLimits{Limits: s.Limits(), plan: c.plan(), pointsFrom: "lattice.max_points", timeoutFrom: "lattice.operation_timeout"}
	if cl.plan == "" || s.planLimits == nil {
		return cl
	}
	pl := s.planLimits(cl.plan)
	if pl.MaxPoints > 0 {
		cl.MaxPoints = min(pl.MaxPoints, lattice.MaxTotalPoints)
		cl.pointsFrom = "plans." + cl.plan + ".lattice_max_points"
	}
	if pl.OperationTimeout > 0 {
		cl.OperationTimeout = pl.OperationTimeout
		cl.timeoutFrom = "plans." + cl.plan + ".lattice_timeout"
	}
	return cl
}

// tooManyPoints says which limit a lattice passed and, with a plan, whose.
func (cl callLimits) tooManyPoints(msg string) string {
	if cl.plan == "" {
		return fmt.Sprintf("%s (%s is %d)", msg, cl.pointsFrom, cl.MaxPoints)
	}
	return fmt.Sprintf("%s: too many points for the plan %q, which allows at most %d (%s)", msg, cl.plan, cl.MaxPoints, cl.pointsFrom)
}

// timeout says which time limit an operation passed and, with a plan,
// whose.
func (cl callLimits) timeout() string {
	if cl.plan == "" {
		return fmt.Sprintf("the limit of %s (%s)", cl.OperationTimeout, cl.timeoutFrom)
	}
	return fmt.Sprintf("the limit of %s for the plan %q (%s)", cl.OperationTimeout, cl.plan, cl.timeoutFrom)
}
