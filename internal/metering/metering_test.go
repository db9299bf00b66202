package metering

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func mkTenant(t *testing.T, st store.Store, name string) *store.Tenant {
	t.Helper()
	tn := &store.Tenant{Name: name, Plan: "free"}
	if err := st.CreateTenant(t.Context(), tn); err != nil {
		t.Fatal(err)
	}
	return tn
}

// clock is a settable clock for the meter.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func list(t *testing.T, st store.Store, f store.UsageFilter) []store.UsageRecord {
	t.Helper()
	rs, err := st.ListUsage(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestCountAndFlush(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "m.db"))
	ta, boot := mkTenant(t, st, "a"), mkTenant(t, st, "boot")
	clk := &clock{now: time.Date(2026, 12, 7, 10, 59, 0, 0, time.UTC)}
	m := New(Options{Store: st, DefaultTenant: boot.ID, Now: clk.Now})
	key := &principal.Principal{Kind: principal.KindKey, ID: "k1", KeyID: "k1", TenantID: ta.ID}

	const workers, calls = 8, 250
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				m.Count(key, "fs", "read", "ok")
			}
		})
	}
	wg.Wait()
	if got := m.Pending(); got != workers*calls {
		t.Fatalf("Pending = %d, want %d", got, workers*calls)
	}
	clk.Set(clk.Now().Add(2 * time.Minute)) // the next hour
	m.Count(key, "fs", "read", "denied")
	m.Count(nil, "fs", "write", "error")                      // single-user mode: the default tenant
	m.Count(key, "", "made-up-"+strings.Repeat("x", 9), "ok") // no upstream owns it: no name stored
	m.Count(key, "fs", strings.Repeat("t", 1000), "ok")       // clipped
	if err := m.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := m.Pending(); got != 0 {
		t.Fatalf("Pending after a flush = %d", got)
	}
	h10, h11 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC), time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	a := list(t, st, store.UsageFilter{TenantID: ta.ID})
	want := []store.UsageRecord{
		{TenantID: ta.ID, Hour: h10, Actor: "k1", ActorKind: "key", Upstream: "fs", Tool: "read", Outcome: "ok", Count: workers * calls},
		{TenantID: ta.ID, Hour: h11, Actor: "k1", ActorKind: "key", Upstream: "", Tool: "", Outcome: "ok", Count: 1},
		{TenantID: ta.ID, Hour: h11, Actor: "k1", ActorKind: "key", Upstream: "fs", Tool: "read", Outcome: "denied", Count: 1},
		{TenantID: ta.ID, Hour: h11, Actor: "k1", ActorKind: "key", Upstream: "fs", Tool: strings.Repeat("t", MaxName), Outcome: "ok", Count: 1},
	}
	if len(a) != len(want) {
		t.Fatalf("records = %+v, want %+v", a, want)
	}
	for i := range want {
		if !a[i].Hour.Equal(want[i].Hour) || !sameBut(a[i], want[i]) {
			t.Errorf("record %d = %+v, want %+v", i, a[i], want[i])
		}
	}
	b := list(t, st, store.UsageFilter{TenantID: boot.ID})
	if len(b) != 1 || b[0].ActorKind != principal.KindAnonymous || b[0].Actor != "" || b[0].Tool != "write" || b[0].Outcome != "error" || b[0].Count != 1 {
		t.Errorf("single-user call = %+v", b)
	}
	// Flushing again adds nothing.
	if err := m.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if again := list(t, st, store.UsageFilter{TenantID: ta.ID}); again[0].Count != workers*calls {
		t.Errorf("a second flush changed the count to %d", again[0].Count)
	}
}

func sameBut(a, b store.UsageRecord) bool {
	a.Hour, b.Hour = time.Time{}, time.Time{}
	return a == b
}

func TestNoDefaultTenantDropsAnonymous(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "m.db"))
	m := New(Options{Store: st})
	m.Count(nil, "fs", "read", "ok")
	if m.Pending() != 0 {
		t.Error("a call without a principal nor a default tenant was counted")
	}
}

// failing fails its first n AddUsageRecords, then passes them on.
type failing struct {
	store.Metering
	left  atomic.Int32
	calls atomic.Int32
}

func (f *failing) AddUsageRecords(ctx context.Context, rs []store.UsageRecord) error {
	f.calls.Add(1)
	if f.left.Add(-1) >= 0 {
		return errors.New("database unavailable")
	}
	return f.Metering.AddUsageRecords(ctx, rs)
}

func TestFailedFlushIsRetriedOnce(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "m.db"))
	tn := mkTenant(t, st, "a")
	f := &failing{Metering: st}
	f.left.Store(2)
	m := New(Options{Store: f})
	p := &principal.Principal{Kind: principal.KindKey, ID: "k", TenantID: tn.ID}
	m.Count(p, "fs", "read", "ok")
	if err := m.Flush(t.Context()); err == nil {
		t.Fatal("Flush did not report the store's error")
	}
	m.Count(p, "fs", "read", "ok") // counted while the store is down
	if err := m.Flush(t.Context()); err == nil {
		t.Fatal("Flush did not report the store's error")
	}
	if m.Pending() != 2 {
		t.Fatalf("Pending after two failed flushes = %d, want 2", m.Pending())
	}
	if err := m.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	rs := list(t, st, store.UsageFilter{})
	if len(rs) != 1 || rs[0].Count != 2 {
		t.Fatalf("after the store came back: %+v, want one record of 2", rs)
	}
}

// TestReplicas: two meters (two gateways) on one database, counting the
// same keys and flushing concurrently, add up exactly.
func TestReplicas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	st1, st2 := openStore(t, path), openStore(t, path)
	tn := mkTenant(t, st1, "a")
	p := &principal.Principal{Kind: principal.KindUser, ID: "u1", UserID: "u1", TenantID: tn.ID}
	meters := []*Meter{New(Options{Store: st1}), New(Options{Store: st2})}
	const rounds, calls = 20, 50
	var wg sync.WaitGroup
	for _, m := range meters {
		wg.Go(func() {
			for range rounds {
				for range calls {
					m.Count(p, "fs", "read", "ok")
				}
				if err := m.Flush(t.Context()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var total int64
	for _, r := range list(t, st1, store.UsageFilter{TenantID: tn.ID}) {
		total += r.Count
	}
	if total != 2*rounds*calls {
		t.Fatalf("two replicas counted %d calls, want %d", total, 2*rounds*calls)
	}
}

// TestRunFlushesAndPrunes: the loop writes the counts without a Flush
// call and prunes records past the retention.
func TestRunFlushesAndPrunes(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "m.db"))
	tn := mkTenant(t, st, "a")
	now := time.Now().UTC()
	old := now.Add(-30 * 24 * time.Hour)
	if err := st.AddUsageRecords(t.Context(), []store.UsageRecord{{TenantID: tn.ID, Hour: old, Upstream: "fs", Tool: "read", Outcome: "ok", Count: 9}}); err != nil {
		t.Fatal(err)
	}
	m := New(Options{Store: st, FlushInterval: 20 * time.Millisecond, Retention: 7 * 24 * time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	m.Count(&principal.Principal{Kind: principal.KindKey, ID: "k", TenantID: tn.ID}, "fs", "read", "ok")
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs := list(t, st, store.UsageFilter{TenantID: tn.ID})
		if len(rs) == 1 && rs[0].Count == 1 && rs[0].Hour.After(old) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run did not flush and prune: %+v", rs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
