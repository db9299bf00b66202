// Package tenancy puts the multi-tenant layer into the gateway's request
// path: it implements gateway.Security by composing authentication
// (internal/auth), policy (internal/policy), rate limits and quotas
// (internal/ratelimit) and the audit log (internal/audit).
//
// Order on every request: authenticate at the HTTP edge (the tenant comes
// from the credential, never from a header), then admit (per-IP, per-key
// and per-tenant rates; the monthly quota for tools/call), then filter and
// check every MCP item against the tenant's virtual servers and rules, then
// record each tool call.
package tenancy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/httpedge"
	"github.com/mcpedge/mcpedge/internal/policy"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/ratelimit"
	auditstage "github.com/mcpedge/mcpedge/internal/stage/audit"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Options are the parts the layer composes.
type Options struct {
	Auth    *auth.Service
	Policy  *policy.Engine
	Limiter ratelimit.Limiter
	Audit   *audit.Logger
	// CallLog writes tool-call records; nil: one over Audit with
	// Config.Audit.Arguments.
	CallLog  *auditstage.LogRecorder
	ClientIP *ratelimit.ClientIP
	Config   *config.Config
	Log      *slog.Logger
	// Usage, with an in-memory limiter, keeps monthly quota counts in the
	// store across restarts (see usageSync). Ignored with Redis.
	Usage store.Usage
	// FailOpen admits requests when the limiter cannot decide (Redis
	// down). The default, false, refuses them: a limit that silently
	// stops holding is worse than a clear error.
	FailOpen bool
	Now      func() time.Time
	// Events, if set, hears when a tenant's monthly quota is 80 % used
	// and when it is used up (events.QuotaWarning, QuotaExhausted).
	Events events.Publisher
}

// Layer implements gateway.Security.
type Layer struct {
	o        Options
	acceptMu sync.Mutex
	accepted map[acceptKey]time.Time
	fails    *failureGate
	usage    *usageSync // nil unless the limiter is in memory and Usage is set
	// meta is what the OAuth metadata says of [auth]; SetAuth replaces it
	// on a reload.
	meta atomic.Pointer[authMeta]
}

// authMeta is the part of [auth] the OAuth protected resource metadata
// shows.
type authMeta struct{ resourceURL, oidcIssuer string }

// SetAuth applies a reloaded [auth] section to what the layer itself reads
// of it (the resource URL and the identity provider named in the OAuth
// metadata); the credentials are the auth.Service's (Reconfigure).
func (l *Layer) SetAuth(a config.Auth) {
	l.meta.Store(&authMeta{resourceURL: a.ResourceURL, oidcIssuer: a.OIDC.Issuer})
}

// New returns the layer.
func New(o Options) *Layer {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.CallLog == nil && o.Audit != nil {
		o.CallLog = auditstage.NewLogRecorder(o.Audit, o.Config.Audit.Arguments)
	}
	l := &Layer{o: o, accepted: map[acceptKey]time.Time{}, fails: newFailureGate()}
	l.SetAuth(o.Config.Auth)
	if mem, ok := o.Limiter.(*ratelimit.Memory); ok && o.Usage != nil {
		l.usage = &usageSync{mem: mem, store: o.Usage, seen: map[usageKey]int64{}}
	}
	return l
}

// Run writes quota counts to the store every second until ctx ends.
func (l *Layer) Run(ctx context.Context) {
	if l.usage == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.usage.flush(ctx, l.o.Now()); err != nil && ctx.Err() == nil {
				l.o.Log.Warn("saving quota usage failed; retrying", "error", err)
			}
		}
	}
}

// Flush writes the quota counts counted so far (call before the store
// closes).
func (l *Layer) Flush(ctx context.Context) error {
	if l.usage == nil {
		return nil
	}
	return l.usage.flush(ctx, l.o.Now())
}

// Authenticate implements gateway.Security.
func (l *Layer) Authenticate(r *http.Request) (*principal.Principal, error) {
	tok, ok := auth.BearerToken(r)
	if !ok && r.Header.Get("Authorization") == "" && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		// mTLS: a client certificate verified against
		// server.tls.client_ca_file, mapped to a tenant by
		// [[server.tls.client_certs]]. A bearer credential, when sent,
		// is the one that counts.
		return l.authenticateWith(r, func(ip string) (*principal.Principal, error) {
			return l.o.Auth.AuthenticateCertificate(r.Context(), r.TLS.VerifiedChains[0][0], ip)
		})
	}
	if !ok {
		msg := "authentication required: send Authorization: Bearer <API key or access token>"
		if r.Header.Get("Authorization") != "" {
			return nil, &httpedge.AuthError{Status: http.StatusUnauthorized, Code: "invalid_request", Message: "the Authorization header must be \"Bearer <token>\""}
		}
		return nil, &httpedge.AuthError{Status: http.StatusUnauthorized, Message: msg}
	}
	return l.authenticateWith(r, func(ip string) (*principal.Principal, error) {
		return l.o.Auth.Authenticate(r.Context(), tok, ip)
	})
}

