package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is the key prefix [NewRedis] uses when given "".
const DefaultRedisPrefix = "mcpedge"

// quotaRetention is how long a month's quota counter outlives the month,
// so the previous month's usage can still be read (for billing or for
// persisting it elsewhere) during the whole next month.
const quotaRetention = 31 * 24 * time.Hour

// Redis is a [Limiter] whose state lives in Redis, so every gateway replica
// sharing the Redis enforces one limit.
//
// Rate limits use GCRA (the generic cell rate algorithm): each bucket is a
// single number, its theoretical arrival time, so a bucket costs one small
// key that expires as soon as it is full again. All dimensions of a request
// are decided by one Lua script in one round trip, atomically: either every
// dimension admits the request and each is charged, or none is charged.
// Time comes from the Redis server (TIME), so clock skew between replicas
// does not matter.
//
// # Why not redis_rate
//
// github.com/go-redis/redis_rate implements the same GCRA, but checks one
// key per call. Three dimensions would cost three round trips per request,
// and a request denied by the tenant limit would already have been charged
// to the key and IP. Its rates are also whole requests per period, while
// plans use fractional rates. The script here is the same algorithm (the
// one popularised by rwz/redis-gcra) generalised to several keys.
//
// # Keys
//
//	<prefix>:{rl}:ip:<addr>         IP bucket (IPv6: the /64 network address)
//	<prefix>:{rl}:key:<key>         API key bucket
//	<prefix>:{rl}:tenant:<tenant>   tenant bucket
//	<prefix>:quota:<tenant>:<YYYY-MM>  monthly quota counter
//
// The {rl} hash tag puts all buckets in one Redis Cluster slot, which is what
// lets one script touch several of them. Buckets are tiny and one node
// serves well over 100k decisions a second, so giving up sharding for them
// is cheap; quota counters are single keys and shard normally.
type Redis struct {
	c        redis.UniversalClient
	prefix   string
	rlPrefix string
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a limiter that keeps its state in Redis under keys
// starting with prefix (DefaultRedisPrefix if empty). The caller owns
// client: Close does not close it, so one client can serve several users.
// Bound each call with a context deadline: a slow Redis then surfaces as
// an error the caller can fail open on, rather than as slow requests.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &Redis{c: client, prefix: prefix, rlPrefix: prefix + ":{rl}:"}
}

// gcraScript decides one request against N GCRA buckets atomically.
//
// KEYS[i] is bucket i; ARGV[2i-1] its emission interval in microseconds
// (1e6/rate) and ARGV[2i] its burst. Bucket values are theoretical arrival
// times in microseconds since the Unix epoch, written with %.0f so Lua's
// default 14-digit number formatting cannot round them.
//
// Returns {allowed, index, remaining, retry_us, reset_us}: index (1-based)
// is the denying bucket with the longest wait, or the tightest bucket when
// allowed.
var gcraScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = {}
local deny, deny_wait, deny_reset = 0, 0, 0
local tight, tight_rem, tight_reset = 0, 0, 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2*i-1])
  local burst = tonumber(ARGV[2*i])
  local tt = now
  local v = redis.call('GET', KEYS[i])
  if v then
    tt = tonumber(v) or now
    if tt < now then tt = now end
  end
  local allow_at = tt + interval - burst * interval
  if allow_at > now then
    local wait = allow_at - now
    if wait > deny_wait then
      deny, deny_wait, deny_reset = i, wait, tt - now
    end
  else
    tat[i] = tt + interval
    local rem = math.floor((now - allow_at) / interval)
    if tight == 0 or rem < tight_rem then
      tight, tight_rem, tight_reset = i, rem, tat[i] - now
    end
  end
