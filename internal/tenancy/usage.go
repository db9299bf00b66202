package tenancy

import (
	"context"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/ratelimit"
	"github.com/mcpedge/mcpedge/internal/store"
)

// usageSync makes the in-memory monthly quota survive restarts: a tenant's
// count is seeded from the store the first time it is metered in a month,
// and what was counted since is added to the store every second (and at
// Close). A crash loses at most one interval of counting. With Redis the
// counters live in Redis and this is not used.
//
// Several replicas without Redis each count on their own (each seeded with
// the stored total at its start); quotas that must hold exactly across
// replicas need [redis].
type usageSync struct {
	mem   *ratelimit.Memory
	store store.Usage
	mu    sync.Mutex
	seen  map[usageKey]int64 // what the store already has, per tenant and month
}

type usageKey struct{ tenant, period string }

func period(t time.Time) string { return t.UTC().Format("2006-01") }

// seed loads the stored count of tenant's month before its first use here.
func (u *usageSync) seed(ctx context.Context, tenant string, now time.Time) error {
	k := usageKey{tenant, period(now)}
	u.mu.Lock()
	_, ok := u.seen[k]
	u.mu.Unlock()
	if ok {
		return nil
	}
	n, err := u.store.GetUsage(ctx, tenant, k.period)
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.seen[k]; !ok {
		u.mem.SeedQuota(tenant, now, n)
		u.seen[k] = n
	}
	return nil
}

// flush adds what was counted since the last flush to the store.
func (u *usageSync) flush(ctx context.Context, now time.Time) error {
	u.mu.Lock()
	type delta struct {
		k usageKey
		n int64
	}
	var ds []delta
	for k, stored := range u.seen {
		if k.period != period(now) {
			// A past month: counting moved on; forget it once flushed.
			delete(u.seen, k)
			continue
		}
		if used := u.mem.QuotaUsed(k.tenant, now); used > stored {
			ds = append(ds, delta{k, used - stored})
			u.seen[k] = used
		}
	}
	u.mu.Unlock()
	var first error
	for _, d := range ds {
		if _, err := u.store.AddUsage(ctx, d.k.tenant, d.k.period, d.n); err != nil {
			if first == nil {
				first = err
			}
			// Put it back so the next flush retries it.
			u.mu.Lock()
			if v, ok := u.seen[d.k]; ok {
				u.seen[d.k] = v - d.n
			}
			u.mu.Unlock()
		}
	}
	return first
}
