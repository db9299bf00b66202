package ratelimit

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for MemoryOptions.Now. Tests drive time
// explicitly so nothing depends on how fast a loaded machine runs.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestMemory(t *testing.T, opts *MemoryOptions) (*Memory, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	var o MemoryOptions
	if opts != nil {
		o = *opts
	}
	o.Now = clk.Now
	if o.SweepInterval == 0 {
		o.SweepInterval = -1 // tests call Sweep themselves
	}
	m := NewMemory(&o)
	t.Cleanup(func() { m.Close() })
	return m, clk
}

// allowN calls Allow n times and returns how many were allowed and the
// last decision.
func allowN(t *testing.T, l Limiter, p Plan, s Subject, n int) (allowed int, last Decision) {
	t.Helper()
	for range n {
		d, err := l.Allow(context.Background(), p, s)
		if err != nil {
			t.Fatalf("Allow(%+v): %v", s, err)
		}
		if d.Allowed {
			allowed++
		}
		last = d
	}
	return allowed, last
}

func TestMemoryBurstThenDeny(t *testing.T) {
	m, clk := newTestMemory(t, nil)
	p := Plan{KeyRate: 1, KeyBurst: 5}
	s := Subject{Key: "k1"}

	for i := range 5 {
		d, _ := m.Allow(context.Background(), p, s)
		if !d.Allowed {
			t.Fatalf("request %d denied within burst: %+v", i, d)
		}
		if want := int64(4 - i); d.Remaining != want || d.Limit != 5 || d.Dimension != DimKey {
			t.Errorf("request %d: got %+v, want Remaining %d Limit 5 Dimension key", i, d, want)
		}
		if d.RetryAfter != 0 {
			t.Errorf("request %d allowed with RetryAfter %v", i, d.RetryAfter)
		}
	}
	d, _ := m.Allow(context.Background(), p, s)
	if d.Allowed {
		t.Fatalf("request past burst allowed: %+v", d)
	}
	if d.RetryAfter <= 0 || d.RetryAfter > time.Second {
		t.Errorf("RetryAfter = %v, want in (0, 1s] at 1 req/s", d.RetryAfter)
	}
	if d.Remaining != 0 || d.Dimension != DimKey || d.Limit != 5 {
		t.Errorf("denied decision = %+v", d)
	}
	if d.Reset < 4*time.Second || d.Reset > 5*time.Second {
		t.Errorf("Reset = %v, want about 5s to refill 5 tokens at 1/s", d.Reset)
	}

	// Denied requests cost nothing: after RetryAfter exactly one more fits.
	clk.Advance(d.RetryAfter)
	if n, _ := allowN(t, m, p, s, 3); n != 1 {
		t.Errorf("after RetryAfter, %d of 3 allowed, want 1", n)
	}
	clk.Advance(time.Hour)
	if n, _ := allowN(t, m, p, s, 10); n != 5 {
		t.Errorf("after refill, %d of 10 allowed, want burst 5", n)
	}
}

func TestMemoryKeysIndependent(t *testing.T) {
	m, _ := newTestMemory(t, nil)
	p := Plan{KeyRate: 1, KeyBurst: 3}
	if n, _ := allowN(t, m, p, Subject{Key: "a"}, 10); n != 3 {
		t.Fatalf("key a: %d allowed, want 3", n)
	}
	if n, _ := allowN(t, m, p, Subject{Key: "b"}, 10); n != 3 {
		t.Fatalf("key b after a is exhausted: %d allowed, want 3", n)
	}
}

