package main

import (
	"context"
	"log/slog"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
	"github.com/mcpedge/mcpedge/internal/webhook"
)

// openWebhooks is the webhook service over st with the [webhooks]
// settings; nil (and why, logged) when webhooks are off or the store has
// no key ring to seal endpoint secrets with.
func openWebhooks(cfg *config.Config, st store.Store, log *slog.Logger) *webhook.Service {
	w := cfg.Webhooks
	if !w.Enabled {
		return nil
	}
	box, err := open.SecretBox(st)
	if err != nil {
		log.Warn("webhooks unavailable", "error", err.Error())
		return nil
	}
	svc, err := webhook.New(webhook.Options{
		Store: st, Box: box, AllowPrivate: w.AllowPrivate, Timeout: w.Timeout.D(), RetryFor: w.RetryFor.D(),
		BackoffMin: w.BackoffMin.D(), BackoffMax: w.BackoffMax.D(), Workers: int(w.Workers), PollInterval: w.PollInterval.D(),
		Retention: w.Retention.D(), SecretOverlap: w.SecretOverlap.D(), Log: log,
	})
	if err != nil {
		log.Warn("webhooks unavailable", "error", err.Error())
		return nil
	}
	return svc
}

// events is where the stack's event sources publish: the webhook service,
// or nil (a nil interface, not a nil pointer in one) when there is none.
func (s *securityStack) events() events.Publisher {
	if s.Webhooks == nil {
		return nil
	}
	return s.Webhooks
}

// queueFailedEvents wraps a queue OnDone so that an entry that failed for
// good publishes events.QueueEntryFailed to pub (nil: next alone).
func queueFailedEvents(pub events.Publisher, log *slog.Logger, next func(queue.Entry)) func(queue.Entry) {
	if pub == nil {
		return next
	}
	return func(e queue.Entry) {
		if next != nil {
			next(e)
		}
		if e.State != queue.Failed {
			return
		}
		ev := events.Event{ID: events.DerivedID(events.QueueEntryFailed, e.ID, e.DoneAt.String()), Type: events.QueueEntryFailed, TenantID: e.Tenant, Time: e.DoneAt,
			Data: map[string]any{"entry_id": e.ID, "upstream": e.Target, "tool": e.Tool, "attempts": e.Attempts, "error": e.LastError}}
		// OnDone runs on the delivery loop: publish beside it.
		go func() {
			if err := pub.Publish(context.Background(), ev); err != nil {
				log.Warn("publishing a queue failure event failed", "entry", e.ID, "error", err)
			}
		}()
	}
}
