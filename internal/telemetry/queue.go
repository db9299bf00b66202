package telemetry

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueSnapshot is the offline queue's state as the metrics show it. The
// gateway's queue glue (internal/deferq) fills it from the queue database
// and the key ring; telemetry does not know the queue.
type QueueSnapshot struct {
	// Open is false when the gateway runs without a queue (disabled, or
	// it could not be opened); everything else is then zero.
	Open bool
	// Error says why the queue is not open, or why it could not be read
	// (then only the open gauge is exported).
	Error string
	// Depth lists the entries per target and state.
	Depth []QueueDepth
	// Entries and Bytes are what the whole queue holds against its bounds
	// MaxEntries and MaxBytes.
	Entries, Bytes, MaxEntries, MaxBytes int64
	// Keys are the sealing keys of the queue's key ring.
	Keys []QueueKey
	// Taken is when the snapshot was read.
	Taken time.Time
}

// QueueDepth is how many entries of one target are in one state, and the
// age of the oldest of them.
type QueueDepth struct {
	Target, State string
	Entries       int64
	Oldest        time.Time
}

// QueueKey is one sealing key: the messages sealed with it (an upper
// bound: counts are reserved in blocks) and its limit.
type QueueKey struct {
	ID          uint32
	Used, Limit uint64
	Active      bool
}

// QueueMetrics are the offline queue's metrics. Labels are bounded: target
// is an upstream name from the configuration, state one of four, reason
// and outcome fixed sets. There is no tenant label: tenants are as many
// as an operator creates, and per-tenant depth is one `mcpedge queue ls
// --tenant` (or GET /api/queue as the tenant) away.
type QueueMetrics struct {
	// Enqueued counts calls put in the queue, by target.
	Enqueued *prometheus.CounterVec
	// Refused counts calls that would have been queued but were not, by
	// reason: "queue_full", "tenant_full", "too_large" or "error".
	Refused *prometheus.CounterVec
	// Attempts counts delivery attempts by target and outcome: "ok" (the
	// upstream answered with a result), "upstream_error" (its own error:
	// the entry fails for good), "refused" (the routing policy refused it:
	// fails for good, the upstream not asked) or "unreachable" (retried
	// with backoff).
	Attempts *prometheus.CounterVec
	// Ended counts entries that became done or failed, by target and
	// state ("done", "failed").
	Ended *prometheus.CounterVec
	// Latency is the time from enqueueing a call to its delivery (done),
	// by target: how long clients waited for their results.
	Latency *prometheus.HistogramVec
	// AttemptDuration is how long one delivery attempt took, by target.
	AttemptDuration *prometheus.HistogramVec
}

// NewQueueMetrics registers the queue's metrics on r. snapshot is asked
// for the gauges (depth, age, usage, keys) when r is gathered; it should
// cache (see [CachedQueueSnapshot]) since a scrape may come at any rate.
func NewQueueMetrics(r prometheus.Registerer, snapshot func() QueueSnapshot) *QueueMetrics {
	m := &QueueMetrics{
		Enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Subsystem: "queue", Name: "enqueued_total",
			Help: "Calls put in the offline queue because their upstream was unavailable, by target upstream.",
		}, []string{"target"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Subsystem: "queue", Name: "refused_total",
			Help: "Calls that would have been queued but were refused, by reason (queue_full, tenant_full, too_large, error).",
		}, []string{"reason"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Subsystem: "queue", Name: "delivery_attempts_total",
			Help: "Deliveries of queued calls, by target and outcome (ok, upstream_error, refused, unreachable).",
		}, []string{"target", "outcome"}),
		Ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Subsystem: "queue", Name: "ended_total",
			Help: "Queued calls that became done (delivered) or failed (for good), by target and state.",
		}, []string{"target", "state"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "mcpedge", Subsystem: "queue", Name: "delivery_latency_seconds",
			Help:    "Time from enqueueing a call to its successful delivery, by target.",
			Buckets: []float64{.1, .5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400},
		}, []string{"target"}),
		AttemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "mcpedge", Subsystem: "queue", Name: "attempt_duration_seconds",
			Help:    "Time one delivery attempt of a queued call took, by target.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60},
		}, []string{"target"}),
	}
	r.MustRegister(m.Enqueued, m.Refused, m.Attempts, m.Ended, m.Latency, m.AttemptDuration, &queueCollector{snapshot: snapshot})
	return m
}

