package auth

import (
	"path/filepath"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

// newTestStore returns an empty SQLite store in memory for one test.
func newTestStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), ":memory:")
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// backend opens n stores on one fresh database, as n replicas (processes)
// would.
type backend struct {
	name string
	open func(t *testing.T, n int) []store.Store
}

// sharedBackends are the databases multi-replica tests run on: an SQLite
// file always, PostgreSQL when MCPEDGE_TEST_POSTGRES is set.
func sharedBackends() []backend {
	return append([]backend{{name: "sqlite", open: openSQLiteFile}}, postgresBackends()...)
}

func openSQLiteFile(t *testing.T, n int) []store.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mcpedge.db")
	out := make([]store.Store, n)
	for i := range out {
		st, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		out[i] = st
	}
	return out
}

// onStore makes a Service use st instead of the env's store.
func onStore(st store.Store) envOpt { return func(o *Options) { o.Store = st } }
