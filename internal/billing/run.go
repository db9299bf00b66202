package billing

import (
	"context"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// eventRetention is how long handled Stripe event ids are kept to
// recognise replays (Stripe retries an event for up to three days).
const eventRetention = 30 * 24 * time.Hour

// Round is one pass of the background work, run by the lease holder:
// Sync, Report, Enforce, and pruning the event ids past their retention.
// got is false when another process holds the lease (nothing was done).
func (s *Service) Round(ctx context.Context) (got bool, err error) {
	now := s.now()
	got, err = s.o.Store.AcquireBillingLease(ctx, s.o.Holder, now, now.Add(3*s.o.Config.ReportInterval.D()+time.Minute))
	if err != nil || !got {
		return got, err
	}
	if res, err := s.Sync(ctx); err != nil {
		s.log.Warn("billing: syncing customers failed; the next round retries", "error", err, "created", res.Created)
	}
	if res, err := s.Report(ctx); err != nil {
		s.log.Warn("billing: reporting usage failed; the next round retries the same reports", "error", err, "events", res.Events)
	} else if res.Events > 0 {
		s.log.Debug("billing: usage reported", "events", res.Events, "calls", res.Calls)
	}
	if err := s.Enforce(ctx); err != nil {
		s.log.Warn("billing: applying subscription states failed; the next round retries", "error", err)
	}
	if _, err := s.o.Store.PruneBillingEvents(ctx, now.Add(-eventRetention)); err != nil {
		s.log.Warn("billing: pruning old Stripe event ids failed", "error", err)
	}
	return true, nil
}

// Nudge asks Run for a round now rather than at the next interval: a
// tenant was created or changed plan, and is subscribed at once (if this
// process holds the lease; else by the holder at its next round).
func (s *Service) Nudge() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// Run does a Round every report interval, and when nudged, until ctx
// ends, then gives the lease up so that another replica takes over at
// once.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.o.Config.ReportInterval.D())
	defer t.Stop()
	for {
		if _, err := s.Round(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("billing: the report lease could not be taken", "error", err)
		}
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = s.o.Store.ReleaseBillingLease(rctx, s.o.Holder)
			cancel()
			return
		case <-t.C:
		case <-s.nudge:
		}
	}
}

// AccountStatus is one tenant's billing state, for `mcpedge billing
// status`.
type AccountStatus struct {
	Tenant string `json:"tenant"`
	// Plan is the tenant's plan now, PaidPlan its subscription's.
	Plan string `json:"plan"`
	store.BillingAccount
	GraceEnds time.Time `json:"grace_ends,omitzero"`
	// Unreported is the billable calls counted and not yet reported.
	Unreported int64 `json:"unreported"`
}

// Status lists every account with its tenant. It needs no Stripe key.
func Status(ctx context.Context, st Store, grace time.Duration, now time.Time) ([]AccountStatus, error) {
	accts, err := st.ListBillingAccounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]AccountStatus, 0, len(accts))
	for _, a := range accts {
		as := AccountStatus{BillingAccount: a}
		if t, err := st.GetTenant(ctx, a.TenantID); err == nil {
			as.Tenant, as.Plan = t.Name, t.Plan
		}
		if !a.PastDueSince.IsZero() && (a.Status == statusPastDue || a.Status == statusUnpaid) {
			as.GraceEnds = a.PastDueSince.Add(grace)
		}
		reps, err := st.ListBillingReports(ctx, a.TenantID)
		if err != nil {
			return nil, err
		}
		reported := map[int64]int64{}
		for _, r := range reps {
			reported[r.Hour.Unix()] = r.Reported
		}
		recs, err := st.ListUsage(ctx, store.UsageFilter{TenantID: a.TenantID, From: a.ReportedThrough, To: now.Add(hour), Limit: store.MaxUsageLimit})
		if err != nil {
			return nil, err
		}
		perHour := map[int64]int64{}
		for _, r := range recs {
			if billableOutcome(r.Outcome) {
				perHour[r.Hour.Unix()] += r.Count
			}
		}
		for h, n := range perHour {
			if n > reported[h] {
				as.Unreported += n - reported[h]
			}
		}
		out = append(out, as)
	}
	return out, nil
}

// SyncNowResult says what SyncNow did.
type SyncNowResult struct {
	SyncResult
	ReportResult
	// LeaseHeld: another process (a running gateway) holds the report
	// lease, so usage was left to it.
	LeaseHeld bool `json:"lease_held"`
}

// SyncNow is `mcpedge billing sync`: Sync, then, if the report lease is
// free, Report and Enforce under it and give it back.
func (s *Service) SyncNow(ctx context.Context) (SyncNowResult, error) {
	var out SyncNowResult
	var err error
	if out.SyncResult, err = s.Sync(ctx); err != nil {
		return out, err
	}
	now := s.now()
	got, err := s.o.Store.AcquireBillingLease(ctx, s.o.Holder, now, now.Add(10*time.Minute))
	if err != nil {
		return out, err
	}
	if !got {
		out.LeaseHeld = true
		return out, nil
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = s.o.Store.ReleaseBillingLease(rctx, s.o.Holder)
		cancel()
	}()
	if out.ReportResult, err = s.Report(ctx); err != nil {
		return out, err
	}
	return out, s.Enforce(ctx)
}
