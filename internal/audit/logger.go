package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Logger defaults; a zero field of LoggerOptions means its default.
const (
	DefaultBatchSize     = 256
	DefaultFlushInterval = 20 * time.Millisecond
	DefaultBufferSize    = 8192
	DefaultRetryMin      = 50 * time.Millisecond
	DefaultRetryMax      = 5 * time.Second
)

// writeThroughTimeout bounds the synchronous append of an entry recorded
// after the Logger closed.
const writeThroughTimeout = 5 * time.Second

// LoggerOptions configure a Logger. Zero fields take the defaults named
// after them.
type LoggerOptions struct {
	// BatchSize is the most entries appended in one transaction. If zero,
	// DefaultBatchSize.
	BatchSize int
	// FlushInterval is the longest an entry waits in the buffer for a
	// batch to fill before it is appended. A full batch, Flush and Close
	// do not wait. If zero, DefaultFlushInterval; negative means no wait
	// (append whatever is buffered as soon as the writer is free).
	FlushInterval time.Duration
	// BufferSize is how many entries may wait to be appended; when that
	// many wait, Record blocks until the writer catches up. If zero,
	// DefaultBufferSize. It is raised to BatchSize if smaller.
	BufferSize int
	// RetryMin and RetryMax bound the exponential backoff between attempts
	// to append a batch after a store error. If zero, DefaultRetryMin and
	// DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// Registerer, if not nil, receives the Logger's metrics
	// (mcpedge_audit_*).
	Registerer prometheus.Registerer
}

// A Logger appends audit entries to a store asynchronously, in batches,
// without ever dropping one. See the package documentation.
//
// Entries are appended in the order Record accepted them. A Logger is safe
// for concurrent use. It must be closed with Close, which flushes.
type Logger struct {
	st       store.Audit
	log      *slog.Logger
	batch    int
	bufSize  int
	interval time.Duration
	retryMin time.Duration
	retryMax time.Duration
	m        loggerMetrics

	// ctx is the writer's context; cancel aborts a writer stuck retrying
	// (Close whose ctx expired).
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: nudges the writer
	done   chan struct{} // closed when the writer has returned

	mu sync.Mutex
	// queue holds accepted entries not yet taken by the writer, oldest
	// first; len(queue) <= bufSize.
	queue []*store.AuditEntry
	// recorded and committed count entries ever accepted and ever
	// committed; entries commit in the order they are accepted, so
	// committed >= n means the first n accepted entries are in the store.
	recorded, committed uint64
	// flushTo asks the writer not to wait for batches to fill while
	// committed < flushTo.
	flushTo uint64
	// changed is closed (and replaced) whenever queue shrinks, committed
	// grows or the writer stops: waiters re-check their condition.
	changed chan struct{}
	closing bool  // Close was called: drain and stop
	stopped bool  // the writer returned: Record writes through
	lastErr error // the last store error, for Flush and Close to report
	// unwritten are the entries the writer gave up on (Close's ctx
	// expired while the store kept failing), oldest first.
	unwritten []*store.AuditEntry
	closeOnce sync.Once
	closeErr  error
	lastWarn  time.Time // of the last backpressure warning
	stats     Stats
}

// Stats are a Logger's counters since it was created.
type Stats struct {
	Recorded    uint64 // entries accepted by Record into the buffer
	Committed   uint64 // entries appended to the store by the writer
	Batches     uint64 // successful appends (transactions)
	Blocked     uint64 // Record calls that waited for room in a full buffer
	StoreErrors uint64 // failed append attempts (each is retried)
	Lost        uint64 // entries that could not be written (logged at error level)
	Buffered    int    // entries waiting now
}

