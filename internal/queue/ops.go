package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
)

// sealed is what an entry's payload holds, sealed.
type sealed struct {
	Arguments json.RawMessage   `json:"a,omitempty"`
	Meta      map[string]string `json:"m,omitempty"`
}

// The additional data of an entry's two sealed fields: a ciphertext only
// opens in the field, entry and tenant it was made for.
func callAD(tenant, id string) sealbox.AD { return sealbox.AD{Tenant: tenant, Record: id + "/call"} }
func resultAD(tenant, id string) sealbox.AD {
	return sealbox.AD{Tenant: tenant, Record: id + "/result"}
}

// Enqueue stores a tool call for delivery to e.Target and returns its id
// once it is durably committed. Only Tenant, Target, Tool, Arguments,
// IdempotencyKey and Meta are read from e.
//
// If the tenant already has an entry with e.IdempotencyKey, Enqueue
// stores nothing and returns that entry's id (whatever its state), so a
// caller that is not sure an Enqueue went through (its process restarted)
// can simply enqueue again with the same key. An empty IdempotencyKey
// gets a fresh one. When ctx ends before the entry's transaction begins,
// nothing is stored and ctx's error is returned; once it has begun,
// Enqueue waits for its commit (milliseconds, or up to [BusyTimeout]
// while another process holds the database).
//
// Past a bound it returns an [*FullError]; an entry whose arguments and
// meta exceed [Options.MaxEntryBytes] gets [ErrTooLarge]. Both are the
// caller's to report (backpressure); nothing is stored.
func (q *Queue) Enqueue(ctx context.Context, e Entry) (string, error) {
	if e.Target == "" || e.Tool == "" {
		return "", errors.New("queue: an entry needs a target and a tool")
	}
	if len(e.Arguments) > 0 && !json.Valid(e.Arguments) {
		return "", errors.New("queue: arguments are not valid JSON")
	}
	if len(e.IdempotencyKey) > 256 || !utf8.ValidString(e.IdempotencyKey) {
		return "", errors.New("queue: an idempotency key is at most 256 bytes of UTF-8")
	}
	if q.box == nil {
		return "", ErrNoKey
	}
	select {
	case <-q.closing:
		return "", ErrClosed
	default:
	}
	id := newID()
	key := e.IdempotencyKey
	if key == "" {
		key = id
	}
	plain, err := json.Marshal(sealed{Arguments: e.Arguments, Meta: e.Meta})
	if err != nil {
		return "", fmt.Errorf("queue: %w", err)
	}
	if len(plain) > q.opts.MaxEntryBytes {
		return "", fmt.Errorf("%w: arguments and meta take %d bytes, at most %d", ErrTooLarge, len(plain), q.opts.MaxEntryBytes)
	}
	if plain, err = q.sealTenant(ctx, e.Tenant, id+"/call", plain); err != nil {
		return "", err
	}
	payload, err := q.box.Seal(ctx, callAD(e.Tenant, id), plain)
	if err != nil {
		return "", fmt.Errorf("queue: sealing the call: %w", err)
	}
	size := int64(len(payload))
	var got string
	err = q.do(ctx, func(w *wtx) error {
		got = ""
		var existing string
		if w.row(`SELECT id FROM entries WHERE tenant = ? AND idem_key = ?`, []any{e.Tenant, key}, &existing) {
			got = existing
			return nil
		}
		u, t := w.tenantUsage(e.Tenant), w.totalUsage()
		if u.entries+1 > q.opts.TenantMaxEntries || u.bytes+size > q.opts.TenantMaxBytes {
			return &FullError{Scope: "tenant", Tenant: e.Tenant, Entries: u.entries, MaxEntries: q.opts.TenantMaxEntries, Bytes: u.bytes, MaxBytes: q.opts.TenantMaxBytes}
		}
		if t.entries+1 > q.opts.MaxEntries || t.bytes+size > q.opts.MaxBytes {
			return &FullError{Scope: "queue", Tenant: e.Tenant, Entries: t.entries, MaxEntries: q.opts.MaxEntries, Bytes: t.bytes, MaxBytes: q.opts.MaxBytes}
		}
		now := w.now.UnixMicro()
		w.exec(`INSERT INTO entries (id, tenant, target, tool, idem_key, state, payload, size, created_at, updated_at, next_at)
			VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)`,
			id, e.Tenant, e.Target, e.Tool, key, payload, size, now, now, now)
		w.addUsage(e.Tenant, 1, size)
		w.changed(e.Target)
		got = id
		return nil
	})
	if err != nil {
		return "", err
	}
	return got, nil
}

