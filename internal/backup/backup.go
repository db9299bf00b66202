// Package backup makes and restores encrypted, consistent backups of
// mcpedge's store (SQLite or PostgreSQL) and of the offline queue while a
// gateway serves, and runs them on a schedule (docs/platform.md,
// docs/design/backup.md for the file format).
//
// A backup reads the store directly, from the store URL of the
// configuration, never through a running gateway: it needs no gateway,
// and a gateway needs nothing from it. SQLite is copied with VACUUM INTO
// (one read transaction: the database as of one commit); PostgreSQL with
// one REPEATABLE READ transaction that copies every table of mcpedge's
// schema. The tables are found in the database's catalog, never listed
// here, so tables that later migrations add are backed up too.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
	"github.com/mcpedge/mcpedge/internal/store/postgres"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

// ErrNotEmpty: a restore's target store (or queue file) is not empty.
var ErrNotEmpty = errors.New("the target is not empty")

// A Source is what a backup copies.
type Source struct {
	// StoreURL and DataDir are [store] url and [server] data_dir.
	StoreURL, DataDir string
	// QueuePath is the offline queue's database file; "" or a file
	// that does not exist: the backup has no queue.
	QueuePath string
	// Version is this mcpedge's version, for the manifest.
	Version string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// engineOf says which engine a store URL names and, for SQLite, its
// file.
func engineOf(rawURL, dataDir string) (engine, file string, err error) {
	if f := open.SQLiteFile(rawURL, dataDir); f != "" {
		return EngineSQLite, f, nil
	}
	if strings.HasPrefix(rawURL, "postgres://") || strings.HasPrefix(rawURL, "postgresql://") {
		return EnginePostgres, "", nil
	}
	if rawURL == "" || rawURL == "sqlite::memory:" {
		return "", "", errors.New("the store is in memory (no data_dir and no [store] url): there is nothing another process can back up or restore")
	}
	return "", "", fmt.Errorf("store url %q: backups support SQLite files and PostgreSQL", rawURL)
}

// Write writes a backup of src to w, encrypted with key. Plaintext
// copies of SQLite databases wait in a private directory beside the
// database while they are encrypted, and are removed.
func Write(ctx context.Context, w io.Writer, key Key, src Source) (*Manifest, error) {
	engine, file, err := engineOf(src.StoreURL, src.DataDir)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if src.Now != nil {
		now = src.Now
	}
	ew, err := newEncWriter(w, key)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Format: FormatVersion, Engine: engine, Mcpedge: src.Version}
	a := newArchiveWriter(ew)

	// SQLite: snapshot first (to know the counts), then write.
	var tmp string
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()
	snap := func(dir, from string) (string, error) {
		if tmp == "" {
			if tmp, err = os.MkdirTemp(dir, ".mcpedge-backup-"); err != nil {
				return "", err
			}
		}
		to := filepath.Join(tmp, filepath.Base(from))
		return to, vacuumInto(ctx, from, to)
	}
	var storeSnap, queueSnap string
	if engine == EngineSQLite {
		m.Created = now().UTC()
		if _, err := os.Stat(file); err != nil {
			return nil, fmt.Errorf("the store %s: %w", file, err)
		}
		if storeSnap, err = snap(filepath.Dir(file), file); err != nil {
			return nil, err
		}
		if m.Tables, m.SchemaVersion, err = describeSQLite(ctx, storeSnap, true); err != nil {
			return nil, err
		}
	}
	if src.QueuePath != "" {
		if _, err := os.Stat(src.QueuePath); err == nil {
			if queueSnap, err = snap(filepath.Dir(src.QueuePath), src.QueuePath); err != nil {
				return nil, fmt.Errorf("the offline queue: %w", err)
			}
			q := &Queue{}
			if q.Tables, q.UserVersion, err = describeSQLite(ctx, queueSnap, false); err != nil {
				return nil, fmt.Errorf("the offline queue: %w", err)
			}
			m.Queue = q
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	writeManifest := func() error {
		return a.entry(entryManifest, func(w io.Writer) error { return jsonTo(w, m) })
	}
	fileEntry := func(name, path string) error {
		return a.entry(name, func(w io.Writer) error {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(w, f)
			return err
		})
	}
	switch engine {
	case EngineSQLite:
		if err := writeManifest(); err != nil {
			return nil, err
		}
		if err := fileEntry(entrySQLite, storeSnap); err != nil {
			return nil, err
		}
	case EnginePostgres:
		err := backupPostgres(ctx, src.StoreURL, m, a, func() error {
			m.Created = now().UTC()
			return writeManifest()
		})
		if err != nil {
			return nil, err
		}
	}
	if queueSnap != "" {
		if err := fileEntry(entryQueue, queueSnap); err != nil {
			return nil, err
		}
	}
	if err := a.finish(); err != nil {
		return nil, err
	}
	if err := ew.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// WriteFile writes a backup to the new file path (mode 0600): under a
// temporary name in its directory first, synced, then linked into place,
// so that path is a whole backup or does not exist. An existing path is
// not replaced.
func WriteFile(ctx context.Context, path string, key Key, src Source) (*Manifest, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%s exists; backups are not overwritten", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	m, err := Write(ctx, f, key, src)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%s exists; backups are not overwritten", path)
		}
		return nil, err
	}
	return m, nil
}