// NewLogger starts a Logger writing to st. log receives store errors,
// backpressure warnings and, at error level, the full text of any entry
// that could not be written; nil means slog.Default().
func NewLogger(st store.Audit, log *slog.Logger, opts LoggerOptions) *Logger {
	if log == nil {
		log = slog.Default()
	}
	l := &Logger{
		st:       st,
		log:      log,
		batch:    orDefault(opts.BatchSize, DefaultBatchSize),
		bufSize:  orDefault(opts.BufferSize, DefaultBufferSize),
		interval: opts.FlushInterval,
		retryMin: orDefault(opts.RetryMin, DefaultRetryMin),
		retryMax: orDefault(opts.RetryMax, DefaultRetryMax),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
	}
	if l.interval == 0 {
		l.interval = DefaultFlushInterval
	}
	l.bufSize = max(l.bufSize, l.batch)
	l.retryMax = max(l.retryMax, l.retryMin)
	l.m = newLoggerMetrics(l, opts.Registerer)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.run()
	return l
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Record accepts e for appending and returns without waiting for the
// database, unless the buffer is full: then it waits for room
// (backpressure, counted in Stats.Blocked and mcpedge_audit_blocked_total)
// because an entry is never dropped. ctx does not cut that wait short: the
// action being audited has happened and its entry must be kept.
//
// Record copies e, so the caller may reuse it. It fills Time with the
// current time if zero, converts it to UTC and truncates it to
// microseconds (the precision [Seal] hashes). It replaces invalid UTF-8
// and NUL characters in the string fields with U+FFFD, because PostgreSQL
// text can hold neither and an entry the store refuses forever would
// stall the log (strings often come from clients: tool names, IPs).
// Seq, PrevHash and Hash are ignored; the store assigns them. An entry
// without a PIISalt gets a fresh one, which makes it erasable ([Seal]).
//
// After Close, Record appends the entry synchronously instead (bounded by a
// short timeout) and, if that fails, logs it at error level.
func (l *Logger) Record(ctx context.Context, e *store.AuditEntry) {
	c := *e
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	c.Time = c.Time.UTC().Truncate(time.Microsecond)
	c.Seq, c.PrevHash, c.Hash, c.PIIDigest, c.Erased = 0, nil, nil, nil, false
	// Every entry is erasable (v2, see Seal).
	if len(c.PIISalt) == 0 {
		c.PIISalt = NewPIISalt()
	}
	for _, f := range []*string{&c.TenantID, &c.Actor, &c.ActorKind, &c.Action, &c.Target, &c.Outcome, &c.ClientIP} {
		*f = storable(*f)
	}

	l.mu.Lock()
	var blockedAt time.Time
	for len(l.queue) >= l.bufSize && !l.stopped {
		if blockedAt.IsZero() {
			blockedAt = time.Now()
			l.stats.Blocked++
			l.m.blocked.Inc()
			if blockedAt.Sub(l.lastWarn) >= time.Second {
				l.lastWarn = blockedAt
				buffered, lastErr := len(l.queue), l.lastErr
				l.mu.Unlock()
				l.log.WarnContext(ctx, "audit: buffer full, request waits for the audit log to catch up",
					"buffered", buffered, "last_store_error", errString(lastErr))
				l.mu.Lock()
				continue
			}
		}
		ch := l.changed
		l.mu.Unlock()
		<-ch
		l.mu.Lock()
	}
	if l.stopped {
		l.mu.Unlock()
		l.writeThrough(ctx, &c)
		return
	}
	l.queue = append(l.queue, &c)
	l.recorded++
	l.stats.Recorded++
	nudge := len(l.queue) == 1 || len(l.queue) >= l.batch
	l.mu.Unlock()
	l.m.recorded.Inc()
	if !blockedAt.IsZero() {
		l.m.blockedSeconds.Add(time.Since(blockedAt).Seconds())
	}
	if nudge {
		l.nudge()
	}
}

// Flush waits until every entry recorded before the call is committed to
// the store, or ctx is done. Entries recorded during Flush may or may not
// be included. The error wraps ctx.Err() (mentioning the last store error,
// if any), or is an [*UnwrittenError] if the Logger gave up on some of
// those entries.
func (l *Logger) Flush(ctx context.Context) error {
	l.mu.Lock()
	target := l.recorded
	l.flushTo = max(l.flushTo, target)
	l.mu.Unlock()
	l.nudge()
	for {
		l.mu.Lock()
		if l.committed >= target {
			l.mu.Unlock()
			return nil
		}
		if l.stopped {
			err := l.unwrittenErrLocked()
			l.mu.Unlock()
			return err
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			// The latest store error, not the one seen before waiting: the
			// writer may have failed since without signalling a change.
			l.mu.Lock()
			lastErr := l.lastErr
			l.mu.Unlock()
			if lastErr != nil {
				return fmt.Errorf("audit: flush: %w (last store error: %v)", ctx.Err(), lastErr)
			}
			return fmt.Errorf("audit: flush: %w", ctx.Err())
		}
	}
}

// Close appends everything buffered, waiting while the store fails, and
// stops the writer. If ctx is done first, Close stops retrying, logs every
// entry it could not write at error level and returns an [*UnwrittenError]
// holding them. Close is idempotent: later calls return the first result.
func (l *Logger) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closing = true
		l.mu.Unlock()
		l.nudge()
		select {
		case <-l.done:
		case <-ctx.Done():
			l.cancel()
			<-l.done
		}
		l.cancel()
		l.mu.Lock()
		err := l.unwrittenErrLocked()
		l.closeErr = err
		lost := l.unwritten
		l.mu.Unlock()
		for _, e := range lost {
			l.logLost(ctx, e, err)
		}
	})
	return l.closeErr
}

