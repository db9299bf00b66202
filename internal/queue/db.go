package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/sqlitefile"
)

// BusyTimeout is how long a write waits for another process's write
// transaction (the CLI's, or the gateway's when the CLI writes).
const BusyTimeout = 10 * time.Second

// schemaVersion is the PRAGMA user_version of the schema below.
const schemaVersion = 1

// schema is the whole schema. Times are INTEGER Unix microseconds.
//
// seq orders entries (AUTOINCREMENT: never reused, so order survives
// purges). line is the partial index a consumer reads a target's head
// from: only pending and delivering entries are in it. usage holds each
// tenant's entry count and bytes, maintained in the transactions that
// change entries, so a bound is checked without counting rows.
// seal_keys is the sealbox key ring: ids, salts, check values and
// message counts; no key material. The indexes of laterIndexes are part
// of it.
const schema = `
CREATE TABLE entries (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	id         TEXT NOT NULL UNIQUE,
	tenant     TEXT NOT NULL,
	target     TEXT NOT NULL,
	tool       TEXT NOT NULL,
	idem_key   TEXT NOT NULL,
	state      TEXT NOT NULL CHECK (state IN ('pending', 'delivering', 'done', 'failed')),
	attempts   INTEGER NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	owner      TEXT NOT NULL DEFAULT '',
	payload    BLOB NOT NULL,
	result     BLOB,
	size       INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	next_at    INTEGER NOT NULL,
	done_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX entries_idem ON entries (tenant, idem_key);
CREATE INDEX entries_line ON entries (target, seq) WHERE state IN ('pending', 'delivering');
CREATE INDEX entries_tenant ON entries (tenant, seq);
CREATE INDEX entries_ended ON entries (done_at) WHERE state IN ('done', 'failed');
CREATE TABLE usage (
	tenant  TEXT PRIMARY KEY,
	entries INTEGER NOT NULL,
	bytes   INTEGER NOT NULL
) STRICT;
CREATE TABLE seal_keys (
	id          INTEGER PRIMARY KEY,
	salt        BLOB NOT NULL,
	check_value BLOB NOT NULL,
	used        INTEGER NOT NULL,
	created_at  INTEGER NOT NULL
) STRICT;
`

// A Queue is an open queue database. It is safe for concurrent use.
type Queue struct {
	path     string
	box      *sealbox.Box
	opts     Options
	log      *slog.Logger
	instance string // marks the entries this Queue claimed
	now      func() time.Time

	read, write *sql.DB
	conn        *sql.Conn // the writer's connection (of write)

	ops     chan *op
	closing chan struct{} // closed by Close: the writer finishes and stops
	stopped chan struct{} // closed when the writer has stopped
	once    sync.Once

	commits atomic.Int64 // committed transactions, for tests
	// stmts are the writer's prepared statements, by query; syncNormal
	// says its connection is at synchronous=NORMAL. Only the writer
	// goroutine uses them.
	stmts      map[string]*sql.Stmt
	syncNormal bool
	pruneMore  bool // the last prune hit its batch size

	mu       sync.Mutex
	waiters  map[string]chan struct{} // per target, closed on a change
	inflight map[string]bool          // entries Next returned, without an outcome yet
}

// Open opens the queue database at path, creating it (mode 0600) if
// needed; its directory must exist. box seals and opens arguments and
// results, and keeps its key ring in the database; it may be nil for
// tools that only list, retry and purge (they return [ErrNoKey] for the
// rest). opts may be nil.
func Open(ctx context.Context, path string, box *sealbox.Box, opts *Options) (*Queue, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.setDefaults()
	q := &Queue{
		path:     path,
		box:      box,
		opts:     o,
		log:      o.Logger,
		instance: newID(),
		now:      time.Now,
		ops:      make(chan *op, maxBatch),
		closing:  make(chan struct{}),
		stopped:  make(chan struct{}),
		waiters:  map[string]chan struct{}{},
		inflight: map[string]bool{},
		stmts:    map[string]*sql.Stmt{},
	}
	if err := q.open(ctx); err != nil {
		return nil, fmt.Errorf("queue: opening %s: %w", path, err)
	}
	go q.writer()
	if err := q.do(ctx, q.recount); err != nil {
		q.Close()
		return nil, fmt.Errorf("queue: opening %s: %w", path, err)
	}
	if box != nil {
		if err := box.Attach(ctx, keyStore{q}); err != nil {
			q.Close()
			return nil, fmt.Errorf("queue: %s: %w", path, err)
		}
	}
	return q, nil
}

