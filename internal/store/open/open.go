// Package open turns a store URL from the configuration ([store] url) into
// a store.Store. It is the only package that knows every implementation,
// so that the gateway and the CLI open stores the same way.
package open

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

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
func Open(ctx context.Context, rawURL, dataDir string) (store.Store, error) {
	switch {
	case rawURL == "":
		if dataDir == "" {
			return sqlite.Open(ctx, ":memory:")
		}
		if err := mkdir(dataDir); err != nil {
			return nil, err
		}
		return sqlite.Open(ctx, filepath.Join(dataDir, DefaultFile))
	case rawURL == "sqlite::memory:":
		return sqlite.Open(ctx, ":memory:")
	case strings.HasPrefix(rawURL, "sqlite://") && strings.Contains(strings.SplitN(strings.TrimPrefix(rawURL, "sqlite://"), "/", 2)[0], "@"):
		return nil, fmt.Errorf("store url %s: a sqlite URL names a file and has no user, password or host; want sqlite:///abs/path.db or sqlite://rel/path.db", redact(rawURL))
	case strings.HasPrefix(rawURL, "sqlite:///"):
		return sqlite.Open(ctx, filepath.Clean(strings.TrimPrefix(rawURL, "sqlite://")))
	case strings.HasPrefix(rawURL, "sqlite://"):
		rel := strings.TrimPrefix(rawURL, "sqlite://")
		if rel == "" {
			return nil, errors.New(`store url "sqlite://" names no file; use sqlite:///abs/path.db, sqlite://rel/path.db or sqlite::memory:`)
		}
		if dataDir == "" {
			return nil, fmt.Errorf("store url %s is relative to data_dir, which is not set; set data_dir or use sqlite:///absolute/path", redact(rawURL))
		}
		path := filepath.Join(dataDir, rel)
		if err := mkdir(filepath.Dir(path)); err != nil {
			return nil, err
		}
		return sqlite.Open(ctx, path)
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
