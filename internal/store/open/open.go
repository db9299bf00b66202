// Package open turns a store URL from the configuration ([store] url) into
// a store.Store. It is the only package that knows every implementation,
// so that the gateway and the CLI open stores the same way.
package open

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/postgres"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

// DefaultFile is the database file in the data directory when the URL is
// empty.
const DefaultFile = "mcpedge.db"

// Open opens and migrates the store rawURL names:
//
//	""                     <dataDir>/mcpedge.db (dataDir is created, 0700);
//	                       an in-memory database when dataDir is ""
//	sqlite::memory:        an in-memory database (gone at exit)
//	sqlite:///abs/path.db  the file /abs/path.db
//	sqlite://rel/path.db   the file rel/path.db inside dataDir
//	postgres://… postgresql://…  a PostgreSQL database (see package postgres)
//
// Errors never show a password from rawURL.
//
// The store's secrets are sealed with the master key from $MCPEDGE_STORE_KEY
// when that is set, else from [DefaultKey]; [OpenWithKey] takes another.
func Open(ctx context.Context, rawURL, dataDir string) (store.Store, error) {
	return OpenWithKey(ctx, rawURL, dataDir, nil)
}

// OpenWithKey is Open with the master key the store's secrets are sealed
// with taken from key (nil: $MCPEDGE_STORE_KEY if set, else
// [DefaultKey]). A key that does not match the store's key ring is
// refused with an error naming where the key came from; the store is
// then not opened.
func OpenWithKey(ctx context.Context, rawURL, dataDir string, key sealbox.KeySource) (store.Store, error) {
	st, err := openStore(ctx, rawURL, dataDir)
	if err != nil {
		return nil, err
	}
	if key == nil {
		if os.Getenv(KeyEnv) != "" {
			key = sealbox.EnvKey(KeyEnv)
		} else if key, err = DefaultKey(rawURL, dataDir); err != nil {
			st.Close()
			return nil, err
		}
	}
	if err := seal(ctx, st, key); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// KeyEnv is the environment variable Open reads the store's master key
// from (base64 of 32 bytes) when it is set.
const KeyEnv = "MCPEDGE_STORE_KEY"

// KeyFile is the name of the default master key file, in the directory of
// the database file.
const KeyFile = "store.key"

// sealBlock is how many seals a process reserves from a key's message
// count at a time. Secrets are sealed rarely (at creation, migration and
// rekey), so a small block keeps the counts near the truth.
const sealBlock = 8

// sealer is what both store implementations add (package sqlbase).
type sealer interface {
	SealSecrets(ctx context.Context, box *sealbox.Box) error
}

func seal(ctx context.Context, st store.Store, key sealbox.KeySource) error {
	sl, ok := st.(sealer)
	if !ok {
		return fmt.Errorf("store: %s stores can not seal their secrets", st.Kind())
	}
	if fk, ok := key.(fileKey); ok {
		// A key file that is missing while the store has a key ring was
		// lost or not copied: creating a new one would only be refused
		// by the ring, and would stand in the way of restoring the
		// right one.
		if _, err := os.Stat(fk.path); errors.Is(err, fs.ErrNotExist) {
			r, err := st.(store.SealedSecrets).SecretRing(ctx)
			if err != nil {
				return err
			}
			if len(r.Keys) > 0 {
				return fmt.Errorf("store: the master key file %s does not exist, but the store's secrets were sealed with a master key: restore the file from your backup (or give the key another way); a new key would not open them", fk.path)
			}
		}
	}
	box, err := sealbox.New(ctx, key, &sealbox.Options{Reserve: sealBlock})
	if err != nil {
		return fmt.Errorf("store: the master key of the store's secrets: %w", err)
	}
	return sl.SealSecrets(ctx, box)
}

// DefaultKey is the master key source of a store when none is configured:
//
//   - an in-memory database: a random key held in memory (the database
//     and its secrets end with the process);
//   - a SQLite file: the key file store.key in the database file's
//     directory (<data_dir>/store.key by default), created with 32 random
//     bytes and mode 0600 on first use;
//   - PostgreSQL: none, an error. Replicas sharing the database must share
//     the key, and a file created on each machine would differ.
func DefaultKey(rawURL, dataDir string) (sealbox.KeySource, error) {
	switch {
	case rawURL == "" && dataDir == "", rawURL == "sqlite::memory:":
		return memoryKey(), nil
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return nil, fmt.Errorf("store: a PostgreSQL store needs the master key of its secrets set explicitly, the same on every replica: $%s (base64 of 32 random bytes; make one with: head -c 32 /dev/urandom | base64) or [store] key_file; a key file created on each machine would differ", KeyEnv)
	}
	if path := sqliteFile(rawURL, dataDir); path != "" {
		return FileKey(filepath.Join(filepath.Dir(path), KeyFile)), nil
	}
	// An URL Open refuses: let it say why.
	return memoryKey(), nil
}

// sqliteHasHost says rawURL is a sqlite:// URL with a user, password or
// host, which Open refuses.
func sqliteHasHost(rawURL string) bool {
	return strings.HasPrefix(rawURL, "sqlite://") && strings.Contains(strings.SplitN(strings.TrimPrefix(rawURL, "sqlite://"), "/", 2)[0], "@")
}

// sqliteFile is the database file that rawURL names ("" in dataDir,
// sqlite:///abs/path.db or sqlite://rel/path.db in dataDir), or "" when
// it names none (memory, PostgreSQL, or an URL Open refuses).
func sqliteFile(rawURL, dataDir string) string {
	switch {
	case rawURL == "":
		if dataDir == "" {
			return ""
		}
		return filepath.Join(dataDir, DefaultFile)
	case sqliteHasHost(rawURL):
		return "" // user, password or host: refused
	case strings.HasPrefix(rawURL, "sqlite:///"):
		return filepath.Clean(strings.TrimPrefix(rawURL, "sqlite://"))
	case strings.HasPrefix(rawURL, "sqlite://"):
		rel := strings.TrimPrefix(rawURL, "sqlite://")
		if rel == "" || dataDir == "" {
			return ""
		}
		return filepath.Join(dataDir, rel)
	}
	return ""
}

// FileKey is the master key in the file path (32 raw bytes), created with
// mode 0600 on first use like [sealbox.FileKey], except that Open does not
// create it for a store that already has sealed secrets: a missing key
// file there is an error that says to restore it.
func FileKey(path string) sealbox.KeySource {
	return fileKey{KeySource: sealbox.FileKey(path), path: path}
}

type fileKey struct {
	sealbox.KeySource
	path string
}

// memoryKey is a random master key that lives as long as the process.
func memoryKey() sealbox.KeySource {
	k := make([]byte, sealbox.KeySize)
	rand.Read(k)
	return memKey(k)
}

type memKey []byte

func (k memKey) MasterKey(context.Context) ([]byte, error) { return bytes.Clone(k), nil }
func (memKey) String() string                              { return "a random key for this in-memory database" }

func openStore(ctx context.Context, rawURL, dataDir string) (store.Store, error) {
	if path := sqliteFile(rawURL, dataDir); path != "" {
		if !strings.HasPrefix(rawURL, "sqlite:///") {
			// In data_dir, private to the gateway's user.
			if err := mkdir(filepath.Dir(path)); err != nil {
				return nil, err
			}
		}
		return sqlite.Open(ctx, path)
	}
	switch {
	case rawURL == "", rawURL == "sqlite::memory:":
		return sqlite.Open(ctx, ":memory:")
	case sqliteHasHost(rawURL):
		return nil, fmt.Errorf("store url %s: a sqlite URL names a file and has no user, password or host; want sqlite:///abs/path.db or sqlite://rel/path.db", redact(rawURL))
	case rawURL == "sqlite://":
		return nil, errors.New(`store url "sqlite://" names no file; use sqlite:///abs/path.db, sqlite://rel/path.db or sqlite::memory:`)
	case strings.HasPrefix(rawURL, "sqlite://"):
		return nil, fmt.Errorf("store url %s is relative to data_dir, which is not set; set data_dir or use sqlite:///absolute/path", redact(rawURL))
	case strings.HasPrefix(rawURL, "sqlite:"):
		return nil, fmt.Errorf("store url %s: want sqlite:///abs/path.db, sqlite://rel/path.db (in data_dir) or sqlite::memory:", redact(rawURL))
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return postgres.Open(ctx, rawURL)
	}
	return nil, fmt.Errorf("store url %s: unsupported; want sqlite:///abs/path.db, sqlite://rel/path.db, sqlite::memory: or postgres://user:password@host/db", redact(rawURL))
}

// mkdir creates the data directory private to the gateway's user: it
// holds the database, and the database holds the gateway's secrets.
func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	return nil
}

// redact shows a URL of an unknown kind without its password, and one that
// does not parse only by its scheme (the password could be anywhere).
func redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return fmt.Sprintf("%q", u.Redacted())
	}
	if scheme, _, ok := strings.Cut(rawURL, ":"); ok && !strings.ContainsAny(scheme, "@/") {
		return fmt.Sprintf("%q (unparsable)", scheme+":…")
	}
	return "(unparsable)"
}

// SQLiteFile is the SQLite database file a store URL names in dataDir
// (as [Open] reads it), or "" when it names none: an in-memory store,
// PostgreSQL, or an URL Open refuses.
func SQLiteFile(rawURL, dataDir string) string { return sqliteFile(rawURL, dataDir) }

// SecretBox returns the box st's secrets are sealed with, for other
// records sealed with the same key ring (webhook endpoint secrets); an
// error for a store not opened by this package.
func SecretBox(st store.Store) (*sealbox.Box, error) {
	b, ok := st.(interface{ SecretBox() *sealbox.Box })
	if !ok || b.SecretBox() == nil {
		return nil, errors.New("store: opened without a master key, so nothing can be sealed with its key ring")
	}
	return b.SecretBox(), nil
}
