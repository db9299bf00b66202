package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Subscription statuses billing acts on (Stripe's names).
const (
	statusActive            = "active"
	statusTrialing          = "trialing"
	statusPastDue           = "past_due"
	statusUnpaid            = "unpaid"
	statusCanceled          = "canceled"
	statusIncompleteExpired = "incomplete_expired"
	statusPaused            = "paused"
)

// errUnchanged tells UpdateBillingAccount to write nothing.
var errUnchanged = errors.New("unchanged")

// decision is what an account's state says of its tenant's plan.
type decision struct {
	// degrade: the tenant belongs on the free plan; restore: on the
	// paid plan; neither: leave the plan as it is.
	degrade, restore bool
	reason           string
}

// decide applies the rules of docs/design/billing.md: an active (or
// trialing) subscription restores the paid plan; one past due or unpaid
// keeps it for the grace period from the first failed payment, then
// degrades; a canceled, expired or paused one degrades at once; any other
// status (incomplete) changes nothing.
func decide(a *store.BillingAccount, grace time.Duration, now time.Time) decision {
	switch a.Status {
	case statusActive, statusTrialing:
		return decision{restore: true, reason: "subscription " + a.Status}
	case statusPastDue, statusUnpaid:
		if !a.PastDueSince.IsZero() && !now.Before(a.PastDueSince.Add(grace)) {
			return decision{degrade: true, reason: fmt.Sprintf("payment failed on %s and not made within the grace period (%s)", a.PastDueSince.Format(time.RFC3339), grace)}
		}
		return decision{reason: "payment failed; within the grace period"}
	case statusCanceled, statusIncompleteExpired, statusPaused:
		return decision{degrade: true, reason: "subscription " + a.Status}
	}
	return decision{reason: "subscription " + a.Status}
}

// GraceEnds is when a past-due account's grace period ends (zero when
// payments are in order).
func (s *Service) GraceEnds(a *store.BillingAccount) time.Time {
	if a.PastDueSince.IsZero() || (a.Status != statusPastDue && a.Status != statusUnpaid) {
		return time.Time{}
	}
	return a.PastDueSince.Add(s.o.Config.GracePeriod.D())
}

// apply brings the tenant's plan in line with its account, and marks the
// account degraded or not. Only billing's own moves are made: a degrade
// moves a tenant on the paid plan to the free plan, a restore moves a
// degraded tenant on the free plan back; a plan an operator set otherwise
// is left alone. actor is who caused it ("stripe" for a webhook,
// "billing" for the grace period's end).
func (s *Service) apply(ctx context.Context, tenantID, actor string) error {
	now := s.now()
	var d decision
	var before, after store.BillingAccount
	_, err := s.o.Store.UpdateBillingAccount(ctx, tenantID, func(a *store.BillingAccount) error {
		before = *a
		d = decide(a, s.o.Config.GracePeriod.D(), now)
		switch {
		case d.degrade:
			a.Degraded = true
		case d.restore:
			a.Degraded = false
		}
		after = *a
		if a.Degraded == before.Degraded {
			return errUnchanged // no write: Enforce runs every round
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	t, err := s.o.Store.GetTenant(ctx, tenantID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	free := s.o.Config.FreePlan
	var to string
	switch {
	case d.degrade && t.Plan == after.Plan && t.Plan != free:
		to = free
	case d.restore && before.Degraded && t.Plan == free && after.Plan != free:
		to = after.Plan
	default:
		return nil
	}
	if err := s.setPlan(ctx, t, to, actor, d.reason, after.Status); err != nil {
		// Put the flag back, so that the next round tries the move again.
		_, _ = s.o.Store.UpdateBillingAccount(context.WithoutCancel(ctx), tenantID, func(a *store.BillingAccount) error {
			a.Degraded = before.Degraded
			return nil
		})
		return err
	}
	return nil
}

// setPlan moves t to plan, audited and announced.
func (s *Service) setPlan(ctx context.Context, t *store.Tenant, to, actor, reason, status string) error {
	from := t.Plan
	t.Plan = to
	if err := s.o.Store.UpdateTenant(ctx, t); err != nil {
		s.audit(ctx, t.ID, actor, "billing.plan_change", t.Name, "error", map[string]any{"from": from, "to": to, "reason": reason, "error": s.redact(err).Error()})
		return fmt.Errorf("moving tenant %s from plan %s to %s: %w", t.Name, from, to, err)
	}
	s.audit(ctx, t.ID, actor, "billing.plan_change", t.Name, "ok", map[string]any{"from": from, "to": to, "reason": reason, "status": status})
	s.log.Info("billing changed a tenant's plan", "tenant", t.Name, "from", from, "to", to, "reason", reason)
	s.notify(ctx, EventPlanChanged, t.Name, map[string]any{"from": from, "to": to, "reason": reason, "status": status})
	if s.o.PlanChanged != nil {
		s.o.PlanChanged(ctx)
	}
	return nil
}

// Enforce applies every account's state to its tenant's plan: this is
// where a grace period that ran out without a payment degrades the
// tenant (no webhook says so).
func (s *Service) Enforce(ctx context.Context) error {
	accts, err := s.o.Store.ListBillingAccounts(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range accts {
		if err := s.apply(ctx, a.TenantID, "billing"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
