package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Input checked where it enters: the REST handlers and the command line
// both call these, so that a mistake gets the same message from either.

// KnownScopesText lists the scopes with a meaning of their own, for help
// texts and messages: "mcp:list, mcp:call, admin:read, admin:write".
func KnownScopesText() string { return strings.Join(principal.KnownScopes, ", ") }

// validKeyScopes checks the scopes a key is limited to. Beyond the
// syntax (validScopes): a scope under mcp: or admin: must be a known one,
// and a key limited to scopes must have at least one known scope, since
// one limited to scopes only per-tool rules read (such as "team:ml")
// could do nothing at all.
func validKeyScopes(scopes []string) error {
	if err := validScopes(scopes); err != nil {
		return err
	}
	if len(scopes) == 0 {
		return nil
	}
	known := false
	for _, s := range scopes {
		if slices.Contains(principal.KnownScopes, s) {
			known = true
			continue
		}
		// A scope under the gateway's own prefixes that is not a known
		// one is a typo.
		for _, p := range []string{"mcp:", "admin:"} {
			if strings.HasPrefix(s, p) {
				return invalid("scope %q is not one of %s", clip(s), KnownScopesText())
			}
		}
	}
	if !known {
		return invalid("scopes %s grant nothing: a key limited to scopes needs at least one of %s (other scopes only narrow per-tool rules); give none for every right of the role",
			clip(strings.Join(scopes, ",")), KnownScopesText())
	}
	return nil
}

