package audit

import (
	"context"
	"strings"
	"sync"

	"github.com/mcpedge/mcpedge/internal/store"
)

// memAudit is an in-memory store.Audit for unit tests that behaves like the
// SQL stores: one appender at a time, Seq and PrevHash set before seal, a
// separate head record, and entries put back as passed when an append
// fails. hook, if set, runs around every append: before is returned
// instead of appending, after is returned although the append committed.
type memAudit struct {
	mu      sync.Mutex
	entries []store.AuditEntry
	head    Head
	sizes   []int // entries per committed append
	hook    func(ctx context.Context, n int) (before, after error)
	appends int // calls of AppendAudit
}

var _ store.Audit = (*memAudit)(nil)

func (m *memAudit) AppendAudit(ctx context.Context, entries []*store.AuditEntry, seal func(*store.AuditEntry)) error {
	m.mu.Lock()
	m.appends++
	hook := m.hook
	m.mu.Unlock()
	var after error
	if hook != nil {
		var before error
		before, after = hook(ctx, len(entries))
		if before != nil {
			return before
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	saved := make([]store.AuditEntry, len(entries))
	seq, prev := m.head.Seq, m.head.Hash
	for i, e := range entries {
		saved[i] = *e
		seq++
		e.Seq, e.PrevHash = seq, prev
		seal(e)
		prev = e.Hash
		m.entries = append(m.entries, *e)
	}
	m.head = Head{Seq: seq, Hash: prev}
	m.sizes = append(m.sizes, len(entries))
	if after != nil {
		for i, e := range entries {
			*e = saved[i]
		}
	}
	return after
}

func (m *memAudit) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, 10000)
	var out []store.AuditEntry
	for _, e := range m.entries {
		if len(out) == limit {
			break
		}
		if matches(&e, f) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memAudit) AuditHead(ctx context.Context) (int64, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.head.Seq, m.head.Hash, nil
}

// all returns a copy of every stored entry.
func (m *memAudit) all() []store.AuditEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.AuditEntry(nil), m.entries...)
}

// tamper changes the stored entries and head record directly, as someone
// with access to the database would.
func (m *memAudit) tamper(f func(es []store.AuditEntry, head *Head) []store.AuditEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = f(m.entries, &m.head)
}

func matches(e *store.AuditEntry, f store.AuditFilter) bool {
	switch {
	case e.Seq <= f.AfterSeq:
		return false
	case f.TenantID != "" && e.TenantID != f.TenantID:
		return false
	case f.Actor != "" && e.Actor != f.Actor:
		return false
	case f.Action != "" && strings.HasSuffix(f.Action, ".") && !strings.HasPrefix(e.Action, f.Action):
		return false
	case f.Action != "" && !strings.HasSuffix(f.Action, ".") && e.Action != f.Action:
		return false
	case !f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	}
	return true
}
