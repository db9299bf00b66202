package store

import (
	"context"
	"time"
)

// A BillingAccount links a tenant to its Stripe customer and subscription
// (internal/billing, docs/design/billing.md). There is at most one per
// tenant; it goes when the tenant is deleted (the customer stays in
// Stripe).
type BillingAccount struct {
	TenantID       string `json:"tenant_id"`
	CustomerID     string `json:"customer_id"` // unique
	SubscriptionID string `json:"subscription_id"`
	// Plan is the paid plan the subscription is for, PriceID its Stripe
	// price. The tenant's own plan may differ while billing has degraded
	// it to the free plan (Degraded).
	Plan    string `json:"plan"`
	PriceID string `json:"price_id"`
	// Status is the subscription's status as Stripe last told it
	// (active, trialing, past_due, unpaid, canceled, incomplete, …).
	Status string `json:"status"`
	// StateAt is the creation time of the Stripe event that set Status:
	// an older event arriving late does not undo a newer one.
	StateAt time.Time `json:"state_at,omitzero"`
	// PastDueSince is when the first unpaid invoice of the current run
	// of failures failed (zero: payments are in order); the grace period
	// counts from it.
	PastDueSince time.Time `json:"past_due_since,omitzero"`
	// Degraded is set while billing keeps the tenant on the free plan.
	Degraded bool `json:"degraded"`
	// ReportedThrough is the usage watermark: every hour before it is
	// final and fully reported to Stripe. Only AdvanceBillingWatermark
	// moves it.
	ReportedThrough time.Time `json:"reported_through,omitzero"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// A BillingUsageReport is what was reported to Stripe of one tenant's
// hour that is not final yet (at or after its account's ReportedThrough).
// Pending > Reported is a report written ahead of sending it: the sender
// sends exactly Pending-Reported, with an idempotency key made of the
// tenant, the hour and Reported, until Stripe took it; then Reported
// becomes Pending. So a crash between Stripe's answer and the store's
// write resends the same report, which Stripe recognises.
type BillingUsageReport struct {
	TenantID string    `json:"tenant_id"`
	Hour     time.Time `json:"hour"`
	Reported int64     `json:"reported"`
	Pending  int64     `json:"pending"`
}

// Billing stores the Stripe billing state, shared by every replica.
type Billing interface {
	// CreateBillingAccount stores a new account (UpdatedAt filled);
	// ErrConflict when the tenant has one or the customer id is taken,
	// ErrNotFound when the tenant does not exist.
	CreateBillingAccount(ctx context.Context, a *BillingAccount) error
	GetBillingAccount(ctx context.Context, tenantID string) (*BillingAccount, error)
	GetBillingAccountByCustomer(ctx context.Context, customerID string) (*BillingAccount, error)
	// ListBillingAccounts returns every account, by tenant id.
	ListBillingAccounts(ctx context.Context) ([]BillingAccount, error)
	// UpdateBillingAccount runs fn on the stored account with the row
	// locked against other writers and stores what fn left (TenantID
	// and ReportedThrough are kept as stored; UpdatedAt is filled). fn
	// may run more than once; it returns an error to change nothing.
	UpdateBillingAccount(ctx context.Context, tenantID string, fn func(*BillingAccount) error) (*BillingAccount, error)

	// ListBillingReports returns the tenant's reports, by hour.
	ListBillingReports(ctx context.Context, tenantID string) ([]BillingUsageReport, error)
	// PutBillingReport stores r, creating it or raising the stored
	// numbers: Reported and Pending never go down, and Reported never
	// exceeds Pending. ErrNotFound when the tenant has no account.
	PutBillingReport(ctx context.Context, r *BillingUsageReport) error
	// AdvanceBillingWatermark sets the account's ReportedThrough to
	// through if that is later, and deletes the reports of earlier hours.
	AdvanceBillingWatermark(ctx context.Context, tenantID string, through time.Time) error

	// RecordBillingEvent records that the Stripe event id was handled and
	// reports whether it was new (false: a replay, handled before).
	RecordBillingEvent(ctx context.Context, id, kind string, at time.Time) (bool, error)
	// UnrecordBillingEvent forgets an event whose handling failed, so
	// that Stripe's retry is handled again.
	UnrecordBillingEvent(ctx context.Context, id string) error
	// PruneBillingEvents forgets events recorded before before.
	PruneBillingEvents(ctx context.Context, before time.Time) (int64, error)

	// AcquireBillingLease makes holder the one replica that reports
	// usage until until, and reports whether it is: the lease is taken
	// when nobody holds it, when it expired (at or before now) or when
	// holder holds it already (renewal).
	AcquireBillingLease(ctx context.Context, holder string, now, until time.Time) (bool, error)
	// ReleaseBillingLease gives the lease up if holder holds it.
	ReleaseBillingLease(ctx context.Context, holder string) error
}
