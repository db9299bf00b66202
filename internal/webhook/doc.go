// Package webhook delivers events (internal/events) to the endpoints
// tenants and operators subscribed, as the Standard Webhooks specification
// describes: each delivery is a POST of a JSON body with the headers
// webhook-id (the event's id, the same on every retry), webhook-timestamp
// and webhook-signature (HMAC-SHA256 under each live secret of the
// endpoint).
//
// Deliveries are queued durably in the store (table webhook_deliveries)
// when the event is published, leased to one process at a time, retried
// with exponential backoff and jitter for a bounded time, then
// dead-lettered, where they stay visible (and may be retried) until
// pruned. Every connection goes through the egress policy: public
// addresses only, unless [webhooks] allow_private names a range.
// Endpoint secrets are sealed with the store's key ring (sealbox) and
// opened only to sign. docs/design/webhooks.md says why it is built so.
package webhook
