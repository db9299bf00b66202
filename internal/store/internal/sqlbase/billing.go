package sqlbase

import (
	"context"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Billing: tables billing_accounts, billing_usage_reports, billing_events
// and billing_lease (migration 0010).

const billingCols = `tenant_id, customer_id, subscription_id, plan, price_id, status, state_at, past_due_since, degraded, reported_through, updated_at`

// billingLeaseName is the one lease row: usage reporting.
const billingLeaseName = "usage-report"

// maxBillingField bounds the Stripe ids and names an account stores
// (Stripe's ids are well under 255 characters).
const maxBillingField = 255

func scanBillingAccount(r Row) (*store.BillingAccount, error) {
	var a store.BillingAccount
	err := r.Scan(&a.TenantID, &a.CustomerID, &a.SubscriptionID, &a.Plan, &a.PriceID, &a.Status, timeCol{&a.StateAt},
		timeCol{&a.PastDueSince}, &a.Degraded, timeCol{&a.ReportedThrough}, timeCol{&a.UpdatedAt})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

func validBillingAccount(a *store.BillingAccount) error {
	if a.TenantID == "" {
		return invalid("billing account: the tenant is required")
	}
	if a.CustomerID == "" {
		return invalid("billing account: the customer id is required")
	}
	for _, f := range []struct{ name, v string }{{"customer id", a.CustomerID}, {"subscription id", a.SubscriptionID}, {"plan", a.Plan}, {"price id", a.PriceID}, {"status", a.Status}} {
		if len(f.v) > maxBillingField {
			return invalid("billing account: the %s is longer than %d bytes", f.name, maxBillingField)
		}
	}
	return nil
}

// CreateBillingAccount stores a new account.
func (s *Store) CreateBillingAccount(ctx context.Context, a *store.BillingAccount) (err error) {
	defer wrap(&err, "creating the billing account of tenant %q", a.TenantID)
	if err := validBillingAccount(a); err != nil {
		return err
	}
	now := s.now()
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO billing_accounts (`+billingCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.TenantID, a.CustomerID, a.SubscriptionID, a.Plan, a.PriceID, a.Status, ts(a.StateAt), ts(a.PastDueSince), a.Degraded, ts(a.ReportedThrough), now)
		switch {
		case s.e.IsUnique(err):
			return conflict("billing account of tenant " + quote(a.TenantID) + " or customer " + quote(a.CustomerID))
		case s.e.IsForeignKey(err):
			return notFound("tenant", a.TenantID)
		}
		return err
	})
	if err == nil {
		a.UpdatedAt, a.StateAt, a.PastDueSince, a.ReportedThrough = now, ts(a.StateAt), ts(a.PastDueSince), ts(a.ReportedThrough)
	}
	return err
}

// GetBillingAccount returns a tenant's account.
func (s *Store) GetBillingAccount(ctx context.Context, tenantID string) (_ *store.BillingAccount, err error) {
	defer wrap(&err, "reading the billing account of tenant %q", tenantID)
	a, err := scanBillingAccount(s.e.QueryRow(ctx, `SELECT `+billingCols+` FROM billing_accounts WHERE tenant_id = ?`, tenantID))
	if isNoRows(err) {
		return nil, notFound("billing account", tenantID)
	}
	return a, err
}

// GetBillingAccountByCustomer returns the account of a Stripe customer.
func (s *Store) GetBillingAccountByCustomer(ctx context.Context, customerID string) (_ *store.BillingAccount, err error) {
	defer wrap(&err, "reading the billing account of customer %q", customerID)
	a, err := scanBillingAccount(s.e.QueryRow(ctx, `SELECT `+billingCols+` FROM billing_accounts WHERE customer_id = ?`, customerID))
	if isNoRows(err) {
		return nil, notFound("billing account of customer", customerID)
	}
	return a, err
}

// ListBillingAccounts returns every account by tenant id.
func (s *Store) ListBillingAccounts(ctx context.Context) (_ []store.BillingAccount, err error) {
	defer wrap(&err, "listing billing accounts")
	return collect(ctx, s.e, scanBillingAccount, `SELECT `+billingCols+` FROM billing_accounts ORDER BY tenant_id`)
}

// UpdateBillingAccount changes an account under its row lock.
func (s *Store) UpdateBillingAccount(ctx context.Context, tenantID string, fn func(*store.BillingAccount) error) (_ *store.BillingAccount, err error) {
	defer wrap(&err, "updating the billing account of tenant %q", tenantID)
	var out *store.BillingAccount
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		cur, err := scanBillingAccount(q.QueryRow(ctx, `SELECT `+billingCols+` FROM billing_accounts WHERE tenant_id = ?`+s.e.ForUpdate(), tenantID))
		if isNoRows(err) {
			return notFound("billing account", tenantID)
		}
		if err != nil {
			return err
		}
		a := *cur
		if err := fn(&a); err != nil {
			return err
		}
		a.TenantID, a.ReportedThrough, a.UpdatedAt = cur.TenantID, cur.ReportedThrough, s.now()
		a.StateAt, a.PastDueSince = ts(a.StateAt), ts(a.PastDueSince)
		if err := validBillingAccount(&a); err != nil {
			return err
		}
		_, err = q.Exec(ctx, `UPDATE billing_accounts SET customer_id = ?, subscription_id = ?, plan = ?, price_id = ?, status = ?, state_at = ?,
			past_due_since = ?, degraded = ?, updated_at = ? WHERE tenant_id = ?`,
			a.CustomerID, a.SubscriptionID, a.Plan, a.PriceID, a.Status, a.StateAt, a.PastDueSince, a.Degraded, a.UpdatedAt, tenantID)
		if s.e.IsUnique(err) {
			return conflict("customer " + quote(a.CustomerID))
		}
		out = &a
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func scanBillingReport(r Row) (*store.BillingUsageReport, error) {
	var b store.BillingUsageReport
	if err := r.Scan(&b.TenantID, timeCol{&b.Hour}, &b.Reported, &b.Pending); err != nil {
		return nil, err
	}
	return &b, nil
}

// ListBillingReports returns a tenant's reports by hour.
func (s *Store) ListBillingReports(ctx context.Context, tenantID string) (_ []store.BillingUsageReport, err error) {
	defer wrap(&err, "listing the usage reports of tenant %q", tenantID)
	return collect(ctx, s.e, scanBillingReport, `SELECT tenant_id, hour, reported, pending FROM billing_usage_reports WHERE tenant_id = ? ORDER BY hour`, tenantID)
}

// PutBillingReport creates a report or raises its numbers.
func (s *Store) PutBillingReport(ctx context.Context, r *store.BillingUsageReport) (err error) {
	defer wrap(&err, "storing the usage report of tenant %q", r.TenantID)
	switch {
	case r.TenantID == "":
		return invalid("usage report: the tenant is required")
	case r.Hour.IsZero():
		return invalid("usage report: the hour is required")
	case r.Reported < 0 || r.Pending < r.Reported:
		return invalid("usage report: want 0 <= reported <= pending, got %d and %d", r.Reported, r.Pending)
	}
	hour := usageHour(r.Hour)
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var found string
		if err := q.QueryRow(ctx, `SELECT tenant_id FROM billing_accounts WHERE tenant_id = ?`+s.e.ForUpdate(), r.TenantID).Scan(&found); isNoRows(err) {
			return notFound("billing account", r.TenantID)
		} else if err != nil {
			return err
		}
		cur, err := scanBillingReport(q.QueryRow(ctx, `SELECT tenant_id, hour, reported, pending FROM billing_usage_reports WHERE tenant_id = ? AND hour = ?`, r.TenantID, hour))
		if isNoRows(err) {
			_, err = q.Exec(ctx, `INSERT INTO billing_usage_reports (tenant_id, hour, reported, pending) VALUES (?, ?, ?, ?)`, r.TenantID, hour, r.Reported, r.Pending)
			return err
		}
		if err != nil {
			return err
		}
		rep, pend := max(cur.Reported, r.Reported), max(cur.Pending, r.Pending)
		_, err = q.Exec(ctx, `UPDATE billing_usage_reports SET reported = ?, pending = ? WHERE tenant_id = ? AND hour = ?`, rep, max(pend, rep), r.TenantID, hour)
		return err
	})
}

// AdvanceBillingWatermark moves an account's watermark forward and drops
// the reports it passed.
func (s *Store) AdvanceBillingWatermark(ctx context.Context, tenantID string, through time.Time) (err error) {
	defer wrap(&err, "advancing the usage watermark of tenant %q", tenantID)
	if through.IsZero() {
		return invalid("usage watermark: the time is required")
	}
	through = usageHour(through)
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var cur time.Time
		if err := q.QueryRow(ctx, `SELECT reported_through FROM billing_accounts WHERE tenant_id = ?`+s.e.ForUpdate(), tenantID).Scan(timeCol{&cur}); isNoRows(err) {
			return notFound("billing account", tenantID)
		} else if err != nil {
			return err
		}
		if !through.After(cur) {
			return nil
		}
		if _, err := q.Exec(ctx, `UPDATE billing_accounts SET reported_through = ? WHERE tenant_id = ?`, through, tenantID); err != nil {
			return err
		}
		_, err := q.Exec(ctx, `DELETE FROM billing_usage_reports WHERE tenant_id = ? AND hour < ?`, tenantID, through)
		return err
	})
}

// RecordBillingEvent records a handled Stripe event id.
func (s *Store) RecordBillingEvent(ctx context.Context, id, kind string, at time.Time) (fresh bool, err error) {
	defer wrap(&err, "recording Stripe event %q", id)
	if id == "" || len(id) > maxBillingField || len(kind) > maxBillingField {
		return false, invalid("Stripe event: want an id and a type of at most %d bytes", maxBillingField)
	}
	at = ts(at)
	if at.IsZero() {
		at = s.now()
	}
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		n, err := q.Exec(ctx, `INSERT INTO billing_events (id, kind, received_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`, id, kind, at)
		fresh = n == 1
		return err
	})
	return fresh, err
}

// UnrecordBillingEvent forgets an event id.
func (s *Store) UnrecordBillingEvent(ctx context.Context, id string) (err error) {
	defer wrap(&err, "forgetting Stripe event %q", id)
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `DELETE FROM billing_events WHERE id = ?`, id)
		return err
	})
}

// PruneBillingEvents forgets events recorded before before.
func (s *Store) PruneBillingEvents(ctx context.Context, before time.Time) (n int64, err error) {
	defer wrap(&err, "pruning Stripe events")
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		n, err = q.Exec(ctx, `DELETE FROM billing_events WHERE received_at < ?`, ts(before))
		return err
	})
	return n, err
}

// AcquireBillingLease takes or renews the usage-report lease.
func (s *Store) AcquireBillingLease(ctx context.Context, holder string, now, until time.Time) (got bool, err error) {
	defer wrap(&err, "acquiring the billing lease")
	if holder == "" || !until.After(now) {
		return false, invalid("billing lease: want a holder and an end after now")
	}
	now, until = ts(now), ts(until)
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var cur string
		var exp time.Time
		err := q.QueryRow(ctx, `SELECT holder, expires_at FROM billing_lease WHERE name = ?`+s.e.ForUpdate(), billingLeaseName).Scan(&cur, timeCol{&exp})
		switch {
		case isNoRows(err):
			// Another replica may insert it first: then it holds it.
			n, err := q.Exec(ctx, `INSERT INTO billing_lease (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`, billingLeaseName, holder, until)
			got = err == nil && n == 1
			return err
		case err != nil:
			return err
		case cur != holder && exp.After(now):
			got = false
			return nil
		}
		_, err = q.Exec(ctx, `UPDATE billing_lease SET holder = ?, expires_at = ? WHERE name = ?`, holder, until, billingLeaseName)
		got = err == nil
		return err
	})
	return got, err
}

// ReleaseBillingLease gives the lease up.
func (s *Store) ReleaseBillingLease(ctx context.Context, holder string) (err error) {
	defer wrap(&err, "releasing the billing lease")
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `DELETE FROM billing_lease WHERE name = ? AND holder = ?`, billingLeaseName, holder)
		return err
	})
}
