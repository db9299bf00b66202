// Package sqlite is the embedded store: one SQLite file (or memory), no
// server to run, pure Go (modernc.org/sqlite), so CGO_ENABLED=0 builds
// keep working on small devices.
//
// The database runs in WAL mode, so readers never wait for the writer.
// Writes go through one connection per process, in BEGIN IMMEDIATE
// transactions, and wait up to [BusyTimeout] for writers of other
// processes (the CLI writes to the file a running gateway uses).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/mcpedge/mcpedge/internal/sqlitefile"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/internal/sqlbase"
)

// BusyTimeout is how long a write waits for another process's write
// transaction before it fails.
const BusyTimeout = 10 * time.Second

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations are this binary's SQLite migrations, in version order.
var migrations = mustLoad(migrationFiles)

func mustLoad(fsys fs.FS) []sqlbase.Migration {
	ms, err := sqlbase.LoadMigrations(fsys, "migrations")
	if err != nil {
		panic("sqlite: embedded migrations: " + err.Error()) // a build defect, caught by every test
	}
	return ms
}

// LatestVersion is the schema version this binary migrates to.
func LatestVersion() int { return sqlbase.Latest(migrations) }

// Store is the SQLite store.
type Store struct {
	*sqlbase.Store
	eng  *engine
	name string // the file, or ":memory:", for messages
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it if needed, with mode 0600 since it holds the
// gateway's secrets) the database file at dsn, or a private in-memory
// database when dsn is ":memory:", and migrates it.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if dsn == "" {
		return nil, errors.New("sqlite: no database path (use \":memory:\" for an in-memory database)")
	}
	s, err := open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", dsn, err)
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func open(ctx context.Context, dsn string) (*Store, error) {
	pragmas := []string{"foreign_keys(1)", "synchronous(NORMAL)"}
	eng := &engine{busy: BusyTimeout}

	if dsn == ":memory:" {
		// Every connection to ":memory:" is a database of its own, so
		// readers and the writer share the one connection.
		params := url.Values{"_txlock": {"immediate"}}
		params.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
		for _, p := range pragmas {
			params.Add("_pragma", p)
		}
		db, err := sql.Open("sqlite", ":memory:?"+params.Encode())
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		eng.read, eng.write = db, db
	} else {
		var err error
		eng.read, eng.write, err = sqlitefile.Open(ctx, dsn, BusyTimeout, pragmas...)
		if err != nil {
			return nil, err
		}
	}
	if err := eng.write.PingContext(ctx); err != nil {
		eng.close()
		return nil, err
	}
	return &Store{Store: sqlbase.New(eng), eng: eng, name: dsn}, nil
}

// Migrate brings the schema to [LatestVersion]; a database migrated by a
// newer mcpedge is refused with store.ErrSchemaTooNew. Open calls it.
func (s *Store) Migrate(ctx context.Context) error {
	_, _, err := sqlbase.Migrate(ctx, s.eng, migrations,
		`CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
		) STRICT`)
	if err != nil {
		return fmt.Errorf("sqlite: migrating %s: %w", s.name, err)
	}
	return nil
}

// Kind is "sqlite".
func (s *Store) Kind() string { return "sqlite" }

// Ping checks that the file can be read.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.eng.read.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlite: %s: %w", s.name, err)
	}
	return nil
}

// Close closes the connections; it is safe to call more than once.
func (s *Store) Close() error { return s.eng.close() }

func (e *engine) close() error {
	err := e.write.Close()
	if e.read != e.write {
		err = errors.Join(err, e.read.Close())
	}
	return err
}

// String names the database in logs.
func (s *Store) String() string { return "sqlite:" + strings.TrimPrefix(s.name, "file:") }
