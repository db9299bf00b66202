package auth

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// fakeStore is a small in-memory store.Store with the parts auth uses,
// following the contracts in internal/store. Methods auth does not use
// panic (through the nil embedded interface).
type fakeStore struct {
	store.Store
	mu      sync.Mutex
	tenants map[string]*store.Tenant
	users   map[string]*store.User
	keys    map[string]*store.APIKey
	tokens  map[string]*store.RefreshToken
	revs    []store.Revocation
	secrets map[string][]byte
	vs      []store.VirtualServer
	touched map[string]time.Time
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		tenants: map[string]*store.Tenant{},
		users:   map[string]*store.User{},
		keys:    map[string]*store.APIKey{},
		tokens:  map[string]*store.RefreshToken{},
		secrets: map[string][]byte{},
		touched: map[string]time.Time{},
	}
}

func (f *fakeStore) Kind() string { return "fake" }
func (f *fakeStore) Close() error { return nil }

func (f *fakeStore) GetOrCreateSecret(_ context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.secrets[name]; ok {
		return b, nil
	}
	b, err := gen()
	if err != nil {
		return nil, err
	}
	f.secrets[name] = b
	return b, nil
}

func (f *fakeStore) CreateTenant(_ context.Context, t *store.Tenant) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.tenants {
		if x.Name == t.Name {
			return store.ErrConflict
		}
	}
	t.ID, t.CreatedAt = store.NewID(), time.Now().UTC()
	c := *t
	f.tenants[t.ID] = &c
	return nil
}

func (f *fakeStore) GetTenant(_ context.Context, id string) (*store.Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tenants[id]; ok {
		c := *t
		return &c, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) GetTenantByName(_ context.Context, name string) (*store.Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.tenants {
		if t.Name == name {
			c := *t
			return &c, nil
		}
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) UpdateTenant(_ context.Context, t *store.Tenant) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.tenants[t.ID]
	if !ok {
		return store.ErrNotFound
	}
	x.Plan, x.Operator, x.IPAllowlist, x.Disabled = t.Plan, t.Operator, t.IPAllowlist, t.Disabled
	return nil
}

func (f *fakeStore) CountTenants(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tenants), nil
}

func (f *fakeStore) CreateVirtualServer(_ context.Context, v *store.VirtualServer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	v.ID = store.NewID()
	f.vs = append(f.vs, *v)
	return nil
}

func (f *fakeStore) ListVirtualServers(_ context.Context, tenantID string) ([]store.VirtualServer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.VirtualServer
	for _, v := range f.vs {
		if v.TenantID == tenantID {
			out = append(out, v)
		}
	}
	return out, nil
}

func (f *fakeStore) CreateUser(_ context.Context, u *store.User) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.users {
		if x.TenantID == u.TenantID && x.Name == u.Name {
			return store.ErrConflict
		}
	}
	u.ID, u.CreatedAt = store.NewID(), time.Now().UTC()
	c := *u
	f.users[u.ID] = &c
	return nil
}

func (f *fakeStore) GetUser(_ context.Context, tenantID, id string) (*store.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, ok := f.users[id]; ok && u.TenantID == tenantID {
		c := *u
		return &c, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) GetUserByName(_ context.Context, tenantID, name string) (*store.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if u.TenantID == tenantID && u.Name == name {
			c := *u
			return &c, nil
		}
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) UpdateUser(_ context.Context, u *store.User) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.users[u.ID]
	if !ok || x.TenantID != u.TenantID {
		return store.ErrNotFound
	}
	x.Role, x.PasswordHash, x.Disabled = u.Role, u.PasswordHash, u.Disabled
	return nil
}

func (f *fakeStore) RecordLogin(_ context.Context, userID string, ok bool, lockedUntil time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, found := f.users[userID]
	if !found {
		return 0, store.ErrNotFound
	}
	if ok {
		u.FailedLogins, u.LockedUntil = 0, time.Time{}
	} else {
		u.FailedLogins++
		u.LockedUntil = lockedUntil
	}
	return u.FailedLogins, nil
}

func (f *fakeStore) CreateKey(_ context.Context, k *store.APIKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.createKey(k)
}

