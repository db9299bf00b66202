package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// busyMillis is how long SQLite connections of a backup or restore wait
// for another process's write lock.
const busyMillis = 10000

// openSQLite opens an SQLite file for a backup or a check, without
// creating it.
func openSQLite(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, err
	}
	u := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	db, err := sql.Open("sqlite", u+"?"+url.Values{"_pragma": {fmt.Sprintf("busy_timeout(%d)", busyMillis)}}.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// vacuumInto writes a consistent copy of the SQLite database src to the
// new file dst with VACUUM INTO: one read transaction, so the copy is the
// database as of one commit, whatever writers (the gateway, the CLI) do
// meanwhile; in WAL mode they are not blocked.
func vacuumInto(ctx context.Context, src, dst string) error {
	db, err := openSQLite(src)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return os.Chmod(dst, 0o600)
}

// sqliteTables lists the tables of the SQLite file path (all of them but
// SQLite's own) with their row counts, in name order.
func sqliteTables(ctx context.Context, db *sql.DB) ([]Table, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var ts []Table
	for _, n := range names {
		if !identRE.MatchString(n) {
			return nil, fmt.Errorf("table %q: not a name mcpedge uses", n)
		}
		var c int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM "`+n+`"`).Scan(&c); err != nil {
			return nil, err
		}
		ts = append(ts, Table{Name: n, Rows: c})
	}
	return ts, nil
}

// sqliteSchemaVersion is the store's migration version.
func sqliteSchemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the schema version (not an mcpedge store?): %w", err)
	}
	return v, nil
}

// describeSQLite reads what a manifest says of a snapshot file.
func describeSQLite(ctx context.Context, path string, store bool) (tables []Table, version int, err error) {
	db, err := openSQLite(path)
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	if tables, err = sqliteTables(ctx, db); err != nil {
		return nil, 0, err
	}
	if store {
		version, err = sqliteSchemaVersion(ctx, db)
	} else {
		err = db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version)
	}
	return tables, version, err
}

// checkSQLite checks a restored file before it is put in place: SQLite's
// integrity check, and the tables and row counts the manifest lists.
func checkSQLite(ctx context.Context, path string, want []Table, store bool, version int) error {
	db, err := openSQLite(path)
	if err != nil {
		return err
	}
	defer db.Close()
	var ok string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check(1)`).Scan(&ok); err != nil {
		return fmt.Errorf("%w: the database does not open: %v", ErrCorrupt, err)
	}
	if ok != "ok" {
		return corrupt("the database fails SQLite's integrity check: %s", ok)
	}
	got, err := sqliteTables(ctx, db)
	if err != nil {
		return err
	}
	if err := sameTables(got, want); err != nil {
		return err
	}
	var v int
	if store {
		v, err = sqliteSchemaVersion(ctx, db)
	} else {
		err = db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	}
	if err != nil {
		return err
	}
	if v != version {
		return corrupt("the database has schema version %d, the manifest says %d", v, version)
	}
	return nil
}

func sameTables(got, want []Table) error {
	if len(got) != len(want) {
		return corrupt("%d tables, the manifest lists %d", len(got), len(want))
	}
	byName := map[string]int64{}
	for _, t := range want {
		byName[t.Name] = t.Rows
	}
	for _, t := range got {
		n, ok := byName[t.Name]
		if !ok {
			return corrupt("table %s is not in the manifest", t.Name)
		}
		if n != t.Rows {
			return corrupt("table %s has %d rows, the manifest says %d", t.Name, t.Rows, n)
		}
	}
	return nil
}

// sqliteEmpty says whether path can receive a restore: it does not exist
// or has no tables. A -wal file beside it means a process has it open.
func sqliteEmpty(ctx context.Context, path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(path + "-wal"); err == nil {
			return fmt.Errorf("%w: %s-wal exists (a process has the database open?)", ErrNotEmpty, path)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	db, err := openSQLite(path)
	if err != nil {
		return err
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table'`).Scan(&n); err != nil {
		return fmt.Errorf("%w: %s is not an SQLite database: %v", ErrNotEmpty, path, err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %s has %d tables (a gateway or command has used it); restore into a new file, or move this one away", ErrNotEmpty, path, n)
	}
	return nil
}

// receiveFile writes body to a new private file in dir and returns its
// path; the caller removes it.
func receiveFile(dir, pattern string, body io.Reader) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	path := f.Name()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	_, err = io.Copy(f, body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// place puts the checked file tmp at path. With replace, an existing
// path (which sqliteEmpty found empty: no bytes, or no tables) is removed
// first, with its -wal and -shm files; otherwise, and for a path that
// appears meanwhile, nothing is replaced (a link does not replace an
// existing file).
func place(tmp, path string, replace bool) error {
	if _, err := os.Lstat(path); err == nil && replace {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s appeared while restoring", ErrNotEmpty, path)
		}
		return err
	}
	return os.Remove(tmp)
}
