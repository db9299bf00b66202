package queue

import (
	"context"
	"fmt"
	"time"
)

// Depth is how many entries of one target are in one state.
type Depth struct {
	Target string
	State  State
	// Entries is the number of entries; Oldest is when the oldest of them
	// was enqueued.
	Entries int64
	Oldest  time.Time
}

// Stats is a summary of the queue for metrics and readiness.
type Stats struct {
	// Depth lists every (target, state) pair that has entries, by target
	// and state.
	Depth []Depth
	// Total is what the whole queue holds, counted against Limits.
	Total Usage
	// MaxEntries and MaxBytes are the whole queue's bounds.
	MaxEntries, MaxBytes int64
}

// Stats summarises the queue: one grouped scan of the entries_stats index,
// in time proportional to the entries (about 16 ms for the default bound
// of 100,000 on a small 2-core machine; BenchmarkStats), so callers that
// run it often (metrics scrapes) should cache it.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	st := Stats{MaxEntries: q.opts.MaxEntries, MaxBytes: q.opts.MaxBytes}
	rows, err := q.read.QueryContext(ctx, statsQuery)
	if err != nil {
		return st, fmt.Errorf("queue: reading statistics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d Depth
		var oldest int64
		if err := rows.Scan(&d.Target, &d.State, &d.Entries, &oldest); err != nil {
			return st, fmt.Errorf("queue: reading statistics: %w", err)
		}
		d.Oldest = time.UnixMicro(oldest).UTC()
		st.Depth = append(st.Depth, d)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("queue: reading statistics: %w", err)
	}
	_, st.Total, err = q.Usage(ctx, "")
	return st, err
}

// statsQuery groups the entries; the covering index entries_stats answers
// it without reading rows.
const statsQuery = `SELECT target, state, count(*), min(created_at) FROM entries GROUP BY target, state ORDER BY target, state`

// Limits returns the queue's options with their defaults applied (without
// OnDone and Logger).
func (q *Queue) Limits() Options {
	o := q.opts
	o.OnDone, o.Logger = nil, nil
	return o
}