func (f *fakeStore) createKey(k *store.APIKey) error {
	for _, x := range f.keys {
		if x.Prefix == k.Prefix || bytes.Equal(x.Hash, k.Hash) {
			return store.ErrConflict
		}
	}
	k.ID, k.CreatedAt = store.NewID(), time.Now().UTC()
	c := *k
	c.Scopes = slices.Clone(k.Scopes)
	f.keys[k.ID] = &c
	return nil
}

func (f *fakeStore) GetKeyByHash(_ context.Context, hash []byte) (*store.APIKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.keys {
		if bytes.Equal(k.Hash, hash) {
			c := *k
			return &c, nil
		}
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) GetKey(_ context.Context, tenantID, id string) (*store.APIKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k, ok := f.keys[id]; ok && (tenantID == "" || k.TenantID == tenantID) {
		c := *k
		return &c, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) RevokeKey(_ context.Context, tenantID, id string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[id]
	if !ok || (tenantID != "" && k.TenantID != tenantID) {
		return store.ErrNotFound
	}
	if k.RevokedAt.IsZero() {
		k.RevokedAt = at
	}
	f.revoke(store.Revocation{Kind: "key", Subject: id, At: at})
	return nil
}

func (f *fakeStore) RotateKey(_ context.Context, tenantID, oldID string, next *store.APIKey, oldExpires time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.keys[oldID]
	if !ok || (tenantID != "" && old.TenantID != tenantID) {
		return store.ErrNotFound
	}
	if err := f.createKey(next); err != nil {
		return err
	}
	old.RotatedTo = next.ID
	if old.ExpiresAt.IsZero() || oldExpires.Before(old.ExpiresAt) {
		old.ExpiresAt = oldExpires
	}
	return nil
}

func (f *fakeStore) TouchKeys(_ context.Context, m map[string]time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, t := range m {
		if k, ok := f.keys[id]; ok && t.After(k.LastUsedAt) {
			k.LastUsedAt = t
			f.touched[id] = t
		}
	}
	return nil
}

func (f *fakeStore) CreateRefreshToken(_ context.Context, t *store.RefreshToken) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t.ID, t.CreatedAt = store.NewID(), time.Now().UTC()
	c := *t
	f.tokens[string(t.Hash)] = &c
	return nil
}

func (f *fakeStore) UseRefreshToken(_ context.Context, hash []byte, at time.Time) (*store.RefreshToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tokens[string(hash)]
	if !ok {
		return nil, store.ErrNotFound
	}
	before := *t
	if !t.UsedAt.IsZero() || !t.RevokedAt.IsZero() {
		f.revokeFamily(t.FamilyID, at)
		return &before, store.ErrReused
	}
	t.UsedAt = at
	return &before, nil
}

func (f *fakeStore) RevokeFamily(_ context.Context, family string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokeFamily(family, at)
	return nil
}

func (f *fakeStore) revokeFamily(family string, at time.Time) {
	for _, t := range f.tokens {
		if t.FamilyID == family && t.RevokedAt.IsZero() {
			t.RevokedAt = at
		}
	}
	f.revoke(store.Revocation{Kind: "token_family", Subject: family, At: at})
}

func (f *fakeStore) RevokeUserSessions(_ context.Context, userID string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.tokens {
		if t.UserID == userID && t.RevokedAt.IsZero() {
			t.RevokedAt = at
		}
	}
	f.revoke(store.Revocation{Kind: "user", Subject: userID, At: at})
	return nil
}

func (f *fakeStore) Revoke(_ context.Context, r *store.Revocation) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r.Seq = f.revoke(*r)
	return nil
}

func (f *fakeStore) revoke(r store.Revocation) int64 {
	r.Seq = int64(len(f.revs) + 1)
	f.revs = append(f.revs, r)
	return r.Seq
}

func (f *fakeStore) RevocationsSince(_ context.Context, after int64, limit int) ([]store.Revocation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Revocation
	for _, r := range f.revs {
		if r.Seq > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeStore) IsRevoked(_ context.Context, kind, subject string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.revs {
		if r.Kind == kind && r.Subject == subject {
			return true, nil
		}
	}
	return false, nil
}
