package sqlbase

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mcpedge/mcpedge/internal/store"
)

// AppendAudit chains and inserts entries in one durable transaction that
// holds the audit_head row (on SQLite, the database write lock): the head
// can not move underneath, so the chain can not fork. Entries get Time
// (if zero), Seq, PrevHash and, from seal, Hash; on error they are left
// as the caller passed them.
func (s *Store) AppendAudit(ctx context.Context, entries []*store.AuditEntry, seal func(*store.AuditEntry)) (err error) {
	defer wrap(&err, "appending %d audit entries", len(entries))
	if len(entries) == 0 {
		return nil
	}
	if seal == nil {
		return invalid("audit append: seal must not be nil")
	}
	saved := make([]store.AuditEntry, len(entries))
	for i, e := range entries {
		if e == nil {
			return invalid("audit append: entry %d is nil", i)
		}
		saved[i] = *e
	}
	err = s.e.Tx(ctx, TxOptions{Durable: true}, func(q Q) error {
		for i, e := range entries {
			*e = saved[i]
		}
		return s.appendAuditTx(ctx, q, entries, seal)
	})
	if err != nil {
		for i, e := range entries {
			*e = saved[i]
		}
	}
	return err
}

// appendAuditTx chains and inserts entries inside the caller's write
// transaction q (which must be durable).
func (s *Store) appendAuditTx(ctx context.Context, q Q, entries []*store.AuditEntry, seal func(*store.AuditEntry)) error {
	now := s.now()
	var seq int64
	var prev []byte
	err := q.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`+s.e.ForUpdate()).Scan(&seq, &prev)
	if err != nil {
		return fmt.Errorf("reading the chain head: %w", err)
	}
	for _, e := range entries {
		seq++
		e.Seq, e.PrevHash = seq, prev
		if e.Time.IsZero() {
			e.Time = now
		}
		e.Time = ts(e.Time)
		seal(e)
		if len(e.Hash) == 0 {
			return invalid("audit append: seal left the hash of entry %d empty", e.Seq)
		}
		prev = e.Hash
	}
	// Multi-row inserts: one statement to parse per chunk instead of
	// one per entry, which is most of an append's cost on SQLite.
	for start := 0; start < len(entries); start += auditInsertChunk {
		chunk := entries[start:min(start+auditInsertChunk, len(entries))]
		var sb strings.Builder
		sb.WriteString(`INSERT INTO audit (` + auditCols + `) VALUES `)
		args := make([]any, 0, len(chunk)*16)
		for i, e := range chunk {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, e.Seq, e.Time, e.TenantID, e.Actor, e.ActorKind, e.Action, e.Target, e.Outcome,
				e.LatencyUS, e.ClientIP, e.Detail, e.PrevHash, e.Hash, nilIfEmpty(e.PIISalt), nilIfEmpty(e.PIIDigest), e.Erased)
		}
		_, err := q.Exec(ctx, sb.String(), args...)
		if s.e.IsUnique(err) {
			// Only a head row out of step with the table gets here.
			return fmt.Errorf("audit entries %d-%d overlap existing ones: %w", chunk[0].Seq, chunk[len(chunk)-1].Seq, store.ErrChainBroken)
		}
		if err != nil {
			return err
		}
	}
	_, err = q.Exec(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, seq, prev)
	return err
}

// nilIfEmpty stores an empty byte slice as NULL.
func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// auditInsertChunk is how many entries one INSERT carries (16 parameters
// each, well below both databases' parameter limits).
const auditInsertChunk = 64

const auditCols = `seq, at, tenant_id, actor, actor_kind, action, target, outcome, latency_us, client_ip, detail, prev_hash, hash, pii_salt, pii_digest, erased`

func scanAudit(r Row) (*store.AuditEntry, error) {
	var e store.AuditEntry
	err := r.Scan(&e.Seq, timeCol{&e.Time}, &e.TenantID, &e.Actor, &e.ActorKind, &e.Action, &e.Target, &e.Outcome,
		&e.LatencyUS, &e.ClientIP, &e.Detail, &e.PrevHash, &e.Hash, &e.PIISalt, &e.PIIDigest, &e.Erased)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// ListAudit: Since is inclusive, Until exclusive; Limit <= 0 means 1000
// and is capped at 10000.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) (_ []store.AuditEntry, err error) {
	defer wrap(&err, "listing audit entries")
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if f.TenantID != "" {
		add(`tenant_id = ?`, f.TenantID)
	}
	if f.Actor != "" {
		add(`actor = ?`, f.Actor)
	}
	if f.Action != "" {
		if strings.HasSuffix(f.Action, ".") {
			add(`substr(action, 1, ?) = ?`, utf8.RuneCountInString(f.Action), f.Action)
		} else {
			add(`action = ?`, f.Action)
		}
	}
	if !f.Since.IsZero() {
		add(`at >= ?`, ts(f.Since))
	}
	if !f.Until.IsZero() {
		add(`at < ?`, ts(f.Until))
	}
	if f.AfterSeq > 0 {
		add(`seq > ?`, f.AfterSeq)
	}
	query := `SELECT ` + auditCols + ` FROM audit`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY seq LIMIT ?`
	args = append(args, clampLimit(f.Limit))
	return collect(ctx, s.e, scanAudit, query, args...)
}

func (s *Store) AuditHead(ctx context.Context) (seq int64, hash []byte, err error) {
	defer wrap(&err, "reading the audit head")
	err = s.e.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &hash)
	return seq, hash, err
}
