package latticesvc

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

// The tests run on the real SQLite store, one database file per test
// (reopening a path finds the data).

// testDB is a SQLite store closed once, by the test or at its end.
type testDB struct {
	*sqlite.Store
	once sync.Once
	err  error
}

func (d *testDB) Close() error {
	d.once.Do(func() { d.err = d.Store.Close() })
	return d.err
}

// openStore opens (creating it) the SQLite store at path.
func openStore(t testing.TB, path string) store.Lattices {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	d := &testDB{Store: s}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// newStore opens a fresh test store.
func newStore(t testing.TB) store.Lattices {
	return openStore(t, filepath.Join(t.TempDir(), "mcpedge.db"))
}

// addTenant creates a tenant in st and returns its id.
func addTenant(t testing.TB, st store.Lattices, name string) string {
	t.Helper()
	tn := &store.Tenant{Name: name, Plan: "free"}
	if err := st.(store.Tenants).CreateTenant(context.Background(), tn); err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

// as returns ctx carrying a principal of tenant on plan.
func as(ctx context.Context, tenant, plan string) context.Context {
	return principal.With(ctx, &principal.Principal{Kind: principal.KindKey, ID: "key-" + tenant, TenantID: tenant, TenantName: tenant, Plan: plan, Role: principal.RoleMember})
}

// closeStore closes a store opened by openStore before the test ends
// (to reopen it).
func closeStore(t testing.TB, st store.Lattices) {
	t.Helper()
	if c, ok := st.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// failingStore makes reads (get, list, count) or writes (create, delete)
// fail once set.
type failingStore struct {
	store.Lattices
	reads, writes atomic.Pointer[error]
}

func failing(p *atomic.Pointer[error]) error {
	if e := p.Load(); e != nil {
		return *e
	}
	return nil
}

func (f *failingStore) CreateLattice(ctx context.Context, l *store.Lattice) error {
	if err := failing(&f.writes); err != nil {
		return err
	}
	return f.Lattices.CreateLattice(ctx, l)
}

func (f *failingStore) GetLattice(ctx context.Context, tenantID, id string) (*store.Lattice, error) {
	if err := failing(&f.reads); err != nil {
		return nil, err
	}
	return f.Lattices.GetLattice(ctx, tenantID, id)
}

func (f *failingStore) ListLattices(ctx context.Context, tenantID string) ([]store.Lattice, error) {
	if err := failing(&f.reads); err != nil {
		return nil, err
	}
	return f.Lattices.ListLattices(ctx, tenantID)
}

func (f *failingStore) DeleteLattice(ctx context.Context, tenantID, id string) error {
	if err := failing(&f.writes); err != nil {
		return err
	}
	return f.Lattices.DeleteLattice(ctx, tenantID, id)
}

func (f *failingStore) CountLattices(ctx context.Context, tenantID string) (int, error) {
	if err := failing(&f.reads); err != nil {
		return 0, err
	}
	return f.Lattices.CountLattices(ctx, tenantID)
}
