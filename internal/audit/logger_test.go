package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpedge/mcpedge/internal/store"
)

// logBuffer collects log output safely from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	var buf logBuffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func entry(i int) *store.AuditEntry {
	return &store.AuditEntry{
		TenantID: "t1", Actor: "key-1", ActorKind: "key",
		Action: "tool.call", Target: fmt.Sprintf("n%d", i), Outcome: "ok",
	}
}

// targets returns the Target of every entry, in order.
func targets(es []store.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Target)
	}
	return out
}

func wantTargets(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("n%d", i))
	}
	return out
}

func mustVerify(t *testing.T, st store.Audit, want int64) {
	t.Helper()
	rep, err := Verify(t.Context(), st)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK || rep.Entries != want {
		t.Fatalf("Verify = %+v, want OK with %d entries", rep, want)
	}
}

func TestLoggerConcurrentFake(t *testing.T) {
	st := &memAudit{}
	testLoggerConcurrent(t, st, 32, 200)
}

// testLoggerConcurrent records from many goroutines at once and checks
// that exactly that many entries land, gapless and chained.
func testLoggerConcurrent(t *testing.T, st store.Audit, goroutines, each int) {
	log, _ := testLogger(t)
	l := NewLogger(st, log, LoggerOptions{BatchSize: 64, BufferSize: 128, FlushInterval: time.Millisecond})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				e := entry(i)
				e.Actor = fmt.Sprintf("g%d", g)
				l.Record(t.Context(), e)
			}
		})
	}
	wg.Wait()
	if err := l.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	total := goroutines * each
	if s := l.Stats(); s.Recorded != uint64(total) || s.Committed != uint64(total) || s.Lost != 0 {
		t.Fatalf("Stats = %+v, want %d recorded and committed", s, total)
	}
	mustVerify(t, st, int64(total))
	// Every goroutine's entries are all there, in the order it recorded them.
	perActor := map[string][]string{}
	var all []store.AuditEntry
	for after := int64(0); ; {
		page, err := st.ListAudit(t.Context(), store.AuditFilter{AfterSeq: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	if len(all) != total {
		t.Fatalf("%d entries stored, want %d", len(all), total)
	}
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d has Seq %d", i, e.Seq)
		}
		perActor[e.Actor] = append(perActor[e.Actor], e.Target)
	}
	for g := range goroutines {
		if got, want := perActor[fmt.Sprintf("g%d", g)], wantTargets(0, each); !slices.Equal(got, want) {
			t.Fatalf("goroutine %d's entries: got %v, want %v", g, got, want)
		}
	}
}

func TestLoggerRecordCopiesAndStampsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memAudit{}
		l := NewLogger(st, nil, LoggerOptions{})
		start := time.Now()
		e := entry(0)
		e.Seq, e.Hash = 99, []byte("forged")
		l.Record(t.Context(), e)
		e.Target = "changed after Record"
		given := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("x", 7200))
		l.Record(t.Context(), &store.AuditEntry{Time: given, Action: "a", Target: "tool\x00\xffé"})
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := st.all()
		if len(got) != 2 {
			t.Fatalf("%d entries", len(got))
		}
		if got[0].Target != "n0" || got[0].Seq != 1 {
			t.Errorf("entry 1 = %+v: Record must copy the entry and ignore Seq", got[0])
		}
		if !got[0].Time.Equal(start) || got[0].Time.Location() != time.UTC {
			t.Errorf("Time = %v, want now (%v) in UTC", got[0].Time, start)
		}
		if want := given.UTC().Truncate(time.Microsecond); !got[1].Time.Equal(want) || got[1].Time.Location() != time.UTC {
			t.Errorf("Time = %v, want %v", got[1].Time, want)
		}
		if got[1].Target != "tool\uFFFD\uFFFDé" {
			t.Errorf("Target = %q, want NUL and invalid UTF-8 replaced", got[1].Target)
		}
		mustVerify(t, st, 2)
	})
}

// TestLoggerGroupCommit: full batches go at once; a partial one waits for
// the flush interval.
func TestLoggerGroupCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memAudit{}
		l := NewLogger(st, nil, LoggerOptions{BatchSize: 10, FlushInterval: 20 * time.Millisecond})
		start := time.Now()
		for i := range 25 {
			l.Record(t.Context(), entry(i))
		}
		synctest.Wait()
		if got := st.all(); len(got) != 20 {
			t.Fatalf("%d entries committed before the interval, want the two full batches", len(got))
		}
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		if got := st.all(); len(got) != 25 {
			t.Fatalf("%d entries committed after the interval, want 25", len(got))
		}
		if !slices.Equal(st.sizes, []int{10, 10, 5}) {
			t.Errorf("batches %v, want [10 10 5]", st.sizes)
		}
		if d := time.Since(start); d != 20*time.Millisecond {
			t.Errorf("partial batch committed after %v", d)
		}
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := targets(st.all()); !slices.Equal(got, wantTargets(0, 25)) {
			t.Errorf("order %v", got)
		}
	})
}

