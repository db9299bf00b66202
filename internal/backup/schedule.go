package backup

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpedge/mcpedge/internal/store"
)

// The schedules (store.Schedules) of scheduled backups: when the next one
// is due, and when one last succeeded (on any replica).
const (
	scheduleDue     = "backup"
	scheduleSuccess = "backup.last_success"
)

// fileRE is the name of a scheduled backup; retention only ever deletes
// files of this name.
var fileRE = regexp.MustCompile(`^mcpedge-backup-[0-9]{8}T[0-9]{6}Z\.mcpbak$`)

// FileName is the name of a scheduled backup made at t.
func FileName(t time.Time) string {
	return "mcpedge-backup-" + t.UTC().Format("20060102T150405Z") + ".mcpbak"
}

// SchedulerOptions configure a [Scheduler].
type SchedulerOptions struct {
	// Store holds the schedule every replica shares.
	Store store.Schedules
	// Interval is how often a backup is made; 0 makes none (Run
	// returns at once, the metrics say so).
	Interval time.Duration
	// Dir is where backups are written (created 0700), Keep how many
	// are kept there.
	Dir  string
	Keep int
	// Key returns the key of each backup.
	Key func(context.Context) (Key, error)
	// Source is what is backed up.
	Source Source
	// Logger logs each backup and failure; nil discards.
	Logger *slog.Logger
	// Registerer gets the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now and Poll are the clock and how often the schedule is looked
	// at (zero: time.Now, and a tenth of Interval between 1s and 1m).
	Now  func() time.Time
	Poll time.Duration
}

// A Scheduler makes a backup every Interval, on one replica at a time:
// each replica looks at the shared schedule every Poll, and the one whose
// claim of a due run succeeds (store.Schedules.ClaimSchedule) makes it.
// The claim moves the due time one interval ahead, so a replica that dies
// while backing up holds the run for one interval at most; a failed
// backup is retried after min(Interval, 5m).
type Scheduler struct {
	o        SchedulerOptions
	log      *slog.Logger
	lastOK   prometheus.Gauge
	failures prometheus.Counter
	duration prometheus.Gauge
	size     prometheus.Gauge
}

// NewScheduler returns a scheduler and registers its metrics:
//
//	mcpedge_backup_interval_seconds             [backup] interval (0: off)
//	mcpedge_backup_last_success_timestamp_seconds  when a scheduled backup last succeeded, on any replica (0: never)
//	mcpedge_backup_failures_total               scheduled backups this replica failed to make
//	mcpedge_backup_last_duration_seconds        how long this replica's last backup took
//	mcpedge_backup_last_size_bytes              the size of this replica's last backup
func NewScheduler(o SchedulerOptions) *Scheduler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Poll <= 0 {
		o.Poll = min(max(o.Interval/10, time.Second), time.Minute)
	}
	s := &Scheduler{o: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	interval := prometheus.NewGauge(prometheus.GaugeOpts{Name: "mcpedge_backup_interval_seconds",
		Help: "The [backup] interval of scheduled backups; 0 when they are off."})
	interval.Set(o.Interval.Seconds())
	s.lastOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mcpedge_backup_last_success_timestamp_seconds",
		Help: "When a scheduled backup last succeeded, on any replica sharing the store (Unix seconds; 0: never)."})
	s.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "mcpedge_backup_failures_total",
		Help: "Scheduled backups this replica started and failed to make."})
	s.duration = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mcpedge_backup_last_duration_seconds",
		Help: "How long the last scheduled backup this replica made took."})
	s.size = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mcpedge_backup_last_size_bytes",
		Help: "The size of the last scheduled backup this replica made."})
	if o.Registerer != nil {
		o.Registerer.MustRegister(interval, s.lastOK, s.failures, s.duration, s.size)
	}
	return s
}

// Run makes backups until ctx is done.
func (s *Scheduler) Run(ctx context.Context) {
	if s.o.Interval <= 0 {
		return
	}
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	for {
		s.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick makes a backup if one is due and this replica claims it, and
// updates the metrics; it returns the new backup's path ("" when it made
// none).
func (s *Scheduler) Tick(ctx context.Context) string {
	defer s.refresh(ctx)
	start := s.o.Now()
	ok, err := s.o.Store.ClaimSchedule(ctx, scheduleDue, start, start.Add(s.o.Interval))
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("scheduled backup: reading the schedule", "err", err.Error())
		}
		return ""
	}
	if !ok {
		return ""
	}
	path, err := s.backup(ctx, start)
	if err != nil {
		s.failures.Inc()
		retry := start.Add(min(s.o.Interval, 5*time.Minute))
		s.log.Error("scheduled backup failed", "err", err.Error(), "retry_at", retry.UTC().Format(time.RFC3339))
		if err := s.o.Store.SetSchedule(context.WithoutCancel(ctx), scheduleDue, retry); err != nil {
			s.log.Warn("scheduled backup: setting the retry", "err", err.Error())
		}
		return ""
	}
	return path
}

func (s *Scheduler) backup(ctx context.Context, start time.Time) (string, error) {
	// A backup never outlives its claim: past it, another replica may
	// start the next one.
	ctx, cancel := context.WithTimeout(ctx, s.o.Interval)
	defer cancel()
	if err := os.MkdirAll(s.o.Dir, 0o700); err != nil {
		return "", err
	}
	key, err := s.o.Key(ctx)
	if err != nil {
		return "", fmt.Errorf("the backup key: %w", err)
	}
	path := filepath.Join(s.o.Dir, FileName(start))
	src := s.o.Source
	src.Now = s.o.Now
	m, err := WriteFile(ctx, path, key, src)
	if err != nil {
		return "", err
	}
	took := s.o.Now().Sub(start)
	var size int64
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	s.duration.Set(took.Seconds())
	s.size.Set(float64(size))
	if err := s.o.Store.SetSchedule(context.WithoutCancel(ctx), scheduleSuccess, start); err != nil {
		s.log.Warn("scheduled backup: recording its success", "err", err.Error())
	}
	s.log.Info("scheduled backup made", "path", path, "engine", m.Engine, "schema_version", m.SchemaVersion,
		"bytes", size, "took", took.Round(time.Millisecond).String(), "queue", m.Queue != nil)
	if removed, err := Prune(s.o.Dir, s.o.Keep); err != nil {
		s.log.Warn("scheduled backup: removing old backups", "err", err.Error())
	} else if len(removed) > 0 {
		s.log.Info("scheduled backup: removed old backups", "removed", removed)
	}
	return path, nil
}

// refresh sets the last-success gauge from the shared schedule, so that
// every replica reports the last backup of any of them.
func (s *Scheduler) refresh(ctx context.Context) {
	at, ok, err := s.o.Store.Schedule(ctx, scheduleSuccess)
	if err == nil && ok {
		s.lastOK.Set(float64(at.UnixMilli()) / 1000)
	}
}

// Prune deletes the oldest scheduled backups in dir beyond the keep
// newest (by the time in their names) and returns the names it deleted.
// Only files named like scheduled backups are considered.
func Prune(dir string, keep int) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && fileRE.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var removed []string
	for len(names) > keep {
		if err := os.Remove(filepath.Join(dir, names[0])); err != nil {
			return removed, err
		}
		removed = append(removed, names[0])
		names = names[1:]
	}
	return removed, nil
}
