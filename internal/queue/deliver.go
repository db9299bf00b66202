package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// afterDelivery bounds the write that records a delivery's outcome, which
// runs even when the Deliver context has ended (the call happened).
const afterDelivery = 30 * time.Second

// claimed is what one look at a target's line found.
type claimed struct {
	e       *Entry
	payload []byte
	// due is when the head of the line may be delivered (zero: wait for
	// a change).
	due time.Time
	// ended is an entry the look failed for good (an interrupted delivery
	// out of attempts); look again at once.
	ended *Entry
	// idle says there is nothing to claim now (set by peek only).
	idle bool
}

// peek reads the head of target's line and says whether a claim could
// take it: idle when the line is empty or its head is under way here,
// due when the head is waiting for its backoff.
func (q *Queue) peek(ctx context.Context, target string) (claimed, error) {
	var state, owner, id string
	var next int64
	err := q.read.QueryRowContext(ctx, `SELECT id, state, owner, next_at FROM entries
		WHERE target = ? AND state IN ('pending', 'delivering') ORDER BY seq LIMIT 1`, target).Scan(&id, &state, &owner, &next)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return claimed{idle: true}, nil
	case err != nil:
		if ctx.Err() != nil {
			return claimed{}, ctxErr(ctx)
		}
		return claimed{}, fmt.Errorf("queue: reading the line of %s: %w", target, err)
	case State(state) == Delivering && owner == q.instance && q.inFlight(id):
		return claimed{idle: true}, nil
	case State(state) == Pending:
		if at := time.UnixMicro(next); at.After(q.now()) {
			return claimed{due: at}, nil
		}
	}
	return claimed{}, nil
}

// claim looks at the head of target's line and, if it is due, marks it
// delivering by this Queue.
func (q *Queue) claim(ctx context.Context, target string) (c claimed, err error) {
	err = q.doLight(ctx, func(w *wtx) error {
		c = claimed{}
		var seq int64
		var owner string
		var payload []byte
		e, err := scanEntry(w.queryRow(`SELECT `+entryCols+`, seq, owner, payload FROM entries
			WHERE target = ? AND state IN ('pending', 'delivering') ORDER BY seq LIMIT 1`, target), &seq, &owner, &payload)
		if err != nil {
			if !errors.Is(err, sql.ErrNoRows) {
				w.err = err
			}
			return nil
		}
		now := w.now.UnixMicro()
		switch {
		case e.State == Delivering && owner == q.instance && q.inFlight(e.ID):
			return nil // under way here: wait for its outcome
		case e.State == Pending && e.NextAttempt.After(w.now):
			c.due = e.NextAttempt
			return nil
		case e.State == Delivering && e.Attempts >= q.opts.MaxAttempts:
			// Left delivering by a process that died, MaxAttempts
			// times: perhaps the entry is what kills it.
			msg := fmt.Sprintf("delivery interrupted %d times (the delivering process ended)", e.Attempts)
			w.exec(`UPDATE entries SET state = 'failed', last_error = ?, owner = '', updated_at = ?, done_at = ? WHERE seq = ?`,
				msg, now, now, seq)
			e.State, e.LastError, e.DoneAt, e.UpdatedAt = Failed, msg, w.now, w.now
			c.ended = e
			return nil
		}
		// A pending entry that is due, or one left delivering by another
		// instance (a process that died) or by a delivery of this one
		// whose outcome could not be recorded: deliver it (again).
		w.exec(`UPDATE entries SET state = 'delivering', owner = ?, attempts = attempts + 1, updated_at = ? WHERE seq = ?`,
			q.instance, now, seq)
		e.State, e.Attempts, e.UpdatedAt, e.NextAttempt = Delivering, e.Attempts+1, w.now, time.Time{}
		c.e, c.payload = e, payload
		return nil
	})
	return c, err
}

