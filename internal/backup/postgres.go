package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcpedge/mcpedge/internal/store/postgres"
)

// connectPostgres opens one connection to the store's database (the URL
// may carry pgxpool's own parameters, which pgx.Connect would send to the
// server).
func connectPostgres(ctx context.Context, rawURL string) (*pgx.Conn, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("postgres: connecting to %s: %w", postgres.Redact(rawURL), err)
	}
	return conn, nil
}

// pgq is what pgx.Conn and pgx.Tx have in common that we use.
type pgq interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func currentSchema(ctx context.Context, q pgq) (string, error) {
	var schema *string
	if err := q.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return "", err
	}
	if schema == nil {
		return "", errors.New("postgres: no schema of the search_path exists; create it first")
	}
	return *schema, nil
}

// pgTables lists the ordinary tables of the current schema in the order
// a restore can load them: a table after the tables its foreign keys
// name (ties by name).
func pgTables(ctx context.Context, q pgq) ([]string, error) {
	names, err := collect(ctx, q, pgx.RowTo[string], `SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	type edge struct{ from, to string }
	edges, err := collect(ctx, q, func(r pgx.CollectableRow) (edge, error) {
		var e edge
		err := r.Scan(&e.from, &e.to)
		return e, err
	}, `SELECT src.relname::text, dst.relname::text FROM pg_constraint k
		JOIN pg_class src ON src.oid = k.conrelid JOIN pg_class dst ON dst.oid = k.confrelid
		JOIN pg_namespace n ON n.oid = src.relnamespace
		WHERE k.contype = 'f' AND n.nspname = current_schema()`)
	if err != nil {
		return nil, err
	}
	needs := map[string][]string{}
	for _, e := range edges {
		if e.from != e.to { // a table's references to itself load in one COPY
			needs[e.from] = append(needs[e.from], e.to)
		}
	}
	var order []string
	done := map[string]bool{}
	for len(order) < len(names) {
		progress := false
		for _, n := range names {
			if done[n] || slices.ContainsFunc(needs[n], func(d string) bool { return !done[d] && slices.Contains(names, d) }) {
				continue
			}
			done[n] = true
			order = append(order, n)
			progress = true
		}
		if !progress {
			return nil, errors.New("postgres: the foreign keys of the schema's tables form a cycle; no load order exists")
		}
	}
	return order, nil
}

// collect runs a query and collects its rows with fn.
func collect[T any](ctx context.Context, q pgq, fn pgx.RowToFunc[T], sql string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, fn)
}

// pgColumns are a table's columns in order, without generated ones
// (COPY can not write them).
func pgColumns(ctx context.Context, q pgq, schema, table string) ([]string, error) {
	return collect(ctx, q, pgx.RowTo[string], `SELECT a.attname::text FROM pg_attribute a
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, pgx.Identifier{schema, table}.Sanitize())
}

func pgSequences(ctx context.Context, q pgq) ([]Sequence, error) {
	return collect(ctx, q, func(r pgx.CollectableRow) (Sequence, error) {
		var s Sequence
		err := r.Scan(&s.Name, &s.Value)
		return s, err
	}, `SELECT sequencename::text, last_value FROM pg_sequences
		WHERE schemaname = current_schema() ORDER BY sequencename`)
}

