package backup

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mcpedge/mcpedge/internal/store"
)

// TestSchedulerOneReplicaAtATime: two replicas (two store handles, two
// schedulers, each with its own directory) share the schedule: each due
// run is made by exactly one of them, at the interval; failures count and
// are retried sooner; retention keeps the newest Keep files; every
// replica reports the last success.
func TestSchedulerOneReplicaAtATime(t *testing.T) {
	ctx := context.Background()
	key := testKey(t)
	data := t.TempDir()
	st1 := openStore(t, "", data, key.Bytes)
	defer st1.Close()
	fill(t, st1, 2)
	st2 := openStore(t, "", data, key.Bytes)
	defer st2.Close()

	var mu sync.Mutex
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	keyFn := func(context.Context) (Key, error) { return key, nil }
	mk := func(st store.Store, dir string) (*Scheduler, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		return NewScheduler(SchedulerOptions{Store: st.(store.Schedules), Interval: time.Hour, Dir: dir, Keep: 2,
			Key: keyFn, Source: Source{DataDir: data}, Now: clock, Registerer: reg}), reg
	}
	dir1, dir2 := filepath.Join(t.TempDir(), "b1"), filepath.Join(t.TempDir(), "b2")
	s1, reg1 := mk(st1, dir1)
	s2, reg2 := mk(st2, dir2)

	made := 0
	for i := range 4 {
		p1, p2 := s1.Tick(ctx), s2.Tick(ctx)
		if (p1 == "") == (p2 == "") {
			t.Fatalf("run %d: replica 1 made %q, replica 2 %q; want exactly one", i, p1, p2)
		}
		made++
		// Not due again within the interval.
		advance(30 * time.Minute)
		if p := s1.Tick(ctx) + s2.Tick(ctx); p != "" {
			t.Fatalf("run %d: a backup %s before the interval passed", i, p)
		}
		advance(30 * time.Minute)
	}
	n1, _ := os.ReadDir(dir1)
	n2, _ := os.ReadDir(dir2)
	if made != 4 || len(n1)+len(n2) > 4 || len(n1) > 2 || len(n2) > 2 {
		t.Errorf("%d backups made, %d and %d kept (keep = 2)", made, len(n1), len(n2))
	}
	// Both replicas report the last success, wherever it was made.
	want := float64(now.Add(-time.Hour).Unix())
	for i, reg := range []*prometheus.Registry{reg1, reg2} {
		if got := gather(t, reg, "mcpedge_backup_last_success_timestamp_seconds"); got != want {
			t.Errorf("replica %d: last success %v, want %v", i+1, got, want)
		}
	}

	// A failing backup (its directory can not be made) is counted and
	// retried after 5 minutes, not an hour.
	blocked := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocked, nil, 0o600)
	s3, _ := mk(st1, filepath.Join(blocked, "sub"))
	if p := s3.Tick(ctx); p != "" {
		t.Fatalf("a backup into an impossible directory: %s", p)
	}
	if got := testutil.ToFloat64(s3.failures); got != 1 {
		t.Errorf("failures = %v, want 1", got)
	}
	advance(5 * time.Minute)
	if p := s1.Tick(ctx); p == "" {
		t.Error("no retry 5 minutes after a failure")
	}
}

func gather(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		os.WriteFile(filepath.Join(dir, FileName(t0.Add(time.Duration(i)*time.Hour))), nil, 0o600)
	}
	os.WriteFile(filepath.Join(dir, "mine.mcpbak"), nil, 0o600) // not ours: kept
	removed, err := Prune(dir, 2)
	if err != nil || len(removed) != 3 || removed[0] != FileName(t0) {
		t.Fatalf("Prune: %v %v", removed, err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 3 {
		t.Errorf("left: %v", left)
	}
}