func TestMemoryTenantSharedAmongKeys(t *testing.T) {
	m, _ := newTestMemory(t, nil)
	p := Plan{KeyRate: 1, KeyBurst: 4, TenantRate: 1, TenantBurst: 6}

	n1, _ := allowN(t, m, p, Subject{Key: "a", Tenant: "t"}, 4)
	n2, last := allowN(t, m, p, Subject{Key: "b", Tenant: "t"}, 4)
	if n1 != 4 || n2 != 2 {
		t.Fatalf("allowed %d for key a and %d for key b, want 4 and 2 (tenant burst 6)", n1, n2)
	}
	if last.Dimension != DimTenant || last.Allowed {
		t.Errorf("last decision = %+v, want denied by tenant", last)
	}
	// Another tenant is unaffected.
	if n, _ := allowN(t, m, p, Subject{Key: "c", Tenant: "u"}, 4); n != 4 {
		t.Errorf("other tenant: %d allowed, want 4", n)
	}
}

func TestMemoryDeniedChargesNothing(t *testing.T) {
	m, _ := newTestMemory(t, nil)
	p := Plan{KeyRate: 1, KeyBurst: 2, TenantRate: 1, TenantBurst: 10}
	s := Subject{Key: "a", Tenant: "t"}
	// Key a is exhausted after 2; its 98 denied requests must not drain
	// the tenant's shared bucket.
	if n, _ := allowN(t, m, p, s, 100); n != 2 {
		t.Fatalf("key a: %d allowed, want 2", n)
	}
	if n, _ := allowN(t, m, p, Subject{Key: "b", Tenant: "t"}, 100); n != 2 {
		t.Fatalf("key b: %d allowed, want 2", n)
	}
	d, _ := m.Allow(context.Background(), Plan{TenantRate: 1, TenantBurst: 10}, Subject{Tenant: "t"})
	if !d.Allowed || d.Remaining != 5 {
		t.Errorf("tenant after 4 charged requests: %+v, want allowed with 5 remaining", d)
	}
}

func TestMemoryTightestDimension(t *testing.T) {
	m, _ := newTestMemory(t, nil)
	p := Plan{KeyRate: 10, KeyBurst: 100, TenantRate: 10, TenantBurst: 3, IPRate: 10, IPBurst: 50}
	d, _ := m.Allow(context.Background(), p, Subject{Key: "k", Tenant: "t", IP: "192.0.2.1"})
	if !d.Allowed || d.Dimension != DimTenant || d.Limit != 3 || d.Remaining != 2 {
		t.Errorf("decision = %+v, want tenant as tightest with 2 of 3 left", d)
	}
}

func TestMemoryIPDimension(t *testing.T) {
	m, _ := newTestMemory(t, nil)
	p := Plan{IPRate: 1, IPBurst: 3}
	if n, last := allowN(t, m, p, Subject{IP: "192.0.2.1"}, 5); n != 3 || last.Dimension != DimIP {
		t.Fatalf("ip: %d allowed (last %+v), want 3 denied by ip", n, last)
	}
	// The same address spelled as IPv4-mapped IPv6 shares the bucket.
	if n, _ := allowN(t, m, p, Subject{IP: "::ffff:192.0.2.1"}, 1); n != 0 {
		t.Errorf("IPv4-mapped spelling got a fresh bucket")
	}
	if n, _ := allowN(t, m, p, Subject{IP: "192.0.2.2"}, 5); n != 3 {
		t.Errorf("other ip: %d allowed, want 3", n)
	}
	// IPv6 addresses in one /64 share a bucket; another /64 does not.
	if n, _ := allowN(t, m, p, Subject{IP: "2001:db8:1:2::1"}, 2); n != 2 {
		t.Fatalf("v6: %d allowed, want 2", n)
	}
	if n, _ := allowN(t, m, p, Subject{IP: "2001:db8:1:2:ffff::9"}, 5); n != 1 {
		t.Errorf("same /64: %d allowed, want the 1 left", n)
	}
	if n, _ := allowN(t, m, p, Subject{IP: "2001:db8:1:3::1"}, 5); n != 3 {
		t.Errorf("other /64: %d allowed, want 3", n)
	}
	// Key and tenant limits do not apply to an IP-only subject.
	if n, _ := allowN(t, m, Plan{KeyRate: 1, KeyBurst: 1, TenantRate: 1, TenantBurst: 1}, Subject{IP: "192.0.2.9"}, 5); n != 5 {
		t.Errorf("plan without IP limit: %d of 5 allowed, want all", n)
	}
}

