package billing

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/billing/billingtest"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/store"
)

const meterPath = "/v1/billing/meter_events"

// billed sums the values of the distinct meter events Stripe took
// (status 200 or lost after forwarding), one per idempotency key, and
// fails when one key was sent with different parameters (Stripe would
// refuse that, and it would mean a retry is not the same report).
func billed(t *testing.T, calls []billingtest.Call) (total int64, keys int) {
	t.Helper()
	seen := map[string]string{}
	for _, c := range calls {
		if c.IdempotencyKey == "" || c.Form.Get("identifier") != c.IdempotencyKey {
			t.Errorf("meter event without its idempotency key as identifier: %+v", c)
		}
		enc := c.Form.Encode()
		if prev, ok := seen[c.IdempotencyKey]; ok {
			if prev != enc {
				t.Errorf("idempotency key %s sent with different parameters:\n%s\n%s", c.IdempotencyKey, prev, enc)
			}
			continue
		}
		seen[c.IdempotencyKey] = enc
		v, err := strconv.ParseInt(c.Form.Get("payload[value]"), 10, 64)
		if err != nil {
			t.Errorf("meter event value %q: %v", c.Form.Get("payload[value]"), err)
		}
		total += v
	}
	return total, len(seen)
}

func TestReportOnceAndDeltas(t *testing.T) {
	f := newFixture(t, "")
	ctx := t.Context()
	acme := f.tenant("acme", "pro", false)
	a := f.account(acme, "cus_acme")
	h0 := f.clock().Truncate(hour)
	f.usage(acme, h0, "ok", 7)
	f.usage(acme, h0, "error", 2)
	f.usage(acme, h0, "denied", 50)            // refused calls are not billed
	f.usage(acme, h0.Add(-2*hour), "ok", 1000) // before the subscription

	res, err := f.svc.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	calls := f.rec.Calls(meterPath)
	if res.Events != 1 || res.Calls != 9 || len(calls) != 1 {
		t.Fatalf("Report = %+v with %d requests; want one event of 9 calls", res, len(calls))
	}
	c := calls[0]
	if c.Form.Get("event_name") != "mcpedge_tool_calls" || c.Form.Get("payload[stripe_customer_id]") != a.CustomerID ||
		c.Form.Get("timestamp") != strconv.FormatInt(h0.Unix(), 10) || c.IdempotencyKey != meterID(acme.ID, h0, 0) || c.Status != 200 {
		t.Errorf("meter event = %+v", c)
	}

	// Reporting again sends nothing: the store says 9 were reported.
	if res, err := f.svc.Report(ctx); err != nil || res.Events != 0 || len(f.rec.Calls(meterPath)) != 1 {
		t.Fatalf("second Report = %+v, %v, %d requests; want nothing sent", res, err, len(f.rec.Calls(meterPath)))
	}

	// More calls in the same hour: only the difference, under a new key.
	f.usage(acme, h0, "ok", 4)
	f.advance(10 * time.Minute)
	if res, err := f.svc.Report(ctx); err != nil || res.Events != 1 || res.Calls != 4 {
		t.Fatalf("Report after more calls = %+v, %v", res, err)
	}
	if c := f.rec.Calls(meterPath)[1]; c.IdempotencyKey != meterID(acme.ID, h0, 9) || c.Form.Get("payload[value]") != "4" {
		t.Errorf("delta event = %+v", c)
	}

	// Past the hour and the settle time the hour is final: the watermark
	// passes it and its report row goes.
	f.usage(acme, h0.Add(hour), "ok", 3)
	f.advance(hour + 20*time.Minute) // 11:50
	if _, err := f.svc.Report(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.acct(acme).ReportedThrough; !got.Equal(h0.Add(hour)) {
		t.Errorf("ReportedThrough = %v, want %v", got, h0.Add(hour))
	}
	reps, _ := f.st.ListBillingReports(ctx, acme.ID)
	if len(reps) != 1 || !reps[0].Hour.Equal(h0.Add(hour)) || reps[0].Reported != 3 {
		t.Errorf("reports after the watermark moved = %+v", reps)
	}
	total, keys := billed(t, f.rec.Calls(meterPath))
	if total != 16 || keys != 3 {
		t.Errorf("billed %d calls in %d events, want 16 in 3", total, keys)
	}
}

// An answer lost after Stripe took the event (a timeout, a crash): the
// report stays written ahead, and the next round sends the very same
// event with the same key, which Stripe takes once.
func TestReportRetryIsTheSameEvent(t *testing.T) {
	f := newFixture(t, "")
	ctx := t.Context()
	acme := f.tenant("acme", "pro", false)
	f.account(acme, "cus_acme")
	h0 := f.clock().Truncate(hour)
	f.usage(acme, h0, "ok", 5)
	// First stripe-go's own retry: the same request again at once.
	f.rec.LoseAnswers(meterPath, 1, true)
	if res, err := f.svc.Report(ctx); err != nil || res.Events != 1 {
		t.Fatalf("Report with one lost answer that stripe-go retried = %+v, %v", res, err)
	}
	if calls := f.rec.Calls(meterPath); len(calls) != 2 || calls[0].IdempotencyKey != calls[1].IdempotencyKey || calls[1].Status != 200 {
		t.Fatalf("stripe-go's retry: %+v", calls)
	}
	// Then an answer lost for good: Report fails.
	f.usage(acme, h0, "ok", 10)
	f.rec.LoseAnswers(meterPath, 1, false)

	if _, err := f.svc.Report(ctx); err == nil {
		t.Fatal("Report succeeded although every answer was lost")
	}
	reps, _ := f.st.ListBillingReports(ctx, acme.ID)
	if len(reps) != 1 || reps[0].Pending != 15 || reps[0].Reported != 5 {
		t.Fatalf("after the failure: reports %+v, want one written ahead (pending 15, reported 5)", reps)
	}
	// Calls counted meanwhile do not change the report being retried.
	f.usage(acme, h0, "ok", 2)
	res, err := f.svc.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 2 || res.Calls != 12 {
		t.Errorf("retrying Report = %+v, want the lost event again (10) and the new calls (2)", res)
	}
	calls := f.rec.Calls(meterPath)
	if len(calls) != 5 {
		t.Fatalf("%d meter event requests, want 2 + 1 lost + 1 resent + 1 new", len(calls))
	}
	for _, c := range calls[2:4] {
		if c.IdempotencyKey != meterID(acme.ID, h0, 5) || c.Form.Get("payload[value]") != "10" {
			t.Errorf("the resent event differs from the lost one: %+v", c)
		}
	}
	if c := calls[4]; c.IdempotencyKey != meterID(acme.ID, h0, 15) || c.Form.Get("payload[value]") != "2" {
		t.Errorf("the new calls' event = %+v", c)
	}
	total, keys := billed(t, calls)
	if total != 17 || keys != 3 {
		t.Errorf("billed %d calls under %d keys, want 17 under 3", total, keys)
	}
	if res, _ := f.svc.Report(ctx); res.Events != 0 {
		t.Errorf("a third Report sent %d events", res.Events)
	}
}

// Only the lease holder reports: a second replica's round does nothing.
func TestRoundTakesTheLease(t *testing.T) {
	f := newFixture(t, "")
	ctx := t.Context()
	acme := f.tenant("acme", "pro", false)
	if got, err := f.svc.Round(ctx); err != nil || !got {
		t.Fatalf("Round = %v, %v", got, err)
	}
	f.usage(acme, f.clock(), "ok", 3)
	other := *f.svc
	other.o.Holder = "other-replica"
	if got, err := other.Round(ctx); err != nil || got {
		t.Fatalf("the second replica's Round = %v, %v; want the lease refused", got, err)
	}
	if n := len(f.rec.Calls(meterPath)); n != 0 {
		t.Errorf("%d meter events sent by the replica without the lease", n)
	}
	if got, err := f.svc.Round(ctx); err != nil || !got {
		t.Fatalf("the holder's second Round = %v, %v", got, err)
	}
	if total, _ := billed(t, f.rec.Calls(meterPath)); total != 3 {
		t.Errorf("billed %d, want 3", total)
	}
}

func TestStatusShowsUnreportedAndGrace(t *testing.T) {
	f := newFixture(t, "http://127.0.0.1:1")
	ctx := t.Context()
	acme := f.tenant("acme", "pro", false)
	f.account(acme, "cus_acme")
	h0 := f.clock().Truncate(hour)
	f.usage(acme, h0, "ok", 6)
	f.usage(acme, h0, "denied", 6)
	if err := f.st.PutBillingReport(ctx, &store.BillingUsageReport{TenantID: acme.ID, Hour: h0, Reported: 4, Pending: 4}); err != nil {
		t.Fatal(err)
	}
	failed := f.clock()
	if _, err := f.st.UpdateBillingAccount(ctx, acme.ID, func(a *store.BillingAccount) error {
		a.Status, a.PastDueSince = "past_due", failed
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sts, err := Status(ctx, f.st, 72*time.Hour, f.clock())
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 1 {
		t.Fatalf("Status = %+v", sts)
	}
	s := sts[0]
	if s.Tenant != "acme" || s.Plan != "pro" || s.Unreported != 2 || !s.GraceEnds.Equal(failed.Add(72*time.Hour)) || s.CustomerID != "cus_acme" {
		t.Errorf("Status = %+v", s)
	}
}

// A nudge makes Run do a round at once, not at the next interval (an hour
// here): a tenant created through the API is subscribed right away.
func TestNudgeRunsARoundNow(t *testing.T) {
	f := newFixture(t, "")
	f.svc.o.Config.ReportInterval = config.Duration(time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The first round runs at start, with no tenant to subscribe.
	waitUntil(t, "the first round", func() bool {
		// A probe an hour in the past: refused while the service holds
		// the lease; if granted, expired already for the service.
		past := f.clock().Add(-time.Hour)
		got, _ := f.st.AcquireBillingLease(t.Context(), "probe", past, past.Add(time.Second))
		return !got
	})
	f.tenant("acme", "pro", false)
	f.svc.Nudge()
	waitUntil(t, "acme subscribed after the nudge", func() bool { return len(f.rec.Calls("/v1/subscriptions")) == 1 })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
