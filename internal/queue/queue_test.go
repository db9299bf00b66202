package queue

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/sealbox"
)

// fastOpts deliver and back off quickly.
func fastOpts() *Options {
	return &Options{BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, PollInterval: 50 * time.Millisecond}
}

// openQueue opens (creating) the queue dir/queue.db with the key
// dir/queue.key.
func openQueue(t testing.TB, dir string, opts *Options) *Queue {
	t.Helper()
	box, err := sealbox.New(t.Context(), sealbox.FileKey(filepath.Join(dir, "queue.key")), nil)
	if err != nil {
		t.Fatal(err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	q, err := Open(t.Context(), filepath.Join(dir, "queue.db"), box, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func call(tenant, target, tool, args string) Entry {
	return Entry{Tenant: tenant, Target: target, Tool: tool, Arguments: json.RawMessage(args)}
}

func mustEnqueue(t testing.TB, q *Queue, e Entry) string {
	t.Helper()
	id, err := q.Enqueue(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// rawDB opens the queue file directly, as an attacker with the disk
// would.
func rawDB(t *testing.T, q *Queue) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", q.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestEnqueueGet(t *testing.T) {
	ctx := t.Context()
	q := openQueue(t, t.TempDir(), nil)
	e := call("acme", "files", "read", `{"path":"/top/secret-plan.txt"}`)
	e.Meta = map[string]string{"session": "s-1"}
	id := mustEnqueue(t, q, e)
	if !strings.HasPrefix(id, "q") || len(id) != 27 {
		t.Errorf("id %q", id)
	}
	got, err := q.Get(ctx, "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tenant != "acme" || got.Target != "files" || got.Tool != "read" || string(got.Arguments) != `{"path":"/top/secret-plan.txt"}` ||
		got.Meta["session"] != "s-1" || got.State != Pending || got.Attempts != 0 || got.IdempotencyKey != id || got.Size <= 0 {
		t.Errorf("Get = %+v", got)
	}
	if _, err := q.Get(ctx, "other", id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get by another tenant: %v, want ErrNotFound", err)
	}
	if _, err := q.Get(ctx, "", id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get by tenant \"\" (single-user mode's): %v, want ErrNotFound", err)
	}
	if _, err := q.Get(ctx, "acme", "qnope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing id: %v", err)
	}
	list, err := q.List(ctx, Filter{})
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].Arguments != nil || list[0].Meta != nil {
		t.Errorf("List = %+v, %v", list, err)
	}
	// Nothing of the arguments or meta is on disk in clear.
	q.Close()
	for _, f := range []string{q.Path(), q.Path() + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("secret-plan")) || bytes.Contains(b, []byte("s-1")) {
			t.Errorf("%s holds the arguments or meta in clear", f)
		}
	}
}

func TestEnqueueValidation(t *testing.T) {
	q := openQueue(t, t.TempDir(), &Options{MaxEntryBytes: 100})
	for _, e := range []Entry{
		{Tenant: "t", Tool: "x"},
		{Tenant: "t", Target: "x"},
		call("t", "up", "tool", `{"a":`),
		{Tenant: "t", Target: "up", Tool: "x", IdempotencyKey: strings.Repeat("k", 257)},
	} {
		if _, err := q.Enqueue(t.Context(), e); err == nil {
			t.Errorf("Enqueue(%+v) accepted", e)
		}
	}
	if _, err := q.Enqueue(t.Context(), call("t", "up", "tool", `{"a":"`+strings.Repeat("x", 100)+`"}`)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized entry: %v", err)
	}
	nokey, err := Open(t.Context(), q.Path(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nokey.Close()
	if _, err := nokey.Enqueue(t.Context(), call("t", "up", "tool", `{}`)); !errors.Is(err, ErrNoKey) {
		t.Errorf("Enqueue without a key: %v", err)
	}
}

func TestIdempotentEnqueue(t *testing.T) {
	q := openQueue(t, t.TempDir(), nil)
	e := call("acme", "up", "tool", `{"n":1}`)
	e.IdempotencyKey = "order-7"
	a := mustEnqueue(t, q, e)
	e.Arguments = json.RawMessage(`{"n":2}`)
	if b := mustEnqueue(t, q, e); b != a {
		t.Errorf("same key enqueued twice: ids %s and %s", a, b)
	}
	got, _ := q.Get(t.Context(), "acme", a)
	if string(got.Arguments) != `{"n":1}` {
		t.Errorf("the second enqueue changed the arguments: %s", got.Arguments)
	}
	e.Tenant = "other"
	if c := mustEnqueue(t, q, e); c == a {
		t.Error("another tenant's key matched")
	}
	// Concurrent enqueues of one key store one entry.
	ids := make([]string, 20)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			e := call("acme", "up", "tool", `{}`)
			e.IdempotencyKey = "burst"
			ids[i] = mustEnqueue(t, q, e)
		})
	}
	wg.Wait()
	if len(slices.Compact(slices.Clone(ids))) != 1 {
		t.Errorf("concurrent enqueues of one key gave ids %v", ids)
	}
	a1, _ := q.Get(t.Context(), "acme", a)
	o, _ := q.Get(t.Context(), "other", mustEnqueue(t, q, e))
	if a1.DeliveryKey() == o.DeliveryKey() {
		t.Error("two tenants' entries with one idempotency key share a delivery key")
	}
}

func TestBounds(t *testing.T) {
	ctx := t.Context()
	q := openQueue(t, t.TempDir(), &Options{TenantMaxEntries: 3, MaxEntries: 5, TenantMaxBytes: 1000, MaxBytes: 100000})
	var ids []string
	for range 3 {
		ids = append(ids, mustEnqueue(t, q, call("a", "up", "tool", `{}`)))
	}
	_, err := q.Enqueue(ctx, call("a", "up", "tool", `{}`))
	var fe *FullError
	if !errors.Is(err, ErrFull) || !errors.As(err, &fe) || fe.Scope != "tenant" || fe.Entries != 3 || fe.MaxEntries != 3 {
		t.Fatalf("fourth entry of a tenant: %v", err)
	}
	for _, want := range []string{`tenant "a" holds 3 of 3 entries`, "purge"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	mustEnqueue(t, q, call("b", "up", "tool", `{}`))
	mustEnqueue(t, q, call("b", "up", "tool", `{}`))
	_, err = q.Enqueue(ctx, call("c", "up", "tool", `{}`))
	if !errors.As(err, &fe) || fe.Scope != "queue" || fe.Entries != 5 {
		t.Fatalf("sixth entry of the queue: %v", err)
	}
	if err := q.Purge(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, call("c", "up", "tool", `{}`))
	if err := q.Purge(ctx, ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("second purge: %v", err)
	}
	// Bytes: a tenant's bound counts sealed bytes.
	_, err = q.Enqueue(ctx, call("d", "up", "tool", `{"x":"`+strings.Repeat("y", 990)+`"}`))
	if !errors.As(err, &fe) || fe.Scope != "tenant" || fe.MaxBytes != 1000 {
		t.Errorf("entry over the tenant's bytes: %v", err)
	}
	tu, total, err := q.Usage(ctx, "a")
	if err != nil || tu.Entries != 2 || total.Entries != 5 {
		t.Errorf("Usage = %+v %+v %v", tu, total, err)
	}
	// Counts survive a reopen (and the recount agrees).
	q.Close()
	q = openQueue(t, filepath.Dir(q.Path()), &Options{TenantMaxEntries: 3, MaxEntries: 5})
	if tu2, total2, _ := q.Usage(ctx, "a"); tu2 != tu || total2 != total {
		t.Errorf("Usage after reopen = %+v %+v, want %+v %+v", tu2, total2, tu, total)
	}
}

// recorder is a fake upstream: it records deliveries and fails as told.
type recorder struct {
	mu    sync.Mutex
	got   []string // entry ids, in delivery order
	fails map[string]int
	err   error
}

func (r *recorder) deliver(ctx context.Context, e *Entry) (json.RawMessage, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e.ID)
	if r.fails[e.ID] > 0 {
		r.fails[e.ID]--
		if r.err != nil {
			return nil, r.err
		}
		return nil, fmt.Errorf("upstream down (%s)", e.Tool)
	}
	return json.RawMessage(fmt.Sprintf(`{"echo":%s}`, e.Arguments)), nil
}

func (r *recorder) deliveries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func deliverInBackground(t *testing.T, q *Queue, target string, fn DeliverFunc) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Deliver(ctx, target, fn) }()
	return func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) && !errors.Is(err, ErrClosed) {
			t.Errorf("Deliver returned %v", err)
		}
	}
}

