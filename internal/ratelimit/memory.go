package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults for [MemoryOptions].
const (
	// DefaultMaxKeys and DefaultMaxTenants cap the authenticated
	// dimensions. Those identifiers come from the key store, so the caps
	// only need to exceed the number of keys and tenants active within
	// DefaultIdleTTL.
	DefaultMaxKeys    = 100_000
	DefaultMaxTenants = 100_000
	// DefaultMaxIPs caps the IP dimension, the one an attacker controls.
	// An entry takes about 200 bytes, so this bounds that table near
	// 20 MB — affordable on a Raspberry Pi.
	DefaultMaxIPs = 100_000
	// DefaultMaxQuotaTenants caps monthly quota counters (one per tenant).
	DefaultMaxQuotaTenants = 100_000
	// DefaultIdleTTL is how long an unused bucket is kept. It only needs to
	// exceed the time a bucket takes to refill (burst/rate, seconds for the
	// default plans): dropping a full bucket loses nothing.
	DefaultIdleTTL = 10 * time.Minute
)

// MemoryOptions configure [NewMemory]. The zero value (or nil) gives the
// defaults.
type MemoryOptions struct {
	// MaxKeys, MaxTenants and MaxIPs cap the number of buckets kept for
	// each dimension. Each dimension has its own cap so that a flood of
	// distinct IPs evicts only IP buckets and can never reset a tenant's
	// or key's limit. When a cap is reached the least recently used
	// bucket of that dimension is dropped (the client it belonged to gets
	// a fresh, full bucket). If zero, they default to [DefaultMaxKeys],
	// [DefaultMaxTenants] and [DefaultMaxIPs].
	MaxKeys, MaxTenants, MaxIPs int

	// MaxQuotaTenants caps monthly quota counters. Evicting a counter of
	// the current month forgets that tenant's usage, so set it above the
	// number of tenants. If zero, defaults to [DefaultMaxQuotaTenants].
	MaxQuotaTenants int

	// IdleTTL is how long a bucket may go unused before the background
	// sweeper drops it. If zero, defaults to [DefaultIdleTTL].
	IdleTTL time.Duration

	// SweepInterval is how often the sweeper runs. If zero, defaults to
	// IdleTTL/2; if negative, there is no background sweeper and memory is
	// bounded by the caps alone.
	SweepInterval time.Duration

	// Now is the clock, for tests. If nil, defaults to time.Now.
	Now func() time.Time
}

