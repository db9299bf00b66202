package billing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/mcpedge/mcpedge/internal/store"
)

const hour = time.Hour

// billableOutcome: calls that reached the gateway's tools are billed,
// calls it refused (denied: policy, quota, rate) are not.
func billableOutcome(o string) bool { return o == "ok" || o == "error" }

// ReportResult says what Report did.
type ReportResult struct {
	// Events is how many meter events were sent, Calls the tool calls
	// they carried.
	Events, Calls int64
}

// meterID is the meter event's identifier and idempotency key of the
// report of tenant's hour that starts after from calls were reported:
// the same report always gets the same key, and a later report of the
// same hour (more calls counted) another one.
func meterID(tenantID string, h time.Time, from int64) string {
	return "mcpedge-" + tenantID + "-" + strconv.FormatInt(h.Unix(), 10) + "-" + strconv.FormatInt(from, 10)
}

// Report sends the tool calls counted since the last report to Stripe,
// for every account. Each send is written ahead in the store (the report
// row's pending count) and carries an idempotency key made of the
// tenant, the hour and the count already reported, so a retry — after a
// timeout, a crash, or by another replica — sends the same event with the
// same key, which Stripe takes once. Hours that are final (ended more
// than the settle time ago) leave the report table as the watermark
// passes them.
func (s *Service) Report(ctx context.Context) (ReportResult, error) {
	var res ReportResult
	accts, err := s.o.Store.ListBillingAccounts(ctx)
	if err != nil {
		return res, err
	}
	var errs []error
	for i := range accts {
		if err := s.reportAccount(ctx, &accts[i], &res); err != nil {
			errs = append(errs, fmt.Errorf("reporting the usage of tenant %s: %w", accts[i].TenantID, err))
		}
	}
	return res, s.redact(errors.Join(errs...))
}

func (s *Service) reportAccount(ctx context.Context, a *store.BillingAccount, res *ReportResult) error {
	now := s.now()
	reps, err := s.o.Store.ListBillingReports(ctx, a.TenantID)
	if err != nil {
		return err
	}
	reported := map[int64]int64{}
	for _, r := range reps {
		if r.Pending > r.Reported { // written ahead, not known to have reached Stripe: the same event again
			if err := s.send(ctx, a, r.Hour, r.Reported, r.Pending); err != nil {
				return err
			}
			res.Events++
			res.Calls += r.Pending - r.Reported
		}
		reported[r.Hour.Unix()] = r.Pending
	}
	from := a.ReportedThrough
	if from.IsZero() {
		from = a.UpdatedAt.Truncate(hour)
	}
	for h := from; h.Before(now); h = h.Add(hour) {
		total, err := s.hourTotal(ctx, a.TenantID, h)
		if err != nil {
			return err
		}
		done := reported[h.Unix()]
		if total <= done {
			continue
		}
		if err := s.o.Store.PutBillingReport(ctx, &store.BillingUsageReport{TenantID: a.TenantID, Hour: h, Reported: done, Pending: total}); err != nil {
			return err
		}
		if err := s.send(ctx, a, h, done, total); err != nil {
			return err
		}
		res.Events++
		res.Calls += total - done
	}
	// Every hour before the watermark is final: no count can still be
	// added to it (metering flushes within the settle time).
	if w := now.Add(-s.o.Settle).Truncate(hour); w.After(a.ReportedThrough) {
		return s.o.Store.AdvanceBillingWatermark(ctx, a.TenantID, w)
	}
	return nil
}

// hourTotal is the tenant's billable calls in the hour starting at h.
func (s *Service) hourTotal(ctx context.Context, tenantID string, h time.Time) (int64, error) {
	recs, err := s.o.Store.ListUsage(ctx, store.UsageFilter{TenantID: tenantID, From: h, To: h.Add(hour), Limit: store.MaxUsageLimit})
	if err != nil {
		return 0, err
	}
	if len(recs) >= store.MaxUsageLimit {
		return 0, fmt.Errorf("more than %d usage records in the hour of %s: not reported (the total would be short)", store.MaxUsageLimit, h.Format(time.RFC3339))
	}
	var n int64
	for _, r := range recs {
		if billableOutcome(r.Outcome) {
			n += r.Count
		}
	}
	return n, nil
}

// send reports the calls of hour h from (exclusive) to to as one meter
// event, then marks them reported.
func (s *Service) send(ctx context.Context, a *store.BillingAccount, h time.Time, from, to int64) error {
	id := meterID(a.TenantID, h, from)
	// Stripe takes meter events of the past 35 days only: older usage
	// (billing was down for a month) is reported as of 34 days ago.
	at := h
	if oldest := s.now().Add(-34 * 24 * hour); at.Before(oldest) {
		at = oldest
	}
	p := &stripe.BillingMeterEventCreateParams{
		EventName:  stripe.String(s.o.Config.MeterEvent),
		Identifier: stripe.String(id),
		Payload:    map[string]string{"stripe_customer_id": a.CustomerID, "value": strconv.FormatInt(to-from, 10)},
		Timestamp:  stripe.Int64(at.Unix()),
	}
	p.SetIdempotencyKey(id)
	if _, err := s.sc.V1BillingMeterEvents.Create(ctx, p); err != nil {
		return fmt.Errorf("sending meter event %s: %w", id, s.redact(err))
	}
	return s.o.Store.PutBillingReport(ctx, &store.BillingUsageReport{TenantID: a.TenantID, Hour: h, Reported: to, Pending: to})
}
