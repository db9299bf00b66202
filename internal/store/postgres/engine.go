package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcpedge/mcpedge/internal/store/internal/sqlbase"
)

// engine is the sqlbase.Engine of one PostgreSQL database (one schema).
type engine struct {
	pool *pgxpool.Pool
	// rebound caches the $n form of each "?" statement: the statements
	// are a fixed set, so this stays small.
	rebound sync.Map // string -> string
}

var _ sqlbase.Engine = (*engine)(nil)

// pgxQ is what *pgxpool.Pool and pgx.Tx have in common.
type pgxQ interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type q struct {
	e  *engine
	db pgxQ
}

// rebind turns the "?" placeholders of sqlbase's statements into $1, $2, ….
// sqlbase never writes a "?" inside a literal, so no parsing is needed.
func (e *engine) rebind(query string) string {
	if v, ok := e.rebound.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for _, part := range strings.SplitAfter(query, "?") {
		if strings.HasSuffix(part, "?") {
			n++
			b.WriteString(part[:len(part)-1])
			b.WriteString("$" + strconv.Itoa(n))
		} else {
			b.WriteString(part)
		}
	}
	e.rebound.Store(query, b.String())
	return b.String()
}

// args stores the zero time as NULL ("not set") and every other time in
// UTC.
func args(in []any) []any {
	return sqlbase.ConvertTimes(in, func(t time.Time) any { return t.UTC() })
}

func (q q) Exec(ctx context.Context, query string, a ...any) (int64, error) {
	tag, err := q.db.Exec(ctx, q.e.rebind(query), args(a)...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (q q) Query(ctx context.Context, query string, a ...any) (sqlbase.Rows, error) {
	rows, err := q.db.Query(ctx, q.e.rebind(query), args(a)...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (q q) QueryRow(ctx context.Context, query string, a ...any) sqlbase.Row {
	return q.db.QueryRow(ctx, q.e.rebind(query), args(a)...)
}

func (e *engine) Exec(ctx context.Context, query string, a ...any) (int64, error) {
	return q{e, e.pool}.Exec(ctx, query, a...)
}

func (e *engine) Query(ctx context.Context, query string, a ...any) (sqlbase.Rows, error) {
	return q{e, e.pool}.Query(ctx, query, a...)
}

func (e *engine) QueryRow(ctx context.Context, query string, a ...any) sqlbase.Row {
	return q{e, e.pool}.QueryRow(ctx, query, a...)
}

// maxAttempts bounds the retries of a transaction that PostgreSQL aborted
// to break a deadlock (two sessions revoking overlapping token families)
// or a serialization failure.
const maxAttempts = 5

// Tx runs fn in a READ COMMITTED transaction; sqlbase takes the row locks
// its invariants need. Commits are durable already (synchronous_commit),
// so opts.Durable changes nothing here.
func (e *engine) Tx(ctx context.Context, _ sqlbase.TxOptions, fn func(sqlbase.Q) error) error {
	for attempt := 1; ; attempt++ {
		err := e.tx(ctx, fn)
		if !retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		// A short, growing pause lets the other transaction finish.
		select {
		case <-time.After(time.Duration(attempt*attempt) * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

func (e *engine) tx(ctx context.Context, fn func(sqlbase.Q) error) error {
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("starting a transaction: %w", err)
	}
	// Rollback after Commit is a no-op; after a panic in fn it releases
	// the connection. It must run even when ctx is done.
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(q{e, tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func retryable(err error) bool {
	c := pgCode(err)
	return c == "40001" || c == "40P01" // serialization_failure, deadlock_detected
}

func (e *engine) IsUnique(err error) bool     { return pgCode(err) == "23505" }
func (e *engine) IsForeignKey(err error) bool { return pgCode(err) == "23503" }

// ForUpdate takes the lock an UPDATE of non-key columns takes, which is
// what every caller does next; unlike FOR UPDATE it does not block the
// foreign-key checks of concurrent inserts (a key created in a tenant whose
// row is locked for a last-owner check).
func (e *engine) ForUpdate() string { return " FOR NO KEY UPDATE" }
