package config

import "time"

// Offline queue defaults (the [queue] table). They equal the defaults of
// internal/queue's Options, which config does not import (config stays at
// the bottom of the dependency graph); a test in internal/deferq checks
// that they agree.
const (
	DefaultQueueMaxEntries       = int64(100_000)
	DefaultQueueMaxBytes         = int64(256 << 20)
	DefaultQueueTenantMaxEntries = int64(10_000)
	DefaultQueueTenantMaxBytes   = int64(64 << 20)
	DefaultQueueMaxCallBytes     = int64(1 << 20)
	DefaultQueueMaxAttempts      = 10
	DefaultQueueKeepDone         = Duration(24 * time.Hour)
	DefaultQueueKeepFailed       = Duration(7 * 24 * time.Hour)
	DefaultQueueBackoffMin       = Duration(time.Second)
	DefaultQueueBackoffMax       = Duration(5 * time.Minute)

	// MaxQueueEntries bounds queue.max_entries and tenant_max_entries:
	// past some millions of rows the per-scrape depth query and pruning
	// stop being cheap on a small device.
	MaxQueueEntries = int64(10_000_000)
	// MaxQueueBytes bounds queue.max_bytes and tenant_max_bytes (1 TiB):
	// a larger value is a typo, not a plan.
	MaxQueueBytes = int64(1 << 40)
	// MinQueueMaxCallBytes and MaxQueueMaxCallBytes bound
	// queue.max_call_bytes: below 1 KiB hardly a call fits (arguments and
	// meta are sealed, which adds a header); above 64 MiB one call holds
	// the writer's transaction for too long.
	MinQueueMaxCallBytes = int64(1 << 10)
	MaxQueueMaxCallBytes = int64(64 << 20)
	// MaxQueueMaxAttempts bounds queue.max_attempts.
	MaxQueueMaxAttempts = 1000
	// MaxQueueKeep bounds keep_done and keep_failed (a year): results
	// count against the bounds while they are kept.
	MaxQueueKeep = Duration(366 * 24 * time.Hour)
	// MaxQueueBackoff bounds backoff_min and backoff_max.
	MaxQueueBackoff = Duration(24 * time.Hour)
)

// Queue configures the offline queue of `mcpedge serve` (toml [queue]):
// where calls of deferrable tools wait while their upstream is
// unreachable. See docs/edge.md, "Offline queue and encryption at rest".
// These settings are read once at start; a change needs a restart.
type Queue struct {
	// Enabled opens the queue in `mcpedge serve` (toml "enabled", default
	// true). false: deferrable calls to an unreachable upstream fail as
	// they would without a queue; the `mcpedge queue` commands still work
	// on an existing queue file.
	Enabled bool
	// MaxEntries and MaxBytes bound the whole queue: entries in every
	// state, and their sealed arguments, meta and results (toml
	// "max_entries", "max_bytes").
	MaxEntries, MaxBytes int64
	// TenantMaxEntries and TenantMaxBytes bound one tenant's share (toml
	// "tenant_max_entries", "tenant_max_bytes"); in single-user mode the
	// one tenant "" is bound by them too.
	TenantMaxEntries, TenantMaxBytes int64
	// MaxCallBytes bounds one call's sealed arguments and meta (toml
	// "max_call_bytes"); a larger call is not queued and fails with the
	// upstream's unavailability.
	MaxCallBytes int64
	// MaxAttempts is how many deliveries a call gets before it fails for
	// good (toml "max_attempts").
	MaxAttempts int
	// KeepDone and KeepFailed are how long done and failed entries (and
	// their results) are kept before they are deleted (toml "keep_done",
	// "keep_failed").
	KeepDone, KeepFailed Duration
	// BackoffMin and BackoffMax bound the wait after a failed delivery:
	// BackoffMin after the first, doubling up to BackoffMax (toml
	// "backoff_min", "backoff_max").
	BackoffMin, BackoffMax Duration
}

// DefaultQueue returns the [queue] defaults.
func DefaultQueue() Queue {
	return Queue{
		Enabled:          true,
		MaxEntries:       DefaultQueueMaxEntries,
		MaxBytes:         DefaultQueueMaxBytes,
		TenantMaxEntries: DefaultQueueTenantMaxEntries,
		TenantMaxBytes:   DefaultQueueTenantMaxBytes,
		MaxCallBytes:     DefaultQueueMaxCallBytes,
		MaxAttempts:      DefaultQueueMaxAttempts,
		KeepDone:         DefaultQueueKeepDone,
		KeepFailed:       DefaultQueueKeepFailed,
		BackoffMin:       DefaultQueueBackoffMin,
		BackoffMax:       DefaultQueueBackoffMax,
	}
}

