// Package postgres is the store for several replicas sharing one
// PostgreSQL database (pgx, pgxpool).
//
// The URL is a libpq-style URL; its parameters (sslmode, search_path,
// application_name, pool_max_conns, …) are passed on by pgx. search_path
// puts mcpedge's tables in a schema of their own, which must exist.
//
// Invariants that span rows (last owner, audit chain, revocation order)
// hold across processes through row locks taken in a fixed order; see
// package sqlbase. Migrations are serialized across processes by an
// advisory lock held by the migrating transaction.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"net/url"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/internal/sqlbase"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

var migrations = mustLoad(migrationFiles)

func mustLoad(fsys fs.FS) []sqlbase.Migration {
	ms, err := sqlbase.LoadMigrations(fsys, "migrations")
	if err != nil {
		panic("postgres: embedded migrations: " + err.Error()) // a build defect, caught by every test
	}
	return ms
}

// LatestVersion is the schema version this binary migrates to.
func LatestVersion() int { return sqlbase.Latest(migrations) }

// Store is the PostgreSQL store.
type Store struct {
	*sqlbase.Store
	eng  *engine
	name string // the URL without its password, for messages
}

var _ store.Store = (*Store)(nil)

// Redact returns rawURL with its password replaced, for messages; a URL
// that does not parse is not shown at all, since where its password is
// can not be known.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable postgres URL)"
	}
	return u.Redacted()
}

// Open connects to the database at rawURL and migrates it.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	name := Redact(rawURL)
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		// pgx's message redacts the password itself.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connecting to %s: %w", name, err)
	}
	s := &Store{eng: &engine{pool: pool}, name: name}
	s.Store = sqlbase.New(s.eng)
	if err := s.open(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	var schema *string
	if err := s.eng.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("postgres: connecting to %s: %w", s.name, err)
	}
	if schema == nil {
		var path string
		_ = s.eng.pool.QueryRow(ctx, `SHOW search_path`).Scan(&path)
		return fmt.Errorf("postgres: %s: no schema of the search_path %q exists; create it first", s.name, path)
	}
	return s.Migrate(ctx)
}

// Migrate brings the schema to [LatestVersion]; a database migrated by a
// newer mcpedge is refused with store.ErrSchemaTooNew. Open calls it.
// Concurrent migrations (replicas starting together) wait for each other
// on an advisory lock keyed by the schema.
func (s *Store) Migrate(ctx context.Context) error {
	_, _, err := sqlbase.Migrate(ctx, s.eng, migrations,
		`SELECT pg_advisory_xact_lock(hashtextextended('mcpedge.migrate:' || current_schema(), 0))`,
		schemaMigrationsTable)
	if err != nil {
		return fmt.Errorf("postgres: migrating %s: %w", s.name, err)
	}
	return nil
}

const schemaMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
		)`

// Kind is "postgres".
func (s *Store) Kind() string { return "postgres" }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.eng.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %s: %w", s.name, err)
	}
	return nil
}

// Close closes the pool; it is safe to call more than once.
func (s *Store) Close() error {
	s.eng.pool.Close()
	return nil
}

// String names the database in logs, without its password.
func (s *Store) String() string { return s.name }

// SchemaAt returns the statements that create schema version v (1 to
// [LatestVersion]) in an empty schema: the table schema_migrations
// (without rows) and migrations 1 to v. A restore runs them before it
// loads a backup of that version (package backup).
func SchemaAt(v int) ([]string, error) {
	if v < 1 || v > LatestVersion() {
		return nil, fmt.Errorf("postgres: schema version %d: this binary knows versions 1 to %d", v, LatestVersion())
	}
	stmts := []string{schemaMigrationsTable}
	for _, m := range migrations[:v] {
		stmts = append(stmts, m.SQL)
	}
	return stmts, nil
}
