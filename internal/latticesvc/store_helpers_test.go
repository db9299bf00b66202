package latticesvc

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// The tests run on the store opened by openStore. Until the SQLite store
// lands this is a fake: the in-memory store, one per path (so that
// "reopening" a path finds the data), which also checks that tenants
// exist, like the real store's foreign key.

var fakeStores sync.Map // path → *fakeStore

type fakeStore struct {
	memLattices
	tenants sync.Map // id → name
}

func (f *fakeStore) CreateLattice(ctx context.Context, l *store.Lattice) error {
	if _, ok := f.tenants.Load(l.TenantID); !ok {
		return errors.Join(store.ErrNotFound, errors.New("tenant "+l.TenantID))
	}
	return f.memLattices.CreateLattice(ctx, l)
}

// openStore opens the test store at path (creating it).
func openStore(t testing.TB, path string) store.Lattices {
	t.Helper()
	v, _ := fakeStores.LoadOrStore(path, &fakeStore{})
	return v.(*fakeStore)
}

// newStore opens a fresh test store.
func newStore(t testing.TB) store.Lattices {
	return openStore(t, filepath.Join(t.TempDir(), "mcpedge.db"))
}

// addTenant creates a tenant in st and returns its id.
func addTenant(t testing.TB, st store.Lattices, name string) string {
	t.Helper()
	f := st.(*fakeStore)
	id := "tenant-" + name
	f.tenants.Store(id, name)
	return id
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