var (
	queueOpenDesc = prometheus.NewDesc("mcpedge_queue_open",
		"1 when the offline queue is open, 0 when the gateway runs without one (disabled, or it could not be opened).", nil, nil)
	queueDepthDesc = prometheus.NewDesc("mcpedge_queue_entries",
		"Entries in the offline queue by target upstream and state (pending, delivering, done, failed).", []string{"target", "state"}, nil)
	queueOldestDesc = prometheus.NewDesc("mcpedge_queue_oldest_pending_seconds",
		"Age of the oldest entry waiting for delivery (pending or delivering), by target upstream; absent when none waits.", []string{"target"}, nil)
	queueUsageEntriesDesc = prometheus.NewDesc("mcpedge_queue_usage_entries",
		"Entries the whole offline queue holds, in every state, against mcpedge_queue_limit_entries.", nil, nil)
	queueUsageBytesDesc = prometheus.NewDesc("mcpedge_queue_usage_bytes",
		"Bytes (sealed arguments, meta and results) the whole offline queue holds, against mcpedge_queue_limit_bytes.", nil, nil)
	queueLimitEntriesDesc = prometheus.NewDesc("mcpedge_queue_limit_entries",
		"The offline queue's bound of entries ([queue] max_entries).", nil, nil)
	queueLimitBytesDesc = prometheus.NewDesc("mcpedge_queue_limit_bytes",
		"The offline queue's bound of bytes ([queue] max_bytes).", nil, nil)
	queueKeyUsedDesc = prometheus.NewDesc("mcpedge_queue_key_messages",
		"Messages sealed with each queue encryption key (an upper bound; counts are reserved in blocks), by key id and whether it is the active key.", []string{"key", "active"}, nil)
	queueKeyRatioDesc = prometheus.NewDesc("mcpedge_queue_key_usage_ratio",
		"Messages sealed with the active queue encryption key as a fraction of its limit; rotate (mcpedge queue rekey) well before 1.", nil, nil)
)

// queueCollector turns a QueueSnapshot into gauges at gather time.
type queueCollector struct {
	snapshot func() QueueSnapshot
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueOpenDesc, queueDepthDesc, queueOldestDesc, queueUsageEntriesDesc, queueUsageBytesDesc, queueLimitEntriesDesc, queueLimitBytesDesc, queueKeyUsedDesc, queueKeyRatioDesc} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	if !s.Open {
		ch <- prometheus.MustNewConstMetric(queueOpenDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueOpenDesc, prometheus.GaugeValue, 1)
	if s.Error != "" {
		return
	}
	now := s.Taken
	if now.IsZero() {
		now = time.Now()
	}
	oldest := map[string]time.Time{}
	for _, d := range s.Depth {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(d.Entries), d.Target, d.State)
		if d.State == "pending" || d.State == "delivering" {
			if o, ok := oldest[d.Target]; !ok || d.Oldest.Before(o) {
				oldest[d.Target] = d.Oldest
			}
		}
	}
	for target, o := range oldest {
		ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, max(0, now.Sub(o).Seconds()), target)
	}
	ch <- prometheus.MustNewConstMetric(queueUsageEntriesDesc, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(queueUsageBytesDesc, prometheus.GaugeValue, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(queueLimitEntriesDesc, prometheus.GaugeValue, float64(s.MaxEntries))
	ch <- prometheus.MustNewConstMetric(queueLimitBytesDesc, prometheus.GaugeValue, float64(s.MaxBytes))
	for _, k := range s.Keys {
		active := "false"
		if k.Active {
			active = "true"
			if k.Limit > 0 {
				ch <- prometheus.MustNewConstMetric(queueKeyRatioDesc, prometheus.GaugeValue, float64(k.Used)/float64(k.Limit))
			}
		}
		ch <- prometheus.MustNewConstMetric(queueKeyUsedDesc, prometheus.GaugeValue, float64(k.Used), strconv.FormatUint(uint64(k.ID), 10), active)
	}
}

// CachedQueueSnapshot wraps read so that it runs at most once per ttl:
// scrapes, /readyz and mcpedge__status share one database read. reset
// drops the cached snapshot (the queue was opened or closed).
func CachedQueueSnapshot(ttl time.Duration, read func() QueueSnapshot) (get func() QueueSnapshot, reset func()) {
	var mu sync.Mutex
	var last QueueSnapshot
	var at time.Time
	reset = func() {
		mu.Lock()
		at = time.Time{}
		mu.Unlock()
	}
	get = func() QueueSnapshot {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < ttl {
			return last
		}
		last, at = read(), time.Now()
		if last.Taken.IsZero() {
			last.Taken = at
		}
		return last
	}
	return get, reset
}
