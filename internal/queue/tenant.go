package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ExportQueue calls emit with each entry of the tenant, oldest first:
// its metadata, and its arguments, meta and result decrypted (an entry
// that does not open, such as one of an erased tenant, is emitted with
// the reason in "unreadable" instead). It reads a page of entries at a
// time. The admin layer's TenantQueue (tenant export) uses it.
func (q *Queue) ExportQueue(ctx context.Context, tenantID string, emit func(row any) error) error {
	after := ""
	for {
		page, err := q.List(ctx, Filter{Tenant: tenantID, ExactTenant: true, After: after, Limit: 1000})
		if err != nil {
			return err
		}
		for _, e := range page {
			row := map[string]any{
				"id": e.ID, "target": e.Target, "tool": e.Tool, "idempotency_key": e.IdempotencyKey,
				"state": e.State, "attempts": e.Attempts, "last_error": e.LastError, "size": e.Size,
				"created_at": e.CreatedAt, "updated_at": e.UpdatedAt, "next_attempt": timeOrNil(e.NextAttempt), "done_at": timeOrNil(e.DoneAt),
			}
			if full, err := q.Get(ctx, tenantID, e.ID); err != nil {
				row["unreadable"] = err.Error()
			} else {
				row["arguments"], row["meta"] = rawOrNil(full.Arguments), full.Meta
				row["result"] = rawOrNil(full.Result)
			}
			if err := emit(row); err != nil {
				return err
			}
			after = e.ID
		}
		if len(page) < 1000 {
			return nil
		}
	}
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func rawOrNil(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// PurgeTenant deletes every entry of the tenant, in any state, and
// returns how many (tenant erasure). Entries being delivered are
// deleted too; their results are dropped.
func (q *Queue) PurgeTenant(ctx context.Context, tenantID string) (int, error) {
	n := 0
	err := q.do(ctx, func(w *wtx) error {
		n = 0
		rows, err := w.query(`DELETE FROM entries WHERE tenant = ? RETURNING target, size`, tenantID)
		if err != nil {
			return err
		}
		targets := map[string]bool{}
		var bytes int64
		for rows.Next() {
			var target string
			var size int64
			if err := rows.Scan(&target, &size); err != nil {
				rows.Close()
				return err
			}
			targets[target] = true
			bytes += size
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n > 0 {
			w.addUsage(tenantID, -int64(n), -bytes)
		}
		for t := range targets {
			w.changed(t)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("queue: purging the entries of tenant %s: %w", tenantID, err)
	}
	return n, nil
}