func (q *Queue) open(ctx context.Context) (err error) {
	// Every commit is durable: an Enqueue that returned is on disk.
	if q.read, q.write, err = sqlitefile.Open(ctx, q.path, BusyTimeout, "synchronous(FULL)"); err != nil {
		return err
	}
	if err := migrate(ctx, q.write); err != nil {
		q.write.Close()
		q.read.Close()
		return err
	}
	if q.conn, err = q.write.Conn(ctx); err != nil {
		q.write.Close()
		q.read.Close()
		return err
	}
	return nil
}

// laterIndexes were added to schema version 1 after it was released: an
// older mcpedge ignores them, so they need no new version, and migrate
// creates them in databases made before them.
//
// entries_stats covers Stats (metrics, readiness): its grouped count
// reads the index instead of the rows, about 5 times faster (16 ms
// instead of 83 ms for 100,000 entries in BenchmarkStats), for an
// enqueue cost within the benchmark's noise.
const laterIndexes = `
CREATE INDEX IF NOT EXISTS entries_stats ON entries (target, state, created_at);
`

// migrate creates the schema in a new database (and the later indexes in
// one made before them), and refuses one made by a newer mcpedge.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return err
	}
	switch {
	case v == schemaVersion:
		if _, err := tx.ExecContext(ctx, laterIndexes); err != nil {
			return fmt.Errorf("creating indexes: %w", err)
		}
		return tx.Commit()
	case v > schemaVersion:
		return fmt.Errorf("the queue database has schema version %d, made by a newer mcpedge (this one knows %d)", v, schemaVersion)
	}
	if _, err := tx.ExecContext(ctx, schema+laterIndexes); err != nil {
		return fmt.Errorf("creating the schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

// Close stops the writer after the operations already submitted, and
// closes the database. Deliver loops return ErrClosed; an entry one was
// delivering stays delivering, and the next consumer delivers it again.
// Close is safe to call more than once.
func (q *Queue) Close() error {
	var err error
	q.once.Do(func() {
		close(q.closing)
		<-q.stopped
		err = errors.Join(q.write.Close(), q.read.Close())
	})
	return err
}

// Box is the box the queue was opened with (nil without a key), for
// rotating its key before [Queue.Reencrypt].
func (q *Queue) Box() *sealbox.Box { return q.box }

// Path is the database file.
func (q *Queue) Path() string { return q.path }

// IntegrityCheck runs PRAGMA integrity_check and returns an error listing
// what it found unless the database is sound.
func (q *Queue) IntegrityCheck(ctx context.Context) error {
	rows, err := q.read.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("queue: integrity check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("queue: integrity check: %w", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("queue: integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("queue: %s fails the integrity check: %s", q.path, strings.Join(problems, "; "))
	}
	return nil
}

// The writer.
//
// Every write goes through one goroutine, which takes the operations
// waiting in q.ops, runs them in one BEGIN IMMEDIATE transaction and
// commits once (group commit): while one commit waits for the disk, the
// next batch gathers. An operation's caller gets its result after the
// commit, so a write that returned is durable.

// An op is one write. fn runs in the batch's transaction; it returns the
// op's own outcome (ErrNotFound, a FullError, …), which never aborts the
// batch. A failed statement does: fn's statements go through w, which
// records the first database error, and the batch is then rolled back and
// its ops run again one per transaction, so one bad op fails alone.
type op struct {
	ctx     context.Context
	fn      func(w *wtx) error
	done    chan error
	targets []string // targets whose line the op changed, set by fn
	light   bool     // see doLight
}

// do runs fn in the writer and waits for its commit. If ctx ends before
// fn's transaction begins, fn does not run and do returns ctx's error.
func (q *Queue) do(ctx context.Context, fn func(w *wtx) error) error {
	return q.submit(&op{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

// doLight is do for a write that need not survive a power loss, only a
// crash of the process: a batch of nothing but light ops commits without
// waiting for the disk (synchronous=NORMAL). Claims are light: losing one
// to a power cut means the entry is delivered again, which at-least-once
// allows anyway.
func (q *Queue) doLight(ctx context.Context, fn func(w *wtx) error) error {
	return q.submit(&op{ctx: ctx, fn: fn, done: make(chan error, 1), light: true})
}

func (q *Queue) submit(o *op) error {
	ctx := o.ctx
	select {
	case q.ops <- o:
	case <-q.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctxErr(ctx)
	}
	// Wait for the outcome even when ctx ends: the writer skips an op
	// whose ctx ended before its transaction began, and one under way
	// ends with its commit, so the wait is short, and the caller knows
	// whether its write happened (and fn's results are not written while
	// the caller reads them).
	select {
	case err := <-o.done:
		return err
	case <-q.stopped:
		// The writer may have taken o just before stopping.
		select {
		case err := <-o.done:
			return err
		default:
			return ErrClosed
		}
	}
}

func (q *Queue) writer() {
	defer close(q.stopped)
	defer func() {
		for _, st := range q.stmts {
			st.Close()
		}
		q.conn.Close()
	}()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	var pruneAgain <-chan time.Time // set while expired entries are left
	batch := make([]*op, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case o := <-q.ops:
			batch = append(batch, o)
		case <-prune.C:
			batch = append(batch, &op{ctx: context.Background(), fn: q.prune, done: make(chan error, 1)})
		case <-pruneAgain:
			pruneAgain = nil
			batch = append(batch, &op{ctx: context.Background(), fn: q.prune, done: make(chan error, 1)})
		case <-q.closing:
			// Finish what was submitted before Close.
			for {
				select {
				case o := <-q.ops:
					q.run([]*op{o})
				default:
					return
				}
			}
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case o := <-q.ops:
				batch = append(batch, o)
			default:
				break gather
			}
		}
		q.run(batch)
		if q.pruneMore && pruneAgain == nil {
			// Delete the rest soon, in transactions of their own, so no
			// write waits long behind a prune.
			pruneAgain = time.After(10 * time.Millisecond)
		}
	}
}

// run commits a batch, or, when a statement fails, each op alone.
func (q *Queue) run(batch []*op) {
	live := batch[:0:0]
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.done <- ctxErr(o.ctx)
			continue
		}
		live = append(live, o)
	}
	if len(live) == 0 {
		return
	}
	results, err := q.commit(live)
	if err != nil && len(live) > 1 {
		for _, o := range live {
			q.run([]*op{o})
		}
		return
	}
	var targets []string
	for i, o := range live {
		if err != nil {
			o.done <- err
			continue
		}
		targets = append(targets, o.targets...)
		o.done <- results[i]
	}
	for _, t := range targets {
		q.signal(t)
	}
}

// commit runs ops in one transaction. It returns each op's outcome, or
// the error that rolled the transaction back.
//
// The writer keeps one connection (q.conn) and its prepared statements
// for the life of the queue, and begins and ends transactions with SQL
// itself: a database/sql Tx would hold the pool's only write connection,
// so statements could not be prepared for reuse across transactions.
func (q *Queue) commit(ops []*op) ([]error, error) {
	ctx := context.Background()
	light := true
	for _, o := range ops {
		light = light && o.light
	}
	// The connection opens with synchronous=FULL; switch only when the
	// batch's kind differs from the last one's. A failed switch fails the
	// batch, so no durable write ever commits under NORMAL.
	if light != q.syncNormal {
		mode := "FULL"
		if light {
			mode = "NORMAL"
		}
		if _, err := q.conn.ExecContext(ctx, `PRAGMA synchronous = `+mode); err != nil {
			return nil, q.dbErr("setting synchronous="+mode, err)
		}
		q.syncNormal = light
	}
	if _, err := q.conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return nil, q.dbErr("starting a write transaction", err)
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = q.conn.ExecContext(ctx, `ROLLBACK`)
		}
	}()
	w := &wtx{q: q, ctx: ctx, now: q.now(), usage: map[string]*usage{}}
	results := make([]error, len(ops))
	for i, o := range ops {
		w.op = o
		o.targets = o.targets[:0]
		results[i] = o.fn(w)
		if w.err != nil {
			return nil, q.dbErr("writing", w.err)
		}
	}
	if err := w.flushUsage(); err != nil {
		return nil, q.dbErr("writing", err)
	}
	if _, err := q.conn.ExecContext(ctx, `COMMIT`); err != nil {
		return nil, q.dbErr("committing", err)
	}
	committed = true
	q.commits.Add(1)
	return results, nil
}

