package audit

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // raw access to the store's file, as an intruder would

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

// A backend is a real store under test together with raw SQL access to
// its tables, to tamper with them behind the store's back.
type backend struct {
	name string
	st   store.Audit
	// exec runs one statement with "?" placeholders.
	exec func(t *testing.T, query string, args ...any)
}

// backendFactories open a fresh, empty store per call, or skip the test if
// that kind of store is not configured.
var backendFactories = []struct {
	name string
	open func(t *testing.T) backend
}{
	{"sqlite", newSQLite},
	{"postgres", newPostgres},
}

func newSQLite(t *testing.T) backend {
	path := filepath.Join(t.TempDir(), "mcpedge.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return backend{name: "sqlite", st: st, exec: func(t *testing.T, query string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(context.WithoutCancel(t.Context()), query, args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}}
}

// eachBackend runs f as a subtest on every real store.
func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, bf := range backendFactories {
		t.Run(bf.name, func(t *testing.T) { f(t, bf.open(t)) })
	}
}

func TestLoggerConcurrentStores(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		testLoggerConcurrent(t, b.st, 16, 100)
	})
}

// gatedAudit holds the first append until release is closed.
type gatedAudit struct {
	store.Audit
	release chan struct{}
	once    sync.Once
}

func (g *gatedAudit) AppendAudit(ctx context.Context, es []*store.AuditEntry, seal func(*store.AuditEntry)) error {
	g.once.Do(func() { <-g.release })
	return g.Audit.AppendAudit(ctx, es, seal)
}

// TestLoggerBackpressureStores: a stalled database makes Record wait and
// loses nothing.
func TestLoggerBackpressureStores(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		g := &gatedAudit{Audit: b.st, release: make(chan struct{})}
		l := NewLogger(g, nil, LoggerOptions{BatchSize: 4, BufferSize: 8})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 50 {
					e := entry(i)
					e.Actor = fmt.Sprint(w)
					l.Record(t.Context(), e)
				}
			})
		}
		// 200 entries can not fit in 8 places while the store is stuck:
		// wait until some Record is blocked, then let the store go.
		waitFor(t, func() bool { return l.Stats().Blocked > 0 })
		if s := l.Stats(); s.Buffered != 8 {
			t.Errorf("Stats = %+v, want a full buffer", s)
		}
		close(g.release)
		wg.Wait()
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s := l.Stats(); s.Committed != 200 || s.Lost != 0 {
			t.Fatalf("Stats = %+v", s)
		}
		mustVerify(t, b.st, 200)
	})
}

// waitFor polls cond; it is for conditions that must come true soon, so the
// long limit only bounds a broken test.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestExportStores(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		fill(t, b.st, 2500)
		testExport(t, b.st, 2500)
	})
}

// TestSealRoundTripStores: what a store gives back re-seals to the hash
// computed before it was written, for awkward values too.
func TestSealRoundTripStores(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		es := []*store.AuditEntry{
			{Time: time.Date(2026, 2, 3, 4, 5, 6, 123456789, time.FixedZone("x", -5*3600)), Actor: "a", ActorKind: "cli", Action: "x", Outcome: "ok"},
			{Time: time.Unix(0, 1000).UTC(), Actor: "é\u2028", ActorKind: "user", Action: "y", Outcome: "error", LatencyUS: -1,
				Detail: []byte(`{"b":1,  "a":[]}`), TenantID: "t", Target: "\t\\\"", ClientIP: "::1"},
			{Actor: "z", ActorKind: "system", Action: "z", Outcome: "denied", Detail: []byte{}},
		}
		for _, e := range es {
			e.Time = e.Time.UTC().Truncate(time.Microsecond) // as Record does
		}
		if err := b.st.AppendAudit(t.Context(), es, Seal); err != nil {
			t.Fatal(err)
		}
		got, err := b.st.ListAudit(t.Context(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if h := sealed(&got[i]); string(h) != string(es[i].Hash) {
				t.Errorf("entry %d read back as %+v does not re-seal to its hash", i+1, got[i])
			}
		}
		mustVerify(t, b.st, 3)
	})
}

