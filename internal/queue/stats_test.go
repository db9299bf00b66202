package queue

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Stats groups the entries by target and state with the oldest creation
// time; Limits returns the bounds in force; a Filter with ExactTenant
// matches the single-user tenant "" only.
func TestStatsAndExactTenant(t *testing.T) {
	q := openQueue(t, t.TempDir(), &Options{MaxEntries: 50, MaxBytes: 1 << 20})
	ctx := t.Context()
	before := time.Now().Add(-time.Second)
	enq := func(tenant, target string) string {
		id, err := q.Enqueue(ctx, Entry{Tenant: tenant, Target: target, Tool: "x", Arguments: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := enq("", "ev")
	enq("", "ev")
	enq("t1", "other")
	e, err := q.Next(ctx, "ev")
	if err != nil || e.ID != a {
		t.Fatalf("next: %+v %v", e, err)
	}
	if err := q.Complete(ctx, a, json.RawMessage(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.MaxEntries != 50 || st.MaxBytes != 1<<20 || st.Total.Entries != 3 || st.Total.Bytes <= 0 {
		t.Errorf("stats totals: %+v", st)
	}
	got := map[string]int64{}
	for _, d := range st.Depth {
		got[d.Target+"/"+string(d.State)] = d.Entries
		if d.Oldest.Before(before) || d.Oldest.After(time.Now()) {
			t.Errorf("%s/%s oldest %v", d.Target, d.State, d.Oldest)
		}
	}
	if len(got) != 3 || got["ev/done"] != 1 || got["ev/pending"] != 1 || got["other/pending"] != 1 {
		t.Errorf("depth: %v", got)
	}
	if l := q.Limits(); l.MaxEntries != 50 || l.OnDone != nil || l.Logger != nil || l.MaxAttempts != DefaultMaxAttempts {
		t.Errorf("limits: %+v", l)
	}

	all, err := q.List(ctx, Filter{Tenant: ""})
	if err != nil || len(all) != 3 {
		t.Fatalf("list of every tenant: %d, %v", len(all), err)
	}
	mine, err := q.List(ctx, Filter{Tenant: "", ExactTenant: true})
	if err != nil || len(mine) != 2 || mine[0].Tenant != "" || mine[1].Tenant != "" {
		t.Fatalf("list of tenant \"\": %+v, %v", mine, err)
	}
	theirs, err := q.List(ctx, Filter{Tenant: "t1", ExactTenant: true})
	if err != nil || len(theirs) != 1 {
		t.Fatalf("list of t1: %+v, %v", theirs, err)
	}
}

// BenchmarkStats measures the grouped query behind the queue's metrics and
// readiness on a queue holding 100,000 entries (the default bound) over 8
// targets, some delivered.
func BenchmarkStats(b *testing.B) {
	q := openQueue(b, b.TempDir(), unbounded())
	ctx := b.Context()
	const n = 100_000
	sem := make(chan struct{}, 64)
	errs := make(chan error, 64)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if _, err := q.Enqueue(ctx, Entry{Tenant: "t", Target: "up" + string(rune('0'+i%8)), Tool: "read", Arguments: benchArgs}); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	for range 100 {
		e, err := q.Next(ctx, "up0")
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Complete(ctx, e.ID, json.RawMessage(`{}`)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		st, err := q.Stats(ctx)
		if err != nil || st.Total.Entries != n {
			b.Fatalf("%+v, %v", st.Total, err)
		}
	}
}

// A database made before entries_stats existed gets it when opened, and
// Stats reads the index, not the rows.
func TestStatsIndex(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir, nil)
	ctx := t.Context()
	q.Close()
	db, err := sql.Open("sqlite", q.Path())
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(ctx, `DROP INDEX entries_stats`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, dir, nil)
	var n int
	if err := q.read.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'entries_stats'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("entries_stats after reopening: %d, %v", n, err)
	}
	rows, err := q.read.QueryContext(ctx, `EXPLAIN QUERY PLAN `+statsQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if p := fmt.Sprint(plan); !strings.Contains(p, "COVERING INDEX entries_stats") {
		t.Errorf("query plan: %s", p)
	}
}
