// Package admin is the administration of a multi-tenant gateway: tenants,
// users, API keys, plans, virtual servers, tool rules and the audit log.
//
// It has two layers. [Ops] holds every rule: validation, authorization
// and auditing. The REST API ([Handler], under /api) and the command line
// (cmd/mcpedge) both call Ops, so a rule can not be enforced on one face
// and forgotten on the other.
//
// # Who may do what
//
// Every Ops method reads the caller from its context ([principal.From]);
// without one it fails with 401. The command line calls with
// [CLIContext], an operator owner audited as actor "cli".
//
//   - Operator tenants' admins and owners manage every tenant and the
//     plans. Everyone else manages (admins, owners) or reads (viewers,
//     members) only their own tenant: its users, keys, virtual servers,
//     rules, and (admins, owners) its audit log.
//   - Reading needs the admin:read or admin:write scope; changing needs
//     admin:write. A credential without scopes has every scope.
//   - Only owners create, promote, demote or remove owners. Nobody grants
//     a key a role above their own, nor scopes beyond their own (a scoped
//     caller's keys carry a subset of its scopes).
//   - Only operators change a tenant's plan, disable or delete a tenant;
//     a tenant's own admins may change its IP allowlist.
//   - Whatever is aimed at another tenant's objects answers 404, exactly as
//     if they did not exist, and is audited as "authz.denied" in the
//     caller's tenant. Refusals within the caller's own tenant answer 403
//     and are audited as the attempted action with outcome "denied".
//
// Every change is recorded in the audit log with its outcome ("ok",
// "denied" or "error"); secrets never are.
package admin

import (
	"context"
	"log/slog"
	"time"

	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/webhook"
)

// Credentials issues and withdraws credentials. *auth.Service implements
// it; Ops goes through it rather than the store so that key secrets are
// generated, hashed and revoked (on every replica) in one place. It
// records successful key changes (key.create, key.rotate, key.revoke) in
// the audit log itself, so Ops records only refused and failed ones.
type Credentials interface {
	// CreateKey fills k's Prefix, Hash, ExpiresAt (from expiresIn; 0:
	// never), ID and CreatedAt, stores it and returns the secret.
	CreateKey(ctx context.Context, k *store.APIKey, expiresIn time.Duration) (secret string, err error)
	// RotateKey creates a successor of the key with the same name, role
	// and scopes; the old key keeps working for the configured overlap.
	RotateKey(ctx context.Context, tenantID, keyID string) (secret string, next *store.APIKey, err error)
	// RevokeKey revokes the key at once, everywhere.
	RevokeKey(ctx context.Context, tenantID, keyID string) error
	// RevokeUser ends every session of the user.
	RevokeUser(ctx context.Context, tenantID, userID string) error
}

// Recorder appends audit entries; *audit.Logger implements it. Record
// must not block for long and must not drop entries.
type Recorder interface {
	Record(ctx context.Context, e *store.AuditEntry)
}

// OpsOptions configure [NewOps]. Store, Credentials and Audit are required.
type OpsOptions struct {
	Store       store.Store
	Credentials Credentials
	Audit       Recorder
	// HashPassword turns a password into the PHC string stored in
	// store.User.PasswordHash; nil means auth.HashPassword.
	HashPassword func(password string) (string, error)
	// Plans are the configured plans ([plans.NAME]); the store's plan
	// overrides add to and replace them. Nil means config.DefaultPlans().
	Plans map[string]config.Plan
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives failures that have no caller to report to (nil:
	// slog.Default()).
	Log *slog.Logger
	// PinsChanged, if set, is called after a pin was approved or
	// rejected, so that this process serves the decision at once
	// (pin.Pinner.Refresh); other processes see it within their poll.
	PinsChanged func(context.Context)
	// Upstreams, if set, returns the names of the configured upstreams,
	// so that a tenant asking for others is warned (nil: no check).
	Upstreams func() []string
	// QuarantineChanged, if set, is called after a quarantined item was
	// approved or rejected, so that this process serves the decision at
	// once (quarantine.Book.Refresh); other processes see it within their
	// poll.
	QuarantineChanged func(context.Context)
	// FlushUsage, if set, adds the usage counts this process holds in
	// memory to the store (metering.Meter.Flush), so that a usage report
	// includes the calls just made.
	FlushUsage func(context.Context) error
	// Webhooks, if set, manages webhook endpoints and sends test events;
	// nil: the webhook operations answer 503.
	Webhooks *webhook.Service
	// Events, if set, hears of key creations and revocations.
	Events events.Publisher
	// TenantQueue, if set, is this process's offline queue: a tenant's
	// export includes its entries there, and its erasure removes them.
	TenantQueue TenantQueue
}

// Ops is the administration of the gateway. It is safe for concurrent
// use; its methods take the caller from ctx (see the package doc).
type Ops struct {
	st    store.Store
	creds Credentials
	audit Recorder
	hash  func(string) (string, error)
	plans map[string]config.Plan
	now   func() time.Time
	log   *slog.Logger
	// pinsChanged: OpsOptions.PinsChanged.
	pinsChanged func(context.Context)
	// upstreams: OpsOptions.Upstreams.
	upstreams func() []string
	// quarantineChanged: OpsOptions.QuarantineChanged.
	quarantineChanged func(context.Context)
	// flushUsage: OpsOptions.FlushUsage.
	flushUsage func(context.Context) error
	webhooks   *webhook.Service
	events     events.Publisher
	// tenantQueue: OpsOptions.TenantQueue.
	tenantQueue TenantQueue
}

// NewOps returns an Ops over o.Store.
func NewOps(o OpsOptions) *Ops {
	ops := &Ops{st: o.Store, creds: o.Credentials, audit: o.Audit, hash: o.HashPassword, plans: o.Plans, now: o.Now, log: o.Log, pinsChanged: o.PinsChanged, upstreams: o.Upstreams, quarantineChanged: o.QuarantineChanged, flushUsage: o.FlushUsage, webhooks: o.Webhooks, events: o.Events, tenantQueue: o.TenantQueue}
	if ops.hash == nil {
		ops.hash = auth.HashPassword
	}
	if ops.plans == nil {
		ops.plans = config.DefaultPlans()
	}
	if ops.now == nil {
		ops.now = time.Now
	}
	if ops.log == nil {
		ops.log = slog.Default()
	}
	return ops
}

// Store returns the store Ops works on.
func (o *Ops) Store() store.Store { return o.st }

// CLIActor is the audit actor (and principal kind) of the command line.
const CLIActor = "cli"

// CLIContext returns ctx carrying the principal of the local command line:
// an owner of an operator tenant, audited as actor and kind "cli". Having
// the database means having everything; the CLI is still audited.
func CLIContext(ctx context.Context) context.Context {
	return principal.With(ctx, &principal.Principal{
		Kind:     CLIActor,
		ID:       CLIActor,
		Operator: true,
		Role:     principal.RoleOwner,
	})
}

type clientIPKey struct{}

// WithClientIP returns ctx carrying the caller's address for audit
// entries; the REST handler sets it.
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip)
}

// ClientIPFrom returns the address WithClientIP put in ctx, or "". The
// credential service's own audit entries (key.create, …) can take it from
// there.
func ClientIPFrom(ctx context.Context) string {
	s, _ := ctx.Value(clientIPKey{}).(string)
	return s
}
