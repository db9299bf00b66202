package sqlbase

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/mcpedge/mcpedge/internal/store"
)

// A Migration is one numbered SQL file: NNNN_what.sql. Files are applied in
// version order and never edited once released; a change is a new file.
type Migration struct {
	Version int
	Name    string // the file name
	SQL     string
}

// LoadMigrations reads the *.sql files of dir in fsys. Versions must run
// 1, 2, 3, … without gaps or repeats, so that a half-merged branch fails
// its tests instead of skipping a migration in production.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", name)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	// fs.ReadDir sorts by name and names are zero-padded: check the order.
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d (versions must run 1, 2, 3, … without gaps)", m.Name, i+1)
		}
	}
	return ms, nil
}

// Latest is the version the migrations bring a database to.
func Latest(ms []Migration) int { return len(ms) }

// tooNewError is ErrSchemaTooNew with both versions in its message.
type tooNewError struct{ db, bin int }

func (e *tooNewError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this binary supports (%d); upgrade mcpedge", e.db, e.bin)
}

func (e *tooNewError) Unwrap() error { return store.ErrSchemaTooNew }

// Migrate applies the pending migrations in one write transaction, so a
// failure leaves the database as it was (both databases have transactional
// DDL). prepare runs first in that transaction: it must take whatever lock
// excludes other migrating processes (SQLite's write transaction already
// does) and create schema_migrations if it does not exist. Migrate returns
// the versions before and after.
func Migrate(ctx context.Context, e Engine, ms []Migration, prepare ...string) (from, to int, err error) {
	latest := Latest(ms)
	err = e.Tx(ctx, TxOptions{}, func(q Q) error {
		for _, p := range prepare {
			if _, err := q.Exec(ctx, p); err != nil {
				return fmt.Errorf("preparing to migrate: %w", err)
			}
		}
		if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&from); err != nil {
			return fmt.Errorf("reading the schema version: %w", err)
		}
		if from > latest {
			return &tooNewError{db: from, bin: latest}
		}
		for _, m := range ms[from:] {
			if _, err := q.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := q.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("recording migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return from, from, err
	}
	return from, latest, nil
}

// SchemaVersion is the highest applied migration (0 before the first).
func (s *Store) SchemaVersion(ctx context.Context) (v int, err error) {
	defer wrap(&err, "reading the schema version")
	err = s.e.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
