package deferq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/prometheus/client_golang/prometheus"
)

// The [queue] defaults of config are the queue's own defaults (config
// does not import queue, so it repeats them).
func TestOptionsMatchQueueDefaults(t *testing.T) {
	o := Options(config.DefaultQueue())
	want := queue.Options{
		MaxEntries: queue.DefaultMaxEntries, MaxBytes: queue.DefaultMaxBytes,
		TenantMaxEntries: queue.DefaultTenantMaxEntries, TenantMaxBytes: queue.DefaultTenantMaxBytes,
		MaxEntryBytes: queue.DefaultMaxEntryBytes, MaxAttempts: queue.DefaultMaxAttempts,
		BackoffMin: queue.DefaultBackoffMin, BackoffMax: queue.DefaultBackoffMax,
		Retention: queue.DefaultRetention, FailedRetention: queue.DefaultFailedRetention,
	}
	if fmt.Sprintf("%+v", o) != fmt.Sprintf("%+v", want) {
		t.Errorf("Options(config.DefaultQueue()) = %+v\nwant %+v", o, want)
	}
	// And an opened queue takes them as they are.
	q := openQueue(t, &o)
	if l := q.Limits(); l.MaxEntries != want.MaxEntries || l.Retention != want.Retention || l.MaxEntryBytes != want.MaxEntryBytes {
		t.Errorf("Limits() = %+v", l)
	}
}

// The monitor's counters and gauges after enqueues, refusals and
// deliveries on a real queue, read from the registry as a scrape would.
func TestMonitorMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	mon := NewMonitor(reg)
	if mon.Health().Open || !strings.Contains(mon.Health().Error, "not opened") {
		t.Errorf("health before Attach: %+v", mon.Health())
	}
	opts := &queue.Options{MaxEntries: 4, TenantMaxEntries: 3, MaxEntryBytes: 1024, OnDone: mon.OnDone(nil)}
	q := openQueue(t, opts)
	mon.Attach(q)
	a := Queue{Q: q, Mon: mon}
	ctx := t.Context()
	var ids []string
	for i := range 3 {
		id, err := a.Defer(ctx, "t1", "ev", "echo", json.RawMessage(`{"i":`+string(rune('0'+i))+`}`), "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := a.Defer(ctx, "t1", "ev", "echo", json.RawMessage(`{}`), ""); !errors.Is(err, gateway.ErrQueueFull) {
		t.Fatalf("4th call of t1: %v", err)
	}
	if _, err := a.Defer(ctx, "t2", "ev", "echo", json.RawMessage(`{"x":"`+strings.Repeat("x", 2000)+`"}`), ""); err == nil {
		t.Fatal("an oversized call was queued")
	}
	if _, err := a.Defer(ctx, "t2", "other", "echo", json.RawMessage(`{}`), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Defer(ctx, "t2", "other", "echo", json.RawMessage(`{}`), ""); !errors.Is(err, gateway.ErrQueueFull) {
		t.Fatalf("5th call in a queue of 4: %v", err)
	}
	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"enqueued ev", sample(t, reg, "mcpedge_queue_enqueued_total", "target", "ev"), 3},
		{"enqueued other", sample(t, reg, "mcpedge_queue_enqueued_total", "target", "other"), 1},
		{"refused tenant_full", sample(t, reg, "mcpedge_queue_refused_total", "reason", "tenant_full"), 1},
		{"refused queue_full", sample(t, reg, "mcpedge_queue_refused_total", "reason", "queue_full"), 1},
		{"refused too_large", sample(t, reg, "mcpedge_queue_refused_total", "reason", "too_large"), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	h := mon.Health()
	if !h.Open || h.Entries != 4 || h.MaxEntries != 4 || h.Waiting != 4 || !h.NearFull {
		t.Errorf("health of a full queue: %+v", h)
	}
	if n := series(t, reg, "mcpedge_queue_entries"); n != 2 {
		t.Errorf("mcpedge_queue_entries series: %d, want 2 (ev and other, pending)", n)
	}

	// Deliver ev's entries: the first succeeds, the second fails for good,
	// the third is unreachable once and then delivered.
	calls := 0
	deliver := mon.Deliver(func(ctx context.Context, e *queue.Entry) (json.RawMessage, error) {
		calls++
		switch {
		case e.ID == ids[1]:
			return nil, queue.Permanent(errors.New("no such tool"))
		case e.ID == ids[2] && calls == 3:
			return nil, errors.New("unreachable")
		}
		return json.RawMessage(`{"content":[]}`), nil
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.Deliver(runCtx, "ev", deliver) }()
	deadline := time.Now().Add(30 * time.Second)
	for sample(t, reg, "mcpedge_queue_ended_total", "target", "ev", "state", "done") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"attempts ok", sample(t, reg, "mcpedge_queue_delivery_attempts_total", "target", "ev", "outcome", "ok"), 2},
		{"attempts upstream_error", sample(t, reg, "mcpedge_queue_delivery_attempts_total", "target", "ev", "outcome", "upstream_error"), 1},
		{"attempts unreachable", sample(t, reg, "mcpedge_queue_delivery_attempts_total", "target", "ev", "outcome", "unreachable"), 1},
		{"ended done", sample(t, reg, "mcpedge_queue_ended_total", "target", "ev", "state", "done"), 2},
		{"ended failed", sample(t, reg, "mcpedge_queue_ended_total", "target", "ev", "state", "failed"), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if n := series(t, reg, "mcpedge_queue_delivery_latency_seconds"); n != 1 {
		t.Errorf("latency histogram series %d", n)
	}

	mon.Unavailable("closed")
	if h := mon.Health(); h.Open || h.Error != "closed" {
		t.Errorf("health after Unavailable: %+v", h)
	}
	if v := sample(t, reg, "mcpedge_queue_open"); v != 0 {
		t.Errorf("mcpedge_queue_open = %v after Unavailable", v)
	}
}

// sample returns the value of the series of name with the given label
// pairs, as a scrape of reg would show it; -1 when there is none.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// series counts the series of name in a scrape of reg.
func series(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.Metric)
		}
	}
	return 0
}
