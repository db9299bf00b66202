package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresURL returns the URL of a fresh, empty PostgreSQL schema for t,
// dropped when t ends: MCPEDGE_TEST_POSTGRES (a superuser URL) with
// search_path set to a new schema of a random name. Without
// MCPEDGE_TEST_POSTGRES it skips t, or fails it when
// MCPEDGE_REQUIRE_SERVICES=1 (scripts/test.sh sets both), because there a
// skipped database test would hide a broken store.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("MCPEDGE_TEST_POSTGRES")
	if admin == "" {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatal("MCPEDGE_TEST_POSTGRES is not set and MCPEDGE_REQUIRE_SERVICES=1: run scripts/test.sh, or set it to a PostgreSQL superuser URL")
		}
		t.Skip("MCPEDGE_TEST_POSTGRES is not set (a superuser URL such as postgres://mcpedge:mcpedge@127.0.0.1:5432/mcpedge_test?sslmode=disable); skipping the PostgreSQL test")
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("MCPEDGE_TEST_POSTGRES is not a URL: %v", err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "mcpedge_test_" + hex.EncodeToString(b[:])
	exec := func(ctx context.Context, stmt string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Fatalf("connecting to MCPEDGE_TEST_POSTGRES (%s): %v", u.Redacted(), err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	exec(t.Context(), `CREATE SCHEMA `+schema)
	t.Cleanup(func() { exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`) })
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