func (q *Queue) dbErr(doing string, err error) error {
	if sqlitefile.IsBusy(err) {
		return fmt.Errorf("queue: %s: the database stayed locked by another process for %v: %w", doing, BusyTimeout, err)
	}
	return fmt.Errorf("queue: %s: %w", doing, err)
}

// wtx is the transaction ops run in.
type wtx struct {
	q   *Queue
	ctx context.Context
	now time.Time
	op  *op
	err error // the first failed statement
	// usage caches the usage rows this transaction read and changed;
	// total is the sum over all tenants, loaded on first use.
	usage map[string]*usage
	total *usage
}

type usage struct {
	entries, bytes int64
	dirty          bool
}

func (w *wtx) exec(query string, args ...any) int64 {
	if w.err != nil {
		return 0
	}
	st, err := w.stmt(query)
	if err != nil {
		w.err = err
		return 0
	}
	res, err := st.ExecContext(w.ctx, args...)
	if err != nil {
		w.err = err
		return 0
	}
	n, err := res.RowsAffected()
	if err != nil {
		w.err = err
	}
	return n
}

// row runs a query that returns at most one row and scans it; it returns
// false when there is no row (or a statement failed earlier).
func (w *wtx) row(query string, args []any, dest ...any) bool {
	if w.err != nil {
		return false
	}
	err := w.queryRow(query, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return false
	}
	if err != nil {
		w.err = err
		return false
	}
	return true
}

