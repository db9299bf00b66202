package store

import (
	"context"
	"time"
)

// Schedules are named times shared by every replica of a store, for jobs
// that one replica at a time runs periodically (scheduled backups,
// internal/backup). They live in the table counters (as Unix
// microseconds, under the name "schedule:<name>"), so they need no table
// of their own and a backup carries them.
//
// The implementations of package sqlbase implement it; it is not part of
// [Store] so that a store without it still satisfies Store.
type Schedules interface {
	// ClaimSchedule takes the run of the job name that is due at now: if
	// its due time is at or before now, or it has none, it becomes
	// next and ClaimSchedule returns true; else it is left as it is and
	// ClaimSchedule returns false. Of replicas claiming the same run at
	// once exactly one gets true. next is also how long the claimer holds
	// the run: a claimer that dies before it calls SetSchedule lets
	// another replica run the job at next.
	ClaimSchedule(ctx context.Context, name string, now, next time.Time) (bool, error)
	// SetSchedule sets the time name refers to (a due time, or when the
	// job last succeeded).
	SetSchedule(ctx context.Context, name string, at time.Time) error
	// Schedule returns the time name refers to; ok is false when it has
	// none.
	Schedule(ctx context.Context, name string) (at time.Time, ok bool, err error)
}