func copyColumns(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

// backupPostgres writes a consistent snapshot of the store's schema: one
// REPEATABLE READ, READ ONLY transaction sees the database as of one
// moment, and in it every table of the schema is copied (COPY … TO
// STDOUT, text format), whatever the gateway's replicas write meanwhile.
func backupPostgres(ctx context.Context, rawURL string, m *Manifest, a *archiveWriter, beforeData func() error) error {
	conn, err := connectPostgres(ctx, rawURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("postgres: starting the snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	schema, err := currentSchema(ctx, tx)
	if err != nil {
		return err
	}
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&m.SchemaVersion); err != nil {
		return fmt.Errorf("postgres: reading the schema version of schema %s (not an mcpedge store?): %w", schema, err)
	}
	names, err := pgTables(ctx, tx)
	if err != nil {
		return err
	}
	for _, n := range names {
		if !identRE.MatchString(n) {
			return fmt.Errorf("postgres: table %q of schema %s is not a name mcpedge uses; move it to another schema", n, schema)
		}
		t := Table{Name: n}
		if t.Columns, err = pgColumns(ctx, tx, schema, n); err != nil {
			return err
		}
		for _, c := range t.Columns {
			if !identRE.MatchString(c) {
				return fmt.Errorf("postgres: column %q of table %s is not a name mcpedge uses", c, n)
			}
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, n}.Sanitize()).Scan(&t.Rows); err != nil {
			return err
		}
		m.Tables = append(m.Tables, t)
	}
	if m.Sequences, err = pgSequences(ctx, tx); err != nil {
		return err
	}
	if err := beforeData(); err != nil {
		return err
	}
	for _, t := range m.Tables {
		err := a.entry(entryTable+t.Name, func(w io.Writer) error {
			tag, err := conn.PgConn().CopyTo(ctx, w, `COPY `+pgx.Identifier{schema, t.Name}.Sanitize()+` (`+copyColumns(t.Columns)+`) TO STDOUT`)
			if err != nil {
				return err
			}
			if tag.RowsAffected() != t.Rows {
				return fmt.Errorf("table %s: copied %d rows, counted %d in the same snapshot", t.Name, tag.RowsAffected(), t.Rows)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("postgres: copying table %s: %w", t.Name, err)
		}
	}
	return nil
}

// pgEmpty refuses a schema that has any table, view or sequence.
func pgEmpty(ctx context.Context, q pgq, schema string) error {
	var n int
	if err := q.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: schema %s has %d tables, views or sequences (a gateway or command has used it); restore into an empty schema (DROP SCHEMA %s CASCADE; CREATE SCHEMA %s) or another database", ErrNotEmpty, schema, n, schema, schema)
	}
	return nil
}

// pgRestore loads a backup into an empty schema in one transaction; see
// restorePostgres.
type pgRestore struct {
	conn   *pgx.Conn
	tx     pgx.Tx
	schema string
	m      *Manifest
	loaded map[string]bool
}

// beginPostgres checks the target, then in one transaction creates the
// schema of the backup's version (migrations 1…version of this binary,
// which are never edited once released) and empties the tables the
// migrations filled, so that the backup's rows replace them.
func beginPostgres(ctx context.Context, rawURL string, m *Manifest) (_ *pgRestore, err error) {
	conn, err := connectPostgres(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	schema, err := currentSchema(ctx, conn)
	if err != nil {
		return nil, err
	}
	if err := pgEmpty(ctx, conn, schema); err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	r := &pgRestore{conn: conn, tx: tx, schema: schema, m: m, loaded: map[string]bool{}}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	// The lock a starting gateway's migration takes: it waits for the
	// restore instead of migrating the schema under it.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('mcpedge.migrate:' || current_schema(), 0))`); err != nil {
		return nil, err
	}
	if err := pgEmpty(ctx, tx, schema); err != nil {
		return nil, err
	}
	stmts, err := postgres.SchemaAt(m.SchemaVersion)
	if err != nil {
		return nil, err
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("postgres: creating the schema of version %d: %w", m.SchemaVersion, err)
		}
	}
	names, err := pgTables(ctx, tx)
	if err != nil {
		return nil, err
	}
	if len(names) != len(m.Tables) {
		return nil, fmt.Errorf("the backup has %d tables, schema version %d of this mcpedge has %d: the backed-up schema was changed by hand?", len(m.Tables), m.SchemaVersion, len(names))
	}
	for _, n := range names {
		t, ok := m.table(n)
		if !ok {
			return nil, fmt.Errorf("the backup has no table %s, which schema version %d has", n, m.SchemaVersion)
		}
		cols, err := pgColumns(ctx, tx, schema, n)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(slices.Sorted(slices.Values(cols)), slices.Sorted(slices.Values(t.Columns))) {
			return nil, fmt.Errorf("table %s: the backup has the columns %v, schema version %d has %v", n, t.Columns, m.SchemaVersion, cols)
		}
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = pgx.Identifier{schema, n}.Sanitize()
	}
	if _, err := tx.Exec(ctx, `TRUNCATE `+strings.Join(quoted, ", ")); err != nil {
		return nil, err
	}
	return r, nil
}

// load copies one table's rows from body.
func (r *pgRestore) load(ctx context.Context, table string, body io.Reader) error {
	t, ok := r.m.table(table)
	if !ok {
		return corrupt("table %s is not in the manifest", table)
	}
	tag, err := r.conn.PgConn().CopyFrom(ctx, body, `COPY `+pgx.Identifier{r.schema, t.Name}.Sanitize()+` (`+copyColumns(t.Columns)+`) FROM STDIN`)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		return fmt.Errorf("postgres: loading table %s: %w", t.Name, err)
	}
	if tag.RowsAffected() != t.Rows {
		return corrupt("table %s: %d rows, the manifest says %d", t.Name, tag.RowsAffected(), t.Rows)
	}
	r.loaded[t.Name] = true
	return nil
}

// commit sets the sequences and commits, once every table is loaded and
// the archive's checksums matched.
func (r *pgRestore) commit(ctx context.Context) error {
	for _, t := range r.m.Tables {
		if !r.loaded[t.Name] {
			return corrupt("table %s has no rows entry", t.Name)
		}
	}
	for _, s := range r.m.Sequences {
		if s.Value == nil {
			continue
		}
		if _, err := r.tx.Exec(ctx, `SELECT setval($1::regclass, $2, true)`, pgx.Identifier{r.schema, s.Name}.Sanitize(), *s.Value); err != nil {
			return fmt.Errorf("postgres: setting sequence %s: %w", s.Name, err)
		}
	}
	return r.tx.Commit(ctx)
}

func (r *pgRestore) close(ctx context.Context) {
	r.tx.Rollback(context.WithoutCancel(ctx))
	r.conn.Close(context.WithoutCancel(ctx))
}
