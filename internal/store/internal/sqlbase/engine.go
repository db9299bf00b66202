// Package sqlbase is the SQL behind both store implementations. SQLite and
// PostgreSQL share one schema shape and almost every statement, so the
// contracts of package store are implemented once, here, over the small
// [Engine] interface; package sqlite and package postgres supply an Engine
// (connections, transactions, error codes) and their migrations.
//
// Statements are written with "?" placeholders; a PostgreSQL engine rewrites
// them to $1, $2, …. time.Time arguments are converted by the engine (zero
// becomes NULL), so the code here passes them as they are.
//
// # Locks
//
// Every change runs in a write transaction ([Engine.Tx]). On SQLite that
// transaction holds the database's single write lock from its first
// statement (BEGIN IMMEDIATE), so it is serializable and nothing more is
// needed. On PostgreSQL (READ COMMITTED) the invariants that span rows take
// row locks, always in this order so that transactions never wait on each
// other in a cycle:
//
//  1. the tenant row (last-owner checks),
//  2. counters 'policy', then 'revocation' (their values are the policy
//     version and revocation Seq: holding the row until commit makes the
//     numbers appear in commit order, which a poller relies on),
//  3. the audit_head row (the audit chain).
package sqlbase

import (
	"context"
	"slices"
	"time"
)

// Q runs statements, inside a transaction or not.
type Q interface {
	// Exec runs a statement and returns the number of rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow's Scan returns an error that errors.Is sql.ErrNoRows when
	// there is no row.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows is the cursor of Q.Query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is the result of Q.QueryRow.
type Row interface {
	Scan(dest ...any) error
}

// TxOptions tune a write transaction.
type TxOptions struct {
	// Durable asks that the commit survive power loss, not only a crash
	// of the process (SQLite: synchronous=FULL for this transaction).
	Durable bool
}

// Engine is one database: what differs between SQLite and PostgreSQL.
type Engine interface {
	// Q runs single statements outside a transaction (reads).
	Q
	// Tx runs fn in a write transaction and commits it if fn returns nil.
	// It may run fn again when the database asks for a retry (a deadlock
	// or a busy database), so fn must not keep state across calls other
	// than what it resets first.
	Tx(ctx context.Context, opts TxOptions, fn func(Q) error) error
	// IsUnique reports whether err is a violated unique constraint.
	IsUnique(err error) bool
	// IsForeignKey reports whether err is a violated foreign key.
	IsForeignKey(err error) bool
	// ForUpdate is the clause that locks selected rows against other
	// writers until commit (" FOR NO KEY UPDATE"), or "" where the
	// transaction already excludes other writers.
	ForUpdate() string
}

// ConvertTimes is for engines: it returns args with each time.Time replaced
// by conv(t), or by nil when it is the zero time ("not set"). The caller's
// slice is copied on the first change, never modified.
func ConvertTimes(args []any, conv func(time.Time) any) []any {
	var out []any
	for i, a := range args {
		t, ok := a.(time.Time)
		if !ok {
			continue
		}
		if out == nil {
			out = slices.Clone(args)
		}
		if t.IsZero() {
			out[i] = nil
		} else {
			out[i] = conv(t)
		}
	}
	if out == nil {
		return args
	}
	return out
}
