package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Migrator is a store that can be migrated again in place.
type Migrator interface {
	store.Store
	Migrate(ctx context.Context) error
}

// RunMigrations checks an implementation's migrations on one fresh
// database: Open migrates it to latest; migrating again, in place and by a
// second Open, is a no-op that keeps the data; and once exec has recorded a
// future version in schema_migrations, Open refuses the database with
// store.ErrSchemaTooNew and a message that says to upgrade.
//
// open opens the database (closing it at the end of t) or returns Open's
// error; exec runs one statement on it outside any store.
func RunMigrations(t *testing.T, latest int, open func(t *testing.T) (Migrator, error), exec func(t *testing.T, stmt string)) {
	ctx := t.Context()
	mustOpen := func() Migrator {
		t.Helper()
		s, err := open(t)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := mustOpen()
	v1, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v1 != latest {
		t.Fatalf("SchemaVersion = %d after Open, want %d", v1, latest)
	}
	tn := &store.Tenant{Name: "keep"}
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	s2 := mustOpen() // a third migration, by another process
	v2, err := s2.SchemaVersion(ctx)
	if err != nil || v2 != v1 {
		t.Fatalf("SchemaVersion after migrating again = %d, %v; want %d", v2, err, v1)
	}
	if _, err := s2.GetTenant(ctx, tn.ID); err != nil {
		t.Fatalf("data lost by migrating again: %v", err)
	}

	exec(t, `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`)
	_, err = open(t)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open of a database at version 9999 = %v, want ErrSchemaTooNew", err)
	}
	want := fmt.Sprintf("database schema version 9999 is newer than this binary supports (%d); upgrade mcpedge", latest)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}