// Stats returns the Logger's counters.
func (l *Logger) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Buffered = len(l.queue)
	return s
}

// An UnwrittenError reports entries a Logger could not append before Close
// (or Flush) gave up. The entries are also logged at error level.
type UnwrittenError struct {
	Entries []*store.AuditEntry // oldest first
	Err     error               // the last store error
}

func (e *UnwrittenError) Error() string {
	return fmt.Sprintf("audit: %d entries could not be written: %v", len(e.Entries), e.Err)
}

func (e *UnwrittenError) Unwrap() error { return e.Err }

func (l *Logger) unwrittenErrLocked() error {
	if len(l.unwritten) == 0 {
		return nil
	}
	err := l.lastErr
	if err == nil {
		err = errors.New("logger closed")
	}
	return &UnwrittenError{Entries: l.unwritten, Err: err}
}

func (l *Logger) nudge() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// broadcastLocked wakes everyone waiting on l.changed.
func (l *Logger) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// run is the writer: it takes batches off the queue and appends them, one
// transaction at a time, until Close drains the queue or gives up.
func (l *Logger) run() {
	defer close(l.done)
	var timer *time.Timer
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closing {
			l.mu.Unlock()
			<-l.wake
			l.mu.Lock()
		}
		if len(l.queue) == 0 {
			l.stopped = true
			l.broadcastLocked()
			l.mu.Unlock()
			return
		}
		// Group commit: give a batch up to l.interval to fill, unless
		// someone is waiting for these entries.
		if l.interval > 0 && !l.urgentLocked() {
			if timer == nil {
				timer = time.NewTimer(l.interval)
			} else {
				timer.Reset(l.interval)
			}
		wait:
			for !l.urgentLocked() {
				l.mu.Unlock()
				select {
				case <-l.wake:
					l.mu.Lock()
				case <-timer.C:
					l.mu.Lock()
					break wait
				}
			}
			timer.Stop()
		}
		n := min(len(l.queue), l.batch)
		batch := make([]*store.AuditEntry, n)
		copy(batch, l.queue)
		rest := copy(l.queue, l.queue[n:])
		clear(l.queue[rest:])
		l.queue = l.queue[:rest]
		l.broadcastLocked()
		l.mu.Unlock()

		err := l.commit(batch)

		l.mu.Lock()
		if err != nil {
			// Close gave up: keep what is left for its error, without
			// what the last attempt assigned.
			for _, e := range batch {
				e.Seq, e.PrevHash, e.Hash = 0, nil, nil
			}
			l.unwritten = append(batch, l.queue...)
			l.queue = nil
			l.stopped = true
			l.broadcastLocked()
			l.mu.Unlock()
			return
		}
		l.committed += uint64(n)
		l.stats.Committed += uint64(n)
		l.stats.Batches++
		l.lastErr = nil
		l.broadcastLocked()
		l.mu.Unlock()
		l.m.committed.Add(float64(n))
		l.m.batches.Inc()
	}
}

// urgentLocked reports whether the writer should append without waiting
// for the batch to fill.
func (l *Logger) urgentLocked() bool {
	return len(l.queue) >= l.batch || l.closing || l.flushTo > l.committed
}