func TestMemoryUnlimited(t *testing.T) {
	m, _ := newTestMemory(t, nil)
	d, err := m.Allow(context.Background(), Plan{}, Subject{Key: "k", Tenant: "t", IP: "192.0.2.1"})
	if err != nil || !d.Allowed || d.Limit != 0 || d.Dimension != "" {
		t.Errorf("empty plan: %+v, %v; want allowed with no limit", d, err)
	}
	d, _ = m.Allow(context.Background(), Plan{KeyRate: 2, KeyBurst: 10, TenantRate: 5, TenantBurst: 20, IPRate: 10, IPBurst: 40}, Subject{})
	if !d.Allowed || d.Limit != 0 {
		t.Errorf("empty subject: %+v, want allowed with no limit", d)
	}
	if m.Len() != 0 {
		t.Errorf("unlimited checks created %d entries", m.Len())
	}
}

func TestMemoryDefaultBurst(t *testing.T) {
	m, _ := newTestMemory(t, nil)
	// Burst 0 means ceil(rate).
	if n, _ := allowN(t, m, Plan{KeyRate: 2.5}, Subject{Key: "k"}, 10); n != 3 {
		t.Errorf("rate 2.5, burst 0: %d allowed, want 3", n)
	}
	if n, _ := allowN(t, m, Plan{KeyRate: 0.1}, Subject{Key: "k2"}, 10); n != 1 {
		t.Errorf("rate 0.1, burst 0: %d allowed, want 1", n)
	}
}

func TestMemoryPlanChange(t *testing.T) {
	m, clk := newTestMemory(t, nil)
	free := Plan{KeyRate: 1, KeyBurst: 2}
	pro := Plan{KeyRate: 100, KeyBurst: 50}
	s := Subject{Key: "k"}
	if n, _ := allowN(t, m, free, s, 5); n != 2 {
		t.Fatalf("free: %d allowed, want 2", n)
	}
	// The upgrade keeps the (empty) bucket's tokens but refills it at the
	// new rate up to the new burst.
	if n, _ := allowN(t, m, pro, s, 5); n != 0 {
		t.Errorf("right after upgrade: %d allowed, want 0 (no free burst)", n)
	}
	clk.Advance(time.Second)
	if n, _ := allowN(t, m, pro, s, 200); n != 50 {
		t.Errorf("a second after upgrade: %d allowed, want the new burst 50", n)
	}
	// And a downgrade caps the bucket at the smaller burst.
	clk.Advance(time.Second)
	if n, _ := allowN(t, m, free, s, 10); n != 2 {
		t.Errorf("after downgrade: %d allowed, want the free burst 2", n)
	}
}

