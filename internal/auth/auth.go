// Package auth authenticates callers of the gateway: API keys, the
// gateway's own user sessions (password login, short access tokens,
// rotating refresh tokens) and, when configured, bearer JWTs from an
// external OpenID Connect identity provider. Every credential resolves to a
// [principal.Principal] bound to exactly one tenant.
//
// # Credentials
//
//   - API keys are "mcpe_" followed by 40 base62 characters from
//     crypto/rand (about 238 bits). The store keeps only
//     HMAC-SHA256(secret "apikey-hmac-v1", key) and the first 12 characters
//     as a display prefix. Keys imported from the environment at bootstrap
//     may be any string of at least 24 characters; they are hashed the
//     same way.
//   - Access tokens are HS256 JWTs signed with the shared secret
//     "jwt-hs256-v1", valid for [config.Auth.AccessTTL]. They name the
//     user, tenant and session; the role is read from the user record, so
//     a demotion or a disabled user takes effect within the cache bound
//     below, not at token expiry.
//   - Refresh tokens are opaque, stored as keyed hashes, and rotate on
//     every use. Presenting a used one revokes its whole session (reuse
//     detection). A session lives at most [config.Auth.RefreshTTL] from
//     login: rotation does not extend it.
//   - OIDC tokens are verified against keys from the configured JWKS URL
//     only; the token's jku, x5u, jwk and x5c headers are never read.
//
// # Revocation and caching
//
// A verified API key, user or tenant is cached for at most [CacheTTL] so
// that the hot path costs an HMAC and a map lookup. Revocations (keys,
// users, sessions, single access tokens) are kept in an in-memory set that
// is loaded from the store at [New] and then followed: every
// RevocationPoll from the store and, with Redis, immediately through a
// pub/sub channel. A revocation evicts the cache entries it concerns, so:
// a revocation takes effect on this replica immediately, on others within
// max(RevocationPoll, cache TTL) without Redis, and within ~1 round trip
// with Redis. Changes that are not revocations (a tenant disabled, an IP
// allowlist changed, a role changed) take effect within [CacheTTL].
//
// # Passwords
//
// Passwords are hashed with argon2id; see [HashPassword] for the
// parameters and why. Logins are throttled per account by the lockout
// policy of [config.Auth], and concurrent hashing is bounded so that a
// login flood can not exhaust the memory of a small device.
package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/egress"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/tlsconf"
)

// Errors. Every error Authenticate, Login, Refresh and Logout return for a
// refused credential wraps one of these, with a short reason that is safe
// to show the client (it never contains the credential).
var (
	// ErrUnauthenticated: a missing, malformed, unknown, expired or
	// revoked credential (HTTP 401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: a valid credential that may not be used here: its
	// tenant is disabled or unknown, or the client address is not in the
	// tenant's allowlist (HTTP 403).
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid: a management call (CreateKey, ImportKey, RotateKey…)
	// with arguments that can not be accepted (HTTP 400).
	ErrInvalid = errors.New("invalid request")
)

// CacheTTL bounds how long a verified key, user or tenant is reused
// without asking the store again.
const CacheTTL = time.Second

// Names of the shared secrets in the store.
const (
	secretAPIKeyHMAC = "apikey-hmac-v1"
	secretJWT        = "jwt-hs256-v1"
)

// RevocationChannel is the Redis pub/sub channel revocations are
// published on.
const RevocationChannel = "mcpedge:auth:revocations"

const (
	// leeway tolerates clock skew between replicas and the identity
	// provider when checking exp, nbf and iat.
	leeway = 30 * time.Second
	// maxTokenLen bounds the work spent on a presented credential.
	maxTokenLen = 8192
	// lastUsedEvery is how often at most a key's last-used time is
	// written; lastUsedFlush is how often queued times are written.
	lastUsedEvery = time.Minute
	lastUsedFlush = 10 * time.Second
	// cacheMax bounds each cache; a full cache drops expired entries, then
	// everything.
	cacheMax = 10000
)

