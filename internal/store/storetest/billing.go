package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

func testBilling(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := mkTenant(t, s, "billed")
	other := mkTenant(t, s, "other")

	_, err := s.GetBillingAccount(ctx, tn.ID)
	is(t, err, store.ErrNotFound, "GetBillingAccount before create")
	is(t, s.CreateBillingAccount(ctx, &store.BillingAccount{TenantID: "nosuchtenant", CustomerID: "cus_x"}), store.ErrNotFound, "account of a missing tenant")
	if err := s.CreateBillingAccount(ctx, &store.BillingAccount{TenantID: tn.ID}); err == nil {
		t.Fatal("an account without a customer id was stored")
	}

	a := &store.BillingAccount{TenantID: tn.ID, CustomerID: "cus_1", SubscriptionID: "sub_1", Plan: "pro", PriceID: "price_pro",
		Status: "active", StateAt: at(1)}
	ok(t, s.CreateBillingAccount(ctx, a), "CreateBillingAccount")
	if a.UpdatedAt.IsZero() {
		t.Error("UpdatedAt not filled")
	}
	is(t, s.CreateBillingAccount(ctx, &store.BillingAccount{TenantID: tn.ID, CustomerID: "cus_2"}), store.ErrConflict, "second account of a tenant")
	is(t, s.CreateBillingAccount(ctx, &store.BillingAccount{TenantID: other.ID, CustomerID: "cus_1"}), store.ErrConflict, "a customer taken")

	got, err := s.GetBillingAccount(ctx, tn.ID)
	ok(t, err, "GetBillingAccount")
	want := *a
	want.StateAt = at(1).UTC()
	diff(t, &want, got, "account")
	byCus, err := s.GetBillingAccountByCustomer(ctx, "cus_1")
	ok(t, err, "GetBillingAccountByCustomer")
	diff(t, got, byCus, "account by customer")
	_, err = s.GetBillingAccountByCustomer(ctx, "cus_none")
	is(t, err, store.ErrNotFound, "unknown customer")

	// Update: fn's changes are stored, except the tenant and watermark.
	up, err := s.UpdateBillingAccount(ctx, tn.ID, func(a *store.BillingAccount) error {
		a.Status, a.PastDueSince, a.Degraded = "past_due", at(5), true
		a.TenantID, a.ReportedThrough = other.ID, at(9)
		return nil
	})
	ok(t, err, "UpdateBillingAccount")
	got, err = s.GetBillingAccount(ctx, tn.ID)
	ok(t, err, "GetBillingAccount after update")
	diff(t, up, got, "updated account as returned and as stored")
	if got.Status != "past_due" || !got.PastDueSince.Equal(at(5)) || !got.Degraded || !got.ReportedThrough.IsZero() || got.TenantID != tn.ID {
		t.Errorf("updated account = %+v", got)
	}
	_, err = s.UpdateBillingAccount(ctx, "nosuch", func(*store.BillingAccount) error { return nil })
	is(t, err, store.ErrNotFound, "UpdateBillingAccount of no account")
	_, err = s.UpdateBillingAccount(ctx, tn.ID, func(a *store.BillingAccount) error { a.Status = "canceled"; return store.ErrConflict })
	is(t, err, store.ErrConflict, "fn's error")
	got, _ = s.GetBillingAccount(ctx, tn.ID)
	if got.Status != "past_due" {
		t.Errorf("fn's error still changed the status to %q", got.Status)
	}
	list, err := s.ListBillingAccounts(ctx)
	ok(t, err, "ListBillingAccounts")
	if len(list) != 1 || list[0].TenantID != tn.ID {
		t.Errorf("ListBillingAccounts = %+v", list)
	}

	// Reports: numbers only go up; the watermark drops earlier hours.
	h0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	is(t, s.PutBillingReport(ctx, &store.BillingUsageReport{TenantID: other.ID, Hour: h0, Pending: 1}), store.ErrNotFound, "report of a tenant without account")
	if err := s.PutBillingReport(ctx, &store.BillingUsageReport{TenantID: tn.ID, Hour: h0, Reported: 2, Pending: 1}); err == nil {
		t.Error("reported > pending was stored")
	}
	ok(t, s.PutBillingReport(ctx, &store.BillingUsageReport{TenantID: tn.ID, Hour: h0.Add(17 * time.Minute), Pending: 5}), "PutBillingReport")
	ok(t, s.PutBillingReport(ctx, &store.BillingUsageReport{TenantID: tn.ID, Hour: h0, Reported: 5, Pending: 5}), "PutBillingReport reported")
	ok(t, s.PutBillingReport(ctx, &store.BillingUsageReport{TenantID: tn.ID, Hour: h0, Reported: 3, Pending: 4}), "PutBillingReport lower")
	ok(t, s.PutBillingReport(ctx, &store.BillingUsageReport{TenantID: tn.ID, Hour: h0.Add(time.Hour), Pending: 7}), "PutBillingReport next hour")
	reps, err := s.ListBillingReports(ctx, tn.ID)
	ok(t, err, "ListBillingReports")
	diff(t, []store.BillingUsageReport{{TenantID: tn.ID, Hour: h0, Reported: 5, Pending: 5}, {TenantID: tn.ID, Hour: h0.Add(time.Hour), Pending: 7}}, reps, "reports")

	ok(t, s.AdvanceBillingWatermark(ctx, tn.ID, h0.Add(time.Hour+time.Minute)), "AdvanceBillingWatermark")
	ok(t, s.AdvanceBillingWatermark(ctx, tn.ID, h0), "AdvanceBillingWatermark backwards")
	got, _ = s.GetBillingAccount(ctx, tn.ID)
	if !got.ReportedThrough.Equal(h0.Add(time.Hour)) {
		t.Errorf("ReportedThrough = %v, want %v (truncated to the hour, never backwards)", got.ReportedThrough, h0.Add(time.Hour))
	}
	reps, _ = s.ListBillingReports(ctx, tn.ID)
	diff(t, []store.BillingUsageReport{{TenantID: tn.ID, Hour: h0.Add(time.Hour), Pending: 7}}, reps, "reports past the watermark")
	is(t, s.AdvanceBillingWatermark(ctx, other.ID, h0), store.ErrNotFound, "watermark of no account")

	// Events: the first record is new, a replay is not; prune forgets.
	fresh, err := s.RecordBillingEvent(ctx, "evt_1", "invoice.paid", at(1))
	ok(t, err, "RecordBillingEvent")
	again, err := s.RecordBillingEvent(ctx, "evt_1", "invoice.paid", at(2))
	ok(t, err, "RecordBillingEvent replay")
	if !fresh || again {
		t.Errorf("RecordBillingEvent new = %v, replay = %v; want true, false", fresh, again)
	}
	ok(t, s.UnrecordBillingEvent(ctx, "evt_1"), "UnrecordBillingEvent")
	if fresh, _ := s.RecordBillingEvent(ctx, "evt_1", "invoice.paid", at(1)); !fresh {
		t.Error("an unrecorded event is still known")
	}
	_, _ = s.RecordBillingEvent(ctx, "evt_2", "invoice.paid", at(30))
	n, err := s.PruneBillingEvents(ctx, at(10))
	ok(t, err, "PruneBillingEvents")
	if n != 1 {
		t.Errorf("PruneBillingEvents = %d, want 1", n)
	}
	if fresh, _ := s.RecordBillingEvent(ctx, "evt_2", "invoice.paid", at(31)); fresh {
		t.Error("a recent event was pruned")
	}

	// The account and its reports go with the tenant.
	ok(t, s.DeleteTenant(ctx, tn.ID), "DeleteTenant")
	_, err = s.GetBillingAccountByCustomer(ctx, "cus_1")
	is(t, err, store.ErrNotFound, "account of a deleted tenant")
	reps, err = s.ListBillingReports(ctx, tn.ID)
	ok(t, err, "ListBillingReports of a deleted tenant")
	if len(reps) != 0 {
		t.Errorf("reports of a deleted tenant: %+v", reps)
	}
}

func testBillingLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := at(0)
	got, err := s.AcquireBillingLease(ctx, "a", t0, t0.Add(time.Minute))
	ok(t, err, "AcquireBillingLease a")
	if !got {
		t.Fatal("a free lease was not granted")
	}
	if got, _ := s.AcquireBillingLease(ctx, "b", t0.Add(30*time.Second), t0.Add(90*time.Second)); got {
		t.Error("b took a's lease before it expired")
	}
	if got, _ := s.AcquireBillingLease(ctx, "a", t0.Add(30*time.Second), t0.Add(2*time.Minute)); !got {
		t.Error("a could not renew its lease")
	}
	if got, _ := s.AcquireBillingLease(ctx, "b", t0.Add(time.Minute+30*time.Second), t0.Add(3*time.Minute)); got {
		t.Error("b took a's renewed lease before it expired")
	}
	if got, _ := s.AcquireBillingLease(ctx, "b", t0.Add(2*time.Minute), t0.Add(3*time.Minute)); !got {
		t.Error("b could not take an expired lease")
	}
	ok(t, s.ReleaseBillingLease(ctx, "a"), "ReleaseBillingLease by a non-holder")
	if got, _ := s.AcquireBillingLease(ctx, "a", t0.Add(2*time.Minute), t0.Add(4*time.Minute)); got {
		t.Error("a non-holder's release freed the lease")
	}
	ok(t, s.ReleaseBillingLease(ctx, "b"), "ReleaseBillingLease")
	if got, _ := s.AcquireBillingLease(ctx, "a", t0.Add(2*time.Minute), t0.Add(4*time.Minute)); !got {
		t.Error("a released lease was not free")
	}
	if _, err := s.AcquireBillingLease(ctx, "a", t0, t0); err == nil {
		t.Error("a lease ending now was granted")
	}
}

// runSharedBillingLease: two processes asking for the free lease at once;
// exactly one gets it.
func runSharedBillingLease(t *testing.T, stores []store.Store) {
	now := time.Now()
	var granted atomic.Int32
	var wg sync.WaitGroup
	for i, s := range stores {
		for w := range 3 {
			wg.Go(func() {
				got, err := s.AcquireBillingLease(t.Context(), string(rune('a'+i))+string(rune('0'+w)), now, now.Add(time.Hour))
				if err != nil {
					t.Errorf("store %d: AcquireBillingLease: %v", i, err)
				}
				if got {
					granted.Add(1)
				}
			})
		}
	}
	wg.Wait()
	if n := granted.Load(); n != 1 {
		t.Errorf("%d replicas hold the billing lease at once, want 1", n)
	}
}
