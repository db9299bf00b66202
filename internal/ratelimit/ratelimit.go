// Package ratelimit enforces request rates, monthly quotas and per-tenant IP
// allowlists for the multi-tenant gateway, and resolves the client IP those
// limits apply to.
//
// It is a library: it knows nothing about MCP, HTTP routing or tenants'
// storage. The HTTP layer resolves a [Subject] (API key, tenant, client IP),
// looks up the tenant's [Plan] and asks a [Limiter]:
//
//	d, err := lim.Allow(ctx, plan, ratelimit.Subject{Key: keyID, Tenant: tenant, IP: ip})
//	if err != nil { /* store down: fail open or closed, caller's choice */ }
//	ratelimit.SetHeaders(w.Header(), d)
//	if !d.Allowed { /* 429 */ }
//
// and, for tools/call only, consumes one unit of the monthly quota with
// [Limiter.Quota].
//
// # Dimensions
//
// A request is checked against up to three token buckets at once — one per
// client IP, one per API key (or user principal) and one shared by the whole
// tenant — and is allowed only when all of them have a token. The decision is
// all-or-nothing: a request refused by one dimension consumes nothing from
// the others, so a client hammering past its own key limit does not burn the
// tenant's shared budget, and a denied flood costs no tokens at all.
//
// IPv6 clients are limited per /64 ([IPv6Prefix]): one subscriber usually
// owns a whole /64, and limiting single addresses would let them rotate
// through 2^64 fresh buckets.
//
// # Implementations
//
// [Memory] keeps buckets in process (golang.org/x/time/rate), sharded, with a
// hard cap on entries per dimension and LRU plus idle eviction, so a flood of
// distinct IPs cannot grow memory without bound. [Redis] keeps them in Redis
// with GCRA so that every gateway replica sharing the Redis enforces one
// limit; it uses the Redis server's clock, so replicas' clock skew does not
// matter.
//
// # Client IP
//
// [ClientIP] honours X-Forwarded-For only when the direct peer is a trusted
// proxy, and walks the list right to left past trusted proxies, so a client
// cannot pick its own rate-limit bucket (or pass an allowlist) by sending
// the header itself.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Dimension names, as reported in [Decision.Dimension] and suitable as a
// bounded metric label.
const (
	DimKey    = "key"
	DimTenant = "tenant"
	DimIP     = "ip"
	DimQuota  = "quota"
)

// IPv6Prefix is the prefix length IPv6 client addresses are grouped by for
// the IP dimension. A /64 is the smallest block routinely delegated to one
// subscriber, so per-address limits would be trivially evaded.
const IPv6Prefix = 64

// A Plan holds the limits of one service plan. Plans come from config
// ([plans.NAME] tables, with built-in defaults in config.DefaultPlans),
// converted to requests per second by the caller.
//
// A rate of zero switches that dimension off (unlimited), as does a
// MonthlyQuota of zero. A burst of zero with a positive rate means
// ceil(rate), at least 1, so a plan that only names rates still works.
type Plan struct {
	// Name identifies the plan in logs and metrics.
	Name string `json:"name,omitempty" toml:"name,omitempty"`

	// KeyRate is the sustained rate per API key or user principal, in
	// requests per second; KeyBurst is how many requests it may send at
	// once after being idle.
	KeyRate  float64 `json:"key_rate" toml:"key_rate"`
	KeyBurst int     `json:"key_burst" toml:"key_burst"`

	// TenantRate and TenantBurst bound all keys of one tenant together, so
	// a tenant cannot multiply its allowance by minting keys.
	TenantRate  float64 `json:"tenant_rate" toml:"tenant_rate"`
	TenantBurst int     `json:"tenant_burst" toml:"tenant_burst"`

	// IPRate and IPBurst bound one client IP (IPv6: one /64). They are the
	// only limit that applies before authentication, so they protect the
	// gateway from unauthenticated floods.
	IPRate  float64 `json:"ip_rate" toml:"ip_rate"`
	IPBurst int     `json:"ip_burst" toml:"ip_burst"`

	// MonthlyQuota is how many tools/call requests one tenant may make per
	// calendar month (UTC). Zero means unlimited.
	MonthlyQuota int64 `json:"monthly_quota" toml:"monthly_quota"`
}

// maxRate bounds rates so that the emission interval (1/rate) stays well
// above the microsecond resolution of the Redis implementation.
const maxRate = 100_000

// maxBurst bounds bursts; larger values are certainly typos and would make
// Remaining meaningless.
const maxBurst = 10_000_000