// Options configure a [Service].
type Options struct {
	// Store holds tenants, users, keys, sessions, revocations and the
	// shared secrets. Required.
	Store store.Store
	// Config is the [auth] section; zero durations and thresholds take
	// the config package defaults.
	Config config.Auth
	// Redis, optional, carries revocations to every replica at once.
	Redis redis.UniversalClient
	// Audit, optional, is called for every authentication decision except
	// a successful Authenticate (which the request's own audit entry
	// covers): logins, refreshes, logouts, rejected credentials, refresh
	// reuse, lockouts and key management.
	Audit func(ctx context.Context, e *store.AuditEntry)
	// Log defaults to slog.Default().
	Log *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// ClientCerts map verified client certificates to tenants
	// ([[server.tls.client_certs]]); see [Service.AuthenticateCertificate].
	ClientCerts []config.ClientCert
	// HTTPClient fetches the OIDC JWKS; nil means a client with a 10s
	// timeout that dials through the egress policy of a trusted
	// destination (see jwksClient).
	HTTPClient *http.Client
}

// Service authenticates credentials and manages keys and sessions. It is
// safe for concurrent use.
type Service struct {
	st    store.Store
	conf  atomic.Pointer[authConf] // the [auth] settings in force; Reconfigure swaps them
	hc    *http.Client             // fetches the OIDC key set when given in Options; nil: one per [auth.oidc] tls
	rdb   redis.UniversalClient
	audit func(ctx context.Context, e *store.AuditEntry)
	log   *slog.Logger
	now   func() time.Time

	keyHMAC    []byte   // HMAC key for API key hashes
	keyMAC     *macPool // HMAC states keyed with keyHMAC
	refreshKey []byte   // HMAC key for refresh token hashes (derived)
	jwtKey     []byte

	keys    *ttlCache[string, *keyEntry]    // by string(hash)
	users   *ttlCache[string, *store.User]  // by user id
	tenants *ttlCache[string, *tenantEntry] // by tenant id and "name:"+name
	loads   singleflight.Group

	rev  *revocations
	used *lastUsed
	// certs maps verified client certificates to tenants
	// ([[server.tls.client_certs]]); nil: none is mapped.
	certs atomic.Pointer[certMap]

	hashSlots chan struct{} // bounds concurrent argon2 work
	accounts  accountLocks  // login attempts take turns per account
	dummyHash string        // burnt for unknown users (timing)
	dummyOnce sync.Once
	getenv    func(string) string

	startOnce sync.Once
	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// New loads (or, on a fresh store, creates) the shared secrets and the
// current revocations, and returns a Service. Call [Service.Start] to
// follow revocations made elsewhere and to write key last-used times.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Store == nil {
		return nil, errors.New("auth: no store")
	}
	cfg := withDefaults(o.Config)
	if cfg.OIDC.Issuer != "" && cfg.OIDC.Issuer == cfg.Issuer {
		return nil, fmt.Errorf("auth: the OIDC issuer must differ from the gateway's own issuer %q", cfg.Issuer)
	}
	s := &Service{
		st:      o.Store,
		hc:      o.HTTPClient,
		rdb:     o.Redis,
		audit:   o.Audit,
		log:     o.Log,
		now:     o.Now,
		keys:    newTTLCache[string, *keyEntry](),
		users:   newTTLCache[string, *store.User](),
		tenants: newTTLCache[string, *tenantEntry](),
		rev:     newRevocations(cfg.AccessTTL.D(), cfg.RefreshTTL.D()),
		getenv:  os.Getenv,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.used = newLastUsed()
	s.SetClientCerts(o.ClientCerts)
	s.hashSlots = make(chan struct{}, hashConcurrency())
	var err error
	if s.keyHMAC, err = s.secret(ctx, secretAPIKeyHMAC, 32); err != nil {
		return nil, err
	}
	if s.jwtKey, err = s.secret(ctx, secretJWT, 64); err != nil {
		return nil, err
	}
	s.keyMAC = newMACPool(s.keyHMAC)
	s.refreshKey = hmacSHA256(s.keyHMAC, []byte("mcpedge refresh token v1"))
	c, err := s.newConf(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.conf.Store(c)
	if err := s.pollRevocations(ctx); err != nil {
		return nil, fmt.Errorf("auth: loading revocations: %w", err)
	}
	return s, nil
}

// withDefaults fills zero settings with the config package defaults, so
// that a Service built from a partial config (tests, tools) is safe.
func withDefaults(c config.Auth) config.Auth {
	if c.Issuer == "" {
		c.Issuer = config.DefaultAuthIssuer
	}
	if c.Audience == "" {
		c.Audience = config.DefaultAuthIssuer
	}
	if c.AccessTTL <= 0 {
		c.AccessTTL = config.DefaultAccessTTL
	}
	if c.RefreshTTL <= 0 {
		c.RefreshTTL = config.DefaultRefreshTTL
	}
	if c.KeyRotateOverlap < 0 {
		c.KeyRotateOverlap = 0
	}
	if c.RevocationPoll <= 0 {
		c.RevocationPoll = config.DefaultRevocationPoll
	}
	if c.LockoutThreshold <= 0 {
		c.LockoutThreshold = config.DefaultLockoutThreshold
	}
	if c.LockoutBase <= 0 {
		c.LockoutBase = config.DefaultLockoutBase
	}
	if c.LockoutMax <= 0 {
		c.LockoutMax = config.DefaultLockoutMax
	}
	if c.LockoutMax < c.LockoutBase {
		c.LockoutMax = c.LockoutBase
	}
	if c.BootstrapTenant == "" {
		c.BootstrapTenant = config.DefaultBootstrapTenant
	}
	o := &c.OIDC
	if o.Issuer != "" {
		if o.JWKSRefresh <= 0 {
			o.JWKSRefresh = config.DefaultOIDCJWKSRefresh
		}
		if o.DefaultRole == "" {
			o.DefaultRole = config.DefaultOIDCDefaultRole
		}
		if len(o.Algorithms) == 0 {
			o.Algorithms = []string{"RS256", "ES256", "PS256", "EdDSA"}
		}
	}
	return c
}

func (s *Service) secret(ctx context.Context, name string, size int) ([]byte, error) {
	b, err := s.st.GetOrCreateSecret(ctx, name, func() ([]byte, error) {
		b := make([]byte, size)
		_, err := rand.Read(b)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("auth: loading secret %s: %w", name, err)
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("auth: secret %s is %d bytes; at least 32 are needed", name, len(b))
	}
	return b, nil
}

// Start runs the background work until ctx ends or Close is called:
// following revocations (Redis pub/sub when configured, and a store poll
// every RevocationPoll in any case, which also covers messages lost while
// Redis was unreachable), writing key last-used times, and refreshing the
// OIDC key set. When Start returns, the Redis subscription (if any) is
// established or its failure logged. Start runs once; later calls do
// nothing.
func (s *Service) Start(ctx context.Context) {
	s.startOnce.Do(func() {
		ctx, s.cancel = context.WithCancel(ctx)
		if s.rdb != nil {
			s.subscribe(ctx)
		}
		// The intervals are read again after every round, so that a
		// Reconfigure applies to the next one.
		s.goLoop(ctx, func() time.Duration { return s.cfg().RevocationPoll.D() }, func(ctx context.Context) {
			if err := s.pollRevocations(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("auth: polling revocations", "err", err)
			}
		})
		s.goLoop(ctx, func() time.Duration { return lastUsedFlush }, s.flushLastUsed)
		s.goLoop(ctx, s.oidcRefreshEvery, func(ctx context.Context) {
			if v := s.conf.Load().oidc; v != nil {
				if err := v.refresh(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("auth: refreshing the OIDC key set", "err", err)
				}
			}
		})
	})
}

// oidcRefreshEvery is the OIDC key set's refresh interval, or how often to
// look again whether [auth.oidc] was configured by a reload.
func (s *Service) oidcRefreshEvery() time.Duration {
	if c := s.conf.Load(); c.oidc != nil {
		return c.cfg.OIDC.JWKSRefresh.D()
	}
	return time.Minute
}

func (s *Service) goLoop(ctx context.Context, every func() time.Duration, f func(context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(every())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f(ctx)
				t.Reset(every())
			}
		}
	}()
}

