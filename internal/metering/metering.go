// Package metering counts billable events — for now every tools/call — per
// tenant, hour, caller, upstream, tool and outcome, and adds the counts to
// the store (store.Metering) in batches.
//
// The hot path is one map increment under a mutex ([Meter.Count]); a
// background loop ([Meter.Run]) adds what was counted to the store every
// flush interval, in one transaction of atomic upserts (count = count +
// excluded.count), and [Meter.Flush] does it once more at shutdown. So:
//
//   - every call is counted once by the replica that served it, and
//     several replicas sharing a store never lose or double each other's
//     counts (each adds only its own increments);
//   - a failed flush keeps its counts in memory and the next flush adds
//     them (nothing is counted twice: a transaction either commits all of
//     a batch or none of it);
//   - a crash (kill -9, power loss) loses what was counted since the last
//     flush: at most one flush interval of calls.
package metering

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// MaxName bounds a stored tool or upstream name (MCP tool names have at
// most 128 characters).
const MaxName = 256

// key is one counter: a store.UsageRecord without its count.
type key struct {
	tenant, actor, actorKind, upstream, tool, outcome string
	hour                                              int64 // Unix seconds of the hour's start
}

// Options configure a Meter.
type Options struct {
	Store store.Metering
	// DefaultTenant is the tenant of calls without a principal (single-
	// user mode acts as the bootstrap tenant); "" drops such calls.
	DefaultTenant string
	// FlushInterval is how often Run adds the counts to the store.
	FlushInterval time.Duration
	// Retention, if positive, is how long Run keeps hourly records
	// (pruned once an hour).
	Retention time.Duration
	Log       *slog.Logger
	Now       func() time.Time
}

// Meter counts calls in memory and adds them to the store.
type Meter struct {
	o      Options
	mu     sync.Mutex
	counts map[key]int64
	// flushMu serializes flushes, so that a failed batch merged back is
	// never written twice by a concurrent flush.
	flushMu sync.Mutex
}

// New returns a meter writing to o.Store.
func New(o Options) *Meter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 10 * time.Second
	}
	return &Meter{o: o, counts: map[key]int64{}}
}

// Count records one tool call of p (nil: the single local user) of tool
// at upstream with outcome ("ok", "error", "denied"). A call of a tool no
// upstream owns (upstream "") is counted with an empty tool name: the
// name is whatever the client sent, and storing it would let a client
// grow the table at will.
func (m *Meter) Count(p *principal.Principal, upstream, tool, outcome string) {
	k := key{upstream: clip(upstream), tool: clip(tool), outcome: outcome, hour: m.o.Now().Unix() / 3600 * 3600}
	if upstream == "" {
		k.tool = ""
	}
	if p != nil && p.TenantID != "" {
		k.tenant, k.actor, k.actorKind = p.TenantID, p.ID, p.Kind
	} else {
		k.tenant, k.actorKind = m.o.DefaultTenant, principal.KindAnonymous
	}
	if k.tenant == "" {
		return
	}
	m.mu.Lock()
	m.counts[k]++
	m.mu.Unlock()
}

func clip(s string) string {
	if len(s) > MaxName {
		return s[:MaxName]
	}
	return s
}

// Pending is the number of calls counted and not yet in the store.
func (m *Meter) Pending() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, c := range m.counts {
		n += c
	}
	return n
}

// Flush adds what was counted since the last flush to the store. On an
// error the counts stay in memory for the next flush.
func (m *Meter) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	m.mu.Lock()
	batch := m.counts
	if len(batch) == 0 {
		m.mu.Unlock()
		return nil
	}
	m.counts = make(map[key]int64, len(batch))
	m.mu.Unlock()
	rs := make([]store.UsageRecord, 0, len(batch))
	for k, n := range batch {
		rs = append(rs, store.UsageRecord{TenantID: k.tenant, Hour: time.Unix(k.hour, 0).UTC(), Actor: k.actor, ActorKind: k.actorKind,
			Upstream: k.upstream, Tool: k.tool, Outcome: k.outcome, Count: n})
	}
	if err := m.o.Store.AddUsageRecords(ctx, rs); err != nil {
		m.mu.Lock()
		for k, n := range batch {
			m.counts[k] += n
		}
		m.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every flush interval and prunes records older than the
// retention once an hour, until ctx ends. It does not flush at the end:
// call Flush with a fresh context after Run returned (at shutdown, before
// the store closes).
func (m *Meter) Run(ctx context.Context) {
	t := time.NewTicker(m.o.FlushInterval)
	defer t.Stop()
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.Flush(ctx); err != nil && ctx.Err() == nil {
			m.o.Log.Warn("saving usage counts failed; the next flush retries them", "error", err, "pending_calls", m.Pending())
		}
		if now := m.o.Now(); m.o.Retention > 0 && now.Sub(pruned) >= time.Hour {
			pruned = now
			if n, err := m.o.Store.PruneUsage(ctx, now.Add(-m.o.Retention)); err != nil && ctx.Err() == nil {
				m.o.Log.Warn("pruning old usage records failed", "error", err)
			} else if n > 0 {
				m.o.Log.Info("pruned usage records past the retention", "records", n)
			}
		}
	}
}
