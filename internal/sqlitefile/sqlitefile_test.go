package sqlitefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Open creates the file with mode 0600 in WAL mode, its readers cannot
// write, and a writer locked out past the busy timeout is IsBusy.
func TestOpen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "x.db")
	read, write, err := Open(ctx, path, 50*time.Millisecond, "synchronous(FULL)")
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()
	defer write.Close()
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the database file: %v, %v; want mode 0600", st, err)
	}
	var mode string
	if err := write.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var sync int
	if err := read.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Errorf("a reader's synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
	if _, err := write.ExecContext(ctx, `CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if _, err := read.ExecContext(ctx, `INSERT INTO t VALUES (1)`); err == nil {
		t.Error("a reader wrote")
	}

	// Another process's writer, while this one holds the write lock.
	read2, write2, err := Open(ctx, path, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer read2.Close()
	defer write2.Close()
	tx, err := write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	_, err = write2.ExecContext(ctx, `INSERT INTO t VALUES (2)`)
	if !IsBusy(err) {
		t.Errorf("a write while another connection holds the lock: %v; want IsBusy", err)
	}
	if IsBusy(errors.New("database is locked")) || IsBusy(nil) {
		t.Error("IsBusy of an error that is not SQLite's")
	}
}

func TestOpenWithoutDirectory(t *testing.T) {
	_, _, err := Open(t.Context(), filepath.Join(t.TempDir(), "no", "x.db"), time.Second)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open in a missing directory: %v", err)
	}
}