// TestLoggerBackpressure: with the store stuck, Record fills the buffer
// and then waits; nothing is dropped, and the wait is counted.
func TestLoggerBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		st := &memAudit{hook: func(ctx context.Context, n int) (error, error) {
			<-gate
			return nil, nil
		}}
		reg := prometheus.NewRegistry()
		log, logs := testLogger(t)
		l := NewLogger(st, log, LoggerOptions{BatchSize: 2, BufferSize: 4, FlushInterval: -1, Registerer: reg})
		l.Record(t.Context(), entry(0))
		synctest.Wait() // the writer took entry 0 and is stuck in the store
		for i := 1; i <= 4; i++ {
			l.Record(t.Context(), entry(i)) // fills the buffer, no waiting
		}
		if s := l.Stats(); s.Blocked != 0 || s.Buffered != 4 {
			t.Fatalf("Stats = %+v, want 4 buffered and none blocked", s)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Record(context.Background(), entry(5))
			l.Record(context.Background(), entry(6))
		}()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Record returned with the buffer full")
		default:
		}
		if s := l.Stats(); s.Blocked != 1 || s.Buffered != 4 {
			t.Fatalf("Stats = %+v, want 1 blocked Record and 4 buffered", s)
		}
		if got := gathered(t, reg)["mcpedge_audit_blocked_total"]; got != 1 {
			t.Errorf("mcpedge_audit_blocked_total = %v", got)
		}
		if !strings.Contains(logs.String(), "buffer full") {
			t.Errorf("backpressure not logged: %s", logs)
		}
		close(gate)
		<-done
		if err := l.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := targets(st.all()); !slices.Equal(got, wantTargets(0, 7)) {
			t.Fatalf("entries %v, want n0..n6 in order", got)
		}
		m := gathered(t, reg)
		if len(m) != 8 || m["mcpedge_audit_entries_committed_total"] != 7 || m["mcpedge_audit_buffered_entries"] != 0 {
			t.Errorf("metrics %v, want 8 with 7 entries committed", m)
		}
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLoggerSlowStore: a store far slower than the producers loses
// nothing.
func TestLoggerSlowStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memAudit{hook: func(ctx context.Context, n int) (error, error) {
			time.Sleep(50 * time.Millisecond)
			return nil, nil
		}}
		l := NewLogger(st, nil, LoggerOptions{BatchSize: 4, BufferSize: 8})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					e := entry(i)
					e.Actor = fmt.Sprint(g)
					l.Record(t.Context(), e)
				}
			})
		}
		wg.Wait()
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s := l.Stats(); s.Committed != 400 || s.Blocked == 0 || s.Lost != 0 {
			t.Fatalf("Stats = %+v, want 400 committed, some blocked, none lost", s)
		}
		mustVerify(t, st, 400)
	})
}

func TestLoggerFlush(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := NewLogger(&memAudit{}, nil, LoggerOptions{})
			if err := l.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("does not wait for the interval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := &memAudit{}
			l := NewLogger(st, nil, LoggerOptions{FlushInterval: time.Hour})
			start := time.Now()
			for i := range 3 {
				l.Record(t.Context(), entry(i))
			}
			if err := l.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("Flush took %v", d)
			}
			if got := len(st.all()); got != 3 {
				t.Fatalf("%d entries after Flush", got)
			}
			l.Record(t.Context(), entry(3)) // waits for the hour now
			synctest.Wait()
			if got := len(st.all()); got != 3 {
				t.Fatalf("%d entries: a later entry did not wait for its batch", got)
			}
			if err := l.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := len(st.all()); got != 4 {
				t.Fatalf("%d entries after Close", got)
			}
		})
	})
	t.Run("waits for retries, gives up with ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			down := errors.New("database is down")
			var mu sync.Mutex
			failing := true
			st := &memAudit{hook: func(ctx context.Context, n int) (error, error) {
				mu.Lock()
				defer mu.Unlock()
				if failing {
					return down, nil
				}
				return nil, nil
			}}
			log, logs := testLogger(t)
			l := NewLogger(st, log, LoggerOptions{RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond})
			l.Record(t.Context(), entry(0))
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			err := l.Flush(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "database is down") {
				t.Fatalf("Flush = %v, want the deadline and the store error", err)
			}
			if !strings.Contains(logs.String(), "database is down") {
				t.Errorf("store error not logged")
			}
			s := l.Stats()
			// Attempts at 0, 10, 30, 70, 150, 250, … 950 ms: 13 in the second.
			if s.StoreErrors != 13 || s.Committed != 0 {
				t.Errorf("Stats = %+v, want 13 failed attempts", s)
			}
			mu.Lock()
			failing = false
			mu.Unlock()
			if err := l.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := targets(st.all()); !slices.Equal(got, []string{"n0"}) {
				t.Fatalf("entries %v, want n0 once", got)
			}
		})
	})
}

