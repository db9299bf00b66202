package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/stripe/stripe-go/v82"

	"github.com/mcpedge/mcpedge/internal/store"
)

// SyncResult says what Sync did.
type SyncResult struct {
	// Created are the tenants that became Stripe customers with a
	// subscription; Repriced those whose subscription moved to their new
	// plan's price.
	Created, Repriced []string
}

// billable reports whether a tenant is billed: not an operator, and on a
// plan with a price.
func (s *Service) billable(t *store.Tenant) (price string, ok bool) {
	if t.Operator || t.Disabled {
		return "", false
	}
	price, ok = s.o.Config.Prices[t.Plan]
	return price, ok
}

// Sync makes every billable tenant without an account a Stripe customer
// with a subscription to its plan's price, and moves the subscription of
// a tenant whose plan an operator changed (to another plan with a price)
// to the new price. Stripe calls carry idempotency keys made of the tenant
// (and price), so a sync that failed half-way and runs again creates
// nothing twice (within Stripe's 24 hours of idempotency).
func (s *Service) Sync(ctx context.Context) (SyncResult, error) {
	var res SyncResult
	tenants, err := s.o.Store.ListTenants(ctx)
	if err != nil {
		return res, err
	}
	accts, err := s.o.Store.ListBillingAccounts(ctx)
	if err != nil {
		return res, err
	}
	byTenant := make(map[string]*store.BillingAccount, len(accts))
	for i := range accts {
		byTenant[accts[i].TenantID] = &accts[i]
	}
	var errs []error
	for i := range tenants {
		t := &tenants[i]
		price, ok := s.billable(t)
		a := byTenant[t.ID]
		switch {
		case a == nil && ok:
			if err := s.subscribe(ctx, t, price); err != nil {
				errs = append(errs, fmt.Errorf("tenant %s: %w", t.Name, err))
				continue
			}
			res.Created = append(res.Created, t.Name)
		case a != nil && ok && !a.Degraded && a.Plan != t.Plan && a.PriceID != price:
			if err := s.reprice(ctx, t, a, price); err != nil {
				errs = append(errs, fmt.Errorf("tenant %s: %w", t.Name, err))
				continue
			}
			res.Repriced = append(res.Repriced, t.Name)
		}
	}
	return res, s.redact(errors.Join(errs...))
}

// subscribe creates the customer and subscription of t.
func (s *Service) subscribe(ctx context.Context, t *store.Tenant, price string) error {
	meta := map[string]string{"mcpedge_tenant_id": t.ID, "mcpedge_tenant": t.Name}
	cp := &stripe.CustomerCreateParams{Name: stripe.String(t.Name)}
	cp.Metadata = meta
	cp.SetIdempotencyKey("mcpedge-customer-" + t.ID)
	cus, err := s.sc.V1Customers.Create(ctx, cp)
	if err != nil {
		return fmt.Errorf("creating the Stripe customer: %w", s.redact(err))
	}
	sp := &stripe.SubscriptionCreateParams{
		Customer: stripe.String(cus.ID),
		Items:    []*stripe.SubscriptionCreateItemParams{{Price: stripe.String(price)}},
	}
	sp.Metadata = meta
	sp.SetIdempotencyKey("mcpedge-subscription-" + t.ID + "-" + price)
	sub, err := s.sc.V1Subscriptions.Create(ctx, sp)
	if err != nil {
		return fmt.Errorf("creating the Stripe subscription of customer %s: %w", cus.ID, s.redact(err))
	}
	now := s.now()
	a := &store.BillingAccount{
		TenantID: t.ID, CustomerID: cus.ID, SubscriptionID: sub.ID, Plan: t.Plan, PriceID: price,
		Status: string(sub.Status),
		// Usage before the subscription is not billed.
		ReportedThrough: now.Truncate(hour),
	}
	if err := s.o.Store.CreateBillingAccount(ctx, a); err != nil {
		if errors.Is(err, store.ErrConflict) {
			if _, gerr := s.o.Store.GetBillingAccount(ctx, t.ID); gerr == nil {
				return nil // another replica (or a concurrent sync) stored it first
			}
			return fmt.Errorf("Stripe customer %s already belongs to another tenant's account: %w", cus.ID, err)
		}
		return err
	}
	s.audit(ctx, t.ID, "billing", "billing.subscribe", t.Name, "ok", map[string]any{"customer": cus.ID, "subscription": sub.ID, "plan": t.Plan, "price": price, "status": a.Status})
	s.log.Info("tenant subscribed in Stripe", "tenant", t.Name, "customer", cus.ID, "subscription", sub.ID, "plan", t.Plan)
	s.notify(ctx, EventSubscriptionChanged, t.Name, map[string]any{"status": a.Status, "plan": t.Plan, "subscription": sub.ID})
	return nil
}

// reprice moves t's subscription to price (t's new plan).
func (s *Service) reprice(ctx context.Context, t *store.Tenant, a *store.BillingAccount, price string) error {
	sub, err := s.sc.V1Subscriptions.Retrieve(ctx, a.SubscriptionID, nil)
	if err != nil {
		return fmt.Errorf("reading subscription %s: %w", a.SubscriptionID, s.redact(err))
	}
	up := &stripe.SubscriptionUpdateParams{}
	if sub.Items != nil && len(sub.Items.Data) > 0 {
		up.Items = []*stripe.SubscriptionUpdateItemParams{{ID: stripe.String(sub.Items.Data[0].ID), Price: stripe.String(price)}}
	} else {
		up.Items = []*stripe.SubscriptionUpdateItemParams{{Price: stripe.String(price)}}
	}
	up.SetIdempotencyKey("mcpedge-reprice-" + a.SubscriptionID + "-" + price)
	if _, err := s.sc.V1Subscriptions.Update(ctx, a.SubscriptionID, up); err != nil {
		return fmt.Errorf("moving subscription %s to price %s: %w", a.SubscriptionID, price, s.redact(err))
	}
	from := a.Plan
	if _, err := s.o.Store.UpdateBillingAccount(ctx, t.ID, func(x *store.BillingAccount) error {
		x.Plan, x.PriceID = t.Plan, price
		return nil
	}); err != nil {
		return err
	}
	s.audit(ctx, t.ID, "billing", "billing.reprice", t.Name, "ok", map[string]any{"subscription": a.SubscriptionID, "from": from, "to": t.Plan, "price": price})
	s.notify(ctx, EventSubscriptionChanged, t.Name, map[string]any{"status": a.Status, "plan": t.Plan, "subscription": a.SubscriptionID})
	return nil
}