// Complete marks the entry done and stores result (sealed). Completing a
// done entry again changes nothing: the first result stays. OnDone is
// called after the commit.
func (q *Queue) Complete(ctx context.Context, id string, result json.RawMessage) error {
	e, err := q.load(ctx, nil, id, false)
	if err != nil {
		return err
	}
	err = q.complete(ctx, e, result)
	q.landed(id)
	return err
}

func (q *Queue) complete(ctx context.Context, e *Entry, result json.RawMessage) error {
	if q.box == nil {
		return ErrNoKey
	}
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	if !json.Valid(result) {
		return errors.New("queue: the result is not valid JSON")
	}
	inner, err := q.sealTenant(ctx, e.Tenant, e.ID+"/result", result)
	if err != nil {
		return err
	}
	sealedResult, err := q.box.Seal(ctx, resultAD(e.Tenant, e.ID), inner)
	if err != nil {
		return fmt.Errorf("queue: sealing the result: %w", err)
	}
	already := false
	var doneAt time.Time
	err = q.do(ctx, func(w *wtx) error {
		already = false
		var state, target string
		if !w.row(`SELECT state, target FROM entries WHERE id = ?`, []any{e.ID}, &state, &target) {
			return fmt.Errorf("%w: %s", ErrNotFound, e.ID)
		}
		if State(state) == Done {
			already = true
			return nil
		}
		doneAt = w.now
		now := w.now.UnixMicro()
		w.exec(`UPDATE entries SET state = 'done', result = ?, size = size + ?, last_error = '', owner = '', updated_at = ?, done_at = ? WHERE id = ?`,
			sealedResult, len(sealedResult), now, now, e.ID)
		w.addUsage(e.Tenant, 0, int64(len(sealedResult)))
		w.changed(target)
		return nil
	})
	if err != nil || already {
		return err
	}
	e.State, e.Result, e.LastError, e.DoneAt, e.UpdatedAt = Done, result, "", doneAt, doneAt
	e.Size += int64(len(sealedResult))
	q.notify(*e)
	return nil
}

// Fail records a failed delivery of the entry. The entry fails for good
// (state failed, OnDone called) when cause is [Permanent] or the entry
// has had MaxAttempts deliveries; otherwise it is pending again, due at
// retryAt, or after the backoff its attempts call for when retryAt is
// zero.
func (q *Queue) Fail(ctx context.Context, id string, cause error, retryAt time.Time) error {
	final, err := q.fail(ctx, &Entry{ID: id}, cause, retryAt)
	q.landed(id)
	if err != nil || !final || q.opts.OnDone == nil {
		return err
	}
	if e, err := q.load(ctx, nil, id, q.box == nil); err == nil {
		q.notify(*e)
	}
	return nil
}