// UnknownUpstreams returns the names in requested that configured does
// not have ("*" is every upstream). Nil configured means unknown (no
// check).
func UnknownUpstreams(requested, configured []string) []string {
	if configured == nil {
		return nil
	}
	var out []string
	for _, u := range requested {
		if u != "*" && !slices.Contains(configured, u) && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// upstreamWarning says which requested upstreams the configuration does
// not define: accepted (configuration and tenants change independently),
// but they serve nothing until they are configured.
func upstreamWarning(unknown, configured []string) string {
	if len(unknown) == 0 {
		return ""
	}
	have := "none"
	if len(configured) > 0 {
		have = strings.Join(configured, ", ")
	}
	s := "s"
	if len(unknown) == 1 {
		s = ""
	}
	return fmt.Sprintf("upstream%s %s %s not configured (configured: %s): the virtual server serves nothing from %s until %s configured",
		s, strings.Join(unknown, ", "), map[bool]string{true: "is", false: "are"}[len(unknown) == 1], have,
		map[bool]string{true: "it", false: "them"}[len(unknown) == 1], map[bool]string{true: "it is", false: "they are"}[len(unknown) == 1])
}

// upstreamWarnings is the warning for requested upstreams, if any.
func (o *Ops) upstreamWarnings(requested []string) []string {
	if o.upstreams == nil {
		return nil
	}
	configured := o.upstreams()
	if configured == nil {
		configured = []string{}
	}
	if w := upstreamWarning(UnknownUpstreams(requested, configured), configured); w != "" {
		return []string{w}
	}
	return nil
}

// CreatedTenant is a new tenant with the warnings about what it asked
// for (POST /api/tenants answers with it).
type CreatedTenant struct {
	*store.Tenant
	// Warnings are accepted mistakes, such as upstream names the
	// configuration does not define.
	Warnings []string `json:"warnings,omitempty"`
}

// SavedVirtualServer is a virtual server as created or updated, with the
// warnings about what it asked for (upstream names the configuration does
// not define): POST and PUT of /api/tenants/{tenant}/virtual-servers answer
// with it.
type SavedVirtualServer struct {
	*store.VirtualServer
	Warnings []string `json:"warnings,omitempty"`
}

// CreateTenantWarn is CreateTenant, and also returns warnings about what
// was accepted (upstream names not configured).
func (o *Ops) CreateTenantWarn(ctx context.Context, s TenantSpec) (*store.Tenant, []string, error) {
	t, err := o.CreateTenant(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	ups := s.Upstreams
	if len(ups) == 0 {
		ups = []string{"*"}
	}
	return t, o.upstreamWarnings(ups), nil
}

// MaxPlanLimit bounds every plan limit (a rate, a burst, a quota): beyond
// it a number is a typo, not a limit.
const MaxPlanLimit int64 = 1_000_000_000_000

// PlanLimitField is one limit of a plan: its command-line flag, its help
// and where it is in PlanLimits.
type PlanLimitField struct {
	Flag, Help string
	Field      func(*PlanLimits) **int64
}

// PlanLimitFields are the plan limits set by number (lattice_timeout_ms,
// a duration on the command line, is not one of them).
func PlanLimitFields() []PlanLimitField {
	return []PlanLimitField{
		{"key-per-minute", "requests per minute per key or user", func(l *PlanLimits) **int64 { return &l.KeyPerMinute }},
		{"key-burst", "burst per key", func(l *PlanLimits) **int64 { return &l.KeyBurst }},
		{"tenant-per-minute", "requests per minute per tenant", func(l *PlanLimits) **int64 { return &l.TenantPerMinute }},
		{"tenant-burst", "burst per tenant", func(l *PlanLimits) **int64 { return &l.TenantBurst }},
		{"ip-per-minute", "requests per minute per client address", func(l *PlanLimits) **int64 { return &l.IPPerMinute }},
		{"ip-burst", "burst per address", func(l *PlanLimits) **int64 { return &l.IPBurst }},
		{"monthly-quota", "tools/call per tenant per calendar month", func(l *PlanLimits) **int64 { return &l.MonthlyQuota }},
		{"lattice-max-points", "largest lattice", func(l *PlanLimits) **int64 { return &l.LatticeMaxPoints }},
	}
}

// Empty reports whether no limit is given.
func (l *PlanLimits) Empty() bool {
	for _, f := range l.fields(&store.Plan{}) {
		if f.in != nil {
			return false
		}
	}
	return true
}

// Validate checks the limits given: 0 (unlimited, or the default) to
// MaxPlanLimit, and lattice_max_points within the engine's bound.
func (l *PlanLimits) Validate() error {
	for _, f := range l.fields(&store.Plan{}) {
		switch {
		case f.in == nil:
		case *f.in < 0:
			return invalid("%s must not be negative, got %d", f.name, *f.in)
		case *f.in > MaxPlanLimit:
			return invalid("%s must be at most %d, got %d", f.name, int64(MaxPlanLimit), *f.in)
		}
	}
	if l.LatticeMaxPoints != nil && *l.LatticeMaxPoints > config.MaxLatticePoints {
		return invalid("lattice_max_points must be at most %d, got %d", config.MaxLatticePoints, *l.LatticeMaxPoints)
	}
	return nil
}

// errLastOperator is the refusal to remove the last operator tenant.
func errLastOperator(name string) error {
	return errorf(CodeConflict, "tenant %q is the last operator tenant, which administers the gateway: it can not be removed (create another operator tenant first: mcpedge tenant create NAME --operator)", name)
}

// lastOperator reports whether t is the only operator tenant.
func (o *Ops) lastOperator(ctx context.Context, t *store.Tenant) (bool, error) {
	if !t.Operator {
		return false, nil
	}
	ts, err := o.st.ListTenants(ctx)
	if err != nil {
		return false, err
	}
	for _, x := range ts {
		if x.Operator && x.ID != t.ID {
			return false, nil
		}
	}
	return true, nil
}

// CanDeleteTenant reports, without changing anything, why DeleteTenant
// would refuse the tenant (nil: it would not), so that the command line
// asks no question it would then refuse.
func (o *Ops) CanDeleteTenant(ctx context.Context, ref string) error {
	c := o.beginRead(ctx, "tenant.get")
	t, err := c.tenant(ref, write)
	if err != nil {
		return err
	}
	if !operatorAdmin(c.p) {
		return errorf(CodeForbidden, "only administrators of an operator tenant may delete tenants")
	}
	if t.ID == c.p.TenantID {
		return errorf(CodeConflict, "you can not delete the tenant you are signed in with")
	}
	last, err := o.lastOperator(ctx, t)
	if err != nil {
		return err
	}
	if last {
		return errLastOperator(t.Name)
	}
	return nil
}

// GetKey returns one key by id or display prefix, in the tenant named
// by tenantRef ("": any the caller may change), without its secret.
func (o *Ops) GetKey(ctx context.Context, tenantRef, keyRef string) (_ *store.APIKey, err error) {
	c := o.beginRead(ctx, "key.get")
	defer c.end(&err)
	k, err := o.lookupKey(c, tenantRef, keyRef)
	if err != nil {
		return nil, err
	}
	normKey(k)
	return k, nil
}

// GetUser returns one user of a tenant by id or name.
func (o *Ops) GetUser(ctx context.Context, tenantRef, userRef string) (_ *store.User, err error) {
	c := o.beginRead(ctx, "user.get")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, read)
	if err != nil {
		return nil, err
	}
	return o.lookupUser(c, t.ID, userRef)
}
