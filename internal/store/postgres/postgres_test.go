package postgres_test

import (
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

// adminURL is MCPEDGE_TEST_POSTGRES; see storetest.PostgresURL.
func adminURL(t *testing.T) string {
	t.Helper()
	if os.Getenv("MCPEDGE_TEST_POSTGRES") == "" {
		storetest.PostgresURL(t) // skips or fails with the explanation
	}
	return os.Getenv("MCPEDGE_TEST_POSTGRES")
}

// pools bounds the stores open at once, so that a many-core machine
// running subtests in parallel stays under max_connections.
var pools = make(chan struct{}, 8)

func freshSchema(t *testing.T) string { return storetest.PostgresURL(t) }

// open opens a store with a small pool (see pools).
func open(t *testing.T, rawURL string) *postgres.Store {
	t.Helper()
	s, err := tryOpen(t, rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tryOpen(t *testing.T, rawURL string) (*postgres.Store, error) {
	pools <- struct{}{}
	s, err := postgres.Open(t.Context(), rawURL+"&pool_max_conns=4")
	if err != nil {
		<-pools
		return nil, err
	}
	t.Cleanup(func() {
		s.Close()
		<-pools
	})
	return s, nil
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

func TestMigrations(t *testing.T) {
	u := freshSchema(t)
	storetest.RunMigrations(t, postgres.LatestVersion(),
		func(t *testing.T) (storetest.Migrator, error) { return tryOpen(t, u) },
		func(t *testing.T, stmt string) {
			conn, err := pgx.Connect(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(t.Context())
			if _, err := conn.Exec(t.Context(), stmt); err != nil {
				t.Fatal(err)
			}
		})
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