// TestLoggerAmbiguousCommit: an append that commits but reports an error
// is not appended twice.
func TestLoggerAmbiguousCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var once sync.Once
		st := &memAudit{hook: func(ctx context.Context, n int) (before, after error) {
			once.Do(func() { after = errors.New("connection reset during commit") })
			return nil, after
		}}
		l := NewLogger(st, nil, LoggerOptions{})
		for i := range 3 {
			l.Record(t.Context(), entry(i))
		}
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := targets(st.all()); !slices.Equal(got, wantTargets(0, 3)) {
			t.Fatalf("entries %v, want each once", got)
		}
		if st.appends != 1 {
			t.Errorf("%d appends, want 1", st.appends)
		}
		mustVerify(t, st, 3)
	})
}

// TestLoggerCloseUnwritten: when the store never recovers, Close returns
// (and logs) every entry it could not write, and later Records are logged.
func TestLoggerCloseUnwritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := errors.New("database is down")
		st := &memAudit{hook: func(ctx context.Context, n int) (error, error) { return down, nil }}
		log, logs := testLogger(t)
		l := NewLogger(st, log, LoggerOptions{BatchSize: 2})
		for i := range 3 {
			l.Record(t.Context(), entry(i))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := l.Close(ctx)
		cancel()
		var uw *UnwrittenError
		if !errors.As(err, &uw) || !errors.Is(err, down) {
			t.Fatalf("Close = %v, want an UnwrittenError wrapping the store error", err)
		}
		if got := targets(derefAll(uw.Entries)); !slices.Equal(got, wantTargets(0, 3)) {
			t.Fatalf("unwritten %v, want n0..n2", got)
		}
		if err2 := l.Close(t.Context()); err2 != err {
			t.Errorf("second Close = %v, want the first result", err2)
		}
		if err := l.Flush(t.Context()); !errors.As(err, &uw) {
			t.Errorf("Flush after a failed Close = %v", err)
		}
		l.Record(t.Context(), entry(3))
		out := logs.String()
		for i := range 4 {
			if !strings.Contains(out, fmt.Sprintf(`\"target\":\"n%d\"`, i)) {
				t.Errorf("entry n%d not in the log:\n%s", i, out)
			}
		}
		if s := l.Stats(); s.Lost != 4 {
			t.Errorf("Stats.Lost = %d, want 4", s.Lost)
		}
	})
}

// gathered returns the value of every (unlabelled) metric in reg.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				out[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func derefAll(es []*store.AuditEntry) []store.AuditEntry {
	var out []store.AuditEntry
	for _, e := range es {
		out = append(out, *e)
	}
	return out
}

// TestLoggerAfterClose: an entry recorded after a clean Close is appended
// synchronously.
func TestLoggerAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memAudit{}
		l := NewLogger(st, nil, LoggerOptions{})
		l.Record(t.Context(), entry(0))
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		l.Record(t.Context(), entry(1))
		if got := targets(st.all()); !slices.Equal(got, wantTargets(0, 2)) {
			t.Fatalf("entries %v", got)
		}
		mustVerify(t, st, 2)
	})
}

// TestLoggerCloseWaitsForRetries: Close with time to spare outlasts a
// store outage.
func TestLoggerCloseWaitsForRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fails := 3
		st := &memAudit{hook: func(ctx context.Context, n int) (error, error) {
			if fails > 0 {
				fails--
				return errors.New("busy"), nil
			}
			return nil, nil
		}}
		l := NewLogger(st, nil, LoggerOptions{})
		for i := range 5 {
			l.Record(t.Context(), entry(i))
		}
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s := l.Stats(); s.StoreErrors != 3 || s.Committed != 5 {
			t.Fatalf("Stats = %+v", s)
		}
		mustVerify(t, st, 5)
	})
}