func TestMemoryEvictionBound(t *testing.T) {
	const maxIPs = 1000
	m, _ := newTestMemory(t, &MemoryOptions{MaxIPs: maxIPs})
	p := Plan{IPRate: 1, IPBurst: 1, TenantRate: 1000, TenantBurst: 1000000}
	ctx := context.Background()

	// A tenant under attack from 200k addresses: its own bucket must
	// survive the flood.
	for i := range 200_000 {
		ip := ipv4N(i)
		if _, err := m.Allow(ctx, p, Subject{IP: ip, Tenant: "victim"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.ips.len(); n > maxIPs {
		t.Fatalf("%d IP entries after 200k distinct IPs, cap %d", n, maxIPs)
	}
	if n := m.ips.len(); n < maxIPs/2 {
		t.Errorf("only %d IP entries kept of cap %d: shards badly unbalanced", n, maxIPs)
	}
	if m.tens.len() != 1 {
		t.Errorf("tenant entries = %d, want 1", m.tens.len())
	}
	d, _ := m.Allow(ctx, Plan{TenantRate: 1000, TenantBurst: 1000000}, Subject{Tenant: "victim"})
	if want := int64(1000000 - 200_000 - 1); d.Remaining != want {
		t.Errorf("tenant remaining %d, want %d: the IP flood evicted the tenant bucket", d.Remaining, want)
	}

	// The most recently used address is still limited.
	last := ipv4N(199_999)
	if d, _ := m.Allow(ctx, p, Subject{IP: last}); d.Allowed {
		t.Errorf("most recent IP %s was evicted", last)
	}
}

// ipv4N returns the i-th address of 10.0.0.0/8.
func ipv4N(i int) string {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
}

func TestMemorySweepIdle(t *testing.T) {
	m, clk := newTestMemory(t, &MemoryOptions{IdleTTL: time.Minute})
	p := Plan{KeyRate: 1, KeyBurst: 1, IPRate: 1, IPBurst: 1}
	for i := range 100 {
		allowN(t, m, p, Subject{Key: fmt.Sprint("k", i), IP: fmt.Sprintf("192.0.2.%d", i)}, 1)
	}
	clk.Advance(30 * time.Second)
	allowN(t, m, p, Subject{Key: "k0"}, 1)
	clk.Advance(45 * time.Second)
	m.Sweep()
	if n := m.Len(); n != 1 {
		t.Errorf("%d entries after sweep, want 1 (k0, used 45s ago)", n)
	}
}

func TestMemoryBackgroundSweeper(t *testing.T) {
	m := NewMemory(&MemoryOptions{IdleTTL: time.Nanosecond, SweepInterval: time.Millisecond})
	defer m.Close()
	allowN(t, m, Plan{KeyRate: 1}, Subject{Key: "k"}, 1)
	deadline := time.Now().Add(30 * time.Second) // generous: only the sweeper must run once
	for m.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("background sweeper never dropped the idle entry")
		}
		time.Sleep(time.Millisecond)
	}
	if err := m.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestMemoryConcurrent(t *testing.T) {
	// Under -race: many goroutines on shared buckets must never allow more
	// than the burst while the clock stands still.
	m, _ := newTestMemory(t, nil)
	p := Plan{KeyRate: 1, KeyBurst: 50, TenantRate: 1, TenantBurst: 100, IPRate: 1, IPBurst: 1000}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				s := Subject{Key: fmt.Sprint("k", (g+i)%4), Tenant: "t", IP: "192.0.2.1"}
				if d, _ := m.Allow(context.Background(), p, s); d.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 100 {
		t.Errorf("%d allowed, want exactly the tenant burst 100", n)
	}
}

func TestMemoryQuota(t *testing.T) {
	m, _ := newTestMemory(t, nil)
	ctx := context.Background()
	p := Plan{MonthlyQuota: 3}
	march := time.Date(2026, 3, 31, 23, 59, 0, 0, time.UTC)

	for i := range 3 {
		d, err := m.Quota(ctx, p, "t", march)
		if err != nil || !d.Allowed || d.Remaining != int64(2-i) || d.Limit != 3 || d.Dimension != DimQuota {
			t.Fatalf("call %d: %+v, %v", i, d, err)
		}
		if d.Reset != time.Minute {
			t.Errorf("Reset = %v, want 1m to the start of April", d.Reset)
		}
	}
	d, _ := m.Quota(ctx, p, "t", march)
	if d.Allowed || d.RetryAfter < time.Minute || d.Remaining != 0 {
		t.Fatalf("over quota: %+v, want denied until April", d)
	}
	if got := m.QuotaUsed("t", march); got != 3 {
		t.Errorf("QuotaUsed = %d, want 3 (denied calls are not counted)", got)
	}
	// Another tenant has its own counter.
	if d, _ := m.Quota(ctx, p, "u", march); !d.Allowed {
		t.Errorf("tenant u denied")
	}
	// Raising the quota mid-month takes effect at once.
	if d, _ := m.Quota(ctx, Plan{MonthlyQuota: 4}, "t", march); !d.Allowed || d.Remaining != 0 {
		t.Errorf("after raising quota: %+v", d)
	}

	// Month rollover.
	april := march.Add(2 * time.Minute)
	d, _ = m.Quota(ctx, p, "t", april)
	if !d.Allowed || d.Remaining != 2 {
		t.Errorf("first call in April: %+v, want allowed with 2 left", d)
	}
	if got := m.QuotaUsed("t", march); got != 0 {
		t.Errorf("March usage after rollover = %d; only the current month is kept", got)
	}
	// A clock stepping back into March counts against April.
	if d, _ := m.Quota(ctx, p, "t", march); !d.Allowed || d.Remaining != 1 {
		t.Errorf("call stamped March after April began: %+v", d)
	}

	// Unlimited plans and empty tenants are not counted.
	for range 10 {
		if d, _ := m.Quota(ctx, Plan{}, "t", april); !d.Allowed || d.Limit != 0 {
			t.Fatalf("unlimited quota: %+v", d)
		}
		if d, _ := m.Quota(ctx, p, "", april); !d.Allowed {
			t.Fatalf("empty tenant: %+v", d)
		}
	}
	if got := m.QuotaUsed("t", april); got != 2 {
		t.Errorf("April usage = %d, want 2", got)
	}
}

func TestMemorySeedQuota(t *testing.T) {
	m, _ := newTestMemory(t, nil)
	ctx := context.Background()
	now := time.Date(2026, 5, 10, 0, 0, 0, 0, time.UTC)
	m.SeedQuota("t", now, 9)
	if d, _ := m.Quota(ctx, Plan{MonthlyQuota: 10}, "t", now); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after seeding 9 of 10: %+v", d)
	}
	if d, _ := m.Quota(ctx, Plan{MonthlyQuota: 10}, "t", now); d.Allowed {
		t.Fatalf("11th call allowed after seed")
	}
	// Seeding an older month does not clobber the current one.
	m.SeedQuota("t", now.AddDate(0, -1, 0), 0)
	if got := m.QuotaUsed("t", now); got != 10 {
		t.Errorf("usage after seeding April = %d, want 10", got)
	}
}

func TestMemoryQuotaSweep(t *testing.T) {
	m, clk := newTestMemory(t, nil)
	ctx := context.Background()
	p := Plan{MonthlyQuota: 100}
	m.Quota(ctx, p, "old", clk.Now())
	clk.Advance(31 * 24 * time.Hour) // into April
	m.Quota(ctx, p, "new", clk.Now())
	m.Sweep()
	if n := m.quot.len(); n != 1 {
		t.Errorf("%d quota counters after sweep, want 1 (March's dropped)", n)
	}
	if m.QuotaUsed("new", clk.Now()) != 1 {
		t.Errorf("current month's counter lost")
	}
}

func TestMemoryAllowNoAllocs(t *testing.T) {
	m, _ := newTestMemory(t, nil)
	p := Plan{KeyRate: 1e5, KeyBurst: 1e6, TenantRate: 1e5, TenantBurst: 1e6, IPRate: 1e5, IPBurst: 1e6}
	s := Subject{Key: "key-1", Tenant: "tenant-1", IP: "2001:db8::1"}
	ctx := context.Background()
	m.Allow(ctx, p, s) // create the buckets
	if n := testing.AllocsPerRun(1000, func() { m.Allow(ctx, p, s) }); n != 0 {
		t.Errorf("Allow on existing buckets allocates %v times, want 0", n)
	}
}

func BenchmarkMemoryAllow(b *testing.B) {
	m := NewMemory(nil)
	defer m.Close()
	p := Plan{KeyRate: 1e5, KeyBurst: 1e6, TenantRate: 1e5, TenantBurst: 1e6, IPRate: 1e5, IPBurst: 1e6}
	ctx := context.Background()
	ips := make([]string, 1024)
	keys := make([]string, 1024)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String()
		keys[i] = fmt.Sprint("key-", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s := Subject{Key: keys[i&1023], Tenant: "tenant", IP: ips[(i*7)&1023]}
			if _, err := m.Allow(ctx, p, s); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
