package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mcpedge/mcpedge/internal/store/postgres"
)

// newPostgres opens a PostgreSQL store in a fresh schema of the server at
// MCPEDGE_TEST_POSTGRES (a superuser URL); the schema is dropped when t
// ends. Without the variable the test is skipped, unless
// MCPEDGE_REQUIRE_SERVICES=1, where a silent skip would hide a failure.
func newPostgres(t *testing.T) backend {
	t.Helper()
	admin := os.Getenv("MCPEDGE_TEST_POSTGRES")
	if admin == "" {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatal("MCPEDGE_TEST_POSTGRES is not set and MCPEDGE_REQUIRE_SERVICES=1")
		}
		t.Skip("MCPEDGE_TEST_POSTGRES is not set; skipping PostgreSQL")
	}
	ctx := t.Context()
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "audit_test_" + hex.EncodeToString(rnd[:])
	exec := func(ctx context.Context, query string) error {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, query)
		return err
	}
	if err := exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("creating schema %s on %s: %v", schema, postgres.Redact(admin), err)
	}
	t.Cleanup(func() {
		if err := exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil || u.Scheme == "" {
		t.Fatalf("MCPEDGE_TEST_POSTGRES must be a postgres:// URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	rawURL := u.String()
	q.Set("pool_max_conns", "4") // a pool option: not for the raw connection
	u.RawQuery = q.Encode()

	st, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	raw, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connecting to %s: %v", postgres.Redact(rawURL), err)
	}
	t.Cleanup(func() { raw.Close(context.Background()) })
	return backend{name: "postgres", st: st, exec: func(t *testing.T, query string, args ...any) {
		t.Helper()
		if _, err := raw.Exec(context.WithoutCancel(t.Context()), dollars(query), args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}}
}

// dollars rewrites "?" placeholders to $1, $2, ….
func dollars(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r != '?' {
			b.WriteRune(r)
			continue
		}
		n++
		b.WriteString("$" + strconv.Itoa(n))
	}
	return b.String()
}