var queueKeys = []string{"enabled", "max_entries", "max_bytes", "tenant_max_entries", "tenant_max_bytes", "max_call_bytes", "max_attempts", "keep_done", "keep_failed", "backoff_min", "backoff_max"}

// decodeQueue reads the [queue] table, if any, into c.Queue and returns
// it (nil when absent) for validateQueue's positions.
func (d *decoder) decodeQueue(top *table, c *Config) *table {
	t := d.subTable(top, "queue")
	if t == nil {
		return nil
	}
	q := &c.Queue
	t.boolean("enabled", &q.Enabled)
	t.integer("max_entries", &q.MaxEntries)
	t.integer("max_bytes", &q.MaxBytes)
	t.integer("tenant_max_entries", &q.TenantMaxEntries)
	t.integer("tenant_max_bytes", &q.TenantMaxBytes)
	t.integer("max_call_bytes", &q.MaxCallBytes)
	var n int64
	if t.integer("max_attempts", &n) {
		q.MaxAttempts = clampInt(n)
	}
	t.duration("keep_done", &q.KeepDone)
	t.duration("keep_failed", &q.KeepFailed)
	t.duration("backoff_min", &q.BackoffMin)
	t.duration("backoff_max", &q.BackoffMax)
	t.unknown(queueKeys)
	return t
}

// validateQueue checks c.Queue. Every bound must be positive (there is no
// "unbounded": the issue asks for a bounded queue), a tenant's share must
// fit in the whole queue, and one call must fit in a tenant's share, so
// that no setting makes every call refused.
func (d *decoder) validateQueue(c *Config, t *table) {
	q := &c.Queue
	bad := func(key, format string, args ...any) {
		l := metaLoc(t, "queue", key)
		d.add(l.pos, l.field, format, args...)
	}
	inRange := func(key string, v, lo, hi int64) bool {
		if v < lo || v > hi {
			bad(key, "must be between %d and %d, got %d", lo, hi, v)
			return false
		}
		return true
	}
	okEntries := inRange("max_entries", q.MaxEntries, 1, MaxQueueEntries)
	okBytes := inRange("max_bytes", q.MaxBytes, MinQueueMaxCallBytes, MaxQueueBytes)
	if inRange("tenant_max_entries", q.TenantMaxEntries, 1, MaxQueueEntries) && okEntries && q.TenantMaxEntries > q.MaxEntries {
		bad("tenant_max_entries", "must not be more than max_entries (%d), got %d: one tenant's share is part of the whole queue", q.MaxEntries, q.TenantMaxEntries)
	}
	okTenantBytes := inRange("tenant_max_bytes", q.TenantMaxBytes, MinQueueMaxCallBytes, MaxQueueBytes)
	if okTenantBytes && okBytes && q.TenantMaxBytes > q.MaxBytes {
		bad("tenant_max_bytes", "must not be more than max_bytes (%d), got %d: one tenant's share is part of the whole queue", q.MaxBytes, q.TenantMaxBytes)
		okTenantBytes = false
	}
	if inRange("max_call_bytes", q.MaxCallBytes, MinQueueMaxCallBytes, MaxQueueMaxCallBytes) && okTenantBytes && q.MaxCallBytes > q.TenantMaxBytes {
		bad("max_call_bytes", "must not be more than tenant_max_bytes (%d), got %d: such a call could never be queued", q.TenantMaxBytes, q.MaxCallBytes)
	}
	inRange("max_attempts", int64(q.MaxAttempts), 1, MaxQueueMaxAttempts)
	for _, k := range []struct {
		key string
		v   Duration
		max Duration
	}{{"keep_done", q.KeepDone, MaxQueueKeep}, {"keep_failed", q.KeepFailed, MaxQueueKeep}, {"backoff_min", q.BackoffMin, MaxQueueBackoff}, {"backoff_max", q.BackoffMax, MaxQueueBackoff}} {
		if k.v <= 0 || k.v > k.max {
			bad(k.key, "must be greater than 0 and at most %s, got %s", k.max, k.v)
		}
	}
	if q.BackoffMin > 0 && q.BackoffMax > 0 && q.BackoffMax < q.BackoffMin {
		bad("backoff_max", "must not be less than backoff_min (%s), got %s", q.BackoffMin, q.BackoffMax)
	}
}
