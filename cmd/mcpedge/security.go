package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/billing"
	"github.com/mcpedge/mcpedge/internal/changebus"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/console"
	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/latticesvc"
	"github.com/mcpedge/mcpedge/internal/metering"
	"github.com/mcpedge/mcpedge/internal/pin"
	"github.com/mcpedge/mcpedge/internal/policy"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/quarantine"
	"github.com/mcpedge/mcpedge/internal/ratelimit"
	auditstage "github.com/mcpedge/mcpedge/internal/stage/audit"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/tenancy"
	"github.com/mcpedge/mcpedge/internal/webhook"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// securityStack is everything the multi-tenant layer runs: the store, the
// optional Redis, authentication, policy, limits and the audit log. It is
// opened in both auth modes — with auth off the store still holds lattice
// definitions, the CLI's administration is still audited and tool calls
// are recorded through CallLog — but only mode "required" puts Layer into
// the request path.
type securityStack struct {
	Store   store.Store
	Redis   *redis.Client
	Auth    *auth.Service
	Policy  *policy.Engine
	Limiter ratelimit.Limiter
	Audit   *audit.Logger
	// CallLog writes the pipeline's tool-call records into Audit, in both
	// auth modes; a reload changes its [audit] arguments policy.
	CallLog  *auditstage.LogRecorder
	ClientIP *ratelimit.ClientIP
	Layer    *tenancy.Layer // nil when auth is off
	// Changes tells the other replicas at once that the policy or the
	// pins changed (nil without Redis: they poll).
	Changes *changebus.Bus
	// Tenant is the bootstrap tenant, which single-user mode acts as.
	Tenant store.Tenant
	// EKRoots are the hub's trusted TPM manufacturer CAs ([hub_server]
	// ek_roots; nil: EK certificates are not checked). See hub.go.
	EKRoots *devicekey.EKRoots
	// Meter counts tool calls for usage metering ([metering]; nil when
	// off). Close adds its last counts to the store.
	Meter *metering.Meter
	// Webhooks delivers events to subscribed endpoints ([webhooks]; nil
	// when off or the store has no master key). `serve` runs its
	// delivery loop; every process with a stack publishes through it.
	Webhooks *webhook.Service
	// Billing bills tenants through Stripe ([billing.stripe]; nil when
	// off); serve runs its loop and mounts its webhook (billing.go).
	Billing *billing.Service
	cancel  context.CancelFunc
}

// firstStart says where the first start's notice and owner key go.
type firstStart struct {
	// Notice is where the notice goes; never the MCP stream of stdio mode.
	Notice io.Writer
	// KeyFile, when set, is where a generated owner key is written (mode
	// 0600) instead of the notice: stdio mode, whose stderr desktop
	// clients keep in their log files.
	KeyFile bool
}

// ownerKeyFile is where stdio mode writes a generated first owner key.
const ownerKeyFile = "owner-key"

// bootstrap sets up an empty store (auth.Service.FirstStartOn) and tells
// the operator how to find the owner key.
func bootstrap(ctx context.Context, as *auth.Service, cfg *config.Config, fs firstStart) error {
	f, err := as.FirstStartOn(ctx)
	if err != nil || f == nil {
		return err
	}
	if !fs.KeyFile || f.Key == "" {
		f.WriteNotice(fs.Notice, "")
		return nil
	}
	if cfg.Server.DataDir == "" {
		f.Key = ""
		fmt.Fprintf(fs.Notice, "\nmcpedge: first start: created tenant %q with an owner API key that is not shown here (stdio mode, and no [server] data_dir to write it to); make one with: mcpedge key create --tenant %s --role owner\n", f.Tenant, f.Tenant)
		return nil
	}
	path := filepath.Join(cfg.Server.DataDir, ownerKeyFile)
	if err := f.WriteKeyFile(path); err != nil {
		return err
	}
	f.WriteNotice(fs.Notice, path)
	return nil
}