// Next waits until the oldest waiting entry for target is due, claims it
// (state delivering, attempts counted) and returns it with its arguments
// and meta decrypted. It returns nothing while an entry of target claimed
// through this Queue is under way: one delivery per target at a time, in
// order. The caller must end every entry Next returns with Complete or
// Fail (or close the queue, and the next consumer delivers it again).
//
// It returns when ctx ends (with its error) or the queue closes
// (ErrClosed). An entry whose sealed call can not be opened (another
// master key, damage) fails for good and Next goes on with the next.
func (q *Queue) Next(ctx context.Context, target string) (*Entry, error) {
	if q.box == nil {
		return nil, ErrNoKey
	}
	for {
		wake := q.wait(target) // before looking, so no change is missed
		// Look first on a read connection: an idle or backed-off target
		// then costs no write transaction per poll.
		c, err := q.peek(ctx, target)
		if err == nil && c.due.IsZero() && !c.idle {
			c, err = q.claim(ctx, target)
		}
		if err != nil {
			return nil, err
		}
		if c.ended != nil {
			q.notify(*c.ended)
			continue
		}
		if c.e != nil {
			if err := q.openCall(ctx, c.e, c.payload); err != nil {
				var tr errTransient
				if errors.As(err, &tr) {
					// The store did not answer: put the entry back and
					// try again after a poll interval.
					q.log.Warn("queue: an entry can not be opened for now", "id", c.e.ID, "target", target, "err", err)
					if rerr := q.release(context.WithoutCancel(ctx), c.e); rerr != nil {
						return nil, rerr
					}
					select {
					case <-ctx.Done():
						return nil, ctxErr(ctx)
					case <-q.closing:
						return nil, ErrClosed
					case <-time.After(q.opts.PollInterval):
					}
					continue
				}
				q.log.Error("queue: failing an entry that can not be opened", "id", c.e.ID, "target", target, "err", err)
				if _, ferr := q.fail(ctx, c.e, Permanent(err), time.Time{}); ferr != nil {
					return nil, ferr
				}
				q.notify(*c.e)
				continue
			}
			q.mu.Lock()
			q.inflight[c.e.ID] = true
			q.mu.Unlock()
			return c.e, nil
		}
		d := q.opts.PollInterval
		if !c.due.IsZero() {
			d = min(d, max(c.due.Sub(q.now()), time.Millisecond))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctxErr(ctx)
		case <-q.closing:
			t.Stop()
			return nil, ErrClosed
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// A DeliverFunc delivers one entry to its target and returns the
// upstream's result. It should send e.DeliveryKey() with the call, so an
// idempotent upstream can drop a repeat. An error is a failed delivery,
// retried with backoff unless it is [Permanent].
type DeliverFunc func(ctx context.Context, e *Entry) (result json.RawMessage, err error)

// Deliver delivers target's entries, in order, one at a time, until ctx
// ends or the queue closes, and returns why it stopped. Each success is
// completed (result stored, OnDone called), each failure recorded with
// backoff; a delivery cut short by ctx ending puts the entry back in line
// without counting a failure. Run one Deliver per target, in one process.
func (q *Queue) Deliver(ctx context.Context, target string, fn DeliverFunc) error {
	for {
		e, err := q.Next(ctx, target)
		if err != nil {
			return err
		}
		result, ferr := fn(ctx, e)
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterDelivery)
		switch {
		case ferr == nil:
			err = q.complete(wctx, e, result)
		case ctx.Err() != nil:
			err = q.release(wctx, e)
		default:
			var final bool
			if final, err = q.fail(wctx, e, ferr, time.Time{}); err == nil && final {
				q.notify(*e)
			}
		}
		cancel()
		q.landed(e.ID)
		switch {
		case errors.Is(err, ErrClosed):
			return err
		case errors.Is(err, ErrNotFound):
			// Purged while it was delivered: nothing to record.
		case err != nil:
			// The entry stays delivering; the next look at the line
			// takes it again (it is no longer in flight).
			q.log.Error("queue: recording a delivery", "id", e.ID, "target", target, "err", err)
		}
		if ctx.Err() != nil {
			return ctxErr(ctx)
		}
	}
}

// Run delivers every target's entries with fn until ctx ends or the
// queue closes: one [Queue.Deliver] loop per target that has entries
// waiting, started at once for the targets found in the database and as
// soon as an entry for a new target is enqueued. It is what a gateway
// runs; fn sees the target in e.Target. Run returns after every loop
// has stopped.
func (q *Queue) Run(ctx context.Context, fn DeliverFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]bool{}
	for {
		wake := q.wait(anyTarget) // before listing, so no new target is missed
		targets, err := q.Targets(ctx)
		if err != nil && ctx.Err() == nil {
			q.log.Error("queue: listing targets", "err", err)
		}
		for _, t := range targets {
			if running[t] {
				continue
			}
			running[t] = true
			wg.Go(func() {
				err := q.Deliver(ctx, t, fn)
				if ctx.Err() == nil && !errors.Is(err, ErrClosed) {
					q.log.Error("queue: delivery to a target stopped", "target", t, "err", err)
				}
			})
		}
		t := time.NewTimer(q.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctxErr(ctx)
		case <-q.closing:
			t.Stop()
			return ErrClosed
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// inFlight reports whether an entry Next returned has no outcome yet.
func (q *Queue) inFlight(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.inflight[id]
}

// landed ends an entry's time in flight.
func (q *Queue) landed(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inflight, id)
}