// Validate reports the first nonsensical field, so config loading can reject
// a plan before it ever reaches the hot path. Allow does not validate: an
// unvalidated plan with a negative or NaN rate is treated as unlimited in
// that dimension.
func (p Plan) Validate() error {
	for _, d := range []struct {
		name  string
		rate  float64
		burst int
	}{
		{"key", p.KeyRate, p.KeyBurst},
		{"tenant", p.TenantRate, p.TenantBurst},
		{"ip", p.IPRate, p.IPBurst},
	} {
		if math.IsNaN(d.rate) || d.rate < 0 || d.rate > maxRate {
			return fmt.Errorf("plan %q: %s_rate %v: must be between 0 (unlimited) and %d", p.Name, d.name, d.rate, maxRate)
		}
		if d.burst < 0 || d.burst > maxBurst {
			return fmt.Errorf("plan %q: %s_burst %d: must be between 0 (default) and %d", p.Name, d.name, d.burst, maxBurst)
		}
	}
	if p.MonthlyQuota < 0 {
		return fmt.Errorf("plan %q: monthly_quota %d: must not be negative (0 means unlimited)", p.Name, p.MonthlyQuota)
	}
	return nil
}

// effBurst returns the burst actually used for a dimension with a positive
// rate: the configured one, or ceil(rate) (at least 1) when it is not set.
func effBurst(r float64, b int) int {
	if b > 0 {
		return b
	}
	return max(1, int(math.Ceil(r))) // r <= maxRate, so this fits
}

// limited reports whether a rate switches a dimension on. NaN and
// negatives (a plan that skipped Validate) count as off; so does +Inf,
// which x/time/rate would treat as unlimited anyway.
func limited(r float64) bool {
	return r > 0 && r <= maxRate
}

// A Subject names who is making a request. Any field may be empty, which
// skips that dimension: before authentication only IP is known.
//
// Key must be a stable, non-secret identifier of the API key or principal
// (a key ID, not the key itself): it is kept in memory and, for [Redis],
// written into Redis key names.
type Subject struct {
	Key    string
	Tenant string
	IP     string
}

// A Decision is the outcome of one check. Limit, Remaining and Reset
// describe the most constraining dimension, which is what the RateLimit-*
// response headers report (see [SetHeaders]).
type Decision struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Limit is the size of the tightest bucket (its burst) or the monthly
	// quota. Zero means no limit applied; SetHeaders then writes nothing.
	// It is an int64 because quotas may exceed int on 32-bit targets.
	Limit int64
	// Remaining is how many more requests the tightest dimension would
	// allow right now.
	Remaining int64
	// Reset is how long until the tightest dimension is back to Limit
	// (bucket full again, or the start of next month for quotas).
	Reset time.Duration
	// RetryAfter is how long to wait before retrying; it is positive
	// exactly when Allowed is false.
	RetryAfter time.Duration
	// Dimension is the dimension that denied the request, or the tightest
	// one when it was allowed: one of DimKey, DimTenant, DimIP, DimQuota,
	// or "" when no limit applied.
	Dimension string
}

// A Limiter decides whether requests may proceed. Implementations are safe
// for concurrent use.
//
// Errors mean the limiter could not decide (for [Redis]: the store is
// unreachable or timed out); the Decision is then the zero value and the
// caller chooses whether to fail open or closed. Denial is not an error.
type Limiter interface {
	// Allow checks one request against the plan's key, tenant and IP
	// limits and, if all of them have room, consumes one token from each.
	Allow(ctx context.Context, plan Plan, s Subject) (Decision, error)

	// Quota consumes one unit of the tenant's quota for the calendar month
	// (UTC) containing now. Call it for tools/call only, after Allow. A
	// denied call consumes nothing, so raising a tenant's quota mid-month
	// takes effect at once. A plan with no quota, or an empty tenant,
	// is allowed without counting.
	Quota(ctx context.Context, plan Plan, tenant string, now time.Time) (Decision, error)

	// Close releases what the limiter owns (background goroutines). It
	// does not close a Redis client passed in by the caller.
	Close() error
}

// monthOf returns the calendar month (UTC) containing t as a single
// comparable number, and the time the next month starts.
func monthOf(t time.Time) (month int32, next time.Time) {
	t = t.UTC()
	y, m, _ := t.Date()
	return int32(y)*12 + int32(m) - 1, time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
}

// monthStart returns the first instant of a month numbered as by monthOf.
func monthStart(month int32) time.Time {
	return time.Date(int(month/12), time.Month(month%12+1), 1, 0, 0, 0, 0, time.UTC)
}

// quotaDecision builds the Decision for a tenant that has used `used` units
// (after this call, if it was allowed) of quota q, with the next month
// starting at next.
func quotaDecision(allowed bool, used, q int64, now, next time.Time) Decision {
	reset := next.Sub(now)
	d := Decision{
		Allowed:   allowed,
		Limit:     q,
		Remaining: max(0, q-used),
		Reset:     reset,
		Dimension: DimQuota,
	}
	if !allowed {
		d.RetryAfter = max(reset, time.Second)
	}
	return d
}