// commit appends batch, retrying with backoff until it succeeds or the
// Logger's context is cancelled.
func (l *Logger) commit(batch []*store.AuditEntry) error {
	backoff := l.retryMin
	last := batch[len(batch)-1]
	for attempt := 1; ; attempt++ {
		for _, e := range batch {
			e.Seq, e.PrevHash, e.Hash = 0, nil, nil
		}
		// Remember what the store sealed last: a store may put the
		// entries back as they were when the append fails.
		var sealedLast Head
		seal := func(e *store.AuditEntry) {
			Seal(e)
			if e == last {
				sealedLast = Head{Seq: e.Seq, Hash: e.Hash}
			}
		}
		err := l.st.AppendAudit(l.ctx, batch, seal)
		if err == nil {
			return nil
		}
		// The transaction may have committed even though an error came
		// back (a connection lost during COMMIT). Appending again would
		// record the batch twice, so look first.
		if l.landed(sealedLast) {
			l.log.Warn("audit: append reported an error but the batch was committed", "entries", len(batch), "err", err)
			return nil
		}
		l.mu.Lock()
		l.lastErr = err
		l.stats.StoreErrors++
		l.mu.Unlock()
		l.m.storeErrors.Inc()
		if l.ctx.Err() != nil {
			return err
		}
		l.log.Error("audit: appending entries failed, retrying", "entries", len(batch), "attempt", attempt, "retry_in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-l.ctx.Done():
			t.Stop()
			return err
		}
		backoff = min(2*backoff, l.retryMax)
	}
}

// landed reports whether a failed append was nevertheless committed: the
// store sealed the batch's last entry as last, and the entry stored under
// that Seq has the same hash (which covers the entry's contents and, through
// PrevHash, the chain before it). The Store contract appends a batch in one
// transaction, so the last entry stands for all of them.
func (l *Logger) landed(last Head) bool {
	if last.Seq <= 0 || len(last.Hash) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), writeThroughTimeout)
	defer cancel()
	got, err := l.st.ListAudit(ctx, store.AuditFilter{AfterSeq: last.Seq - 1, Limit: 1})
	return err == nil && len(got) == 1 && got[0].Seq == last.Seq && bytes.Equal(got[0].Hash, last.Hash)
}

// writeThrough appends an entry recorded after the writer stopped.
func (l *Logger) writeThrough(ctx context.Context, e *store.AuditEntry) {
	l.mu.Lock()
	failed := l.closeErr != nil || len(l.unwritten) > 0
	l.mu.Unlock()
	if failed {
		// The store already failed for longer than Close would wait.
		l.logLost(ctx, e, errors.New("recorded after the audit logger closed with unwritten entries"))
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeThroughTimeout)
	defer cancel()
	if err := l.st.AppendAudit(wctx, []*store.AuditEntry{e}, Seal); err != nil {
		l.logLost(ctx, e, err)
	}
}

// logLost logs an entry that could not be written, in full, so that it is
// not silently lost.
func (l *Logger) logLost(ctx context.Context, e *store.AuditEntry, err error) {
	l.mu.Lock()
	l.stats.Lost++
	l.mu.Unlock()
	l.m.lost.Inc()
	c := *e
	c.Seq, c.PrevHash, c.Hash = 0, nil, nil
	b, _ := json.Marshal(&c)
	l.log.ErrorContext(ctx, "audit: entry could not be written", "entry", string(b), "err", errString(err))
}

// storable returns s with invalid UTF-8 and NUL replaced by U+FFFD.
func storable(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

type loggerMetrics struct {
	recorded, committed, batches, blocked, blockedSeconds, storeErrors, lost prometheus.Counter
}

func newLoggerMetrics(l *Logger, reg prometheus.Registerer) loggerMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "audit", Name: name, Help: help})
	}
	m := loggerMetrics{
		recorded:       c("entries_recorded_total", "Audit entries accepted into the buffer."),
		committed:      c("entries_committed_total", "Audit entries appended to the store."),
		batches:        c("batches_total", "Audit appends (transactions) that succeeded."),
		blocked:        c("blocked_total", "Record calls that waited because the audit buffer was full (backpressure)."),
		blockedSeconds: c("blocked_seconds_total", "Time Record calls spent waiting for room in the audit buffer."),
		storeErrors:    c("store_errors_total", "Failed attempts to append audit entries (each is retried)."),
		lost:           c("entries_lost_total", "Audit entries that could not be written and were logged instead."),
	}
	if reg != nil {
		buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "mcpedge", Subsystem: "audit", Name: "buffered_entries",
			Help: "Audit entries waiting to be appended.",
		}, func() float64 { return float64(l.Stats().Buffered) })
		for _, col := range []prometheus.Collector{m.recorded, m.committed, m.batches, m.blocked, m.blockedSeconds, m.storeErrors, m.lost, buffered} {
			if err := reg.Register(col); err != nil {
				l.log.Warn("audit: registering metric", "err", err)
			}
		}
	}
	return m
}
