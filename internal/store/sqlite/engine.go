package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/mcpedge/mcpedge/internal/sqlitefile"
	"github.com/mcpedge/mcpedge/internal/store/internal/sqlbase"
)

// engine is the sqlbase.Engine of one SQLite database: a pool of readers
// and a single writer connection. Writers in this process queue for that
// connection in Go (cheap, fair); writers in other processes are excluded
// by the database lock that BEGIN IMMEDIATE takes up front and waited for
// by busy_timeout. Taking the lock up front is what avoids SQLITE_BUSY: a
// deferred transaction that reads and then writes can not wait for the
// lock (its snapshot would be stale) and fails at once instead.
type engine struct {
	read, write *sql.DB
	busy        time.Duration // the busy_timeout, for error messages
}

var _ sqlbase.Engine = (*engine)(nil)

// sqlQ is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type sqlQ interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// q adapts a sqlQ to sqlbase.Q and stores times as INTEGER Unix
// microseconds: they sort and compare as numbers, and keep the precision
// PostgreSQL keeps.
type q struct{ db sqlQ }

func args(in []any) []any {
	return sqlbase.ConvertTimes(in, func(t time.Time) any { return t.UnixMicro() })
}

func (q q) Exec(ctx context.Context, query string, a ...any) (int64, error) {
	res, err := q.db.ExecContext(ctx, query, args(a)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q q) Query(ctx context.Context, query string, a ...any) (sqlbase.Rows, error) {
	rows, err := q.db.QueryContext(ctx, query, args(a)...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q q) QueryRow(ctx context.Context, query string, a ...any) sqlbase.Row {
	return q.db.QueryRowContext(ctx, query, args(a)...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

func (e *engine) Exec(ctx context.Context, query string, a ...any) (int64, error) {
	return q{e.read}.Exec(ctx, query, a...)
}

func (e *engine) Query(ctx context.Context, query string, a ...any) (sqlbase.Rows, error) {
	return q{e.read}.Query(ctx, query, a...)
}

func (e *engine) QueryRow(ctx context.Context, query string, a ...any) sqlbase.Row {
	return q{e.read}.QueryRow(ctx, query, a...)
}

// Tx runs fn on the writer connection in a BEGIN IMMEDIATE transaction.
// A Durable transaction is committed with synchronous=FULL: in WAL mode
// NORMAL survives a crash of the process but may lose the last commits on
// power loss, which is fine for everything but the audit log.
func (e *engine) Tx(ctx context.Context, opts sqlbase.TxOptions, fn func(sqlbase.Q) error) (err error) {
	conn, err := e.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the write connection: %w", err)
	}
	defer conn.Close()
	if opts.Durable {
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
			return err
		}
		// Restore even when ctx is done: the connection outlives this call.
		defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`)
	}
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the DSN sets _txlock
	if err != nil {
		return e.busyErr(fmt.Errorf("starting a write transaction: %w", err))
	}
	done := false
	defer func() {
		if !done { // fn failed or panicked
			_ = tx.Rollback()
		}
	}()
	if err := fn(q{tx}); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return e.busyErr(fmt.Errorf("committing: %w", err))
	}
	return nil
}

// busyErr explains SQLITE_BUSY, which after busy_timeout means another
// process held the database lock for all that time.
func (e *engine) busyErr(err error) error {
	if sqlitefile.IsBusy(err) {
		return fmt.Errorf("the database stayed locked by another connection or process for %v: %w", e.busy, err)
	}
	return err
}

func code(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func (e *engine) IsUnique(err error) bool {
	c := code(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func (e *engine) IsForeignKey(err error) bool {
	return code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// ForUpdate is empty: the write transaction holds the database lock.
func (e *engine) ForUpdate() string { return "" }
