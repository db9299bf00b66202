// Package sqlitefile opens an SQLite database file the way mcpedge's
// SQLite databases (the store and the queue) use one: in WAL mode, with
// one writer connection whose transactions begin IMMEDIATE and a pool of
// query-only readers, and created with mode 0600 since they hold secrets.
package sqlitefile

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"modernc.org/sqlite" // also the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Open opens the database file at path, creating it (mode 0600) unless
// it exists; its directory must exist. Every connection waits up to busy
// for another process's write and runs pragmas (such as
// "synchronous(FULL)"). write has one connection, kept open, whose
// transactions begin IMMEDIATE; it has switched the file to WAL before
// Open returns. read is a pool of query_only connections.
func Open(ctx context.Context, path string, busy time.Duration, pragmas ...string) (read, write *sql.DB, err error) {
	path, err = filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	if err := create(path); err != nil {
		return nil, nil, err
	}
	file := (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
	params := url.Values{}
	params.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	for _, p := range pragmas {
		params.Add("_pragma", p)
	}
	w := url.Values{"_txlock": {"immediate"}}
	for k, v := range params {
		w[k] = append([]string(nil), v...)
	}
	w.Add("_pragma", "journal_mode(WAL)")
	if write, err = sql.Open("sqlite", file+"?"+w.Encode()); err != nil {
		return nil, nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	// The writer's first connection switches the file to WAL before any
	// reader opens it.
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, nil, err
	}
	params.Add("_pragma", "query_only(1)")
	if read, err = sql.Open("sqlite", file+"?"+params.Encode()); err != nil {
		write.Close()
		return nil, nil, err
	}
	read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	read.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
	return read, write, nil
}

// create makes the database file with mode 0600 unless it exists, and
// explains a missing directory (SQLite would only say "unable to open").
func create(path string) error {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("directory %s does not exist", dir)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// IsBusy says err is SQLITE_BUSY (or one of its extended codes): the
// database stayed locked by another connection or process for the whole
// busy timeout.
func IsBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}
