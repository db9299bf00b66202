package config

import (
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Authentication modes (toml [auth] mode).
const (
	// AuthRequired makes every request except /healthz and the OAuth
	// metadata present a credential the store (or the OIDC issuer) knows.
	AuthRequired = "required"
	// AuthOff turns multi-tenant authentication off: the gateway is a
	// single-user tool, protected only by the optional static token of
	// server.auth_token_env. It is refused on a non-loopback listen address.
	AuthOff = "off"
)

// Audit argument policies (toml [audit] arguments).
const (
	AuditArgsHash   = "hash"   // a SHA-256 of the canonical arguments
	AuditArgsRedact = "redact" // nothing about the arguments but their size
	AuditArgsFull   = "full"   // the arguments themselves (mind what tools receive)
)

// Security defaults.
const (
	DefaultAuthMode          = AuthRequired
	DefaultAuthIssuer        = "mcpedge"
	DefaultAccessTTL         = Duration(15 * time.Minute)
	DefaultRefreshTTL        = Duration(30 * 24 * time.Hour)
	DefaultKeyRotateOverlap  = Duration(24 * time.Hour)
	DefaultRevocationPoll    = Duration(2 * time.Second)
	DefaultLockoutThreshold  = 5
	DefaultLockoutBase       = Duration(time.Second)
	DefaultLockoutMax        = Duration(15 * time.Minute)
	DefaultOIDCTenantClaim   = "tenant"
	DefaultOIDCRoleClaim     = "role"
	DefaultOIDCDefaultRole   = "member"
	DefaultOIDCJWKSRefresh   = Duration(15 * time.Minute)
	DefaultPlan              = "free"
	DefaultAuditArguments    = AuditArgsHash
	DefaultBootstrapTenant   = "default"
	DefaultBootstrapKeyEnv   = "MCPEDGE_ADMIN_KEY"
	DefaultBootstrapPassEnv  = "MCPEDGE_ADMIN_PASSWORD"
	DefaultBootstrapUserName = "owner"
)

// Roles a principal can hold within its tenant, weakest first.
var Roles = []string{"viewer", "member", "admin", "owner"}

// Store selects where tenants, users, keys, audit entries and lattice
// definitions live (toml [store]).
type Store struct {
	// URL (${VAR} references expanded, so a password can stay in the
	// environment) is "sqlite:///abs/path.db", "sqlite://relative.db" (relative to
	// data_dir), "sqlite::memory:" or "postgres://…". "" means
	// <data_dir>/mcpedge.db, or an in-memory database when data_dir is "".
	URL string
	// Key is where the master key that seals the store's secrets comes
	// from (toml "key"): StoreKeyAuto (""), StoreKeyEnv, StoreKeyFile or
	// StoreKeyTPM. Auto is KeyEnv when that variable is set, else
	// KeyFile when set, else store.key beside a SQLite database; a
	// PostgreSQL store needs the variable or KeyFile, the same on every
	// replica.
	Key string
	// KeyFile is the master key file, 32 raw bytes (toml "key_file",
	// ${VAR} references expanded; relative to data_dir). For SQLite it
	// is created with mode 0600 on first use; for PostgreSQL it must
	// exist.
	KeyFile string
	// KeyEnv is the environment variable holding the master key in
	// base64 (toml "key_env"); "" means DefaultStoreKeyEnv.
	KeyEnv string
}

// Master key sources of [store] key.
const (
	StoreKeyAuto = ""
	StoreKeyEnv  = "env"
	StoreKeyFile = "file"
	StoreKeyTPM  = "tpm"
	// DefaultStoreKeyEnv is the default [store] key_env.
	DefaultStoreKeyEnv = "MCPEDGE_STORE_KEY"
)

// Redis is the optional shared state of several replicas (toml [redis]):
// rate limits and quotas that hold across replicas, and revocations that
// reach every replica at once.
type Redis struct {
	// URL is "redis://[user:pass@]host:port/db" (${VAR} references
	// expanded); "" means no Redis.
	URL string
}

// Auth configures who may call the gateway (toml [auth]).
type Auth struct {
	// Mode is AuthRequired (default) or AuthOff.
	Mode string
	// Issuer and Audience are set in and required of the gateway's own
	// access tokens (toml "issuer", "audience"; both default to
	// "mcpedge").
	Issuer   string
	Audience string
	// AccessTTL and RefreshTTL bound user-session tokens.
	AccessTTL  Duration
	RefreshTTL Duration
	// KeyRotateOverlap is how long a rotated API key keeps working beside
	// its successor (toml "key_rotate_overlap").
	KeyRotateOverlap Duration
	// RevocationPoll is how often a replica without Redis looks in the
	// store for revocations made elsewhere: the upper bound on how long a
	// revoked credential keeps working on another replica.
	RevocationPoll Duration
	// LockoutThreshold failed logins in a row lock a user for LockoutBase,
	// doubling with every further failure up to LockoutMax.
	LockoutThreshold int
	LockoutBase      Duration
	LockoutMax       Duration
	// ResourceURL is the public URL of this gateway's /mcp endpoint, used
	// as "resource" in the OAuth protected resource metadata; "" derives
	// it from the request.
	ResourceURL string
	// BootstrapTenant, BootstrapKeyEnv and BootstrapPasswordEnv control
	// the first start on an empty store: a tenant of that name, an owner
	// user and an admin API key are created; the key (and password) come
	// from these environment variables when set, and are generated and
	// printed once otherwise.
	BootstrapTenant      string
	BootstrapKeyEnv      string
	BootstrapPasswordEnv string
	// OIDC, if Issuer is set, accepts bearer JWTs from an external
	// identity provider.
	OIDC OIDC
}

// OIDC configures an external identity provider (toml [auth.oidc]).
type OIDC struct {
	Issuer   string
	Audience string
	// JWKSURL is where the provider's signing keys are fetched from. It is
	// always this configured URL, never one named inside a token.
	JWKSURL string
	// JWKSRefresh is how often the key set is re-fetched; an unknown kid
	// also triggers a (rate-limited) refresh.
	JWKSRefresh Duration
	// TenantClaim names the claim holding the tenant name; DefaultTenant
	// is used when the claim is absent ("" = reject such tokens).
	TenantClaim   string
	DefaultTenant string
	// RoleClaim names the claim holding the role; DefaultRole applies when
	// it is absent.
	RoleClaim   string
	DefaultRole string
	// Algorithms are the accepted signing algorithms (default RS256,
	// ES256, PS256, EdDSA). "none" and HMAC algorithms are never accepted.
	Algorithms []string
	// TLS verifies the key set's server against extra CAs, with an
	// optional client certificate (toml [auth.oidc.tls]).
	TLS ClientTLS
	// ScopeMap maps a scope of the provider's tokens (as the "scope" or
	// "scp" claim carries it: "mcp", "MCP.Call", "read:tools") to the
	// gateway scopes it grants (toml [auth.oidc.scope_map]). A mapped
	// scope is replaced by its gateway scopes; an unmapped one is kept as
	// it is (a gateway scope the provider issues itself, or one a per-tool
	// rule names); one mapped to [] is dropped. See docs/configuration.md.
	ScopeMap map[string][]string
}

// GatewayScopes are the scopes with a meaning of their own to the
// gateway (principal.KnownScopes, which a test keeps equal).
var GatewayScopes = []string{"mcp:list", "mcp:call", "admin:read", "admin:write"}

// Plan holds the limits of one plan (toml [plans.NAME]). Rates are requests
// per minute; 0 means unlimited for that dimension.
type Plan struct {
	Name             string
	KeyPerMinute     int64
	KeyBurst         int64
	TenantPerMinute  int64
	TenantBurst      int64
	IPPerMinute      int64
	IPBurst          int64
	MonthlyQuota     int64 // tools/call per tenant per calendar month (UTC); 0 = unlimited
	LatticeMaxPoints int64 // 0 = the [lattice] max_points
	LatticeTimeout   Duration
}

// Limits holds settings of the request edge (toml [limits]).
type Limits struct {
	// TrustedProxies are CIDRs of reverse proxies whose X-Forwarded-For
	// is believed. From any other peer the header is ignored.
	TrustedProxies []string
}

// Audit configures the audit log (toml [audit]).
type Audit struct {
	// Arguments is AuditArgsHash (default), AuditArgsRedact or AuditArgsFull.
	Arguments string
}

// Metering configures usage metering (toml [metering], docs/platform.md).
type Metering struct {
	// Enabled counts every tools/call per tenant, hour, caller, upstream,
	// tool and outcome in the store (default true).
	Enabled bool
	// FlushInterval is how often the counts are added to the store; a
	// crash loses at most one interval of counting.
	FlushInterval Duration
	// Retention is how long hourly records are kept (0: forever).
	Retention Duration
}

// Metering defaults.
const (
	DefaultMeteringFlush     = Duration(10 * time.Second)
	DefaultMeteringRetention = Duration(400 * 24 * time.Hour)
)

// DefaultPlans are the plans every gateway knows; [plans.NAME] overrides or
// adds to them.
func DefaultPlans() map[string]Plan {
	return map[string]Plan{
		"free":       {Name: "free", KeyPerMinute: 60, KeyBurst: 20, TenantPerMinute: 120, TenantBurst: 40, IPPerMinute: 300, IPBurst: 60, MonthlyQuota: 10_000, LatticeMaxPoints: 1 << 24, LatticeTimeout: Duration(5 * time.Second)},
		"pro":        {Name: "pro", KeyPerMinute: 600, KeyBurst: 100, TenantPerMinute: 3000, TenantBurst: 300, IPPerMinute: 3000, IPBurst: 300, MonthlyQuota: 1_000_000, LatticeMaxPoints: 1 << 30},
		"enterprise": {Name: "enterprise", KeyPerMinute: 6000, KeyBurst: 1000, TenantPerMinute: 60000, TenantBurst: 6000, IPPerMinute: 0, IPBurst: 0, MonthlyQuota: 0},
	}
}

func defaultSecurity(c *Config) {
	c.Auth = Auth{
		Mode:                 DefaultAuthMode,
		Issuer:               DefaultAuthIssuer,
		Audience:             DefaultAuthIssuer,
		AccessTTL:            DefaultAccessTTL,
		RefreshTTL:           DefaultRefreshTTL,
		KeyRotateOverlap:     DefaultKeyRotateOverlap,
		RevocationPoll:       DefaultRevocationPoll,
		LockoutThreshold:     DefaultLockoutThreshold,
		LockoutBase:          DefaultLockoutBase,
		LockoutMax:           DefaultLockoutMax,
		BootstrapTenant:      DefaultBootstrapTenant,
		BootstrapKeyEnv:      DefaultBootstrapKeyEnv,
		BootstrapPasswordEnv: DefaultBootstrapPassEnv,
		OIDC: OIDC{
			TenantClaim: DefaultOIDCTenantClaim,
			RoleClaim:   DefaultOIDCRoleClaim,
			DefaultRole: DefaultOIDCDefaultRole,
			JWKSRefresh: DefaultOIDCJWKSRefresh,
			Algorithms:  []string{"RS256", "ES256", "PS256", "EdDSA"},
		},
	}
	c.Plans = DefaultPlans()
	c.Audit = Audit{Arguments: DefaultAuditArguments}
	c.Metering = Metering{Enabled: true, FlushInterval: DefaultMeteringFlush, Retention: DefaultMeteringRetention}
	c.Webhooks = defaultWebhooks()
}

var (
	storeKeys  = []string{"url", "key", "key_file", "key_env"}
	redisKeys  = []string{"url"}
	authKeys   = []string{"mode", "issuer", "audience", "access_ttl", "refresh_ttl", "key_rotate_overlap", "revocation_poll", "lockout_threshold", "lockout_base", "lockout_max", "resource_url", "bootstrap_tenant", "bootstrap_key_env", "bootstrap_password_env", "oidc"}
	oidcKeys   = []string{"issuer", "audience", "jwks_url", "jwks_refresh", "tenant_claim", "default_tenant", "role_claim", "default_role", "algorithms", "tls", "scope_map"}
	planKeys   = []string{"key_per_minute", "key_burst", "tenant_per_minute", "tenant_burst", "ip_per_minute", "ip_burst", "monthly_quota", "lattice_max_points", "lattice_timeout"}
	limitsKeys = []string{"trusted_proxies"}
	auditKeys  = []string{"arguments"}
	// meteringKeys are [metering]'s keys.
	meteringKeys = []string{"enabled", "flush_interval", "retention"}
	planNameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	// securityTables are the top-level tables decodeSecurity handles.
	securityTables = []string{"store", "redis", "auth", "plans", "limits", "audit", "metering", "webhooks"}
)

// subTable returns key's table in t, or nil (reporting a type error) when
// the key is absent or not a table.
func (d *decoder) subTable(t *table, key string) *table {
	v := t.get(key)
	if v == nil {
		return nil
	}
	if v.kind != kTable {
		t.typeErr(key, v, "table (["+joinField(t.field, key)+"])")
		return nil
	}
	return d.table(v, joinField(t.field, key))
}

// securityMeta locates security settings for validation.
type securityMeta struct {
	auth, oidc, store, redis, limits, audit, metering *table
	webhooks                                          *table
	plans                                             map[string]*table
}

func metaLoc(t *table, field, key string) loc {
	if t == nil {
		return loc{field: field + "." + key}
	}
	return t.loc(key)
}

func (d *decoder) decodeSecurity(top *table, c *Config) securityMeta {
	var m securityMeta
	if t := d.subTable(top, "store"); t != nil {
		m.store = t
		if t.str("url", &c.Store.URL) {
			l := t.loc("url")
			c.Store.URL, _ = d.expand(c.Store.URL, l.pos, l.field, false)
		}
		t.str("key", &c.Store.Key)
		if t.str("key_file", &c.Store.KeyFile) {
			l := t.loc("key_file")
			c.Store.KeyFile, _ = d.expand(c.Store.KeyFile, l.pos, l.field, false)
		}
		t.str("key_env", &c.Store.KeyEnv)
		t.unknown(storeKeys)
	}
	if t := d.subTable(top, "redis"); t != nil {
		m.redis = t
		if t.str("url", &c.Redis.URL) {
			l := t.loc("url")
			c.Redis.URL, _ = d.expand(c.Redis.URL, l.pos, l.field, false)
		}
		t.unknown(redisKeys)
	}
	if t := d.subTable(top, "auth"); t != nil {
		m.auth = t
		a := &c.Auth
		t.str("mode", &a.Mode)
		t.str("issuer", &a.Issuer)
		t.str("audience", &a.Audience)
		t.duration("access_ttl", &a.AccessTTL)
		t.duration("refresh_ttl", &a.RefreshTTL)
		t.duration("key_rotate_overlap", &a.KeyRotateOverlap)
		t.duration("revocation_poll", &a.RevocationPoll)
		var n int64
		if t.integer("lockout_threshold", &n) {
			a.LockoutThreshold = clampInt(n)
		}
		t.duration("lockout_base", &a.LockoutBase)
		t.duration("lockout_max", &a.LockoutMax)
		t.str("resource_url", &a.ResourceURL)
		t.str("bootstrap_tenant", &a.BootstrapTenant)
		t.str("bootstrap_key_env", &a.BootstrapKeyEnv)
		t.str("bootstrap_password_env", &a.BootstrapPasswordEnv)
		if o := d.subTable(t, "oidc"); o != nil {
			m.oidc = o
			oc := &a.OIDC
			o.str("issuer", &oc.Issuer)
			o.str("audience", &oc.Audience)
			o.str("jwks_url", &oc.JWKSURL)
			o.duration("jwks_refresh", &oc.JWKSRefresh)
			o.str("tenant_claim", &oc.TenantClaim)
			o.str("default_tenant", &oc.DefaultTenant)
			o.str("role_claim", &oc.RoleClaim)
			o.str("default_role", &oc.DefaultRole)
			o.strList("algorithms", &oc.Algorithms)
			if ct := d.decodeClientTLS(o, &oc.TLS); ct != nil {
				d.validateClientTLS(&oc.TLS, ct, "auth.oidc.tls")
			}
			d.decodeScopeMap(o, oc)
			o.unknown(oidcKeys)
		}
		t.unknown(authKeys)
	}
	if t := d.subTable(top, "plans"); t != nil {
		m.plans = map[string]*table{}
		names := make([]string, 0, len(t.v.fields))
		for k := range t.v.fields {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, name := range names {
			pt := d.subTable(t, name)
			if pt == nil {
				continue
			}
			m.plans[name] = pt
			p, ok := c.Plans[name]
			if !ok {
				p = Plan{}
			}
			p.Name = name
			pt.integer("key_per_minute", &p.KeyPerMinute)
			pt.integer("key_burst", &p.KeyBurst)
			pt.integer("tenant_per_minute", &p.TenantPerMinute)
			pt.integer("tenant_burst", &p.TenantBurst)
			pt.integer("ip_per_minute", &p.IPPerMinute)
			pt.integer("ip_burst", &p.IPBurst)
			pt.integer("monthly_quota", &p.MonthlyQuota)
			pt.integer("lattice_max_points", &p.LatticeMaxPoints)
			pt.duration("lattice_timeout", &p.LatticeTimeout)
			pt.unknown(planKeys)
			c.Plans[name] = p
		}
	}
	if t := d.subTable(top, "limits"); t != nil {
		m.limits = t
		t.strList("trusted_proxies", &c.Limits.TrustedProxies)
		t.unknown(limitsKeys)
	}
	if t := d.subTable(top, "audit"); t != nil {
		m.audit = t
		t.str("arguments", &c.Audit.Arguments)
		t.unknown(auditKeys)
	}
	if t := d.subTable(top, "metering"); t != nil {
		m.metering = t
		t.boolean("enabled", &c.Metering.Enabled)
		t.duration("flush_interval", &c.Metering.FlushInterval)
		t.duration("retention", &c.Metering.Retention)
		t.unknown(meteringKeys)
	}
	if t := d.subTable(top, "webhooks"); t != nil {
		m.webhooks = t
		d.decodeWebhooks(t, &c.Webhooks)
	}
	return m
}

func (d *decoder) validateSecurity(c *Config, m securityMeta) {
	bad := func(t *table, field, key, format string, args ...any) {
		l := metaLoc(t, field, key)
		d.add(l.pos, l.field, format, args...)
	}
	a := &c.Auth
	switch a.Mode {
	case AuthRequired:
	case AuthOff:
		if !ListenIsLoopback(c.Server.Listen) {
			bad(m.auth, "auth", "mode", "\"off\" is only allowed when server.listen is a loopback address (got %q); use mode = \"required\" on a network-facing gateway", c.Server.Listen)
		}
	default:
		bad(m.auth, "auth", "mode", "must be %q or %q, got %q", AuthRequired, AuthOff, truncate(a.Mode, 64))
	}
	if a.Issuer == "" {
		bad(m.auth, "auth", "issuer", "must not be empty")
	}
	if a.Audience == "" {
		bad(m.auth, "auth", "audience", "must not be empty")
	}
	for _, x := range []struct {
		key string
		d   Duration
	}{{"access_ttl", a.AccessTTL}, {"refresh_ttl", a.RefreshTTL}, {"revocation_poll", a.RevocationPoll}, {"lockout_base", a.LockoutBase}, {"lockout_max", a.LockoutMax}} {
		if x.d <= 0 {
			bad(m.auth, "auth", x.key, "must be greater than 0, got %s", x.d)
		}
	}
	if a.KeyRotateOverlap < 0 {
		bad(m.auth, "auth", "key_rotate_overlap", "must not be negative, got %s", a.KeyRotateOverlap)
	}
	if a.LockoutThreshold < 1 {
		bad(m.auth, "auth", "lockout_threshold", "must be at least 1, got %d", a.LockoutThreshold)
	}
	if a.ResourceURL != "" {
		if u, err := url.Parse(a.ResourceURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(m.auth, "auth", "resource_url", "must be an absolute http(s) URL, got %q", truncate(a.ResourceURL, 80))
		}
	}
	if !planNameRE.MatchString(a.BootstrapTenant) {
		bad(m.auth, "auth", "bootstrap_tenant", "must match %s, got %q", planNameRE, truncate(a.BootstrapTenant, 64))
	}
	for _, k := range []struct{ key, v string }{{"bootstrap_key_env", a.BootstrapKeyEnv}, {"bootstrap_password_env", a.BootstrapPasswordEnv}} {
		if k.v != "" && !validEnvName(k.v) {
			bad(m.auth, "auth", k.key, "%q is not a valid environment variable name", truncate(k.v, 64))
		}
	}
	o := &a.OIDC
	if o.Issuer != "" || o.JWKSURL != "" || o.Audience != "" {
		if o.Issuer == "" {
			bad(m.oidc, "auth.oidc", "issuer", "must be set when [auth.oidc] is used")
		}
		if o.Audience == "" {
			bad(m.oidc, "auth.oidc", "audience", "must be set: tokens minted for another service must not be accepted here")
		}
		if u, err := url.Parse(o.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(m.oidc, "auth.oidc", "jwks_url", "must be an absolute http(s) URL, got %q", truncate(o.JWKSURL, 80))
		} else if msg := trustedHostProblem(u.Hostname()); msg != "" {
			bad(m.oidc, "auth.oidc", "jwks_url", "%s", msg)
		}
		if o.JWKSRefresh <= 0 {
			bad(m.oidc, "auth.oidc", "jwks_refresh", "must be greater than 0, got %s", o.JWKSRefresh)
		}
		if o.TenantClaim == "" && o.DefaultTenant == "" {
			bad(m.oidc, "auth.oidc", "tenant_claim", "set tenant_claim or default_tenant: every token must name its tenant")
		}
		if !validRole(o.DefaultRole) {
			bad(m.oidc, "auth.oidc", "default_role", "must be one of %s, got %q", strings.Join(Roles, ", "), truncate(o.DefaultRole, 32))
		}
		if len(o.Algorithms) == 0 {
			bad(m.oidc, "auth.oidc", "algorithms", "must list at least one algorithm")
		}
		d.validateScopeMap(m.oidc, o)
		for i, alg := range o.Algorithms {
			switch alg {
			case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
			default:
				l := metaLoc(m.oidc, "auth.oidc", "algorithms")
				d.add(l.pos, indexField(l.field, i), "%q is not an accepted asymmetric signing algorithm (none and HMAC are never accepted from an identity provider)", truncate(alg, 32))
			}
		}
	}
	if c.Store.URL != "" && !strings.HasPrefix(c.Store.URL, "sqlite:") && !strings.HasPrefix(c.Store.URL, "postgres://") && !strings.HasPrefix(c.Store.URL, "postgresql://") {
		bad(m.store, "store", "url", "must start with sqlite: or postgres://, got %q", truncate(redactURL(c.Store.URL), 80))
	}
	switch c.Store.Key {
	case StoreKeyAuto, StoreKeyEnv, StoreKeyFile, StoreKeyTPM:
	default:
		bad(m.store, "store", "key", "must be %q, %q or %q (or absent: the variable if set, else the file), got %q", StoreKeyEnv, StoreKeyFile, StoreKeyTPM, truncate(c.Store.Key, 32))
	}
	if c.Store.KeyEnv != "" && !validEnvName(c.Store.KeyEnv) {
		bad(m.store, "store", "key_env", "%q is not a valid environment variable name", truncate(c.Store.KeyEnv, 64))
	}
	if c.Store.Key == StoreKeyEnv && c.Store.KeyFile != "" {
		bad(m.store, "store", "key_file", "is not used with key = %q; remove one of them", StoreKeyEnv)
	}
	if c.Store.Key == StoreKeyTPM && c.Store.KeyFile != "" {
		bad(m.store, "store", "key_file", "is not used with key = %q (the TPM-sealed key lives in data_dir); remove one of them", StoreKeyTPM)
	}
	if c.Redis.URL != "" && !strings.HasPrefix(c.Redis.URL, "redis://") && !strings.HasPrefix(c.Redis.URL, "rediss://") {
		bad(m.redis, "redis", "url", "must start with redis:// or rediss://, got %q", truncate(redactURL(c.Redis.URL), 80))
	}
	names := make([]string, 0, len(c.Plans))
	for n := range c.Plans {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := c.Plans[n]
		pt := m.plans[n]
		f := "plans." + n
		if !planNameRE.MatchString(n) {
			bad(pt, "plans", n, "plan name must match %s", planNameRE)
		}
		for _, x := range []struct {
			key string
			v   int64
		}{{"key_per_minute", p.KeyPerMinute}, {"key_burst", p.KeyBurst}, {"tenant_per_minute", p.TenantPerMinute}, {"tenant_burst", p.TenantBurst}, {"ip_per_minute", p.IPPerMinute}, {"ip_burst", p.IPBurst}, {"monthly_quota", p.MonthlyQuota}, {"lattice_max_points", p.LatticeMaxPoints}} {
			if x.v < 0 {
				bad(pt, f, x.key, "must not be negative, got %d", x.v)
			}
		}
		if p.LatticeMaxPoints > MaxLatticePoints {
			bad(pt, f, "lattice_max_points", "must be at most %d (2^62), got %d", MaxLatticePoints, p.LatticeMaxPoints)
		}
		if p.LatticeTimeout < 0 {
			bad(pt, f, "lattice_timeout", "must not be negative, got %s", p.LatticeTimeout)
		}
	}
	for i, cidr := range c.Limits.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			if ip := net.ParseIP(cidr); ip == nil {
				l := metaLoc(m.limits, "limits", "trusted_proxies")
				d.add(l.pos, indexField(l.field, i), "%q is not a CIDR (e.g. 10.0.0.0/8) or IP address", truncate(cidr, 64))
			}
		}
	}
	switch c.Audit.Arguments {
	case AuditArgsHash, AuditArgsRedact, AuditArgsFull:
	default:
		bad(m.audit, "audit", "arguments", "must be %q, %q or %q, got %q", AuditArgsHash, AuditArgsRedact, AuditArgsFull, truncate(c.Audit.Arguments, 32))
	}
	if f := c.Metering.FlushInterval; f < Duration(time.Second) || f > Duration(time.Hour) {
		bad(m.metering, "metering", "flush_interval", "must be between 1s and 1h, got %s", f)
	}
	if r := c.Metering.Retention; r != 0 && r < Duration(48*time.Hour) {
		bad(m.metering, "metering", "retention", "must be 0 (keep forever) or at least 48h, got %s", r)
	}
	d.validateWebhooks(m.webhooks, &c.Webhooks)
}

