package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// testSchedules: a run is claimed once while it is not due, by exactly one
// of concurrent claimers when it is; SetSchedule and Schedule round-trip.
func testSchedules(t *testing.T, st store.Store) {
	sc, ok := st.(store.Schedules)
	if !ok {
		t.Fatalf("%T does not implement store.Schedules", st)
	}
	ctx := context.Background()
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	if _, ok, err := sc.Schedule(ctx, "job"); err != nil || ok {
		t.Fatalf("a schedule never set: %v %v", ok, err)
	}
	// The first claim of a job without a schedule wins.
	if ok, err := sc.ClaimSchedule(ctx, "job", t0, t0.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	// Not due before t0+1h.
	if ok, err := sc.ClaimSchedule(ctx, "job", t0.Add(59*time.Minute), t0.Add(2*time.Hour)); err != nil || ok {
		t.Fatalf("claim before due: %v %v", ok, err)
	}
	if at, ok, err := sc.Schedule(ctx, "job"); err != nil || !ok || !at.Equal(t0.Add(time.Hour)) {
		t.Fatalf("schedule = %v %v %v, want %v", at, ok, err, t0.Add(time.Hour))
	}
	// Due: of 8 concurrent claimers exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ok, err := sc.ClaimSchedule(ctx, "job", t0.Add(time.Hour), t0.Add(2*time.Hour))
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent claimers won, want 1", wins.Load())
	}
	// Other names are apart; SetSchedule overwrites.
	if ok, err := sc.ClaimSchedule(ctx, "other", t0, t0); err != nil || !ok {
		t.Fatalf("another job: %v %v", ok, err)
	}
	at := time.Date(2026, 12, 7, 13, 4, 5, 123456000, time.UTC)
	if err := sc.SetSchedule(ctx, "job", at); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := sc.Schedule(ctx, "job"); err != nil || !ok || !got.Equal(at) {
		t.Fatalf("after SetSchedule: %v %v %v", got, ok, err)
	}
	if err := sc.SetSchedule(ctx, "new", at); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.ClaimSchedule(ctx, "", t0, t0); err == nil {
		t.Error("an empty name was accepted")
	}
	// The policy counter is untouched.
	if v, err := st.PolicyVersion(ctx); err != nil || v != 0 {
		t.Errorf("policy version %d %v", v, err)
	}
}