// openSecurity opens the stack; fs says where the first start's owner key
// goes.
func openSecurity(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, fs firstStart) (_ *securityStack, err error) {
	s := &securityStack{}
	defer func() {
		if err != nil {
			s.Close(context.Background())
		}
	}()
	openCtx, cancelOpen := context.WithTimeout(ctx, 30*time.Second)
	defer cancelOpen()
	s.Store, err = openStore(openCtx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	if cfg.Redis.URL != "" {
		opt, perr := redis.ParseURL(cfg.Redis.URL)
		if perr != nil {
			return nil, fmt.Errorf("redis.url: %w", perr)
		}
		s.Redis = redis.NewClient(opt)
		if err = s.Redis.Ping(openCtx).Err(); err != nil {
			return nil, fmt.Errorf("redis at %s does not answer: %w (limits and revocations need it; remove [redis] to run without)", opt.Addr, err)
		}
	}
	s.Audit = audit.NewLogger(s.Store, log, audit.LoggerOptions{Registerer: reg})
	ao := auth.Options{Store: s.Store, Config: cfg.Auth, Audit: withAdminClientIP(s.Audit.Record), Log: log, ClientCerts: cfg.Server.TLS.ClientCerts}
	if s.Redis != nil {
		ao.Redis = s.Redis
	}
	s.Auth, err = auth.New(openCtx, ao)
	if err != nil {
		return nil, fmt.Errorf("starting authentication: %w", err)
	}
	if err = bootstrap(openCtx, s.Auth, cfg, fs); err != nil {
		return nil, fmt.Errorf("first-start setup: %w", err)
	}
	t, err := s.Store.GetTenantByName(openCtx, cfg.Auth.BootstrapTenant)
	if err == nil {
		s.Tenant = *t
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	s.Policy = policy.New(s.Store, cfg.Plans, log)
	if err = s.Policy.Load(openCtx); err != nil {
		return nil, err
	}
	if s.Redis != nil {
		s.Limiter = ratelimit.NewRedis(s.Redis, "mcpedge")
	} else {
		s.Limiter = ratelimit.NewMemory(nil)
	}
	s.ClientIP, err = ratelimit.NewClientIP(cfg.Limits.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("limits.trusted_proxies: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.Auth.Start(runCtx)
	if s.Redis != nil {
		s.Changes = changebus.New(runCtx, s.Redis, log)
		s.Changes.On(changebus.TopicPolicy, s.Policy.Invalidate) // another replica's admin change, now rather than at the next poll
	}
	go s.Policy.Run(runCtx, cfg.Auth.RevocationPoll.D())
	s.CallLog = auditstage.NewLogRecorder(s.Audit, cfg.Audit.Arguments)
	s.Webhooks = openWebhooks(cfg, s.Store, log)
	if cfg.Metering.Enabled {
		s.Meter = metering.New(metering.Options{Store: s.Store, DefaultTenant: s.Tenant.ID, FlushInterval: cfg.Metering.FlushInterval.D(),
			Retention: cfg.Metering.Retention.D(), Log: log})
		go s.Meter.Run(runCtx)
	}
	if s.Billing, err = openBilling(cfg, s, log, s.Audit.Record); err != nil {
		return nil, err
	}
	if cfg.Auth.Mode == config.AuthRequired {
		s.Layer = tenancy.New(tenancy.Options{
			Auth: s.Auth, Policy: s.Policy, Limiter: s.Limiter, Audit: s.Audit, CallLog: s.CallLog,
			ClientIP: s.ClientIP, Config: cfg, Log: log, Usage: s.Store, Events: s.events(),
		})
		go s.Layer.Run(runCtx)
	}
	return s, nil
}

// reconfigure applies a reloaded configuration's live security settings:
// [auth] (except mode and the bootstrap settings, see config.RestartKeys),
// plans and the [audit] arguments policy. A part that can not be applied
// is logged and keeps its running settings; the others still apply.
func (s *securityStack) reconfigure(ctx context.Context, next *config.Config, log *slog.Logger) {
	if err := s.Auth.Reconfigure(next.Auth); err != nil {
		log.Error("[auth] not reloaded; the running settings stay", "err", err.Error())
	} else {
		s.Policy.SetPollInterval(next.Auth.RevocationPoll.D())
		if s.Layer != nil {
			s.Layer.SetAuth(next.Auth)
		}
	}
	if err := s.Policy.SetPlans(ctx, next.Plans); err != nil {
		log.Error("plans not reloaded; the running plans stay", "err", err.Error())
	}
	s.CallLog.SetArguments(next.Audit.Arguments)
}

// withAdminClientIP gives the credential service's own audit entries
// (key.create, key.rotate, key.revoke, …) made through the admin API the
// caller's address, which the admin handler put in ctx.
func withAdminClientIP(record func(context.Context, *store.AuditEntry)) func(context.Context, *store.AuditEntry) {
	return func(ctx context.Context, e *store.AuditEntry) {
		if e.ClientIP == "" {
			e.ClientIP = admin.ClientIPFrom(ctx)
		}
		record(ctx, e)
	}
}

// openSecurityFor opens the stack for a command and returns the function
// that closes it (flushing the audit log within 10 s).
func openSecurityFor(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, fs firstStart) (*securityStack, func(), error) {
	s, err := openSecurity(ctx, cfg, log, reg, fs)
	if err != nil {
		return nil, nil, err
	}
	return s, func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(closeCtx)
	}, nil
}

// Close stops the background work and flushes the audit log before the
// store closes, so no recorded entry is lost.
func (s *securityStack) Close(ctx context.Context) {
	if s.cancel != nil {
		s.cancel()
	}
	if s.Layer != nil {
		if err := s.Layer.Flush(ctx); err != nil {
			slog.Default().Error("quota usage not saved", "error", err)
		}
	}
	if s.Meter != nil {
		if err := s.Meter.Flush(ctx); err != nil {
			slog.Default().Error("usage counts not saved", "error", err, "calls", s.Meter.Pending())
		}
	}
	if s.Auth != nil {
		_ = s.Auth.Close()
	}
	if s.Audit != nil {
		if err := s.Audit.Close(ctx); err != nil {
			slog.Default().Error("audit log not fully written", "error", err)
		}
	}
	if s.Limiter != nil {
		_ = s.Limiter.Close()
	}
	if s.Redis != nil {
		_ = s.Redis.Close()
	}
	if s.Store != nil {
		_ = s.Store.Close()
	}
}

// adminOps is the administration the admin API and the console share.
func adminOps(cfg *config.Config, sec *securityStack, log *slog.Logger, pins *pin.Pinner, upstreams func() []string, book *quarantine.Book, tenantQueue admin.TenantQueue) *admin.Ops {
	var flushUsage func(context.Context) error
	if sec.Meter != nil {
		flushUsage = sec.Meter.Flush // a usage report includes what this replica counted so far
	}
	return admin.NewOps(admin.OpsOptions{Store: sec.Store, Credentials: sec.Auth, Audit: sec.Audit, Plans: cfg.Plans, Log: log,
		PinsChanged: pinsRefresher(pins, sec.Changes, log), QuarantineChanged: quarantineRefresher(book, sec.Changes, log), Upstreams: upstreams,
		FlushUsage: flushUsage, Webhooks: sec.Webhooks, Events: sec.events(), TenantQueue: tenantQueue})
}

// adminAPI is everything under /api/: administration, sign-in and the
// lattice REST API.
func adminAPI(cfg *config.Config, sec *securityStack, ops *admin.Ops, lat *latticesvc.Service, log *slog.Logger, queue admin.QueueReader) http.Handler {
	h := admin.Handler(admin.Options{
		Ops: ops, Auth: sec.Auth, Lattice: latticesvc.RESTHandler(lat),
		ClientIP: sec.ClientIP.From, MaxBodyBytes: cfg.Server.MaxBodyBytes,
		LatticeAllowed: sec.Policy.Allowed, Hub: hubService(cfg, sec, log), Queue: queue,
	})
	// A change made through this replica's API is in force on this
	// replica before the answer goes out; other replicas see it within
	// auth.revocation_poll. Sign-in, the lattice API and the hub's
	// endpoints change no policy.
	// With Redis, the others are told at once (changebus).
	apply := func(ctx context.Context) error {
		err := sec.Policy.Load(ctx)
		sec.Changes.Announce(ctx, changebus.TopicPolicy)
		return err
	}
	return withBillingWebhook(admin.ApplyBeforeAnswer(h, apply, func(r *http.Request) bool {
		return strings.HasPrefix(r.URL.Path, "/api/auth/") || strings.HasPrefix(r.URL.Path, "/api/lattices") || hubAPIRoute(r)
	}, log), sec.Billing)
}

// webConsole is the console at /ui/ (auth mode "required" only: it signs
// people in with the gateway's credentials). gateway returns the
// gateway's handler, built after the console.
func webConsole(cfg *config.Config, sec *securityStack, ops *admin.Ops, log *slog.Logger, gateway func() http.Handler) (http.Handler, error) {
	if sec.Layer == nil {
		return nil, nil
	}
	// Keys change no policy (a revocation reaches every replica through
	// the credential service), so nothing is reloaded after a change.
	return console.New(console.Options{Ops: ops, Auth: sec.Auth, Gateway: gateway, ClientIP: sec.ClientIP.From, Log: log})
}

// anonymous is the caller in single-user mode (auth off): the owner of the
// bootstrap tenant, as whoever can reach a loopback-only gateway is.
func (s *securityStack) anonymous() *principal.Principal {
	return &principal.Principal{
		Kind: principal.KindAnonymous, ID: "local", TenantID: s.Tenant.ID, TenantName: s.Tenant.Name,
		Plan: s.Tenant.Plan, Operator: s.Tenant.Operator, Role: principal.RoleOwner,
	}
}
