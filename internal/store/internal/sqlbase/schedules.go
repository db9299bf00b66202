package sqlbase

import (
	"context"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

var _ store.Schedules = (*Store)(nil)

// scheduleName is a schedule's row in counters, apart from the policy and
// revocation counters.
func scheduleName(name string) string { return "schedule:" + name }

// ClaimSchedule is one conditional statement: an insert of a schedule
// that does not exist yet, else an update that only matches a due row.
// Either changes one row for exactly one of concurrent claimers (the
// database's row lock orders them, and the loser's condition is false
// once the winner committed).
func (s *Store) ClaimSchedule(ctx context.Context, name string, now, next time.Time) (ok bool, err error) {
	defer wrap(&err, "claiming the run of %s", name)
	if name == "" {
		return false, invalid("schedule name: must not be empty")
	}
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		n, err := q.Exec(ctx, `INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
			scheduleName(name), ts(next).UnixMicro())
		if err != nil || n == 1 {
			ok = n == 1
			return err
		}
		n, err = q.Exec(ctx, `UPDATE counters SET value = ? WHERE name = ? AND value <= ?`,
			ts(next).UnixMicro(), scheduleName(name), ts(now).UnixMicro())
		ok = n == 1
		return err
	})
	return ok, err
}

// SetSchedule is an upsert.
func (s *Store) SetSchedule(ctx context.Context, name string, at time.Time) (err error) {
	defer wrap(&err, "setting schedule %s", name)
	if name == "" {
		return invalid("schedule name: must not be empty")
	}
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
			scheduleName(name), ts(at).UnixMicro())
		return err
	})
}

// Schedule reads one row.
func (s *Store) Schedule(ctx context.Context, name string) (at time.Time, ok bool, err error) {
	defer wrap(&err, "reading schedule %s", name)
	var us int64
	err = s.e.QueryRow(ctx, `SELECT value FROM counters WHERE name = ?`, scheduleName(name)).Scan(&us)
	if isNoRows(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return time.UnixMicro(us).UTC(), true, nil
}