// KeyKind reads a backup file's header and returns which kind of key it
// was encrypted with (KeyStore or KeyBackup), so that a restore can pick
// the key before it reads further.
func KeyKind(r io.Reader) (string, error) {
	h, _, err := readHeader(r)
	if err != nil {
		return "", err
	}
	return h.Key, nil
}

// Verify reads a whole backup, checks that it decrypts and that every
// entry matches its checksum, and returns its manifest. It writes
// nothing.
func Verify(ctx context.Context, r io.Reader, key Key) (*Manifest, error) {
	dec, err := newDecReader(r, key)
	if err != nil {
		return nil, err
	}
	return verifyArchive(ctx, dec)
}

// verifyArchive reads a decrypted archive to its end.
func verifyArchive(ctx context.Context, r io.Reader) (*Manifest, error) {
	a := newArchiveReader(r)
	m, err := readManifest(a)
	if err != nil {
		return nil, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name, _, err := a.next()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		if err := expected(m, name); err != nil {
			return nil, err
		}
	}
}

// expected checks that an entry belongs in a backup with manifest m.
func expected(m *Manifest, name string) error {
	switch {
	case name == entrySQLite && m.Engine == EngineSQLite:
	case name == entryQueue && m.Queue != nil:
	case strings.HasPrefix(name, entryTable) && m.Engine == EnginePostgres:
		if _, ok := m.table(strings.TrimPrefix(name, entryTable)); !ok {
			return corrupt("entry %q names a table the manifest does not list", name)
		}
	default:
		return corrupt("unexpected entry %q in a %s backup", name, m.Engine)
	}
	return nil
}

// A Target is where a restore goes.
type Target struct {
	// StoreURL and DataDir are [store] url and [server] data_dir of the
	// configuration the restored store is for.
	StoreURL, DataDir string
	// QueuePath is where the backup's offline queue goes; "": it is
	// not restored.
	QueuePath string
	// CheckStore, when set, opens a restored SQLite store at path
	// before it is put in place (migrating it and opening its secrets
	// with the configured master key).
	CheckStore func(ctx context.Context, path string) error
	// CheckQueue, when set, opens a restored queue at path with the
	// queue's key before it is put in place.
	CheckQueue func(ctx context.Context, path string) error
}

