package store

import (
	"context"
	"time"
)

// A WebhookEndpoint is a URL a tenant subscribed to events
// (internal/webhook, docs/platform.md "Webhooks").
type WebhookEndpoint struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	URL      string `json:"url"`
	// Description is the operator's note.
	Description string `json:"description"`
	// Events are the event types delivered (internal/events), "*" for
	// all of them.
	Events []string `json:"events"`
	// AllTenants (operator tenants only, checked by the caller) receives
	// the events of every tenant, not only its own and the gateway's.
	AllTenants bool `json:"all_tenants"`
	Disabled   bool `json:"disabled"`
	// Secrets are the signing secrets, sealed by the caller with the
	// store's key ring (internal/webhook): opaque bytes here, never the
	// plaintext.
	Secrets   []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// States of a webhook delivery.
const (
	DeliveryPending   = "pending"   // waiting for its next attempt
	DeliveryDelivered = "delivered" // an attempt got a 2xx answer
	DeliveryDead      = "dead"      // dead-lettered: retried for the bounded time, or the endpoint is gone
)

// A WebhookDelivery is one event to be sent to one endpoint: the unit that
// is queued, claimed, retried and dead-lettered. There is at most one per
// (EndpointID, EventID).
type WebhookDelivery struct {
	ID         string `json:"id"`
	EndpointID string `json:"endpoint_id"`
	// TenantID is the endpoint's tenant (whose delivery log shows it).
	TenantID  string `json:"tenant_id"`
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	// Payload is the body sent, byte for byte on every attempt (it is
	// what the signature covers).
	Payload  []byte `json:"-"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// NextAt is when the next attempt is due (pending only).
	NextAt time.Time `json:"next_at,omitzero"`
	// LeaseOwner holds the delivery until LeaseUntil: the one process
	// attempting it.
	LeaseOwner    string    `json:"-"`
	LeaseUntil    time.Time `json:"-"`
	LastStatus    int       `json:"last_status,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	LastAttemptAt time.Time `json:"last_attempt_at,omitzero"`
	CreatedAt     time.Time `json:"created_at"`
	DoneAt        time.Time `json:"done_at,omitzero"`
}

// A WebhookAttempt is one try of a delivery, for its log.
type WebhookAttempt struct {
	DeliveryID string    `json:"delivery_id"`
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	// Status is the HTTP status answered, 0 when none was (refused,
	// unreachable, timed out).
	Status     int    `json:"status,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// WebhookDeliveryFilter selects deliveries; zero fields do not filter.
type WebhookDeliveryFilter struct {
	TenantID   string
	EndpointID string
	State      string
	// Limit: 0 = 100, at most 1000.
	Limit int
}

// Webhooks stores webhook endpoints and their deliveries.
//
// Deliveries are claimed with a lease: ClaimWebhookDeliveries hands each
// due delivery to one caller (owner) until the lease ends, so several
// processes sharing the store never attempt the same delivery at once; a
// process that dies mid-attempt leaves a lease that ends, and the delivery
// is claimed again (an endpoint may then see it twice, with the same
// event id).
type Webhooks interface {
	// CreateWebhookEndpoint fills ID, CreatedAt and UpdatedAt;
	// ErrNotFound for a tenant that does not exist.
	CreateWebhookEndpoint(ctx context.Context, e *WebhookEndpoint) error
	// GetWebhookEndpoint finds an endpoint within a tenant ("": any).
	GetWebhookEndpoint(ctx context.Context, tenantID, id string) (*WebhookEndpoint, error)
	// ListWebhookEndpoints lists a tenant's endpoints ("": every
	// tenant's), by creation.
	ListWebhookEndpoints(ctx context.Context, tenantID string) ([]WebhookEndpoint, error)
	// UpdateWebhookEndpoint replaces URL, Description, Events,
	// AllTenants, Disabled and Secrets, and sets UpdatedAt.
	UpdateWebhookEndpoint(ctx context.Context, e *WebhookEndpoint) error
	// DeleteWebhookEndpoint removes the endpoint and its deliveries.
	DeleteWebhookEndpoint(ctx context.Context, tenantID, id string) error

	// EnqueueWebhookDeliveries stores new pending deliveries (ID,
	// CreatedAt filled; State, Attempts, leases and results ignored)
	// in one transaction; a delivery of an event the endpoint already
	// has is skipped, as is one of an endpoint deleted meanwhile. It
	// returns the deliveries stored.
	EnqueueWebhookDeliveries(ctx context.Context, ds []WebhookDelivery) ([]WebhookDelivery, error)
	// ClaimWebhookDeliveries leases up to limit pending deliveries due
	// at now (NextAt <= now) whose lease is free or ended, to owner
	// until now+lease, oldest due first, and returns them with their
	// payloads.
	ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]WebhookDelivery, error)
	// ClaimWebhookDelivery leases the pending delivery id to owner until
	// now+lease whatever its NextAt (an attempt asked for now: a test
	// event). ErrNotFound when it is missing, ErrConflict when it is not
	// pending or another lease holds it.
	ClaimWebhookDelivery(ctx context.Context, id, owner string, now time.Time, lease time.Duration) (*WebhookDelivery, error)
	// FinishWebhookDelivery records attempt a of delivery d (claimed by
	// d.LeaseOwner) and its new State, NextAt and DoneAt; Attempts
	// becomes a.N, the lease is released. ErrConflict when the lease
	// is no longer d.LeaseOwner's (it ended and another took it);
	// ErrNotFound when the delivery is gone.
	FinishWebhookDelivery(ctx context.Context, d *WebhookDelivery, a WebhookAttempt) error
	// GetWebhookDelivery returns a delivery within a tenant ("": any),
	// with its payload and its attempts in order.
	GetWebhookDelivery(ctx context.Context, tenantID, id string) (*WebhookDelivery, []WebhookAttempt, error)
	// ListWebhookDeliveries returns deliveries, newest first, without
	// payloads.
	ListWebhookDeliveries(ctx context.Context, f WebhookDeliveryFilter) ([]WebhookDelivery, error)
	// RetryWebhookDelivery makes a dead delivery pending again, due at
	// at, its attempts kept; ErrConflict unless it is dead.
	RetryWebhookDelivery(ctx context.Context, tenantID, id string, at time.Time) error
	// PruneWebhookDeliveries deletes delivered and dead deliveries that
	// finished before before, with their attempts; it returns how many.
	PruneWebhookDeliveries(ctx context.Context, before time.Time) (int64, error)
}