// fail does Fail's write and updates e's state fields; it reports
// whether the entry failed for good.
func (q *Queue) fail(ctx context.Context, e *Entry, cause error, retryAt time.Time) (final bool, err error) {
	if cause == nil {
		cause = errors.New("unknown error")
	}
	msg := truncate(cause.Error(), maxErrorLen)
	err = q.do(ctx, func(w *wtx) error {
		var state, target string
		var attempts int
		if !w.row(`SELECT state, target, attempts FROM entries WHERE id = ?`, []any{e.ID}, &state, &target, &attempts) {
			return fmt.Errorf("%w: %s", ErrNotFound, e.ID)
		}
		if State(state) == Done {
			return fmt.Errorf("%w: entry %s is done", ErrState, e.ID)
		}
		now := w.now.UnixMicro()
		final = IsPermanent(cause) || attempts >= q.opts.MaxAttempts
		if final {
			w.exec(`UPDATE entries SET state = 'failed', last_error = ?, owner = '', updated_at = ?, done_at = ? WHERE id = ?`,
				msg, now, now, e.ID)
			e.State, e.DoneAt = Failed, w.now
		} else {
			at := retryAt
			if at.IsZero() {
				at = w.now.Add(q.backoff(attempts))
			}
			w.exec(`UPDATE entries SET state = 'pending', last_error = ?, owner = '', updated_at = ?, next_at = ? WHERE id = ?`,
				msg, now, at.UnixMicro(), e.ID)
			e.State, e.NextAttempt = Pending, at
		}
		e.LastError, e.UpdatedAt, e.Attempts = msg, w.now, attempts
		w.changed(target)
		return nil
	})
	return final, err
}

// backoff is the wait after a target's attempts-th failed delivery in a
// row: BackoffMin doubling up to BackoffMax, ±25%.
func (q *Queue) backoff(attempts int) time.Duration {
	d := q.opts.BackoffMin
	for i := 1; i < attempts && d < q.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, q.opts.BackoffMax)
	return d*3/4 + rand.N(d/2+1)
}

// release puts an entry this Queue was delivering back in line, without
// counting a failure (its delivery was cancelled).
func (q *Queue) release(ctx context.Context, e *Entry) error {
	return q.do(ctx, func(w *wtx) error {
		if w.exec(`UPDATE entries SET state = 'pending', owner = '', updated_at = ? WHERE id = ? AND state = 'delivering' AND owner = ?`,
			w.now.UnixMicro(), e.ID, q.instance) > 0 {
			w.changed(e.Target)
		}
		return nil
	})
}

// Retry puts a failed or pending entry back at its place in line, due
// now, with its attempts reset. A delivering or done entry is left alone
// ([ErrState]).
func (q *Queue) Retry(ctx context.Context, id string) error {
	return q.do(ctx, func(w *wtx) error {
		var state, target string
		if !w.row(`SELECT state, target FROM entries WHERE id = ?`, []any{id}, &state, &target) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		switch State(state) {
		case Delivering:
			return fmt.Errorf("%w: entry %s is being delivered", ErrState, id)
		case Done:
			return fmt.Errorf("%w: entry %s is done; enqueue the call again to repeat it", ErrState, id)
		}
		now := w.now.UnixMicro()
		w.exec(`UPDATE entries SET state = 'pending', attempts = 0, owner = '', updated_at = ?, next_at = ?, done_at = NULL WHERE id = ?`,
			now, now, id)
		w.changed(target)
		return nil
	})
}

// Purge deletes an entry in any state. Purging an entry being delivered
// does not stop that delivery; its result is then dropped.
func (q *Queue) Purge(ctx context.Context, id string) error {
	return q.do(ctx, func(w *wtx) error {
		var tenant, target string
		var size int64
		if !w.row(`DELETE FROM entries WHERE id = ? RETURNING tenant, target, size`, []any{id}, &tenant, &target, &size) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		w.addUsage(tenant, -1, -size)
		w.changed(target)
		return nil
	})
}

// pruneBatch bounds the entries of each state one prune deletes, so it
// never holds the write lock for long; the writer prunes again soon while
// more are left. A variable for tests.
var pruneBatch = 1000