// stmt returns query prepared on the writer's connection: parsing a
// statement costs about as much as running it, and the writer runs the
// same few statements all day. Only the writer goroutine calls it.
func (w *wtx) stmt(query string) (*sql.Stmt, error) {
	st, ok := w.q.stmts[query]
	if !ok {
		var err error
		if st, err = w.q.conn.PrepareContext(w.ctx, query); err != nil {
			return nil, err
		}
		w.q.stmts[query] = st
	}
	return st, nil
}

// query runs a prepared statement that returns rows.
func (w *wtx) query(query string, args ...any) (*sql.Rows, error) {
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(w.ctx, args...)
}

// queryRow runs a prepared statement that returns at most one row. A
// failure to prepare shows when the row is scanned.
func (w *wtx) queryRow(query string, args ...any) *sql.Row {
	st, err := w.stmt(query)
	if err != nil {
		return w.q.conn.QueryRowContext(w.ctx, query, args...)
	}
	return st.QueryRowContext(w.ctx, args...)
}

// changed records that the op changed target's line, to wake its
// consumer after the commit.
func (w *wtx) changed(target string) { w.op.targets = append(w.op.targets, target) }

func (w *wtx) tenantUsage(tenant string) *usage {
	if u, ok := w.usage[tenant]; ok {
		return u
	}
	u := &usage{}
	w.row(`SELECT entries, bytes FROM usage WHERE tenant = ?`, []any{tenant}, &u.entries, &u.bytes)
	w.usage[tenant] = u
	return u
}

