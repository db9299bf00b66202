package sqlbase

import (
	"context"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Default and maximum page sizes of the listing methods that take a limit.
const (
	defaultLimit = 1000
	maxLimit     = 10000
)

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return defaultLimit
	case n > maxLimit:
		return maxLimit
	}
	return n
}

// revoke inserts r with the next Seq. The revocation counter stays locked
// until commit, so Seqs become visible in order and a replica that polls
// RevocationsSince(last seen) can not skip one that commits late.
func revoke(ctx context.Context, q Q, r *store.Revocation) error {
	seq, err := bump(ctx, q, counterRevocation)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO revocations (seq, kind, subject, at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		seq, r.Kind, r.Subject, ts(r.At), ts(r.ExpiresAt))
	if err != nil {
		return err
	}
	r.Seq, r.At, r.ExpiresAt = seq, ts(r.At), ts(r.ExpiresAt)
	return nil
}

// Revoke fills At with the current time when it is zero.
func (s *Store) Revoke(ctx context.Context, r *store.Revocation) (err error) {
	defer wrap(&err, "recording a revocation of %s %q", r.Kind, r.Subject)
	if r.Kind == "" || r.Subject == "" {
		return invalid("revocation: kind and subject must not be empty")
	}
	rv := *r
	if rv.At.IsZero() {
		rv.At = s.now()
	}
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		return revoke(ctx, q, &rv)
	})
	if err == nil {
		*r = rv
	}
	return err
}

func scanRevocation(r Row) (*store.Revocation, error) {
	var v store.Revocation
	if err := r.Scan(&v.Seq, &v.Kind, &v.Subject, timeCol{&v.At}, timeCol{&v.ExpiresAt}); err != nil {
		return nil, err
	}
	return &v, nil
}

// RevocationsSince treats limit <= 0 as 1000 and caps it at 10000.
func (s *Store) RevocationsSince(ctx context.Context, after int64, limit int) (_ []store.Revocation, err error) {
	defer wrap(&err, "listing revocations after %d", after)
	return collect(ctx, s.e, scanRevocation,
		`SELECT seq, kind, subject, at, expires_at FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?`, after, clampLimit(limit))
}

func (s *Store) IsRevoked(ctx context.Context, kind, subject string) (ok bool, err error) {
	defer wrap(&err, "checking for a revocation of %s %q", kind, subject)
	var n int
	err = s.e.QueryRow(ctx, `SELECT COUNT(*) FROM revocations WHERE kind = ? AND subject = ?`, kind, subject).Scan(&n)
	return n > 0, err
}
