package ratelimit

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// newTestRedisClient connects to the Redis named by MCPEDGE_TEST_REDIS. Each
// call returns a separate client (its own connection pool), as two gateway
// replicas would have.
func newTestRedisClient(t *testing.T) *redis.Client {
	t.Helper()
	url := os.Getenv("MCPEDGE_TEST_REDIS")
	if url == "" {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatal("MCPEDGE_TEST_REDIS is not set and MCPEDGE_REQUIRE_SERVICES=1")
		}
		t.Skip("set MCPEDGE_TEST_REDIS (e.g. redis://127.0.0.1:6379/0) to run Redis tests")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("MCPEDGE_TEST_REDIS: %v", err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("Redis at %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix returns a key prefix unique to this test run, and deletes its
// keys when the test ends, so parallel and repeated runs never collide.
func testPrefix(t *testing.T, c *redis.Client) string {
	t.Helper()
	p := fmt.Sprintf("mcpedge-test:%s:%d:%d", t.Name(), os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, p+":*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return p
}

// twoReplicas returns two limiters over separate clients sharing one
// prefix: two gateway processes behind a load balancer.
func twoReplicas(t *testing.T) (*Redis, *Redis) {
	t.Helper()
	c1, c2 := newTestRedisClient(t), newTestRedisClient(t)
	p := testPrefix(t, c1)
	return NewRedis(c1, p), NewRedis(c2, p)
}

// Rates in these tests are tiny (one token per minute or hour), so the
// refill during a test on a slow machine is zero and counts are exact.

func TestRedisBurstThenDeny(t *testing.T) {
	l, _ := twoReplicas(t)
	p := Plan{KeyRate: 1.0 / 60, KeyBurst: 5}
	s := Subject{Key: "k1"}
	for i := range 5 {
		d, err := l.Allow(context.Background(), p, s)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed || d.Remaining != int64(4-i) || d.Limit != 5 || d.Dimension != DimKey {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d, err := l.Allow(context.Background(), p, s)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || d.Dimension != DimKey || d.Remaining != 0 || d.Limit != 5 {
		t.Fatalf("past burst: %+v", d)
	}
	if d.RetryAfter < 50*time.Second || d.RetryAfter > 60*time.Second {
		t.Errorf("RetryAfter = %v, want about a minute at 1/min", d.RetryAfter)
	}
	if d.Reset < 4*time.Minute || d.Reset > 5*time.Minute {
		t.Errorf("Reset = %v, want about 5m", d.Reset)
	}
	if n, _ := allowN(t, l, p, Subject{Key: "k2"}, 10); n != 5 {
		t.Errorf("independent key: %d allowed, want 5", n)
	}
}

func TestRedisSharedAcrossReplicas(t *testing.T) {
	a, b := twoReplicas(t)
	p := Plan{KeyRate: 1.0 / 3600, KeyBurst: 10, TenantRate: 1.0 / 3600, TenantBurst: 15, IPRate: 1.0 / 3600, IPBurst: 100}
	ctx := context.Background()

	// Both replicas hammer the same key concurrently; together they may
	// allow no more than the key's burst.
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, l := range []*Redis{a, b} {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					d, err := l.Allow(ctx, p, Subject{Key: "k", Tenant: "t", IP: "2001:db8::7"})
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	if n := allowed.Load(); n != 10 {
		t.Fatalf("two replicas allowed %d requests for one key, want exactly its burst 10", n)
	}
	// The key's 70 denials charged nothing to the tenant: 5 remain for
	// another key, on either replica.
	n1, _ := allowN(t, a, p, Subject{Key: "k2", Tenant: "t"}, 3)
	n2, last := allowN(t, b, p, Subject{Key: "k2", Tenant: "t"}, 5)
	if n1+n2 != 5 || last.Dimension != DimTenant {
		t.Errorf("tenant: %d+%d allowed (last %+v), want 5 then denied by tenant", n1, n2, last)
	}
}

func TestRedisIPDimension(t *testing.T) {
	a, b := twoReplicas(t)
	p := Plan{IPRate: 1.0 / 3600, IPBurst: 2}
	if n, _ := allowN(t, a, p, Subject{IP: "2001:db8:1:2::1"}, 1); n != 1 {
		t.Fatal("first request denied")
	}
	// Same /64 on the other replica.
	if n, last := allowN(t, b, p, Subject{IP: "2001:db8:1:2::ffff"}, 3); n != 1 || last.Dimension != DimIP {
		t.Errorf("same /64: %d allowed (last %+v), want 1 then denied by ip", n, last)
	}
	if n, _ := allowN(t, b, p, Subject{IP: "192.0.2.1"}, 3); n != 2 {
		t.Errorf("other ip: %d allowed, want 2", n)
	}
	if n, _ := allowN(t, a, p, Subject{IP: "::ffff:192.0.2.1"}, 3); n != 0 {
		t.Errorf("IPv4-mapped spelling: %d allowed, want 0 (same bucket)", n)
	}
}

func TestRedisUnlimitedMakesNoCall(t *testing.T) {
	// A client pointed at nothing: any Redis call would fail.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	l := NewRedis(c, "")
	if d, err := l.Allow(context.Background(), Plan{}, Subject{Key: "k"}); err != nil || !d.Allowed {
		t.Errorf("unlimited Allow: %+v, %v", d, err)
	}
	if d, err := l.Quota(context.Background(), Plan{}, "t", time.Now()); err != nil || !d.Allowed {
		t.Errorf("unlimited Quota: %+v, %v", d, err)
	}
	// And a limited one reports the error instead of deciding.
	_, err := l.Allow(context.Background(), Plan{KeyRate: 1}, Subject{Key: "k"})
	if err == nil || !strings.Contains(err.Error(), "ratelimit: redis allow") {
		t.Errorf("Allow with Redis down: err = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Error(err)
	}
}

func TestRedisRefill(t *testing.T) {
	l, _ := twoReplicas(t)
	// 20/s with burst 1: after a denial, waiting RetryAfter (plus a
	// generous margin for a loaded machine) always allows one again.
	p := Plan{KeyRate: 20, KeyBurst: 1}
	s := Subject{Key: "k"}
	allowN(t, l, p, s, 1)
	d, err := l.Allow(context.Background(), p, s)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed {
		t.Skip("machine too slow to observe a 50ms window") // not a failure
	}
	if d.RetryAfter <= 0 || d.RetryAfter > 50*time.Millisecond {
		t.Fatalf("RetryAfter = %v, want (0, 50ms]", d.RetryAfter)
	}
	time.Sleep(d.RetryAfter + 100*time.Millisecond)
	if d, _ := l.Allow(context.Background(), p, s); !d.Allowed {
		t.Errorf("still denied after RetryAfter: %+v", d)
	}
}

func TestRedisQuotaAcrossReplicas(t *testing.T) {
	a, b := twoReplicas(t)
	ctx := context.Background()
	p := Plan{MonthlyQuota: 20}
	now := time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC)

	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, l := range []*Redis{a, b} {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					d, err := l.Quota(ctx, p, "t", now)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					} else if d.RetryAfter < time.Hour || d.Dimension != DimQuota {
						t.Errorf("denied decision %+v", d)
					}
				}
			}()
		}
	}
	wg.Wait()
	if n := allowed.Load(); n != 20 {
		t.Fatalf("two replicas allowed %d calls, want the quota 20", n)
	}
	used, err := b.QuotaUsed(ctx, "t", now)
	if err != nil || used != 20 {
		t.Errorf("QuotaUsed = %d, %v; want 20 (denied calls not counted)", used, err)
	}

	// The counter is the documented key, with an expiry past month end.
	key := a.prefix + ":quota:t:2026-01"
	ttl := a.c.TTL(ctx, key).Val()
	if ttl <= 0 {
		t.Errorf("quota key %s has TTL %v, want an expiry", key, ttl)
	}
	if want := time.Hour + quotaRetention; ttl < want-time.Minute || ttl > want {
		t.Errorf("quota key TTL %v, want about %v (month end plus retention)", ttl, want)
	}

	// February starts from zero.
	feb := now.Add(2 * time.Hour)
	d, err := a.Quota(ctx, p, "t", feb)
	if err != nil || !d.Allowed || d.Remaining != 19 {
		t.Errorf("first February call: %+v, %v", d, err)
	}
	if d.Reset != 28*24*time.Hour-time.Hour {
		t.Errorf("Reset = %v, want until 1 March", d.Reset)
	}
}

func TestRedisSeedQuota(t *testing.T) {
	l, _ := twoReplicas(t)
	ctx := context.Background()
	now := time.Now()
	if err := l.SeedQuota(ctx, "t", now, 4); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.QuotaUsed(ctx, "t", now); n != 4 {
		t.Errorf("QuotaUsed after seed = %d", n)
	}
	if d, _ := l.Quota(ctx, Plan{MonthlyQuota: 5}, "t", now); !d.Allowed || d.Remaining != 0 {
		t.Errorf("after seeding 4 of 5: %+v", d)
	}
	if d, _ := l.Quota(ctx, Plan{MonthlyQuota: 5}, "t", now); d.Allowed {
		t.Errorf("6th call allowed")
	}
	if n, _ := l.QuotaUsed(ctx, "nobody", now); n != 0 {
		t.Errorf("QuotaUsed of unknown tenant = %d", n)
	}
}

func TestRedisDefaultPrefix(t *testing.T) {
	if l := NewRedis(nil, ""); l.prefix != DefaultRedisPrefix || l.rlPrefix != DefaultRedisPrefix+":{rl}:" {
		t.Errorf("prefix %q, rl prefix %q", l.prefix, l.rlPrefix)
	}
}

func BenchmarkRedisAllow(b *testing.B) {
	url := os.Getenv("MCPEDGE_TEST_REDIS")
	if url == "" {
		b.Skip("set MCPEDGE_TEST_REDIS to benchmark against Redis")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	p := fmt.Sprintf("mcpedge-bench:%d", time.Now().UnixNano())
	l := NewRedis(c, p)
	plan := Plan{KeyRate: 1e5, KeyBurst: 1e6, TenantRate: 1e5, TenantBurst: 1e6, IPRate: 1e5, IPBurst: 1e6}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s := Subject{Key: fmt.Sprint("key-", i&63), Tenant: "tenant", IP: ipv4N(i & 1023)}
			if _, err := l.Allow(ctx, plan, s); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.StopTimer()
	iter := c.Scan(ctx, 0, p+":*", 1000).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
}