// authenticateWith runs check for the request's client address, with the
// throttle of failed attempts, and turns its refusal into the answer.
func (l *Layer) authenticateWith(r *http.Request, check func(ip string) (*principal.Principal, error)) (*principal.Principal, error) {
	ip := l.o.ClientIP.From(r)
	if blocked, wait := l.fails.blocked(ip, l.o.Now()); blocked {
		return nil, &httpedge.AuthError{Status: http.StatusTooManyRequests, Message: fmt.Sprintf("%s; retry in %s", throttleMsg, wait.Round(time.Millisecond)), RetryAfter: wait}
	}
	p, err := check(ip)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			l.fails.failed(ip, l.o.Now())
		}
		reason := auth.Reason(err)
		if errors.Is(err, auth.ErrForbidden) {
			return nil, &httpedge.AuthError{Status: http.StatusForbidden, Code: "insufficient_scope", Message: reason}
		}
		if !errors.Is(err, auth.ErrUnauthenticated) {
			// The store failed: say so without blaming the credential.
			l.o.Log.Error("authentication could not be decided", "error", err)
			return nil, &httpedge.AuthError{Status: http.StatusServiceUnavailable, Message: "the credential could not be checked right now (store unavailable); retry shortly", RetryAfter: time.Second}
		}
		return nil, &httpedge.AuthError{Status: http.StatusUnauthorized, Code: "invalid_token", Message: reason}
	}
	l.recordAccept(r, p, ip)
	return p, nil
}

// acceptEvery is how often a successful authentication of one credential
// from one address is written to the audit log. Refusals are always
// written (by the auth service); successes are written once per window,
// so the log shows who used which credential from where and when, without
// one entry per HTTP request of a busy session.
const acceptEvery = time.Minute

// maxAcceptSeen bounds the memory of recordAccept.
const maxAcceptSeen = 100_000

type acceptKey struct{ id, ip string }

func (l *Layer) recordAccept(r *http.Request, p *principal.Principal, ip string) {
	if l.o.Audit == nil {
		return
	}
	k := acceptKey{p.Kind + ":" + p.ID, ip}
	now := l.o.Now()
	l.acceptMu.Lock()
	if last, ok := l.accepted[k]; ok && now.Sub(last) < acceptEvery {
		l.acceptMu.Unlock()
		return
	}
	if len(l.accepted) >= maxAcceptSeen {
		clear(l.accepted)
	}
	l.accepted[k] = now
	l.acceptMu.Unlock()
	detail, _ := json.Marshal(map[string]any{"path": truncate(r.URL.Path, 200), "role": p.Role, "once_per": acceptEvery.String()})
	l.o.Audit.Record(r.Context(), &store.AuditEntry{
		TenantID: p.TenantID, Actor: p.ID, ActorKind: p.Kind, Action: "auth.accept",
		Outcome: "ok", ClientIP: ip, Detail: detail,
	})
}

// ratePlan converts a configured plan (per minute) into the limiter's
// (per second).
func ratePlan(p config.Plan) ratelimit.Plan {
	return ratelimit.Plan{
		Name:    p.Name,
		KeyRate: float64(p.KeyPerMinute) / 60, KeyBurst: int(p.KeyBurst),
		TenantRate: float64(p.TenantPerMinute) / 60, TenantBurst: int(p.TenantBurst),
		IPRate: float64(p.IPPerMinute) / 60, IPBurst: int(p.IPBurst),
		MonthlyQuota: p.MonthlyQuota,
	}
}