func TestDeliverInOrderWithRetries(t *testing.T) {
	ctx := t.Context()
	var doneMu sync.Mutex
	var announced []Entry
	opts := fastOpts()
	opts.OnDone = func(e Entry) {
		doneMu.Lock()
		announced = append(announced, e)
		doneMu.Unlock()
	}
	q := openQueue(t, t.TempDir(), opts)
	var a, b []string
	for i := range 5 {
		e := call("t", "alpha", "tool", fmt.Sprintf(`{"i":%d}`, i))
		e.Meta = map[string]string{"n": fmt.Sprint(i)}
		a = append(a, mustEnqueue(t, q, e))
		b = append(b, mustEnqueue(t, q, call("t", "beta", "tool", fmt.Sprintf(`{"i":%d}`, i))))
	}
	if ts, _ := q.Targets(ctx); !slices.Equal(ts, []string{"alpha", "beta"}) {
		t.Errorf("Targets = %v", ts)
	}
	r := &recorder{fails: map[string]int{a[1]: 3, b[0]: 1}}
	stopA := deliverInBackground(t, q, "alpha", r.deliver)
	stopB := deliverInBackground(t, q, "beta", r.deliver)
	defer stopA()
	defer stopB()
	waitFor(t, "every delivery", func() bool {
		l, _ := q.List(ctx, Filter{State: Done})
		return len(l) == 10
	})
	var gotA, gotB []string
	for _, id := range r.deliveries() {
		if slices.Contains(a, id) {
			gotA = append(gotA, id)
		} else {
			gotB = append(gotB, id)
		}
	}
	wantA := []string{a[0], a[1], a[1], a[1], a[1], a[2], a[3], a[4]}
	wantB := []string{b[0], b[0], b[1], b[2], b[3], b[4]}
	if !slices.Equal(gotA, wantA) || !slices.Equal(gotB, wantB) {
		t.Errorf("delivery order\nalpha %v\nwant  %v\nbeta  %v\nwant  %v", gotA, wantA, gotB, wantB)
	}
	e, err := q.Get(ctx, "t", a[1])
	if err != nil || e.State != Done || e.Attempts != 4 || string(e.Result) != `{"echo":{"i":1}}` || e.LastError != "" || e.DoneAt.IsZero() {
		t.Errorf("entry retried 3 times: %+v %v", e, err)
	}
	doneMu.Lock()
	defer doneMu.Unlock()
	if len(announced) != 10 {
		t.Fatalf("OnDone called %d times, want 10", len(announced))
	}
	for _, e := range announced {
		if e.State != Done || e.Result == nil || (e.Target == "alpha" && e.Meta["n"] == "") {
			t.Errorf("OnDone got %+v", e)
		}
	}
	if ts, _ := q.Targets(ctx); len(ts) != 0 {
		t.Errorf("Targets after delivering everything = %v", ts)
	}
}