// sqlTamper damages a 10-entry chain through SQL, as someone with access
// to the database would; the cases are tamperCases.
func sqlTamper(t *testing.T, b backend, name string) {
	ctx := t.Context()
	entryAt := func(seq int64) store.AuditEntry {
		es, err := b.st.ListAudit(ctx, store.AuditFilter{AfterSeq: seq - 1, Limit: 1})
		if err != nil || len(es) != 1 {
			t.Fatalf("reading entry %d: %v", seq, err)
		}
		return es[0]
	}
	reseal := func(seq int64) []byte {
		e := entryAt(seq)
		e.Outcome = "denied"
		Seal(&e)
		b.exec(t, `UPDATE audit SET outcome = ?, hash = ? WHERE seq = ?`, e.Outcome, e.Hash, seq)
		return e.Hash
	}
	switch name {
	case "edit outcome":
		b.exec(t, `UPDATE audit SET outcome = 'denied' WHERE seq = 4`)
	case "edit detail":
		b.exec(t, `UPDATE audit SET detail = (SELECT detail FROM audit WHERE seq = 5) WHERE seq = 4`)
	case "edit and reseal":
		reseal(4)
	case "delete middle":
		b.exec(t, `DELETE FROM audit WHERE seq = 4`)
	case "delete first":
		b.exec(t, `DELETE FROM audit WHERE seq = 1`)
	case "swap contents":
		// Rows 4 and 5 trade everything but their Seq.
		b.exec(t, `UPDATE audit SET seq = 1000 WHERE seq = 4`)
		b.exec(t, `UPDATE audit SET seq = 4 WHERE seq = 5`)
		b.exec(t, `UPDATE audit SET seq = 5 WHERE seq = 1000`)
	case "renumber after delete":
		b.exec(t, `DELETE FROM audit WHERE seq = 4`)
		for seq := 5; seq <= 10; seq++ {
			b.exec(t, `UPDATE audit SET seq = ? WHERE seq = ?`, seq-1, seq)
		}
		b.exec(t, `UPDATE audit_head SET seq = 9 WHERE id = 1`)
	case "truncate tail":
		b.exec(t, `DELETE FROM audit WHERE seq > 7`)
	case "reseal tail":
		reseal(10)
	case "truncate tail and head record":
		b.exec(t, `DELETE FROM audit WHERE seq > 7`)
		b.exec(t, `UPDATE audit_head SET seq = 7, hash = (SELECT hash FROM audit WHERE seq = 7) WHERE id = 1`)
	case "reseal tail and head record":
		h := reseal(10)
		b.exec(t, `UPDATE audit_head SET hash = ? WHERE id = 1`, h)
	default:
		t.Fatalf("unknown tamper case %q", name)
	}
}

func TestVerifyTamperStores(t *testing.T) {
	for _, bf := range backendFactories {
		for _, tc := range tamperCases {
			t.Run(bf.name+"/"+tc.name, func(t *testing.T) {
				b := bf.open(t)
				head := fill(t, b.st, 10)
				mustVerify(t, b.st, 10)
				sqlTamper(t, b, tc.name)
				checkTampered(t, b.st, head, tc)
			})
		}
	}
}

// TestLoggerStoreOutage: a database that goes away and comes back loses
// nothing (SQLite: the table is renamed away, so appends fail, then back).
func TestLoggerStoreOutage(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		log, logs := testLogger(t)
		l := NewLogger(b.st, log, LoggerOptions{RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond})
		l.Record(t.Context(), entry(0))
		if err := l.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.exec(t, `ALTER TABLE audit RENAME TO audit_away`)
		for i := 1; i < 5; i++ {
			l.Record(t.Context(), entry(i))
		}
		waitFor(t, func() bool { return l.Stats().StoreErrors >= 2 })
		b.exec(t, `ALTER TABLE audit_away RENAME TO audit`)
		if err := l.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "appending entries failed") {
			t.Errorf("outage not logged")
		}
		es, err := b.st.ListAudit(t.Context(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if got := targets(es); !slices.Equal(got, wantTargets(0, 5)) {
			t.Fatalf("entries %v, want n0..n4 once each", got)
		}
		mustVerify(t, b.st, 5)
	})
}
