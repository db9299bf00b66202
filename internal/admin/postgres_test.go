package admin

import (
	"context"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/postgres"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

// pgStore is a store in a fresh PostgreSQL schema (see
// storetest.PostgresURL: skipped without MCPEDGE_TEST_POSTGRES).
func pgStore(t *testing.T) store.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestPostgres runs the main REST tests on PostgreSQL.
func TestPostgres(t *testing.T) {
	t.Run("endpoints", func(t *testing.T) { testEndpoints(t, newEnv(t, pgStore(t))) })
	t.Run("cross-tenant", func(t *testing.T) { testCrossTenant(t, newEnv(t, pgStore(t))) })
	t.Run("last-owner", func(t *testing.T) { testLastOwner(t, newEnv(t, pgStore(t))) })
	t.Run("usage", func(t *testing.T) { testUsage(t, newEnv(t, pgStore(t))) })
}