// Memory is a [Limiter] that keeps its state in process memory. Limits are
// per process: replicas behind a load balancer each allow the full rate.
// Use [Redis] to share limits between replicas.
type Memory struct {
	now  func() time.Time
	ttl  time.Duration
	keys *table[string, bucket]
	tens *table[string, bucket]
	ips  *table[netip.Addr, bucket]
	quot *table[string, quotaCount]

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

var _ Limiter = (*Memory)(nil)

// A bucket is one token bucket and the limits it was last configured
// with, so a plan change is applied on the next request. mu is held across
// the whole multi-dimension decision (see Memory.Allow); lim has its own
// lock too, which is then always uncontended.
type bucket struct {
	mu    sync.Mutex
	lim   *rate.Limiter
	rate  float64
	burst int
}

// A quotaCount is one tenant's usage in one month.
type quotaCount struct {
	month int32 // see monthOf
	used  int64
}

// NewMemory returns an in-memory limiter. Call Close to stop its sweeper.
func NewMemory(opts *MemoryOptions) *Memory {
	var o MemoryOptions
	if opts != nil {
		o = *opts
	}
	o.MaxKeys = cmpOr(o.MaxKeys, DefaultMaxKeys)
	o.MaxTenants = cmpOr(o.MaxTenants, DefaultMaxTenants)
	o.MaxIPs = cmpOr(o.MaxIPs, DefaultMaxIPs)
	o.MaxQuotaTenants = cmpOr(o.MaxQuotaTenants, DefaultMaxQuotaTenants)
	o.IdleTTL = cmpOr(o.IdleTTL, DefaultIdleTTL)
	o.SweepInterval = cmpOr(o.SweepInterval, o.IdleTTL/2)
	if o.Now == nil {
		o.Now = time.Now
	}

	seed := maphash.MakeSeed()
	hashString := func(s string) uint64 { return maphash.String(seed, s) }
	hashAddr := func(a netip.Addr) uint64 { return maphash.Comparable(seed, a) }
	m := &Memory{
		now:  o.Now,
		ttl:  o.IdleTTL,
		keys: newTable[string, bucket](o.MaxKeys, hashString, strings.Clone),
		tens: newTable[string, bucket](o.MaxTenants, hashString, strings.Clone),
		ips:  newTable[netip.Addr, bucket](o.MaxIPs, hashAddr, nil),
		quot: newTable[string, quotaCount](o.MaxQuotaTenants, hashString, strings.Clone),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if o.SweepInterval > 0 {
		go m.sweeper(o.SweepInterval)
	} else {
		close(m.done)
	}
	return m
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// A dimCheck is one dimension taking part in a decision.
type dimCheck struct {
	name   string
	b      *bucket
	rate   float64
	burst  int
	tokens float64 // before this request
}

// Allow implements [Limiter]. It never returns an error.
//
// The buckets of all dimensions are locked (always in the order IP, key,
// tenant, so two requests cannot deadlock), read, and charged only if every
// one has a token: the decision is exact and all-or-nothing, and a denied
// request changes nothing. x/time/rate alone cannot do this — its only way
// to give a token back, Reservation.Cancel, is approximate when several
// cancellations interleave.
func (m *Memory) Allow(_ context.Context, p Plan, s Subject) (Decision, error) {
	now := m.now()
	nowNano := now.UnixNano()

	var dims [3]dimCheck
	n := 0
	if s.IP != "" && limited(p.IPRate) {
		dims[n] = dimCheck{name: DimIP, rate: p.IPRate, burst: effBurst(p.IPRate, p.IPBurst)}
		dims[n].b = getBucket(m.ips, ipBucket(s.IP), &dims[n], nowNano)
		n++
	}
	if s.Key != "" && limited(p.KeyRate) {
		dims[n] = dimCheck{name: DimKey, rate: p.KeyRate, burst: effBurst(p.KeyRate, p.KeyBurst)}
		dims[n].b = getBucket(m.keys, s.Key, &dims[n], nowNano)
		n++
	}
	if s.Tenant != "" && limited(p.TenantRate) {
		dims[n] = dimCheck{name: DimTenant, rate: p.TenantRate, burst: effBurst(p.TenantRate, p.TenantBurst)}
		dims[n].b = getBucket(m.tens, s.Tenant, &dims[n], nowNano)
		n++
	}
	if n == 0 {
		return Decision{Allowed: true}, nil
	}

	for i := range dims[:n] {
		dims[i].b.mu.Lock()
	}
	dec := decide(dims[:n], now)
	for i := n - 1; i >= 0; i-- {
		dims[i].b.mu.Unlock()
	}
	return dec, nil
}

// decide makes the decision over locked buckets.
func decide(dims []dimCheck, now time.Time) Decision {
	deny, tight := -1, 0
	var wait time.Duration
	for i := range dims {
		d := &dims[i]
		b := d.b
		if b.rate != d.rate || b.burst != d.burst {
			// The plan changed (an upgrade, or an IP seen under two
			// plans). Keep the tokens; the new limits apply from now.
			b.lim.SetLimitAt(now, rate.Limit(d.rate))
			b.lim.SetBurstAt(now, d.burst)
			b.rate, b.burst = d.rate, d.burst
		}
		d.tokens = b.lim.TokensAt(now)
		if d.tokens < 1 {
			if w := secondsToDuration((1 - d.tokens) / d.rate); deny < 0 || w > wait {
				deny, wait = i, w
			}
		}
		if d.tokens < dims[tight].tokens {
			tight = i
		}
	}
	if deny >= 0 {
		d := &dims[deny]
		return Decision{
			Allowed:    false,
			Limit:      int64(d.burst),
			Remaining:  0,
			Reset:      secondsToDuration((float64(d.burst) - d.tokens) / d.rate),
			RetryAfter: max(wait, time.Nanosecond),
			Dimension:  d.name,
		}
	}
	for i := range dims {
		// Cannot fail: the bucket is locked and held a token at now.
		dims[i].b.lim.AllowN(now, 1)
	}
	d := &dims[tight]
	left := d.tokens - 1
	return Decision{
		Allowed:   true,
		Limit:     int64(d.burst),
		Remaining: int64(math.Floor(left)),
		Reset:     secondsToDuration((float64(d.burst) - left) / d.rate),
		Dimension: d.name,
	}
}

// secondsToDuration converts seconds to a Duration, rounding up so a
// client told to wait never retries a moment too early.
func secondsToDuration(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(s * float64(time.Second)))
}

// getBucket returns the bucket for k, creating it if needed. The bucket is
// returned unlocked.
func getBucket[K comparable](t *table[K, bucket], k K, d *dimCheck, nowNano int64) *bucket {
	e, sh, created := t.lookup(k, nowNano)
	b := &e.val
	if created {
		b.lim = rate.NewLimiter(rate.Limit(d.rate), d.burst)
		b.rate, b.burst = d.rate, d.burst
	}
	sh.mu.Unlock()
	return b
}

// ipBucket returns the address an IP is limited under: the address itself,
// IPv4-mapped IPv6 as IPv4, and other IPv6 addresses as their /64. A value
// that is not an IP address maps to the zero Addr, one bucket shared by
// all such values: limiting them together is safe, ignoring them is not.
func ipBucket(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(IPv6Prefix) // cannot fail: 64 <= 128, no zone
		a = p.Addr()
	}
	return a
}

// Quota implements [Limiter]. It never returns an error.
//
// Counters live in memory only: a restart forgets them unless the caller
// persists [Memory.QuotaUsed] and restores it with [Memory.SeedQuota].
func (m *Memory) Quota(_ context.Context, p Plan, tenant string, now time.Time) (Decision, error) {
	if tenant == "" || p.MonthlyQuota <= 0 {
		return Decision{Allowed: true}, nil
	}
	month, next := monthOf(now)
	e, sh, _ := m.quot.lookup(tenant, now.UnixNano())
	c := &e.val
	switch {
	case month > c.month:
		*c = quotaCount{month: month}
	case month < c.month:
		// A clock that stepped back across a month boundary: count against
		// the newer month rather than resurrect the old one.
		next = monthStart(c.month + 1)
	}
	allowed := c.used < p.MonthlyQuota
	if allowed {
		c.used++
	}
	used := c.used
	sh.mu.Unlock()
	return quotaDecision(allowed, used, p.MonthlyQuota, now, next), nil
}

// SeedQuota sets tenant's usage for the calendar month (UTC) containing
// month to used, for example from a persisted counter at startup. It does
// nothing if a later month is already being counted for the tenant.
func (m *Memory) SeedQuota(tenant string, month time.Time, used int64) {
	if tenant == "" {
		return
	}
	mo, _ := monthOf(month)
	e, sh, _ := m.quot.lookup(tenant, m.now().UnixNano())
	if mo >= e.val.month {
		e.val = quotaCount{month: mo, used: max(0, used)}
	}
	sh.mu.Unlock()
}

// QuotaUsed returns how many quota units tenant has used in the calendar
// month (UTC) containing month, for persisting counters or showing usage.
func (m *Memory) QuotaUsed(tenant string, month time.Time) int64 {
	mo, _ := monthOf(month)
	e, sh := m.quot.peek(tenant)
	defer sh.mu.Unlock()
	if e == nil || e.val.month != mo {
		return 0
	}
	return e.val.used
}

// Len returns the number of entries held across all dimensions and quota
// counters, for metrics and tests of the memory bound.
func (m *Memory) Len() int {
	return m.keys.len() + m.tens.len() + m.ips.len() + m.quot.len()
}

// Sweep drops buckets idle for longer than the idle TTL and quota counters
// of past months. The background sweeper calls it; it is exported for
// callers that disable the sweeper and want to run it on their own
// schedule.
func (m *Memory) Sweep() {
	now := m.now()
	cutoff := now.Add(-m.ttl).UnixNano()
	m.keys.sweep(cutoff)
	m.tens.sweep(cutoff)
	m.ips.sweep(cutoff)
	month, _ := monthOf(now)
	m.quot.sweep(monthStart(month).UnixNano())
}

func (m *Memory) sweeper(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Sweep()
		}
	}
}

// Close stops the background sweeper. The limiter keeps working afterwards,
// bounded by its caps alone.
func (m *Memory) Close() error {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
	return nil
}
