package auth

import (
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/postgres"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

// postgresBackends runs the multi-replica tests on PostgreSQL too: a fresh
// schema of the server at MCPEDGE_TEST_POSTGRES per test (skipped when it
// is unset, unless MCPEDGE_REQUIRE_SERVICES=1).
func postgresBackends() []backend {
	return []backend{{name: "postgres", open: func(t *testing.T, n int) []store.Store {
		t.Helper()
		u := storetest.PostgresURL(t) + "&pool_max_conns=4"
		out := make([]store.Store, n)
		for i := range out {
			st, err := postgres.Open(t.Context(), u)
			if err != nil {
				t.Fatalf("postgres.Open: %v", err)
			}
			t.Cleanup(func() { st.Close() })
			out[i] = st
		}
		return out
	}}}
}
