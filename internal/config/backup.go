package config

import (
	"path/filepath"
	"time"
)

// Scheduled backup defaults and bounds (the [backup] table).
const (
	DefaultBackupDir  = "backups"
	DefaultBackupKeep = 7
	// MinBackupInterval and MaxBackupInterval bound backup.interval
	// (when not 0): more often than every minute is a copy loop, not a
	// backup schedule.
	MinBackupInterval = Duration(time.Minute)
	MaxBackupInterval = Duration(366 * 24 * time.Hour)
	// MaxBackupKeep bounds backup.keep.
	MaxBackupKeep = 10000
	// DefaultBackupKeyEnv holds a backup key in base64.
	DefaultBackupKeyEnv = "MCPEDGE_BACKUP_KEY"
)

// Backup configures scheduled backups of the store and the offline queue
// in `mcpedge serve` (toml [backup], docs/platform.md). The settings are
// read at start; `mcpedge backup` and `mcpedge restore` read KeyFile
// too.
type Backup struct {
	// Interval is how often a backup is made (toml "interval"); 0 (the
	// default) makes none. Of replicas sharing a store one at a time
	// makes each.
	Interval Duration
	// Dir is where scheduled backups are written (toml "dir"); relative
	// to data_dir unless absolute. Default "backups".
	Dir string
	// Keep is how many scheduled backups are kept in Dir (toml "keep");
	// older ones are deleted after each new one. Default 7.
	Keep int
	// KeyFile is a file of 32 random bytes that encrypts backups instead
	// of the store's master key (toml "key_file"; relative to data_dir
	// unless absolute). $MCPEDGE_BACKUP_KEY (base64) takes precedence.
	KeyFile string
}

// DefaultBackup returns the [backup] defaults.
func DefaultBackup() Backup {
	return Backup{Dir: DefaultBackupDir, Keep: DefaultBackupKeep}
}

var backupKeys = []string{"interval", "dir", "keep", "key_file"}

// decodeBackup reads the [backup] table, if any, into c.Backup and
// returns it (nil when absent) for validateBackup's positions.
func (d *decoder) decodeBackup(top *table, c *Config) *table {
	t := d.subTable(top, "backup")
	if t == nil {
		return nil
	}
	b := &c.Backup
	t.duration("interval", &b.Interval)
	if t.str("dir", &b.Dir) {
		l := t.loc("dir")
		b.Dir, _ = d.expand(b.Dir, l.pos, l.field, false)
	}
	var n int64
	if t.integer("keep", &n) {
		b.Keep = clampInt(n)
	}
	if t.str("key_file", &b.KeyFile) {
		l := t.loc("key_file")
		b.KeyFile, _ = d.expand(b.KeyFile, l.pos, l.field, false)
	}
	t.unknown(backupKeys)
	return t
}

// validateBackup checks c.Backup.
func (d *decoder) validateBackup(c *Config, t *table) {
	b := &c.Backup
	bad := func(key, format string, args ...any) {
		l := metaLoc(t, "backup", key)
		d.add(l.pos, l.field, format, args...)
	}
	if b.Interval != 0 && (b.Interval < MinBackupInterval || b.Interval > MaxBackupInterval) {
		bad("interval", "must be 0 (no scheduled backups) or between %s and %s, got %s", MinBackupInterval, MaxBackupInterval, b.Interval)
	}
	if b.Keep < 1 || b.Keep > MaxBackupKeep {
		bad("keep", "must be between 1 and %d, got %d", MaxBackupKeep, b.Keep)
	}
	if b.Dir == "" {
		bad("dir", "must not be empty")
	}
	if b.Interval != 0 && c.Server.DataDir == "" && !filepath.IsAbs(b.Dir) {
		bad("dir", "%q is relative to data_dir, which is not set; give an absolute path", b.Dir)
	}
}