// Restore reads a backup from r, decrypted with key, into t's store, which
// must be empty: an SQLite file that does not exist (or has no tables), a
// PostgreSQL schema without tables. A backup of a schema newer than this
// binary knows is refused (store.ErrSchemaTooNew) before anything is
// written. Nothing is left behind when it fails: SQLite files are written
// under temporary names and put in place last; PostgreSQL is loaded in one
// transaction, committed after the archive's checksums matched. Backups
// restore into the engine they were made from.
func Restore(ctx context.Context, r io.Reader, key Key, t Target) (*Manifest, error) {
	engine, file, err := engineOf(t.StoreURL, t.DataDir)
	if err != nil {
		return nil, err
	}
	dec, err := newDecReader(r, key)
	if err != nil {
		return nil, err
	}
	a := newArchiveReader(dec)
	m, err := readManifest(a)
	if err != nil {
		return nil, err
	}
	if m.Engine != engine {
		return nil, fmt.Errorf("this is a backup of a %s store and the configured store is %s: a backup restores into the engine it was made from", m.Engine, engine)
	}
	latest := sqlite.LatestVersion()
	if engine == EnginePostgres {
		latest = postgres.LatestVersion()
	}
	if m.SchemaVersion > latest {
		return nil, fmt.Errorf("%w: the backup has schema version %d, this mcpedge knows versions up to %d; restore it with the mcpedge that made it (%s) or a newer one", store.ErrSchemaTooNew, m.SchemaVersion, latest, m.Mcpedge)
	}
	queuePath := t.QueuePath
	if m.Queue == nil {
		queuePath = ""
	}
	if queuePath != "" {
		if _, err := os.Lstat(queuePath); err == nil {
			return nil, fmt.Errorf("%w: the offline queue %s exists; move it away, or restore without the queue", ErrNotEmpty, queuePath)
		}
		if err := os.MkdirAll(filepath.Dir(queuePath), 0o700); err != nil {
			return nil, err
		}
	}

	var (
		pg                 *pgRestore
		tmpStore, tmpQueue string
	)
	defer func() {
		for _, p := range []string{tmpStore, tmpQueue} {
			if p != "" {
				os.Remove(p)
			}
		}
		if pg != nil {
			pg.close(ctx)
		}
	}()
	switch engine {
	case EngineSQLite:
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, err
		}
		if err := sqliteEmpty(ctx, file); err != nil {
			return nil, err
		}
	case EnginePostgres:
		if pg, err = beginPostgres(ctx, t.StoreURL, m); err != nil {
			return nil, err
		}
	}
	for {
		name, body, err := a.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := expected(m, name); err != nil {
			return nil, err
		}
		switch {
		case name == entrySQLite:
			if tmpStore, err = receiveFile(filepath.Dir(file), "."+filepath.Base(file)+".restore-", body); err != nil {
				return nil, err
			}
		case name == entryQueue:
			if queuePath != "" {
				if tmpQueue, err = receiveFile(filepath.Dir(queuePath), "."+filepath.Base(queuePath)+".restore-", body); err != nil {
					return nil, err
				}
			}
		default:
			if err := pg.load(ctx, strings.TrimPrefix(name, entryTable), body); err != nil {
				return nil, err
			}
		}
	}
	// Every entry matched its checksum: check what was written, then put
	// it in place.
	if engine == EngineSQLite {
		if tmpStore == "" {
			return nil, corrupt("the backup has no database")
		}
		if err := checkSQLite(ctx, tmpStore, m.Tables, true, m.SchemaVersion); err != nil {
			return nil, err
		}
		if t.CheckStore != nil {
			if err := t.CheckStore(ctx, tmpStore); err != nil {
				return nil, err
			}
		}
	}
	if queuePath != "" {
		if tmpQueue == "" {
			return nil, corrupt("the manifest lists a queue the backup does not have")
		}
		if err := checkSQLite(ctx, tmpQueue, m.Queue.Tables, false, m.Queue.UserVersion); err != nil {
			return nil, fmt.Errorf("the offline queue: %w", err)
		}
		if t.CheckQueue != nil {
			if err := t.CheckQueue(ctx, tmpQueue); err != nil {
				return nil, fmt.Errorf("the offline queue: %w", err)
			}
		}
	}
	switch engine {
	case EngineSQLite:
		if err := place(tmpStore, file, true); err != nil {
			return nil, err
		}
		tmpStore = ""
	case EnginePostgres:
		if err := pg.commit(ctx); err != nil {
			return nil, err
		}
	}
	if queuePath != "" {
		if err := place(tmpQueue, queuePath, false); err != nil {
			return nil, fmt.Errorf("the store is restored, but the offline queue is not: %w", err)
		}
		tmpQueue = ""
	}
	return m, nil
}
