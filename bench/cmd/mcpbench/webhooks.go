package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
	"github.com/mcpedge/mcpedge/internal/webhook"
)

// webhooksResult is the webhook dispatch throughput case (--webhooks N):
// N events published to one endpoint (each a durable row in a SQLite
// store), then delivered to a receiver on loopback that answers 204.
type webhooksResult struct {
	n        int
	workers  int
	publish  time.Duration // publishing all N (the store's inserts)
	deliver  time.Duration // from the first claim to the last delivery
	received int64
	errorMsg string
}

func measureWebhooks(ctx context.Context, o *options) (*webhooksResult, error) {
	r := &webhooksResult{n: o.webhookEvents, workers: 16}
	dir := filepath.Join(o.binDir, "webhooks")
	st, err := open.Open(ctx, "", dir) // <dir>/mcpedge.db, as a gateway's default store
	if err != nil {
		return nil, err
	}
	defer st.Close()
	box, err := open.SecretBox(st)
	if err != nil {
		return nil, err
	}
	var got atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	svc, err := webhook.New(webhook.Options{Store: st, Box: box, AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Workers: r.workers, PollInterval: 50 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	t := &store.Tenant{Name: "bench", Plan: "free"}
	if err := st.CreateTenant(ctx, t); err != nil {
		return nil, err
	}
	if _, _, err := svc.Create(ctx, t.ID, webhook.Spec{URL: rcv.URL + "/hook", Events: []string{"*"}}); err != nil {
		return nil, err
	}
	progress("webhooks: publishing %d events", r.n)
	start := time.Now()
	for i := range r.n {
		if err := svc.Publish(ctx, events.Event{Type: events.KeyCreated, TenantID: t.ID, Data: map[string]any{"i": i}}); err != nil {
			return nil, err
		}
	}
	r.publish = time.Since(start)
	progress("webhooks: delivering")
	start = time.Now()
	deadline := start.Add(5 * time.Minute)
	for got.Load() < int64(r.n) && time.Now().Before(deadline) {
		if _, err := svc.RunOnce(ctx); err != nil {
			return nil, err
		}
	}
	r.deliver = time.Since(start)
	r.received = got.Load()
	if r.received != int64(r.n) {
		r.errorMsg = fmt.Sprintf("%d of %d events delivered within 5 minutes", r.received, r.n)
	}
	return r, nil
}

// renderWebhooks is the report's section for measureWebhooks.
func renderWebhooks(r *webhooksResult) string {
	if r == nil {
		return ""
	}
	s := "### Webhook dispatch\n\n"
	s += fmt.Sprintf("%d events to one endpoint on loopback (answers 204), a SQLite store, %d workers; internal/webhook in process.\n\n", r.n, r.workers)
	if r.errorMsg != "" {
		return s + "**Failed:** " + r.errorMsg + "\n\n"
	}
	rate := func(d time.Duration) string { return fmt.Sprintf("%.0f/s", float64(r.n)/d.Seconds()) }
	s += "| Step | Time | Rate |\n|---|---|---|\n"
	s += fmt.Sprintf("| publish (one durable row per event) | %s | %s |\n", ms(r.publish), rate(r.publish))
	s += fmt.Sprintf("| deliver (claim, sign, POST, record) | %s | %s |\n\n", ms(r.deliver), rate(r.deliver))
	return s
}