// Admit implements gateway.Security.
func (l *Layer) Admit(r *http.Request, h http.Header, p *principal.Principal, method string) *httpedge.Denial {
	ctx := r.Context()
	if p == nil {
		// Signing in: only the client IP is known, and the default plan's
		// IP limit applies (it bounds password guessing and the CPU that
		// password hashing costs).
		plan := ratePlan(l.o.Policy.Plan(config.DefaultPlan))
		d, err := l.o.Limiter.Allow(ctx, ratelimit.Plan{Name: plan.Name, IPRate: plan.IPRate, IPBurst: plan.IPBurst}, ratelimit.Subject{IP: l.o.ClientIP.From(r)})
		if err != nil {
			return l.limiterDown(err)
		}
		ratelimit.SetHeaders(h, d)
		if !d.Allowed {
			return &httpedge.Denial{Status: http.StatusTooManyRequests, Reason: "rate_limited_ip",
				Message: fmt.Sprintf("too many requests from this address; retry in %s", d.RetryAfter.Round(time.Millisecond)), RetryAfter: d.RetryAfter}
		}
		return nil
	}
	plan := ratePlan(l.o.Policy.Plan(p.Plan))
	d, err := l.o.Limiter.Allow(ctx, plan, ratelimit.Subject{Key: p.Kind + ":" + p.ID, Tenant: p.TenantID, IP: l.o.ClientIP.From(r)})
	if err != nil {
		return l.limiterDown(err)
	}
	ratelimit.SetHeaders(h, d)
	if !d.Allowed {
		return &httpedge.Denial{Status: http.StatusTooManyRequests, Reason: "rate_limited_" + d.Dimension,
			Message:    fmt.Sprintf("rate limit exceeded (%s limit of plan %q); retry in %s", d.Dimension, plan.Name, d.RetryAfter.Round(time.Millisecond)),
			RetryAfter: d.RetryAfter}
	}
	if method != "tools/call" || plan.MonthlyQuota == 0 {
		return nil
	}
	now := l.o.Now()
	if l.usage != nil {
		if err := l.usage.seed(ctx, p.TenantID, now); err != nil {
			return l.limiterDown(err)
		}
	}
	q, err := l.o.Limiter.Quota(ctx, plan, p.TenantID, now)
	if err != nil {
		return l.limiterDown(err)
	}
	if q.Allowed {
		l.quotaEvents(ctx, p, plan, q, now)
	}
	if !q.Allowed {
		ratelimit.SetHeaders(h, q)
		return &httpedge.Denial{Status: http.StatusTooManyRequests, Reason: "quota_exceeded",
			Message:    fmt.Sprintf("monthly quota of %d tool calls of plan %q is used up; it resets in %s", plan.MonthlyQuota, plan.Name, q.Reset.Round(time.Minute)),
			RetryAfter: q.RetryAfter}
	}
	return nil
}

func (l *Layer) limiterDown(err error) *httpedge.Denial {
	l.o.Log.Error("rate limiter could not decide", "error", err)
	if l.o.FailOpen {
		return nil
	}
	return &httpedge.Denial{Status: http.StatusServiceUnavailable, Reason: "limiter_unavailable",
		Message: "rate limits cannot be checked right now (limiter store unreachable); retry shortly", RetryAfter: time.Second}
}

// Allowed implements gateway.Security.
func (l *Layer) Allowed(p *principal.Principal, upstream, kind, name string) bool {
	return l.o.Policy.Allowed(p, upstream, kind, name)
}

// Record implements gateway.Security: one audit entry per tool call,
// written by the audit stage's recorder.
func (l *Layer) Record(ctx context.Context, p *principal.Principal, c auditstage.Record) {
	if l.o.CallLog == nil {
		return
	}
	l.o.CallLog.Record(ctx, p, c)
}

// ResourceMetadataURL implements gateway.Security: the RFC 9728 location
// for the /mcp resource, on the host the client used (or resource_url).
func (l *Layer) ResourceMetadataURL(r *http.Request) string {
	return l.origin(r) + "/.well-known/oauth-protected-resource/mcp"
}

// origin is scheme://host of this gateway as its clients see it.
func (l *Layer) origin(r *http.Request) string {
	if u := l.meta.Load().resourceURL; u != "" {
		if i := strings.Index(u[strings.Index(u, "://")+3:], "/"); i >= 0 {
			return u[:strings.Index(u, "://")+3+i]
		}
		return u
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// ProtectedResourceMetadata implements gateway.Security.
func (l *Layer) ProtectedResourceMetadata() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		meta := l.meta.Load()
		resource := meta.resourceURL
		if resource == "" {
			resource = l.origin(r) + "/mcp"
		}
		md := oauthex.ProtectedResourceMetadata{
			Resource:               resource,
			BearerMethodsSupported: []string{"header"},
			ScopesSupported:        principal.KnownScopes,
			ResourceName:           "mcpedge",
		}
		if iss := meta.oidcIssuer; iss != "" {
			md.AuthorizationServers = []string{iss}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_ = json.NewEncoder(w).Encode(md)
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