func validRole(r string) bool {
	for _, x := range Roles {
		if x == r {
			return true
		}
	}
	return false
}

// ListenIsLoopback reports whether a listen address only accepts
// connections from this machine. ":8080" and "0.0.0.0:8080" are not.
func ListenIsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides a password in a URL so that it can appear in an error.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// maxScopeLen bounds a scope string of scope_map.
const maxScopeLen = 128

// decodeScopeMap reads [auth.oidc.scope_map]: provider scope = [gateway
// scopes].
func (d *decoder) decodeScopeMap(o *table, oc *OIDC) {
	v := o.get("scope_map")
	if v == nil {
		return
	}
	l := o.loc("scope_map")
	if v.kind != kTable {
		o.typeErr("scope_map", v, d.kindName(kTable)+" of arrays of scopes")
		return
	}
	t := d.table(v, l.field)
	oc.ScopeMap = make(map[string][]string, len(v.keys))
	for _, k := range v.keys {
		var list []string
		if t.strList(k, &list) {
			oc.ScopeMap[k] = list
		}
	}
}

// validateScopeMap checks scope_map: provider scopes and gateway scopes
// are single words; a gateway scope in the mcp: or admin: namespace must
// be one the gateway knows (a typo there would grant nothing, silently).
func (d *decoder) validateScopeMap(ot *table, o *OIDC) {
	if len(o.ScopeMap) == 0 || ot == nil {
		return
	}
	mt := ot.v.fields["scope_map"]
	if mt == nil {
		return
	}
	base := ot.loc("scope_map").field
	for _, k := range mt.keys {
		list, ok := o.ScopeMap[k]
		if !ok {
			continue
		}
		p := mt.keyPos[k]
		f := joinField(base, k)
		if k == "" || len(k) > maxScopeLen || strings.IndexFunc(k, unicode.IsSpace) >= 0 {
			d.add(p, f, "a provider scope is one word of at most %d characters, got %q", maxScopeLen, truncate(k, 64))
		}
		for i, s := range list {
			ef := indexField(f, i)
			switch {
			case s == "" || len(s) > maxScopeLen || strings.IndexFunc(s, unicode.IsSpace) >= 0:
				d.add(p, ef, "a gateway scope is one word of at most %d characters, got %q", maxScopeLen, truncate(s, 64))
			case (strings.HasPrefix(s, "mcp:") || strings.HasPrefix(s, "admin:")) && !slices.Contains(GatewayScopes, s):
				d.add(p, ef, "%q is not a gateway scope (%s; other names are free for per-tool rules, outside the mcp: and admin: namespaces)", truncate(s, 64), strings.Join(GatewayScopes, ", "))
			}
		}
	}
}