// Close stops the background work and writes pending last-used times. It
// does not close the store or the Redis client.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.startOnce.Do(func() {}) // a later Start does nothing
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.flushLastUsed(ctx)
	})
	return nil
}

// Authenticate resolves a bearer credential to a principal. Credentials
// starting with "mcpe_" are API keys; JWT-shaped ones (three
// dot-separated parts) are access tokens of this gateway (iss ==
// Config.Issuer) or of the OIDC provider (iss == OIDC.Issuer); anything
// else is looked up as an imported API key. clientIP is checked against
// the tenant's allowlist.
//
// OIDC tokens map to a tenant by the tenant claim (or DefaultTenant), a
// role by the role claim (or DefaultRole), and scopes by "scope"/"scp".
// Those scopes limit the principal like an API key's: a provider whose
// tokens carry scopes must include the mcp:* ones the caller needs.
//
// The returned principal is the caller's own copy, but its slices are
// shared with the cache and must not be modified.
func (s *Service) Authenticate(ctx context.Context, token, clientIP string) (*principal.Principal, error) {
	token = strings.TrimSpace(token)
	switch {
	case token == "":
		return nil, unauth("missing credential")
	case len(token) > maxTokenLen:
		return nil, s.reject(ctx, who{}, clientIP, unauth("malformed credential"), nil)
	case strings.HasPrefix(token, KeyPrefix):
		return s.authenticateKey(ctx, token, clientIP)
	case isJWTShaped(token):
		return s.authenticateJWT(ctx, token, clientIP)
	default:
		return s.authenticateKey(ctx, token, clientIP)
	}
}

