package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// testMetering checks usage records: counts of the same key add up (also
// from many concurrent writers, which is what several replicas flushing
// are), hours are truncated and UTC, filters and order hold, a deleted
// tenant's records are skipped without failing the others, bad records
// are refused, and pruning removes old hours only.
func testMetering(t *testing.T, s store.Store) {
	ctx := t.Context()
	ta, tb := mkTenant(t, s, "a"), mkTenant(t, s, "b")
	h0 := at(0).Truncate(time.Hour) // 10:00 at +01:00, so 09:00 UTC
	rec := func(tn *store.Tenant, hour time.Time, up, tool, outcome string, n int64) store.UsageRecord {
		return store.UsageRecord{TenantID: tn.ID, Hour: hour, Actor: "key1", ActorKind: "key", Upstream: up, Tool: tool, Outcome: outcome, Count: n}
	}
	got, err := s.ListUsage(ctx, store.UsageFilter{})
	ok(t, err, "ListUsage of a fresh store")
	if len(got) != 0 {
		t.Fatalf("ListUsage of a fresh store = %v", got)
	}

	const workers, adds = 8, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range adds {
				// Within the hour, at minute i: one key.
				r := []store.UsageRecord{rec(ta, h0.Add(time.Duration(i)*time.Minute), "fs", "read", "ok", 2), rec(tb, h0, "fs", "read", "ok", 1)}
				if err := s.AddUsageRecords(ctx, r); err != nil {
					t.Errorf("concurrent AddUsageRecords: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ok(t, s.AddUsageRecords(ctx, []store.UsageRecord{
		rec(ta, h0, "fs", "read", "denied", 1),
		rec(ta, h0.Add(time.Hour), "fs", "write", "error", 4),
		rec(ta, h0.Add(2*time.Hour), "git", "log", "ok", 5),
	}), "AddUsageRecords")

	want := []store.UsageRecord{
		{TenantID: ta.ID, Hour: h0.UTC(), Actor: "key1", ActorKind: "key", Upstream: "fs", Tool: "read", Outcome: "denied", Count: 1},
		{TenantID: ta.ID, Hour: h0.UTC(), Actor: "key1", ActorKind: "key", Upstream: "fs", Tool: "read", Outcome: "ok", Count: workers * adds * 2},
		{TenantID: tb.ID, Hour: h0.UTC(), Actor: "key1", ActorKind: "key", Upstream: "fs", Tool: "read", Outcome: "ok", Count: workers * adds},
		{TenantID: ta.ID, Hour: h0.Add(time.Hour).UTC(), Actor: "key1", ActorKind: "key", Upstream: "fs", Tool: "write", Outcome: "error", Count: 4},
		{TenantID: ta.ID, Hour: h0.Add(2 * time.Hour).UTC(), Actor: "key1", ActorKind: "key", Upstream: "git", Tool: "log", Outcome: "ok", Count: 5},
	}
	if want[0].TenantID > want[1].TenantID { // order within an hour: by tenant first
		t.Fatal("test setup")
	}
	all, err := s.ListUsage(ctx, store.UsageFilter{})
	ok(t, err, "ListUsage")
	// Records of one hour are ordered by tenant, then upstream, tool,
	// actor, outcome.
	wantAll := orderHour0(want, ta.ID, tb.ID)
	diff(t, wantAll, all, "ListUsage")
	for _, r := range all {
		if r.Hour.Location() != time.UTC {
			t.Errorf("hour %v is not in UTC", r.Hour)
		}
	}

	only, err := s.ListUsage(ctx, store.UsageFilter{TenantID: ta.ID, From: h0.Add(time.Hour), To: h0.Add(2 * time.Hour)})
	ok(t, err, "ListUsage by tenant and range")
	diff(t, want[3:4], only, "ListUsage of tenant a in [h0+1h, h0+2h)")
	byTool, err := s.ListUsage(ctx, store.UsageFilter{Upstream: "fs", Tool: "read", TenantID: tb.ID})
	ok(t, err, "ListUsage by upstream and tool")
	diff(t, want[2:3], byTool, "ListUsage of fs/read of tenant b")
	limited, err := s.ListUsage(ctx, store.UsageFilter{Limit: 2})
	ok(t, err, "ListUsage with a limit")
	diff(t, wantAll[:2], limited, "ListUsage limit 2")
	if _, err := s.ListUsage(ctx, store.UsageFilter{Limit: -1}); err == nil {
		t.Error("ListUsage accepted a negative limit")
	}

	for _, bad := range []store.UsageRecord{
		{Hour: h0, Count: 1},
		{TenantID: ta.ID, Hour: h0, Count: 0},
		{TenantID: ta.ID, Hour: h0, Count: -3},
		{TenantID: ta.ID, Count: 1},
	} {
		if err := s.AddUsageRecords(ctx, []store.UsageRecord{bad}); err == nil {
			t.Errorf("AddUsageRecords accepted %+v", bad)
		}
	}

	// A deleted tenant's records are skipped; the others' still count.
	tc := mkTenant(t, s, "c")
	ok(t, s.DeleteTenant(ctx, tc.ID), "DeleteTenant")
	ok(t, s.AddUsageRecords(ctx, []store.UsageRecord{rec(tc, h0, "fs", "read", "ok", 1), rec(tb, h0, "fs", "read", "ok", 1)}),
		"AddUsageRecords with a deleted tenant's record")
	byTool, err = s.ListUsage(ctx, store.UsageFilter{Upstream: "fs", Tool: "read"})
	ok(t, err, "ListUsage")
	for _, r := range byTool {
		if r.TenantID == tc.ID {
			t.Errorf("a deleted tenant's record was stored: %+v", r)
		}
		if r.TenantID == tb.ID && r.Count != workers*adds+1 {
			t.Errorf("tenant b's count = %d, want %d", r.Count, workers*adds+1)
		}
	}

	// Deleting a tenant deletes its usage.
	ok(t, s.DeleteTenant(ctx, tb.ID), "DeleteTenant b")
	gone, err := s.ListUsage(ctx, store.UsageFilter{TenantID: tb.ID})
	ok(t, err, "ListUsage of a deleted tenant")
	if len(gone) != 0 {
		t.Errorf("a deleted tenant's usage remains: %v", gone)
	}

	n, err := s.PruneUsage(ctx, h0.Add(time.Hour+30*time.Minute))
	ok(t, err, "PruneUsage")
	if n != 3 {
		t.Errorf("PruneUsage deleted %d records, want 3 (tenant a's hours h0 and h0+1h)", n)
	}
	left, err := s.ListUsage(ctx, store.UsageFilter{})
	ok(t, err, "ListUsage after pruning")
	diff(t, want[4:], left, "ListUsage after pruning")
	if _, err := s.PruneUsage(ctx, time.Time{}); err == nil {
		t.Error("PruneUsage accepted the zero time")
	}
}

// orderHour0 puts the three records of hour 0 (want[0:3]) in the store's
// order (tenant ids are random), followed by the rest.
func orderHour0(want []store.UsageRecord, a, b string) []store.UsageRecord {
	out := append([]store.UsageRecord{}, want...)
	if b < a {
		out[0], out[1], out[2] = want[2], want[0], want[1]
	}
	return out
}
