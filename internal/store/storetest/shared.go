package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
)

// RunShared checks the contracts that span processes: a and b are two
// stores opened separately on the same database (as two processes would
// open it), written through at the same time.
func RunShared(t *testing.T, a, b store.Store) {
	ctx := t.Context()
	stores := []store.Store{a, b}
	tn := mkTenant(t, a, "shared")
	if _, err := b.GetTenant(ctx, tn.ID); err != nil {
		t.Fatalf("the second store does not see the first one's tenant (not the same database?): %v", err)
	}

	const workers, rounds = 4, 15 // per store
	var wg sync.WaitGroup
	for i, s := range stores {
		for w := range workers {
			wg.Go(func() {
				actor := fmt.Sprintf("s%dw%d", i, w)
				for r := range rounds {
					if err := s.AppendAudit(ctx, []*store.AuditEntry{entry(tn.ID, actor, "tool.call")}, Seal); err != nil {
						t.Errorf("store %d: AppendAudit: %v", i, err)
						return
					}
					if _, err := s.AddUsage(ctx, tn.ID, "2026-11", 2); err != nil {
						t.Errorf("store %d: AddUsage: %v", i, err)
						return
					}
					// Two replicas flushing the same metering keys (in
					// opposite orders) at once.
					recs := []store.UsageRecord{
						{TenantID: tn.ID, Hour: at(0), Upstream: "fs", Tool: "read", Outcome: "ok", Count: 3},
						{TenantID: tn.ID, Hour: at(0), Upstream: "fs", Tool: "write", Outcome: "ok", Count: 1},
					}
					if i == 1 {
						recs[0], recs[1] = recs[1], recs[0]
					}
					if err := s.AddUsageRecords(ctx, recs); err != nil {
						t.Errorf("store %d: AddUsageRecords: %v", i, err)
						return
					}
					if err := s.Revoke(ctx, &store.Revocation{Kind: "jti", Subject: fmt.Sprintf("%s-%d", actor, r)}); err != nil {
						t.Errorf("store %d: Revoke: %v", i, err)
						return
					}
				}
			})
		}
	}
	secrets := make([][]byte, 2*workers)
	for i := range secrets {
		wg.Go(func() {
			v, err := stores[i%2].GetOrCreateSecret(ctx, "jwt", func() ([]byte, error) { return []byte(fmt.Sprint("c", i)), nil })
			if err != nil {
				t.Errorf("GetOrCreateSecret: %v", err)
			}
			secrets[i] = v
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	total := 2 * workers * rounds
	entries, err := b.ListAudit(ctx, store.AuditFilter{Limit: 10000})
	ok(t, err, "ListAudit")
	if len(entries) != total {
		t.Fatalf("%d audit entries, want %d", len(entries), total)
	}
	VerifyChain(t, entries)
	n, err := a.GetUsage(ctx, tn.ID, "2026-11")
	ok(t, err, "GetUsage")
	if n != int64(2*total) {
		t.Errorf("usage = %d after %d adds of 2 through two stores, want %d", n, total, 2*total)
	}
	recs, err := b.ListUsage(ctx, store.UsageFilter{TenantID: tn.ID})
	ok(t, err, "ListUsage")
	if len(recs) != 2 || recs[0].Count != int64(3*total) || recs[1].Count != int64(total) {
		t.Errorf("usage records = %+v after %d flushes of 3 (read) and 1 (write) through two stores", recs, total)
	}
	revs, err := a.RevocationsSince(ctx, 0, 10000)
	ok(t, err, "RevocationsSince")
	if len(revs) != total {
		t.Errorf("%d revocations, want %d", len(revs), total)
	}
	for i := 1; i < len(revs); i++ {
		if revs[i].Seq <= revs[i-1].Seq {
			t.Fatalf("revocation Seqs out of order: %d after %d", revs[i].Seq, revs[i-1].Seq)
		}
	}
	for i := range secrets {
		if string(secrets[i]) != string(secrets[0]) || len(secrets[0]) == 0 {
			t.Fatalf("the two stores returned different secrets: %q and %q", secrets[0], secrets[i])
		}
	}

	// The last two owners removed through different stores at once.
	for round := range 5 {
		tn := mkTenant(t, a, fmt.Sprintf("owners%d", round))
		o1, o2 := mkUser(t, a, tn.ID, "o1", "owner"), mkUser(t, b, tn.ID, "o2", "owner")
		var errs [2]error
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			u := *o1
			u.Disabled = true
			errs[0] = a.UpdateUser(ctx, &u)
		})
		wg.Go(func() {
			<-start
			errs[1] = b.DeleteUser(ctx, tn.ID, o2.ID)
		})
		close(start)
		wg.Wait()
		succeeded := 0
		for _, err := range errs {
			switch {
			case err == nil:
				succeeded++
			case !errors.Is(err, store.ErrLastOwner):
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if succeeded != 1 {
			t.Fatalf("round %d: %d of two removals of the last two owners through two stores succeeded (%v), want 1", round, succeeded, errs)
		}
	}
	runSharedBillingLease(t, stores)
}