// prune deletes done entries older than Retention and failed ones older
// than FailedRetention.
func (q *Queue) prune(w *wtx) error {
	q.pruneMore = false
	for _, c := range []struct {
		state State
		keep  time.Duration
	}{{Done, q.opts.Retention}, {Failed, q.opts.FailedRetention}} {
		if w.err != nil {
			return nil
		}
		rows, err := w.query(`DELETE FROM entries WHERE seq IN (
				SELECT seq FROM entries WHERE state IN ('done', 'failed') AND done_at < ? AND state = ? LIMIT ?)
			RETURNING tenant, size`, w.now.Add(-c.keep).UnixMicro(), string(c.state), pruneBatch)
		if err != nil {
			w.err = err
			return nil
		}
		n := 0
		for rows.Next() {
			var tenant string
			var size int64
			if err := rows.Scan(&tenant, &size); err != nil {
				w.err = err
				break
			}
			w.addUsage(tenant, -1, -size)
			n++
		}
		q.pruneMore = q.pruneMore || n == pruneBatch
		if err := rows.Close(); err != nil && w.err == nil {
			w.err = err
		}
		if err := rows.Err(); err != nil && w.err == nil {
			w.err = err
		}
	}
	return nil
}

// Prune deletes expired done and failed entries now, up to a batch of
// each; the writer deletes the rest soon after, and looks for expired
// entries every minute anyway.
func (q *Queue) Prune(ctx context.Context) error { return q.do(ctx, q.prune) }

