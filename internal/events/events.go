// Package events is what happened in the gateway that someone outside it
// may want to hear of: an API key created or revoked, a tenant's quota
// nearly or fully used, an upstream down or back up, a breaker opened, a
// pinned definition changed, a device enrolled, a queued call failed for
// good, an invoice (billing, when it is wired).
//
// Sources call a [Publisher] handed to them (never a package global); the
// webhook service (internal/webhook) is the one that turns events into
// signed, durably queued deliveries. A nil Publisher means nobody listens:
// sources check for nil and publish nothing.
//
// The package imports only the standard library, so every layer may use
// it.
package events

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
	"time"
)

// Event types. Each is "<subject>.<what happened>"; a subscription names
// types exactly, or "*" for all of them.
const (
	KeyCreated = "key.created"
	KeyRevoked = "key.revoked"
	// QuotaWarning: a tenant's monthly quota is 80 % used (the call that
	// used the 80th percent).
	QuotaWarning = "quota.warning"
	// QuotaExhausted: the call that used the last unit of the quota.
	QuotaExhausted = "quota.exhausted"
	UpstreamDown   = "upstream.down"
	UpstreamUp     = "upstream.up"
	BreakerOpened  = "breaker.opened"
	// PinChanged: an upstream offers a definition other than the pinned
	// one of a tool, prompt or template.
	PinChanged     = "pin.changed"
	DeviceEnrolled = "device.enrolled"
	// QueueEntryFailed: a queued tool call failed for good (its
	// attempts are used up, or the failure is permanent).
	QueueEntryFailed = "queue.entry_failed"
	// Invoice events are published by billing; any type starting with
	// InvoicePrefix is accepted ("invoice.created", "invoice.paid",
	// "invoice.payment_failed", …).
	InvoicePrefix = "invoice."
	// Test is the event `mcpedge webhook test` sends.
	Test = "webhook.test"
)

// Types lists the fixed event types (invoice events are open-ended: see
// [InvoicePrefix]).
func Types() []string {
	return []string{KeyCreated, KeyRevoked, QuotaWarning, QuotaExhausted, UpstreamDown, UpstreamUp,
		BreakerOpened, PinChanged, DeviceEnrolled, QueueEntryFailed, Test}
}

// Known reports whether t is an event type a subscription may name: one of
// [Types], an invoice type ("invoice." and a lower-case word), or "*".
func Known(t string) bool {
	if t == "*" {
		return true
	}
	for _, k := range Types() {
		if t == k {
			return true
		}
	}
	rest, ok := strings.CutPrefix(t, InvoicePrefix)
	if !ok || rest == "" || len(rest) > 64 {
		return false
	}
	for _, c := range rest {
		if (c < 'a' || c > 'z') && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// An Event is one thing that happened.
type Event struct {
	// ID identifies the event; receivers see it as webhook-id and may
	// drop a repeat. Empty: Publish assigns a fresh one. Events several
	// replicas may each notice (a quota threshold crossed) take an id
	// derived from what identifies them ([DerivedID]), so that the
	// store keeps one.
	ID   string
	Type string
	// TenantID is the tenant the event is about; "" for events of the
	// whole gateway (upstreams, breakers, pins, devices), which only
	// operator tenants' endpoints receive.
	TenantID string
	// Time is when it happened; zero: when published.
	Time time.Time
	// Data is the event's JSON object (never secrets).
	Data map[string]any
}

// A Publisher hears of events. Publish must be safe for concurrent use and
// should return quickly: a source on the request path calls it inline.
// Its error says the event could not be recorded; sources log it and go
// on (an event is never a reason to fail what caused it).
type Publisher interface {
	Publish(ctx context.Context, e Event) error
}

// NewID returns a fresh event id: "evt_" and 26 base32 characters.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return "evt_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// DerivedID returns the id of the event identified by parts (a type, a
// tenant, a month…): the same parts give the same id on every replica.
func DerivedID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "evt_" + hex.EncodeToString(h.Sum(nil))[:32]
}