end
if deny > 0 then
  return {0, deny, 0, math.ceil(deny_wait), math.ceil(deny_reset)}
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.0f', tat[i]), 'PX', math.ceil((tat[i] - now) / 1000) + 1)
end
return {1, tight, tight_rem, 0, math.ceil(tight_reset)}
`)

// quotaScript consumes one unit of a quota counter unless it is used up,
// so denied calls are not counted. KEYS[1] is the counter, ARGV[1] the
// quota, ARGV[2] its time to live in seconds. Returns {allowed, used}.
var quotaScript = redis.NewScript(`
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  return {0, used}
end
used = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, used}
`)

// Allow implements [Limiter] in one Redis round trip.
func (l *Redis) Allow(ctx context.Context, p Plan, s Subject) (Decision, error) {
	var (
		keysA  [3]string
		argsA  [6]any
		names  [3]string
		bursts [3]int
		n      int
	)
	add := func(name, key string, r float64, b int) {
		b = effBurst(r, b)
		keysA[n] = key
		argsA[2*n] = 1e6 / r
		argsA[2*n+1] = b
		names[n], bursts[n] = name, b
		n++
	}
	if s.IP != "" && limited(p.IPRate) {
		add(DimIP, l.rlPrefix+"ip:"+ipBucket(s.IP).String(), p.IPRate, p.IPBurst)
	}
	if s.Key != "" && limited(p.KeyRate) {
		add(DimKey, l.rlPrefix+"key:"+s.Key, p.KeyRate, p.KeyBurst)
	}
	if s.Tenant != "" && limited(p.TenantRate) {
		add(DimTenant, l.rlPrefix+"tenant:"+s.Tenant, p.TenantRate, p.TenantBurst)
	}
	if n == 0 {
		return Decision{Allowed: true}, nil
	}

	res, err := gcraScript.Run(ctx, l.c, keysA[:n], argsA[:2*n]...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis allow: %w", err)
	}
	if len(res) != 5 || res[1] < 1 || res[1] > int64(n) {
		return Decision{}, fmt.Errorf("ratelimit: redis allow: unexpected script reply %v", res)
	}
	i := res[1] - 1
	d := Decision{
		Allowed:   res[0] == 1,
		Limit:     int64(bursts[i]),
		Remaining: max(0, res[2]),
		Reset:     time.Duration(max(0, res[4])) * time.Microsecond,
		Dimension: names[i],
	}
	if !d.Allowed {
		d.RetryAfter = max(time.Duration(res[3])*time.Microsecond, time.Microsecond)
	}
	return d, nil
}

// quotaKey returns the counter key for tenant in the month starting at
// start.
func (l *Redis) quotaKey(tenant string, start time.Time) string {
	return l.prefix + ":quota:" + tenant + ":" + start.Format("2006-01")
}

// Quota implements [Limiter] in one Redis round trip.
func (l *Redis) Quota(ctx context.Context, p Plan, tenant string, now time.Time) (Decision, error) {
	if tenant == "" || p.MonthlyQuota <= 0 {
		return Decision{Allowed: true}, nil
	}
	month, next := monthOf(now)
	key := l.quotaKey(tenant, monthStart(month))
	// A TTL relative to the caller's now, not an absolute EXPIREAT: it is
	// right even when the caller's clock and Redis's disagree.
	ttl := int64(ceilSeconds(next.Add(quotaRetention).Sub(now)))
	res, err := quotaScript.Run(ctx, l.c, []string{key}, p.MonthlyQuota, ttl).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis quota: %w", err)
	}
	if len(res) != 2 {
		return Decision{}, fmt.Errorf("ratelimit: redis quota: unexpected script reply %v", res)
	}
	return quotaDecision(res[0] == 1, res[1], p.MonthlyQuota, now, next), nil
}

// QuotaUsed returns how many quota units tenant has used in the calendar
// month (UTC) containing month.
func (l *Redis) QuotaUsed(ctx context.Context, tenant string, month time.Time) (int64, error) {
	mo, _ := monthOf(month)
	n, err := l.c.Get(ctx, l.quotaKey(tenant, monthStart(mo))).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ratelimit: redis quota used: %w", err)
	}
	return n, nil
}

// SeedQuota sets tenant's usage for the calendar month (UTC) containing
// month, for example to restore a counter after Redis lost its data.
func (l *Redis) SeedQuota(ctx context.Context, tenant string, month time.Time, used int64) error {
	mo, next := monthOf(month)
	key := l.quotaKey(tenant, monthStart(mo))
	ttl := time.Until(next.Add(quotaRetention))
	if ttl <= 0 {
		return nil // that month's counter would already have expired
	}
	ttl = ttl.Round(time.Second)
	if err := l.c.Set(ctx, key, strconv.FormatInt(max(0, used), 10), ttl).Err(); err != nil {
		return fmt.Errorf("ratelimit: redis seed quota: %w", err)
	}
	return nil
}

// Close implements [Limiter]. It does nothing: the Redis client belongs to
// the caller.
func (l *Redis) Close() error { return nil }
