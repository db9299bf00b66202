package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/postgres"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

// adminURL is a superuser URL from MCPEDGE_TEST_POSTGRES. Without it the
// tests skip, unless MCPEDGE_REQUIRE_SERVICES=1 (CI, scripts/test.sh),
// where a silently skipped database test would hide a broken store.
func adminURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("MCPEDGE_TEST_POSTGRES")
	if u == "" {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatal("MCPEDGE_TEST_POSTGRES is not set and MCPEDGE_REQUIRE_SERVICES=1; run scripts/test.sh or point it at a PostgreSQL superuser URL")
		}
		t.Skip("MCPEDGE_TEST_POSTGRES is not set (a superuser URL such as postgres://mcpedge:mcpedge@127.0.0.1:5432/mcpedge_test?sslmode=disable); skipping PostgreSQL tests")
	}
	return u
}

// pools bounds the stores open at once, so that a many-core machine
// running subtests in parallel stays under max_connections.
var pools = make(chan struct{}, 8)

// freshSchema creates a schema with a random name, drops it when t ends,
// and returns a URL whose search_path is that schema.
func freshSchema(t *testing.T) string {
	t.Helper()
	admin := adminURL(t)
	ctx := t.Context()
	var b [6]byte
	rand.Read(b[:])
	schema := "mcpedge_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to MCPEDGE_TEST_POSTGRES (%s): %v", postgres.Redact(admin), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("MCPEDGE_TEST_POSTGRES does not parse: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// open opens a store with a small pool (see pools).
func open(t *testing.T, rawURL string) *postgres.Store {
	t.Helper()
	pools <- struct{}{}
	s, err := postgres.Open(t.Context(), rawURL+"&pool_max_conns=4")
	if err != nil {
		<-pools
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		<-pools
	})
	return s
}

func TestConformance(t *testing.T) {
	adminURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, freshSchema(t)) })
}

// TestTwoProcesses opens two pools on one schema, as two replicas do.
func TestTwoProcesses(t *testing.T) {
	u := freshSchema(t)
	storetest.RunShared(t, open(t, u), open(t, u))
}

func TestConcurrentMigrations(t *testing.T) {
	u := freshSchema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), u)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent Open of a fresh schema: %v", err)
		}
	}
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	s := open(t, u)
	v1, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v1 != postgres.LatestVersion() {
		t.Fatalf("SchemaVersion = %d after Open, want %d", v1, postgres.LatestVersion())
	}
	tn := &store.Tenant{Name: "keep"}
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	s2 := open(t, u)
	v2, err := s2.SchemaVersion(ctx)
	if err != nil || v2 != v1 {
		t.Fatalf("SchemaVersion after migrating again = %d, %v; want %d", v2, err, v1)
	}
	if _, err := s2.GetTenant(ctx, tn.ID); err != nil {
		t.Fatalf("data lost by migrating again: %v", err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	ctx := t.Context()
	u := freshSchema(t)
	open(t, u)
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(ctx, u)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open of a database at version 9999 = %v, want ErrSchemaTooNew", err)
	}
	want := fmt.Sprintf("database schema version 9999 is newer than this binary supports (%d); upgrade mcpedge", postgres.LatestVersion())
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestOpenErrors(t *testing.T) {
	admin := adminURL(t)
	ctx := t.Context()

	// A missing search_path schema is named.
	u, _ := url.Parse(admin)
	q := u.Query()
	q.Set("search_path", "mcpedge_no_such_schema")
	u.RawQuery = q.Encode()
	_, err := postgres.Open(ctx, u.String())
	if err == nil || !strings.Contains(err.Error(), "mcpedge_no_such_schema") {
		t.Errorf("Open with a missing schema = %v, want an error naming it", err)
	}

	// A wrong password is refused without showing the password.
	u, _ = url.Parse(admin)
	u.User = url.UserPassword(u.User.Username(), "s3cret-wrong")
	_, err = postgres.Open(ctx, u.String())
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), "s3cret-wrong") {
		t.Errorf("error shows the password: %v", err)
	}

	_, err = postgres.Open(ctx, "postgres://u:s3cret@127.0.0.1:5432/x?sslmode=bogus")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open of a bad URL = %v, want an error without the password", err)
	}
}
