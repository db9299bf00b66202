package sqlbase

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Usage metering: table usage_hourly (migration 0008).

const usageCols = `tenant_id, hour, actor, actor_kind, upstream, tool, outcome, n`

// usageHour is the start of t's hour, UTC.
func usageHour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

func usageOrder(a, b store.UsageRecord) int {
	return cmp.Or(strings.Compare(a.TenantID, b.TenantID), a.Hour.Compare(b.Hour), strings.Compare(a.Upstream, b.Upstream),
		strings.Compare(a.Tool, b.Tool), strings.Compare(a.Actor, b.Actor), strings.Compare(a.ActorKind, b.ActorKind),
		strings.Compare(a.Outcome, b.Outcome))
}

// AddUsageRecords locks the records' tenant rows first (in id order, the
// package's lock order), which makes a tenant deleted meanwhile impossible
// and serializes concurrent flushes of the same tenants, so their upserts
// never wait on each other in a cycle; then it upserts in a fixed order.
func (s *Store) AddUsageRecords(ctx context.Context, rs []store.UsageRecord) (err error) {
	defer wrap(&err, "adding %d usage records", len(rs))
	if len(rs) == 0 {
		return nil
	}
	recs := slices.Clone(rs)
	tenants := make([]string, 0, 4)
	for i := range recs {
		r := &recs[i]
		switch {
		case r.TenantID == "":
			return invalid("usage record: tenant must not be empty")
		case r.Count <= 0:
			return invalid("usage record: count must be positive, not %d", r.Count)
		case r.Hour.IsZero():
			return invalid("usage record: hour must be set")
		}
		r.Hour = usageHour(r.Hour)
		tenants = append(tenants, r.TenantID)
	}
	slices.SortFunc(recs, usageOrder)
	slices.Sort(tenants)
	tenants = slices.Compact(tenants)
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		args := make([]any, len(tenants))
		for i, t := range tenants {
			args[i] = t
		}
		rows, err := q.Query(ctx, `SELECT id FROM tenants WHERE id IN (?`+strings.Repeat(", ?", len(tenants)-1)+`) ORDER BY id`+s.e.ForUpdate(), args...)
		if err != nil {
			return err
		}
		live := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			live[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range recs {
			if !live[r.TenantID] {
				continue
			}
			if _, err := q.Exec(ctx, `INSERT INTO usage_hourly (`+usageCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (tenant_id, hour, upstream, tool, actor, actor_kind, outcome) DO UPDATE SET n = usage_hourly.n + excluded.n`,
				r.TenantID, r.Hour, r.Actor, r.ActorKind, r.Upstream, r.Tool, r.Outcome, r.Count); err != nil {
				return err
			}
		}
		return nil
	})
}

func scanUsage(r Row) (*store.UsageRecord, error) {
	var u store.UsageRecord
	if err := r.Scan(&u.TenantID, timeCol{&u.Hour}, &u.Actor, &u.ActorKind, &u.Upstream, &u.Tool, &u.Outcome, &u.Count); err != nil {
		return nil, err
	}
	return &u, nil
}

func (s *Store) ListUsage(ctx context.Context, f store.UsageFilter) (_ []store.UsageRecord, err error) {
	defer wrap(&err, "listing usage")
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.TenantID != "" {
		add("tenant_id = ?", f.TenantID)
	}
	if !f.From.IsZero() {
		add("hour >= ?", ts(f.From))
	}
	if !f.To.IsZero() {
		add("hour < ?", ts(f.To))
	}
	if f.Upstream != "" {
		add("upstream = ?", f.Upstream)
	}
	if f.Tool != "" {
		add("tool = ?", f.Tool)
	}
	switch {
	case f.Limit < 0:
		return nil, invalid("usage limit must not be negative")
	case f.Limit == 0:
		f.Limit = store.DefaultUsageLimit
	case f.Limit > store.MaxUsageLimit:
		f.Limit = store.MaxUsageLimit
	}
	query := `SELECT ` + usageCols + ` FROM usage_hourly`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY hour, tenant_id, upstream, tool, actor, actor_kind, outcome LIMIT ?`
	return collect(ctx, s.e, scanUsage, query, append(args, f.Limit)...)
}

func (s *Store) PruneUsage(ctx context.Context, before time.Time) (n int64, err error) {
	defer wrap(&err, "pruning usage")
	if before.IsZero() {
		return 0, invalid("prune usage: a time must be given")
	}
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM usage_hourly WHERE hour < ?`, ts(before))
		return err
	})
	return n, err
}
