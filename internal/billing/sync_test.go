package billing

import (
	"slices"
	"testing"
)

func TestSyncSubscribesBillableTenants(t *testing.T) {
	f := newFixture(t, "")
	ctx := t.Context()
	acme := f.tenant("acme", "pro", false)
	f.tenant("ops", "enterprise", true) // operators are not billed
	free := f.tenant("freebie", "free", false)

	res, err := f.svc.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Created, []string{"acme"}) {
		t.Fatalf("Sync created %v, want [acme]", res.Created)
	}
	cus := f.rec.Calls("/v1/customers")
	subs := f.rec.Calls("/v1/subscriptions")
	if len(cus) != 1 || len(subs) != 1 {
		t.Fatalf("Stripe calls: %d customers, %d subscriptions; want 1 and 1", len(cus), len(subs))
	}
	if c := cus[0]; c.IdempotencyKey != "mcpedge-customer-"+acme.ID || c.Form.Get("metadata[mcpedge_tenant_id]") != acme.ID || c.Form.Get("name") != "acme" || c.Status != 200 {
		t.Errorf("customer request = %+v", c)
	}
	if s := subs[0]; s.IdempotencyKey != "mcpedge-subscription-"+acme.ID+"-price_pro" || s.Form.Get("items[0][price]") != "price_pro" || s.Status != 200 {
		t.Errorf("subscription request = %+v", s)
	}
	if cus[0].Auth != "Bearer "+testKey {
		t.Errorf("the secret key was not sent as the bearer credential")
	}
	a := f.acct(acme)
	// stripe-mock answers with fixtures: the ids are its, not per tenant.
	if a.CustomerID == "" || a.SubscriptionID == "" || a.Plan != "pro" || a.PriceID != "price_pro" || a.Status == "" {
		t.Errorf("account = %+v", a)
	}
	if !a.ReportedThrough.Equal(f.clock().Truncate(hour)) {
		t.Errorf("ReportedThrough = %v: usage before the subscription must not be billed", a.ReportedThrough)
	}
	if _, err := f.st.GetBillingAccount(ctx, free.ID); err == nil {
		t.Error("a tenant on a plan without a price got an account")
	}
	if got := f.auditActions(); !slices.Equal(got, []string{"billing.subscribe:ok"}) {
		t.Errorf("audit = %v", got)
	}

	// A second sync has nothing to do.
	res, err = f.svc.Sync(ctx)
	if err != nil || len(res.Created)+len(res.Repriced) != 0 || len(f.rec.Calls("")) != 2 {
		t.Errorf("second Sync = %+v, %v; %d Stripe calls in all", res, err, len(f.rec.Calls("")))
	}
}

func TestSyncRepricesOnPlanChange(t *testing.T) {
	f := newFixture(t, "")
	ctx := t.Context()
	acme := f.tenant("acme", "pro", false)
	if _, err := f.svc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	acme.Plan = "enterprise" // an operator's upgrade
	if err := f.st.UpdateTenant(ctx, acme); err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Sync(ctx)
	if err != nil || !slices.Equal(res.Repriced, []string{"acme"}) {
		t.Fatalf("Sync = %+v, %v; want acme repriced", res, err)
	}
	a := f.acct(acme)
	ups := f.rec.Calls("/v1/subscriptions/" + a.SubscriptionID)
	var update *int
	for i, c := range ups {
		if c.Method == "POST" {
			update = &i
		}
	}
	if update == nil {
		t.Fatalf("no subscription update sent: %+v", ups)
	}
	if c := ups[*update]; c.Form.Get("items[0][price]") != "price_ent" || c.Form.Get("items[0][id]") == "" || c.Status != 200 {
		t.Errorf("update = %+v", c)
	}
	if a.Plan != "enterprise" || a.PriceID != "price_ent" {
		t.Errorf("account after the upgrade = %+v", a)
	}
}
