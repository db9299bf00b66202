package billing

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/billing/billingtest"
)

// post sends a webhook signed with secret at ts to the handler.
func post(t *testing.T, h http.Handler, payload []byte, sig string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/billing/stripe", strings.NewReader(string(payload)))
	if sig != "" {
		r.Header.Set("Stripe-Signature", sig)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func invoice(customer string) string {
	return fmt.Sprintf(`{"id":"in_1","object":"invoice","customer":%q,"status":"open"}`, customer)
}

func subscription(id, customer, status, price string) string {
	return fmt.Sprintf(`{"id":%q,"object":"subscription","customer":{"id":%q,"object":"customer"},"status":%q,"items":{"object":"list","data":[{"id":"si_1","price":{"id":%q}}]}}`,
		id, customer, status, price)
}

func TestWebhookRefusesWhatStripeDidNotSign(t *testing.T) {
	f := newFixture(t, "http://127.0.0.1:1") // no Stripe calls here
	h := f.svc.Handler()
	acme := f.tenant("acme", "pro", false)
	f.account(acme, "cus_acme")
	now := time.Now()
	ev := billingtest.Event("evt_1", "invoice.payment_failed", now, invoice("cus_acme"))
	for _, tc := range []struct {
		name, sig string
		body      []byte
		want      string
	}{
		{"no signature", "", ev, "missing or malformed Stripe-Signature"},
		{"no timestamp in the header", "v1=abc", ev, "signature"},
		{"garbage timestamp", "t=soon,v1=abc", ev, "missing or malformed Stripe-Signature"},
		{"wrong secret", billingtest.Signature(ev, "whsec_other", now), ev, "no valid signature"},
		{"payload changed after signing", billingtest.Signature(ev, testWhsec, now), []byte(strings.Replace(string(ev), "cus_acme", "cus_evil", 1)), "no valid signature"},
		{"stale timestamp", billingtest.Signature(ev, testWhsec, now.Add(-6*time.Minute)), ev, "older than the tolerance (5m0s)"},
		{"malformed JSON, signed", billingtest.Signature([]byte(`{"id":"evt_x",`), testWhsec, now), []byte(`{"id":"evt_x",`), "not a Stripe event"},
		{"bad data.object, signed", "", billingtest.Event("evt_y", "invoice.paid", now, `{"customer":12}`), "data.object.customer"},
	} {
		sig := tc.sig
		if sig == "" && tc.name != "no signature" {
			sig = billingtest.Signature(tc.body, testWhsec, now)
		}
		code, body := post(t, h, tc.body, sig)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want 400 saying %q", tc.name, code, body, tc.want)
		}
	}
	if a := f.acct(acme); a.Status != "active" || !a.PastDueSince.IsZero() {
		t.Errorf("a refused webhook changed the account: %+v", a)
	}
	if strings.Contains(f.logs.String(), testWhsec) {
		t.Error("the webhook signing secret is in the log")
	}

	r := httptest.NewRequest(http.MethodGet, "/api/billing/stripe", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET = %d, want 405", w.Code)
	}
	big := make([]byte, MaxWebhookBytes+1)
	if code, _ := post(t, h, big, billingtest.Signature(big, testWhsec, now)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the bound = %d, want 413", code)
	}
}

func TestWebhookReplayIsHandledOnce(t *testing.T) {
	f := newFixture(t, "http://127.0.0.1:1")
	h := f.svc.Handler()
	acme := f.tenant("acme", "pro", false)
	f.account(acme, "cus_acme")
	now := time.Now()
	ev := billingtest.Event("evt_fail_1", "invoice.payment_failed", now, invoice("cus_acme"))
	if code, body := post(t, h, ev, billingtest.Signature(ev, testWhsec, now)); code != 200 || !strings.Contains(body, "applied") {
		t.Fatalf("first delivery: %d %s", code, body)
	}
	first := f.acct(acme)
	// The same event again, signed anew (Stripe's retry), some seconds on.
	later := now.Add(3 * time.Second)
	if code, body := post(t, h, ev, billingtest.Signature(ev, testWhsec, later)); code != 200 || !strings.Contains(body, "already handled") {
		t.Fatalf("replay: %d %s", code, body)
	}
	if a := f.acct(acme); !a.UpdatedAt.Equal(first.UpdatedAt) {
		t.Errorf("the replay changed the account: %+v", a)
	}
	if n := len(f.notices()); n != 1 {
		t.Errorf("%d notices, want 1 (the replay announces nothing)", n)
	}
	// Unknown types and other customers are acknowledged and ignored.
	other := billingtest.Event("evt_2", "charge.refunded", now, `{"id":"ch_1"}`)
	if code, body := post(t, h, other, billingtest.Signature(other, testWhsec, now)); code != 200 || !strings.Contains(body, "ignored") {
		t.Errorf("an unhandled type: %d %s", code, body)
	}
	stranger := billingtest.Event("evt_3", "invoice.paid", now, invoice("cus_stranger"))
	if code, body := post(t, h, stranger, billingtest.Signature(stranger, testWhsec, now)); code != 200 || !strings.Contains(body, "not a customer of this gateway") {
		t.Errorf("another customer: %d %s", code, body)
	}
}

func TestPaymentFailureGraceThenFreeThenBack(t *testing.T) {
	f := newFixture(t, "http://127.0.0.1:1")
	h := f.svc.Handler()
	ctx := t.Context()
	acme := f.tenant("acme", "pro", false)
	f.account(acme, "cus_acme")
	failed := f.clock().Add(-time.Minute)
	ev := billingtest.Event("evt_f", "invoice.payment_failed", failed, invoice("cus_acme"))
	if code, body := post(t, h, ev, billingtest.Signature(ev, testWhsec, time.Now())); code != 200 {
		t.Fatalf("payment failed: %d %s", code, body)
	}
	a := f.acct(acme)
	if a.Status != "past_due" || !a.PastDueSince.Equal(failed) || f.plan(acme) != "pro" {
		t.Fatalf("after a failed payment: %+v, plan %s; want past_due since the event, still pro", a, f.plan(acme))
	}
	// A second failure (Stripe's next attempt) keeps the first time.
	ev2 := billingtest.Event("evt_f2", "invoice.payment_failed", failed.Add(24*time.Hour), invoice("cus_acme"))
	post(t, h, ev2, billingtest.Signature(ev2, testWhsec, time.Now()))
	if a := f.acct(acme); !a.PastDueSince.Equal(failed) {
		t.Errorf("a second failure moved PastDueSince to %v", a.PastDueSince)
	}

	f.advance(72*time.Hour - 2*time.Minute) // one minute before the grace ends
	if err := f.svc.Enforce(ctx); err != nil {
		t.Fatal(err)
	}
	if p := f.plan(acme); p != "pro" {
		t.Fatalf("plan %s within the grace period, want pro", p)
	}
	f.advance(time.Minute)
	if err := f.svc.Enforce(ctx); err != nil {
		t.Fatal(err)
	}
	if p, a := f.plan(acme), f.acct(acme); p != "free" || !a.Degraded || a.Plan != "pro" {
		t.Fatalf("after the grace period: plan %s, account %+v; want free, degraded, paid plan pro kept", p, a)
	}
	// Nothing was deleted: the tenant, its account, its usage are there.
	f.usage(acme, f.clock(), "ok", 1)
	if recs, err := f.st.ListUsage(ctx, storeFilter(acme.ID)); err != nil || len(recs) == 0 {
		t.Errorf("usage after the degrade: %v, %v", recs, err)
	}

	paid := billingtest.Event("evt_p", "invoice.paid", f.clock(), invoice("cus_acme"))
	if code, body := post(t, h, paid, billingtest.Signature(paid, testWhsec, time.Now())); code != 200 {
		t.Fatalf("paid: %d %s", code, body)
	}
	if p, a := f.plan(acme), f.acct(acme); p != "pro" || a.Degraded || a.Status != "active" || !a.PastDueSince.IsZero() {
		t.Fatalf("after the payment: plan %s, account %+v; want pro again, active", p, a)
	}
	// An older event delivered late changes nothing.
	late := billingtest.Event("evt_late", "customer.subscription.updated", failed, subscription("sub_cus_acme", "cus_acme", "past_due", "price_pro"))
	post(t, h, late, billingtest.Signature(late, testWhsec, time.Now()))
	if a := f.acct(acme); a.Status != "active" {
		t.Errorf("a late, older event set the status to %s", a.Status)
	}

	wantAudit := []string{"billing.status:ok", "billing.plan_change:ok", "billing.status:ok", "billing.plan_change:ok"}
	if got := f.auditActions(); !slices.Equal(got, wantAudit) {
		t.Errorf("audit = %v, want %v", got, wantAudit)
	}
	var kinds []string
	for _, n := range f.notices() {
		if n.tenant != "acme" {
			t.Errorf("notice for tenant %q", n.tenant)
		}
		kinds = append(kinds, n.kind)
	}
	wantKinds := []string{EventInvoiceFailed, EventInvoiceFailed, EventPlanChanged, EventInvoicePaid, EventPlanChanged}
	if !slices.Equal(kinds, wantKinds) {
		t.Errorf("notices = %v, want %v", kinds, wantKinds)
	}
}

func TestSubscriptionStates(t *testing.T) {
	f := newFixture(t, "http://127.0.0.1:1")
	h := f.svc.Handler()
	acme := f.tenant("acme", "pro", false)
	f.account(acme, "cus_acme")
	send := func(id, typ, status, price string) {
		t.Helper()
		f.advance(time.Second)
		ev := billingtest.Event(id, typ, f.clock(), subscription("sub_cus_acme", "cus_acme", status, price))
		if code, body := post(t, h, ev, billingtest.Signature(ev, testWhsec, time.Now())); code != 200 {
			t.Fatalf("%s: %d %s", id, code, body)
		}
	}
	// The customer moved to the enterprise price in Stripe: the tenant follows.
	send("e1", "customer.subscription.updated", "active", "price_ent")
	if p, a := f.plan(acme), f.acct(acme); p != "enterprise" || a.Plan != "enterprise" {
		t.Fatalf("after the price change: plan %s, account %+v", p, a)
	}
	// past_due from the subscription itself starts the grace period.
	send("e2", "customer.subscription.updated", "past_due", "price_ent")
	if a := f.acct(acme); a.PastDueSince.IsZero() || f.plan(acme) != "enterprise" {
		t.Fatalf("past_due: %+v", a)
	}
	// Canceled: the free plan at once.
	send("e3", "customer.subscription.deleted", "canceled", "price_ent")
	if p, a := f.plan(acme), f.acct(acme); p != "free" || !a.Degraded || a.Status != "canceled" {
		t.Fatalf("canceled: plan %s, account %+v", p, a)
	}
	// Another subscription of the customer is not this tenant's.
	f.advance(time.Second)
	ev := billingtest.Event("e4", "customer.subscription.updated", f.clock(), subscription("sub_other", "cus_acme", "active", "price_pro"))
	if code, body := post(t, h, ev, billingtest.Signature(ev, testWhsec, time.Now())); code != 200 || !strings.Contains(body, "another subscription") {
		t.Errorf("another subscription: %d %s", code, body)
	}
	// An operator's own plan choice is not overridden by a restore.
	f.advance(time.Second)
	tn, _ := f.st.GetTenant(t.Context(), acme.ID)
	tn.Plan = "enterprise"
	_ = f.st.UpdateTenant(t.Context(), tn)
	send("e5", "customer.subscription.updated", "active", "price_ent")
	if p := f.plan(acme); p != "enterprise" {
		t.Errorf("plan %s after a reactivation", p)
	}
}