// notify calls OnDone for an entry that became done or failed.
func (q *Queue) notify(e Entry) {
	if q.opts.OnDone != nil {
		q.opts.OnDone(e)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// Reencrypt seals every stored argument, meta and result that is sealed
// with a key other than the box's active one again with the active key,
// and returns how many entries it changed. Run it after
// [sealbox.Box.Rotate]; entries written meanwhile are sealed with the new
// key already, and an entry that changes under it is left for the next
// run.
func (q *Queue) Reencrypt(ctx context.Context) (int, error) {
	if q.box == nil {
		return 0, ErrNoKey
	}
	n := 0
	var after int64
	for {
		rows, err := q.read.QueryContext(ctx, `SELECT seq, id, tenant, payload, result FROM entries WHERE seq > ? ORDER BY seq LIMIT 200`, after)
		if err != nil {
			return n, fmt.Errorf("queue: re-encrypting: %w", err)
		}
		type rec struct {
			seq                int64
			id, tenant         string
			payload, result    []byte
			newPayload, newRes []byte
		}
		var page []rec
		for rows.Next() {
			var r rec
			if err := rows.Scan(&r.seq, &r.id, &r.tenant, &r.payload, &r.result); err != nil {
				rows.Close()
				return n, fmt.Errorf("queue: re-encrypting: %w", err)
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return n, fmt.Errorf("queue: re-encrypting: %w", err)
		}
		if len(page) == 0 {
			return n, nil
		}
		after = page[len(page)-1].seq
		for _, r := range page {
			reseal := func(ad sealbox.AD, ct []byte) ([]byte, error) {
				if ct == nil || !q.box.Stale(ct) {
					return ct, nil
				}
				pt, err := q.box.Open(ctx, ad, ct)
				if err != nil {
					return nil, fmt.Errorf("queue: re-encrypting entry %s: %w", r.id, err)
				}
				return q.box.Seal(ctx, ad, pt)
			}
			if r.newPayload, err = reseal(callAD(r.tenant, r.id), r.payload); err != nil {
				return n, err
			}
			if r.newRes, err = reseal(resultAD(r.tenant, r.id), r.result); err != nil {
				return n, err
			}
			if string(r.newPayload) == string(r.payload) && string(r.newRes) == string(r.result) {
				continue
			}
			// Same plaintext, same length: size and usage do not change.
			err = q.do(ctx, func(w *wtx) error {
				if w.exec(`UPDATE entries SET payload = ?, result = ? WHERE seq = ? AND payload = ? AND result IS ?`,
					r.newPayload, nullBlob(r.newRes), r.seq, r.payload, nullBlob(r.result)) > 0 {
					n++
				}
				return nil
			})
			if err != nil {
				return n, err
			}
		}
	}
}

// nullBlob makes a nil slice SQL NULL (and an empty one an empty blob).
func nullBlob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// load reads an entry, decrypting its arguments, meta and result unless
// bare. With a tenant (nil: any), an entry of another tenant is not found.
func (q *Queue) load(ctx context.Context, tenant *string, id string, bare bool) (*Entry, error) {
	if !bare && q.box == nil {
		return nil, ErrNoKey
	}
	query := `SELECT ` + entryCols + `, payload, result FROM entries WHERE id = ?`
	args := []any{id}
	if tenant != nil {
		query += ` AND tenant = ?`
		args = append(args, *tenant)
	}
	var payload, result []byte
	e, err := scanEntry(q.read.QueryRowContext(ctx, query, args...), &payload, &result)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: reading entry %s: %w", id, err)
	}
	if tenant != nil && e.Tenant != *tenant {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if bare {
		return e, nil
	}
	if err := q.openCall(ctx, e, payload); err != nil {
		return nil, err
	}
	if result != nil {
		if e.Result, err = q.box.Open(ctx, resultAD(e.Tenant, e.ID), result); err != nil {
			return nil, fmt.Errorf("queue: opening the result of entry %s: %w", e.ID, err)
		}
		if e.Result, err = q.openTenant(ctx, e.Tenant, e.ID+"/result", e.Result); err != nil {
			return nil, fmt.Errorf("queue: opening the result of entry %s: %w", e.ID, err)
		}
	}
	return e, nil
}

// openCall decrypts a payload into e's Arguments and Meta.
func (q *Queue) openCall(ctx context.Context, e *Entry, payload []byte) error {
	plain, err := q.box.Open(ctx, callAD(e.Tenant, e.ID), payload)
	if err != nil {
		return fmt.Errorf("queue: opening the call of entry %s: %w", e.ID, err)
	}
	if plain, err = q.openTenant(ctx, e.Tenant, e.ID+"/call", plain); err != nil {
		return fmt.Errorf("queue: opening the call of entry %s: %w", e.ID, err)
	}
	var s sealed
	if err := json.Unmarshal(plain, &s); err != nil {
		return fmt.Errorf("queue: decoding the call of entry %s: %w", e.ID, err)
	}
	e.Arguments, e.Meta = s.Arguments, s.Meta
	return nil
}

// entryCols are the columns scanEntry reads, in its order.
const entryCols = `id, tenant, target, tool, idem_key, state, attempts, last_error, size, created_at, updated_at, next_at, done_at`

type scanner interface{ Scan(dest ...any) error }

func scanEntry(s scanner, extra ...any) (*Entry, error) {
	var e Entry
	var state string
	var created, updated, next int64
	var done sql.NullInt64
	dest := append([]any{&e.ID, &e.Tenant, &e.Target, &e.Tool, &e.IdempotencyKey, &state, &e.Attempts, &e.LastError, &e.Size, &created, &updated, &next, &done}, extra...)
	if err := s.Scan(dest...); err != nil {
		return nil, err
	}
	e.State = State(state)
	e.CreatedAt, e.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	if e.State == Pending {
		e.NextAttempt = time.UnixMicro(next).UTC()
	}
	if done.Valid {
		e.DoneAt = time.UnixMicro(done.Int64).UTC()
	}
	return &e, nil
}

// Get returns an entry of tenant with its arguments, meta and result
// decrypted. An entry of another tenant is [ErrNotFound], exactly like a
// missing one; tenant "" (single-user mode's) is a tenant like any other.
func (q *Queue) Get(ctx context.Context, tenant, id string) (*Entry, error) {
	return q.load(ctx, &tenant, id, false)
}

// Info returns an entry of any tenant without its arguments, meta and
// result (it needs no key): what an operator is shown before purging it.
func (q *Queue) Info(ctx context.Context, id string) (*Entry, error) {
	return q.load(ctx, nil, id, true)
}

// MaxListLimit bounds how many entries one listing asks for (the command
// line's queue ls --limit).
const MaxListLimit = 1_000_000

// List returns the entries f selects, oldest first, without their
// arguments, meta and results (it needs no key).
func (q *Queue) List(ctx context.Context, f Filter) ([]Entry, error) {
	var where []string
	var args []any
	if f.Tenant != "" || f.ExactTenant {
		where, args = append(where, `tenant = ?`), append(args, f.Tenant)
	}
	if f.Target != "" {
		where, args = append(where, `target = ?`), append(args, f.Target)
	}
	if f.State != "" {
		if !f.State.Valid() {
			return nil, fmt.Errorf("queue: unknown state %q (pending, delivering, done or failed)", f.State)
		}
		where, args = append(where, `state = ?`), append(args, string(f.State))
	}
	if f.After != "" {
		where, args = append(where, `seq > coalesce((SELECT seq FROM entries WHERE id = ?), 0)`), append(args, f.After)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	query := `SELECT ` + entryCols + ` FROM entries`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY seq LIMIT ?`
	args = append(args, limit)
	rows, err := q.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("queue: listing: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("queue: listing: %w", err)
		}
		out = append(out, *e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue: listing: %w", err)
	}
	return out, nil
}

// Targets returns the targets that have entries waiting (pending or
// delivering), so a consumer starting up knows which to Deliver to.
func (q *Queue) Targets(ctx context.Context) ([]string, error) {
	rows, err := q.read.QueryContext(ctx, `SELECT DISTINCT target FROM entries WHERE state IN ('pending', 'delivering') ORDER BY target`)
	if err != nil {
		return nil, fmt.Errorf("queue: listing targets: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Usage is what a tenant, or the whole queue, holds.
type Usage struct {
	Entries, Bytes int64
}

// Usage returns what tenant holds and what the whole queue holds.
func (q *Queue) Usage(ctx context.Context, tenant string) (tenantUsage, total Usage, err error) {
	err = q.read.QueryRowContext(ctx, `SELECT
			coalesce((SELECT entries FROM usage WHERE tenant = ?), 0),
			coalesce((SELECT bytes FROM usage WHERE tenant = ?), 0),
			coalesce(sum(entries), 0), coalesce(sum(bytes), 0) FROM usage`, tenant, tenant).
		Scan(&tenantUsage.Entries, &tenantUsage.Bytes, &total.Entries, &total.Bytes)
	if err != nil {
		err = fmt.Errorf("queue: reading usage: %w", err)
	}
	return
}

// sealTenant seals plain with the tenant's data key when the queue has
// TenantKeys and the tenant is not the single-user one.
func (q *Queue) sealTenant(ctx context.Context, tenant, record string, plain []byte) ([]byte, error) {
	if q.opts.TenantKeys == nil || tenant == "" {
		return plain, nil
	}
	ct, err := q.opts.TenantKeys.SealTenantData(ctx, tenant, record, plain)
	if err != nil {
		return nil, fmt.Errorf("queue: sealing with the tenant's key: %w", err)
	}
	return ct, nil
}

// ErrTenantSealed is returned for an entry sealed with its tenant's key
// by a queue that has no [Options.TenantKeys].
var ErrTenantSealed = errors.New("queue: the entry is sealed with its tenant's data key, which this queue was opened without (open it with the store)")

// errTransient marks a failure to open an entry that may pass (the store
// did not answer), as opposed to one that never will (the tenant's key is
// destroyed, the ciphertext is damaged).
type errTransient struct{ error }

func (e errTransient) Unwrap() error { return e.error }

// openTenant opens what sealTenant sealed; plaintext JSON (an entry
// sealed by the box alone) is returned as is.
func (q *Queue) openTenant(ctx context.Context, tenant, record string, b []byte) ([]byte, error) {
	if !sealbox.IsDataKeyCiphertext(b) {
		return b, nil
	}
	if q.opts.TenantKeys == nil {
		return nil, ErrTenantSealed
	}
	pt, err := q.opts.TenantKeys.OpenTenantData(ctx, tenant, record, b)
	if err != nil {
		if errors.Is(err, sealbox.ErrOpen) || errors.Is(err, sealbox.ErrDataKeyFormat) || errors.Is(err, store.ErrKeyDestroyed) || errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, errTransient{err}
	}
	return pt, nil
}