func (w *wtx) totalUsage() *usage {
	if w.total == nil {
		w.total = &usage{}
		w.row(`SELECT coalesce(sum(entries), 0), coalesce(sum(bytes), 0) FROM usage`, nil, &w.total.entries, &w.total.bytes)
	}
	return w.total
}

func (w *wtx) addUsage(tenant string, entries, bytes int64) {
	t := w.totalUsage()
	u := w.tenantUsage(tenant)
	u.entries += entries
	u.bytes += bytes
	u.dirty = true
	t.entries += entries
	t.bytes += bytes
}

func (w *wtx) flushUsage() error {
	for tenant, u := range w.usage {
		if !u.dirty {
			continue
		}
		if u.entries <= 0 {
			w.exec(`DELETE FROM usage WHERE tenant = ?`, tenant)
		} else {
			w.exec(`INSERT INTO usage (tenant, entries, bytes) VALUES (?, ?, ?)
				ON CONFLICT (tenant) DO UPDATE SET entries = excluded.entries, bytes = excluded.bytes`,
				tenant, u.entries, u.bytes)
		}
	}
	return w.err
}

// recount rebuilds the usage table from the entries, so a count can never
// drift for long (Open runs it).
func (q *Queue) recount(w *wtx) error {
	w.exec(`DELETE FROM usage`)
	w.exec(`INSERT INTO usage (tenant, entries, bytes) SELECT tenant, count(*), sum(size) FROM entries GROUP BY tenant`)
	return nil
}

// wait returns a channel closed at the next change of target's line.
func (q *Queue) wait(target string) <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	c, ok := q.waiters[target]
	if !ok {
		c = make(chan struct{})
		q.waiters[target] = c
	}
	return c
}

// signal wakes the consumer of target, and Run (which waits on "", a
// name no target has).
func (q *Queue) signal(target string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, t := range []string{target, anyTarget} {
		if c, ok := q.waiters[t]; ok {
			close(c)
			delete(q.waiters, t)
		}
	}
}

// anyTarget is the waiters key of Run, woken by a change of any target.
const anyTarget = ""

// keyStore keeps the sealbox key ring in the queue database.
type keyStore struct{ q *Queue }

var _ sealbox.Store = keyStore{}

func (k keyStore) Keys(ctx context.Context) ([]sealbox.KeyRecord, error) {
	rows, err := k.q.read.QueryContext(ctx, `SELECT id, salt, check_value, used, created_at FROM seal_keys`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sealbox.KeyRecord
	for rows.Next() {
		var r sealbox.KeyRecord
		var created int64
		if err := rows.Scan(&r.ID, &r.Salt, &r.Check, &r.Used, &created); err != nil {
			return nil, err
		}
		r.Created = time.UnixMicro(created).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

func (k keyStore) AddKey(ctx context.Context, r sealbox.KeyRecord) error {
	return k.q.do(ctx, func(w *wtx) error {
		var one int
		if w.row(`SELECT 1 FROM seal_keys WHERE id = ?`, []any{r.ID}, &one) {
			return sealbox.ErrKeyExists
		}
		w.exec(`INSERT INTO seal_keys (id, salt, check_value, used, created_at) VALUES (?, ?, ?, 0, ?)`,
			r.ID, r.Salt, r.Check, r.Created.UnixMicro())
		return nil
	})
}

func (k keyStore) Reserve(ctx context.Context, id uint32, n uint64) (uint64, error) {
	var before uint64
	err := k.q.do(ctx, func(w *wtx) error {
		var used int64
		if !w.row(`UPDATE seal_keys SET used = used + ? WHERE id = ? RETURNING used`, []any{int64(n), id}, &used) {
			if w.err == nil {
				return fmt.Errorf("no key %d in the key ring", id)
			}
			return nil
		}
		before = uint64(used) - n
		return nil
	})
	return before, err
}
