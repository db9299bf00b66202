package deferq

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// Options returns the queue options of a [queue] configuration.
func Options(c config.Queue) queue.Options {
	return queue.Options{
		MaxEntries: c.MaxEntries, MaxBytes: c.MaxBytes,
		TenantMaxEntries: c.TenantMaxEntries, TenantMaxBytes: c.TenantMaxBytes,
		MaxEntryBytes: int(c.MaxCallBytes), MaxAttempts: c.MaxAttempts,
		BackoffMin: c.BackoffMin.D(), BackoffMax: c.BackoffMax.D(),
		Retention: c.KeepDone.D(), FailedRetention: c.KeepFailed.D(),
	}
}

// SnapshotTTL is how long a read of the queue's state serves metrics
// scrapes, /readyz and mcpedge__status before the next read.
const SnapshotTTL = 5 * time.Second

// nearFull is the share of a bound from which the queue is reported near
// full.
const nearFull = 0.9

// Monitor observes the offline queue for the gateway: counters of
// enqueues, refusals, deliveries and their latency, and the queue's
// state (depth, age, usage, key usage) for metrics, /readyz and
// mcpedge__status, read at most once per [SnapshotTTL].
//
// Create it before the queue (its OnDone goes in the queue's options),
// then [Monitor.Attach] the open queue, or [Monitor.Unavailable] when
// there is none.
type Monitor struct {
	M *telemetry.QueueMetrics

	mu     sync.Mutex
	q      *queue.Queue
	reason string // why there is no queue

	snapshot func() telemetry.QueueSnapshot
	reset    func() // drops the cached snapshot
}

// NewMonitor registers the queue's metrics on r.
func NewMonitor(r prometheus.Registerer) *Monitor {
	m := &Monitor{reason: "not opened yet"}
	m.snapshot, m.reset = telemetry.CachedQueueSnapshot(SnapshotTTL, m.read)
	m.M = telemetry.NewQueueMetrics(r, m.snapshot)
	return m
}

// Attach makes q the observed queue.
func (m *Monitor) Attach(q *queue.Queue) {
	m.mu.Lock()
	m.q, m.reason = q, ""
	m.mu.Unlock()
	m.reset()
}

// Unavailable records that the gateway runs without a queue, and why.
func (m *Monitor) Unavailable(reason string) {
	m.mu.Lock()
	m.q, m.reason = nil, reason
	m.mu.Unlock()
	m.reset()
}

// Snapshot returns the queue's state (cached for SnapshotTTL).
func (m *Monitor) Snapshot() telemetry.QueueSnapshot { return m.snapshot() }

func (m *Monitor) read() telemetry.QueueSnapshot {
	m.mu.Lock()
	q, reason := m.q, m.reason
	m.mu.Unlock()
	if q == nil {
		return telemetry.QueueSnapshot{Error: reason}
	}
	s := telemetry.QueueSnapshot{Open: true, Taken: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := q.Stats(ctx)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.Entries, s.Bytes, s.MaxEntries, s.MaxBytes = st.Total.Entries, st.Total.Bytes, st.MaxEntries, st.MaxBytes
	for _, d := range st.Depth {
		s.Depth = append(s.Depth, telemetry.QueueDepth{Target: d.Target, State: string(d.State), Entries: d.Entries, Oldest: d.Oldest})
	}
	if box := q.Box(); box != nil {
		for _, k := range box.Keys() {
			s.Keys = append(s.Keys, telemetry.QueueKey{ID: k.ID, Used: k.Used, Limit: k.MaxMessages, Active: k.Active})
		}
	}
	return s
}

// Health is the queue's state for /readyz and mcpedge__status.
func (m *Monitor) Health() gateway.QueueHealth {
	s := m.snapshot()
	h := gateway.QueueHealth{Open: s.Open, Error: s.Error,
		Entries: s.Entries, MaxEntries: s.MaxEntries, Bytes: s.Bytes, MaxBytes: s.MaxBytes}
	var oldest time.Time
	for _, d := range s.Depth {
		if d.State == string(queue.Pending) || d.State == string(queue.Delivering) {
			h.Waiting += d.Entries
			if oldest.IsZero() || d.Oldest.Before(oldest) {
				oldest = d.Oldest
			}
		}
	}
	if !oldest.IsZero() {
		h.OldestWaitingSeconds = max(0, s.Taken.Sub(oldest).Seconds())
	}
	h.NearFull = s.Open && ((s.MaxEntries > 0 && float64(s.Entries) >= nearFull*float64(s.MaxEntries)) ||
		(s.MaxBytes > 0 && float64(s.Bytes) >= nearFull*float64(s.MaxBytes)))
	return h
}

// OnDone returns a queue OnDone that counts the entry's end (and, for a
// done one, its latency from enqueue to delivery) and then calls next
// (if not nil).
func (m *Monitor) OnDone(next func(queue.Entry)) func(queue.Entry) {
	return func(e queue.Entry) {
		m.M.Ended.WithLabelValues(e.Target, string(e.State)).Inc()
		if e.State == queue.Done && !e.DoneAt.IsZero() {
			m.M.Latency.WithLabelValues(e.Target).Observe(max(0, e.DoneAt.Sub(e.CreatedAt).Seconds()))
		}
		if next != nil {
			next(e)
		}
	}
}

// Deliver wraps a DeliverFunc to count each attempt by outcome and time
// it.
func (m *Monitor) Deliver(fn queue.DeliverFunc) queue.DeliverFunc {
	return func(ctx context.Context, e *queue.Entry) (json.RawMessage, error) {
		start := time.Now()
		res, err := fn(ctx, e)
		if ctx.Err() != nil && err != nil {
			// Shutdown: the entry goes back to waiting; not an attempt
			// of the upstream's.
			return res, err
		}
		m.M.AttemptDuration.WithLabelValues(e.Target).Observe(time.Since(start).Seconds())
		outcome := "ok"
		switch {
		case err == nil:
		case gateway.IsRoutingRefused(err):
			outcome = "refused" // failed for good too, but the upstream was not asked
		case queue.IsPermanent(err):
			outcome = "upstream_error"
		default:
			outcome = "unreachable"
		}
		m.M.Attempts.WithLabelValues(e.Target, outcome).Inc()
		return res, err
	}
}

// refused counts a call the queue did not take, by reason.
func (m *Monitor) refused(err error) {
	reason := "error"
	var full *queue.FullError
	switch {
	case errors.As(err, &full) && full.Scope == "tenant":
		reason = "tenant_full"
	case errors.As(err, &full):
		reason = "queue_full"
	case errors.Is(err, queue.ErrTooLarge):
		reason = "too_large"
	}
	m.M.Refused.WithLabelValues(reason).Inc()
}