func TestBackoff(t *testing.T) {
	q := openQueue(t, t.TempDir(), &Options{BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	for attempts, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 40: time.Second} {
		for range 20 {
			if d := q.backoff(attempts); d < want*3/4 || d > want*5/4 {
				t.Errorf("backoff(%d) = %v, want %v ± 25%%", attempts, d, want)
			}
		}
	}
	// Fail with a zero retryAt schedules the backoff; a given one wins.
	id := mustEnqueue(t, q, call("t", "up", "tool", `{}`))
	e, err := q.Next(t.Context(), "up")
	if err != nil || e.ID != id {
		t.Fatal(e, err)
	}
	before := time.Now()
	if err := q.Fail(t.Context(), id, errors.New("boom"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	got, _ := q.Get(t.Context(), "t", id)
	if got.State != Pending || got.NextAttempt.Before(before.Add(75*time.Millisecond)) || got.NextAttempt.After(after.Add(125*time.Millisecond)) || got.LastError != "boom" {
		t.Errorf("after a failure: state %s, next attempt %v after the failure, error %q", got.State, got.NextAttempt.Sub(before), got.LastError)
	}
	at := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	// Not due for about 100 ms: Next waits, then claims it again.
	if e, err := q.Next(t.Context(), "up"); err != nil || e.Attempts != 2 {
		t.Fatal(e, err)
	}
	if err := q.Fail(t.Context(), id, errors.New("later"), at); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Get(t.Context(), "t", id); !got.NextAttempt.Equal(at) {
		t.Errorf("NextAttempt = %v, want %v", got.NextAttempt, at)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if e, err := q.Next(ctx, "up"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next before the entry is due: %v, %v", e, err)
	}
}

func TestMaxAttemptsAndRetry(t *testing.T) {
	ctx := t.Context()
	var failed atomic.Int32
	opts := fastOpts()
	opts.MaxAttempts = 3
	opts.OnDone = func(e Entry) {
		if e.State == Failed && e.LastError != "" && string(e.Arguments) == `{"k":1}` {
			failed.Add(1)
		}
	}
	q := openQueue(t, t.TempDir(), opts)
	bad := mustEnqueue(t, q, call("t", "up", "flaky", `{"k":1}`))
	good := mustEnqueue(t, q, call("t", "up", "fine", `{}`))
	perm := mustEnqueue(t, q, call("t", "up", "gone", `{}`))
	r := &recorder{fails: map[string]int{bad: 100}}
	fn := func(ctx context.Context, e *Entry) (json.RawMessage, error) {
		if e.Tool == "gone" {
			r.deliver(ctx, e)
			return nil, Permanent(errors.New("unknown tool"))
		}
		return r.deliver(ctx, e)
	}
	stop := deliverInBackground(t, q, "up", fn)
	waitFor(t, "the failures", func() bool {
		l, _ := q.List(ctx, Filter{State: Failed})
		d, _ := q.List(ctx, Filter{State: Done})
		return len(l) == 2 && len(d) == 1
	})
	e, _ := q.Get(ctx, "t", bad)
	if e.Attempts != 3 || !strings.Contains(e.LastError, "upstream down") || e.DoneAt.IsZero() {
		t.Errorf("failed entry: %+v", e)
	}
	if e, _ := q.Get(ctx, "t", perm); e.Attempts != 1 || e.LastError != "unknown tool" {
		t.Errorf("permanently failed entry: %+v", e)
	}
	if failed.Load() != 1 {
		t.Errorf("OnDone saw the failure %d times", failed.Load())
	}
	if err := q.Retry(ctx, good); !errors.Is(err, ErrState) {
		t.Errorf("Retry of a done entry: %v", err)
	}
	r.mu.Lock()
	r.fails[bad] = 0
	r.mu.Unlock()
	if err := q.Retry(ctx, bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retried entry", func() bool {
		e, _ := q.Get(ctx, "t", bad)
		return e.State == Done
	})
	stop()
	if e, _ := q.Get(ctx, "t", bad); e.Attempts != 1 || string(e.Result) != `{"echo":{"k":1}}` {
		t.Errorf("retried entry: %+v", e)
	}
	if err := q.Retry(ctx, "qnope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Retry of a missing entry: %v", err)
	}
}

// TestInterruptedDelivery: a consumer that ends mid-delivery (here: a
// Queue closed without an outcome) leaves the entry delivering; the next
// consumer delivers it again, and fails it once the interruptions reach
// MaxAttempts.
func TestInterruptedDelivery(t *testing.T) {
	dir := t.TempDir()
	opts := fastOpts()
	opts.MaxAttempts = 2
	q1 := openQueue(t, dir, opts)
	id := mustEnqueue(t, q1, call("t", "up", "tool", `{}`))
	next := mustEnqueue(t, q1, call("t", "up", "tool", `{}`))
	if e, err := q1.Next(t.Context(), "up"); err != nil || e.ID != id || e.Attempts != 1 || e.State != Delivering {
		t.Fatalf("Next = %+v, %v", e, err)
	}
	q1.Close()

	q2 := openQueue(t, dir, opts)
	if l, _ := q2.List(t.Context(), Filter{State: Delivering}); len(l) != 1 {
		t.Fatalf("delivering entries after the crash: %+v", l)
	}
	e, err := q2.Next(t.Context(), "up")
	if err != nil || e.ID != id || e.Attempts != 2 {
		t.Fatalf("Next after a crash = %+v, %v; want the interrupted entry again", e, err)
	}
	q2.Close()

	q3 := openQueue(t, dir, opts)
	e, err = q3.Next(t.Context(), "up")
	if err != nil || e.ID != next {
		t.Fatalf("Next after two interruptions = %+v, %v; want the next entry", e, err)
	}
	if f, _ := q3.Get(t.Context(), "t", id); f.State != Failed || !strings.Contains(f.LastError, "interrupted 2 times") {
		t.Errorf("twice-interrupted entry: %+v", f)
	}
}

func TestCancelledDeliveryIsReleased(t *testing.T) {
	q := openQueue(t, t.TempDir(), fastOpts())
	id := mustEnqueue(t, q, call("t", "up", "tool", `{}`))
	ctx, cancel := context.WithCancel(t.Context())
	err := q.Deliver(ctx, "up", func(ctx context.Context, e *Entry) (json.RawMessage, error) {
		cancel()
		return nil, ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Deliver = %v", err)
	}
	e, _ := q.Get(t.Context(), "t", id)
	if e.State != Pending || e.LastError != "" || e.Attempts != 1 || e.NextAttempt.After(time.Now()) {
		t.Errorf("entry after a cancelled delivery: %+v", e)
	}
}

func TestCloseStopsDeliver(t *testing.T) {
	q := openQueue(t, t.TempDir(), fastOpts())
	done := make(chan error, 1)
	go func() {
		done <- q.Deliver(context.Background(), "up", func(context.Context, *Entry) (json.RawMessage, error) { return nil, nil })
	}()
	time.Sleep(20 * time.Millisecond)
	q.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Deliver after Close = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver did not return after Close")
	}
	if _, err := q.Enqueue(t.Context(), call("t", "up", "tool", `{}`)); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v", err)
	}
}

func TestTamperedRows(t *testing.T) {
	ctx := t.Context()
	q := openQueue(t, t.TempDir(), fastOpts())
	a := mustEnqueue(t, q, call("alice", "up", "tool", `{"who":"alice"}`))
	b := mustEnqueue(t, q, call("bob", "up", "tool", `{"who":"bob"}`))
	c := mustEnqueue(t, q, call("bob", "up", "tool", `{"who":"carol"}`))
	db := rawDB(t, q)
	// Move alice's sealed call into bob's entry, and flip a byte of
	// carol's.
	if _, err := db.Exec(`UPDATE entries SET payload = (SELECT payload FROM entries WHERE id = ?) WHERE id = ?`, a, b); err != nil {
		t.Fatal(err)
	}
	var p []byte
	if err := db.QueryRow(`SELECT payload FROM entries WHERE id = ?`, c).Scan(&p); err != nil {
		t.Fatal(err)
	}
	p[30] ^= 1
	if _, err := db.Exec(`UPDATE entries SET payload = ? WHERE id = ?`, p, c); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{b, c} {
		if _, err := q.Get(ctx, "bob", id); !errors.Is(err, sealbox.ErrOpen) {
			t.Errorf("Get of a tampered entry: %v, want sealbox.ErrOpen", err)
		}
	}
	// The consumer fails them for good and goes on.
	r := &recorder{}
	stop := deliverInBackground(t, q, "up", r.deliver)
	waitFor(t, "the tampered entries to fail", func() bool {
		l, _ := q.List(ctx, Filter{State: Failed})
		return len(l) == 2
	})
	stop()
	if got := r.deliveries(); !slices.Equal(got, []string{a}) {
		t.Errorf("delivered %v, want only %s", got, a)
	}
}

func TestReencrypt(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	box, err := sealbox.New(ctx, sealbox.FileKey(filepath.Join(dir, "queue.key")), nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Open(ctx, filepath.Join(dir, "queue.db"), box, fastOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var ids []string
	for i := range 250 {
		ids = append(ids, mustEnqueue(t, q, call("t", "up", "tool", fmt.Sprintf(`{"i":%d}`, i))))
	}
	for _, id := range ids[:3] {
		if err := q.Complete(ctx, id, json.RawMessage(`{"ok":true}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := box.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := mustEnqueue(t, q, call("t", "up", "tool", `{"fresh":1}`))
	n, err := q.Reencrypt(ctx)
	if err != nil || n != 250 {
		t.Fatalf("Reencrypt = %d, %v; want 250", n, err)
	}
	rows, err := rawDB(t, q).Query(`SELECT id, payload, result FROM entries`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var p, r []byte
		rows.Scan(&id, &p, &r)
		for _, ct := range [][]byte{p, r} {
			if ct == nil {
				continue
			}
			if k, _ := sealbox.KeyID(ct); k != 2 {
				t.Errorf("entry %s still sealed with key %d", id, k)
			}
		}
	}
	for _, id := range append(ids[:5], fresh) {
		if _, err := q.Get(ctx, "t", id); err != nil {
			t.Errorf("Get after re-encryption: %v", err)
		}
	}
	if e, _ := q.Get(ctx, "t", ids[0]); string(e.Result) != `{"ok":true}` {
		t.Errorf("result after re-encryption: %s", e.Result)
	}
	if n, err := q.Reencrypt(ctx); n != 0 || err != nil {
		t.Errorf("second Reencrypt = %d, %v", n, err)
	}
}

func TestWrongKey(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir, nil)
	mustEnqueue(t, q, call("t", "up", "tool", `{}`))
	q.Close()
	box, err := sealbox.New(t.Context(), sealbox.FileKey(filepath.Join(t.TempDir(), "other.key")), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), filepath.Join(dir, "queue.db"), box, nil)
	if err == nil || !strings.Contains(err.Error(), "other.key is not the one key 1 was made with") {
		t.Errorf("Open with another key: %v", err)
	}
}

func TestKeyCounterPersisted(t *testing.T) {
	dir := t.TempDir()
	box, err := sealbox.New(t.Context(), sealbox.FileKey(filepath.Join(dir, "queue.key")), &sealbox.Options{MaxMessages: 8, Reserve: 3})
	if err != nil {
		t.Fatal(err)
	}
	q, err := Open(t.Context(), filepath.Join(dir, "queue.db"), box, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for range 8 {
		mustEnqueue(t, q, call("t", "up", "tool", `{}`))
	}
	_, err = q.Enqueue(t.Context(), call("t", "up", "tool", `{}`))
	if !errors.Is(err, sealbox.ErrKeyExhausted) {
		t.Fatalf("ninth seal: %v", err)
	}
	var used int64
	if err := rawDB(t, q).QueryRow(`SELECT used FROM seal_keys WHERE id = 1`).Scan(&used); err != nil || used < 8 {
		t.Errorf("stored count %d, %v", used, err)
	}
	if _, err := box.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, call("t", "up", "tool", `{}`))
}

func TestPrune(t *testing.T) {
	ctx := t.Context()
	q := openQueue(t, t.TempDir(), &Options{Retention: time.Hour, FailedRetention: 2 * time.Hour, MaxAttempts: 1})
	now := time.Now()
	q.now = func() time.Time { return now }
	done := mustEnqueue(t, q, call("t", "up", "tool", `{}`))
	failed := mustEnqueue(t, q, call("t", "up", "tool", `{}`))
	pending := mustEnqueue(t, q, call("t", "up", "tool", `{}`))
	if err := q.Complete(ctx, done, json.RawMessage(`"r"`)); err != nil {
		t.Fatal(err)
	}
	if err := q.Fail(ctx, failed, Permanent(errors.New("no")), time.Time{}); err != nil {
		t.Fatal(err)
	}
	ids := func() []string {
		l, _ := q.List(ctx, Filter{})
		var out []string
		for _, e := range l {
			out = append(out, e.ID)
		}
		return out
	}
	now = now.Add(90 * time.Minute)
	q.Prune(ctx)
	if got := ids(); !slices.Equal(got, []string{failed, pending}) {
		t.Errorf("after 90 minutes: %v", got)
	}
	now = now.Add(time.Hour)
	q.Prune(ctx)
	if got := ids(); !slices.Equal(got, []string{pending}) {
		t.Errorf("after 150 minutes: %v", got)
	}
	if tu, _, _ := q.Usage(ctx, "t"); tu.Entries != 1 {
		t.Errorf("usage after pruning: %+v", tu)
	}
}

func TestListFilters(t *testing.T) {
	ctx := t.Context()
	q := openQueue(t, t.TempDir(), nil)
	var ids []string
	for i := range 5 {
		ids = append(ids, mustEnqueue(t, q, call(fmt.Sprint("t", i%2), fmt.Sprint("up", i%3), "tool", `{}`)))
	}
	q.Complete(ctx, ids[0], nil)
	for _, tc := range []struct {
		f    Filter
		want []string
	}{
		{Filter{}, ids},
		{Filter{Tenant: "t1"}, []string{ids[1], ids[3]}},
		{Filter{Target: "up0"}, []string{ids[0], ids[3]}},
		{Filter{State: Done}, ids[:1]},
		{Filter{State: Pending, Tenant: "t0"}, []string{ids[2], ids[4]}},
		{Filter{After: ids[1], Limit: 2}, ids[2:4]},
	} {
		l, err := q.List(ctx, tc.f)
		var got []string
		for _, e := range l {
			got = append(got, e.ID)
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List(%+v) = %v, %v; want %v", tc.f, got, err, tc.want)
		}
	}
	if _, err := q.List(ctx, Filter{State: "lost"}); err == nil {
		t.Error("unknown state accepted")
	}
}

// TestGroupCommit: concurrent enqueues share commits, and each returns
// only when its entry is readable (committed).
func TestGroupCommit(t *testing.T) {
	q := openQueue(t, t.TempDir(), nil)
	before := q.commits.Load()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				id := mustEnqueue(t, q, call("t", "up", "tool", fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)))
				if _, err := q.Get(t.Context(), "t", id); err != nil {
					t.Errorf("entry not readable after Enqueue returned: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	commits := q.commits.Load() - before
	t.Logf("320 enqueues in %d commits", commits)
	if commits >= 320 {
		t.Errorf("320 concurrent enqueues took %d commits: no batching", commits)
	}
	if err := q.IntegrityCheck(t.Context()); err != nil {
		t.Error(err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	q := openQueue(t, t.TempDir(), nil)
	q.Close()
	if _, err := rawDB(t, q).Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), q.Path(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "newer mcpedge") {
		t.Errorf("Open of a newer schema: %v", err)
	}
	if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "missing", "q.db"), nil, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open in a missing directory: %v", err)
	}
}

func TestRun(t *testing.T) {
	q := openQueue(t, t.TempDir(), fastOpts())
	for i := range 6 {
		mustEnqueue(t, q, call("t", fmt.Sprint("up", i%3), "tool", `{}`))
	}
	r := &recorder{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, r.deliver) }()
	waitFor(t, "the first entries", func() bool { return len(r.deliveries()) == 6 })
	// A target that had no entries when Run started.
	late := mustEnqueue(t, q, call("t", "late", "tool", `{}`))
	waitFor(t, "the new target's entry", func() bool { return slices.Contains(r.deliveries(), late) })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if l, _ := q.List(t.Context(), Filter{State: Done}); len(l) != 7 {
		t.Errorf("%d entries done, want 7", len(l))
	}
}

// TestDurability checks the writer's synchronous setting: FULL for every
// batch with a durable write, NORMAL only for batches of claims.
func TestDurability(t *testing.T) {
	q := openQueue(t, t.TempDir(), fastOpts())
	mode := func() int {
		var m int
		if err := q.do(t.Context(), func(w *wtx) error {
			w.row(`PRAGMA synchronous`, nil, &m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	const full, normal = 2, 1
	mustEnqueue(t, q, call("t", "up", "tool", `{}`))
	if m := mode(); m != full {
		t.Errorf("synchronous = %d after an enqueue, want FULL (2)", m)
	}
	var m int
	if err := q.doLight(t.Context(), func(w *wtx) error {
		w.row(`PRAGMA synchronous`, nil, &m)
		return nil
	}); err != nil || m != normal {
		t.Errorf("synchronous in a light batch = %d, %v; want NORMAL (1)", m, err)
	}
	if m := mode(); m != full {
		t.Errorf("synchronous = %d in a durable batch after a light one, want FULL (2)", m)
	}
}

// TestPruneBacklog: more expired entries than one prune deletes are all
// deleted, in several transactions.
func TestPruneBacklog(t *testing.T) {
	defer func(n int) { pruneBatch = n }(pruneBatch)
	pruneBatch = 3
	ctx := t.Context()
	q := openQueue(t, t.TempDir(), &Options{Retention: time.Hour})
	for range 10 {
		if err := q.Complete(ctx, mustEnqueue(t, q, call("t", "up", "tool", `{}`)), nil); err != nil {
			t.Fatal(err)
		}
	}
	later := time.Now().Add(2 * time.Hour)
	if err := q.do(ctx, func(w *wtx) error { q.now = func() time.Time { return later }; return nil }); err != nil {
		t.Fatal(err)
	}
	before := q.commits.Load()
	if err := q.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every expired entry to go", func() bool {
		tu, _, _ := q.Usage(ctx, "t")
		return tu.Entries == 0
	})
	if n := q.commits.Load() - before; n < 4 {
		t.Errorf("10 entries pruned in %d commits, want at least 4 of at most 3 entries", n)
	}
	q.Close() // the writer stops reading pruneBatch before it is restored
}

// TestIdleTargetCostsNoWrites: a consumer polling an empty line, or one
// whose head waits for its backoff, looks on a read connection only.
func TestIdleTargetCostsNoWrites(t *testing.T) {
	q := openQueue(t, t.TempDir(), &Options{PollInterval: 5 * time.Millisecond})
	id := mustEnqueue(t, q, call("t", "busy", "tool", `{}`))
	if _, err := q.Next(t.Context(), "busy"); err != nil {
		t.Fatal(err)
	}
	if err := q.Fail(t.Context(), id, errors.New("down"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	before := q.commits.Load()
	for _, target := range []string{"empty", "busy"} {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		if e, err := q.Next(ctx, target); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Next(%s) = %v, %v", target, e, err)
		}
		cancel()
	}
	if n := q.commits.Load() - before; n != 0 {
		t.Errorf("idle polling made %d commits", n)
	}
}