func isJWTShaped(tok string) bool { return strings.Count(tok, ".") == 2 }

// failure is a refusal with a reason for the client and, separately, one
// for the audit log (which may say more, e.g. "locked").
type failure struct {
	kind   error // ErrUnauthenticated or ErrForbidden
	reason string
}

func (f *failure) Error() string { return f.kind.Error() + ": " + f.reason }
func (f *failure) Unwrap() error { return f.kind }

func unauth(reason string) error    { return &failure{kind: ErrUnauthenticated, reason: reason} }
func forbidden(reason string) error { return &failure{kind: ErrForbidden, reason: reason} }
func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Reason returns the client-safe reason of an error from this package
// ("API key revoked"), or "" for other errors.
func Reason(err error) string {
	var f *failure
	if errors.As(err, &f) {
		return f.reason
	}
	return ""
}

// jwksClient is the default client of the OIDC key-set fetch: a 10s
// timeout, the environment's proxy as before, and the egress policy of a
// destination the operator names and trusts — identity providers often run
// on the private network, so private addresses are allowed, but cloud
// metadata, unspecified, multicast and reserved addresses are never dialled
// (docs/egress.md).
//
// The key set's server certificate is always verified; [auth.oidc.tls]
// adds CAs (a private identity provider) and a client certificate.
func jwksClient(tc config.ClientTLS) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	p := &egress.Policy{Who: "oidc jwks_url", Trusted: true}
	t.DialContext = p.Dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	conf, err := tlsconf.Client(tc, "auth.oidc.tls", "oidc", nil)
	if err != nil {
		return nil, err
	}
	if conf != nil {
		t.TLSClientConfig = conf
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: t}, nil
}
