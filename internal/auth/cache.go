package auth

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// ttlCache is a small map whose entries expire after CacheTTL (by the
// Service clock, so tests control it).
type ttlCache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v     V
	until time.Time
}

func newTTLCache[K comparable, V any]() *ttlCache[K, V] {
	return &ttlCache[K, V]{m: make(map[K]ttlEntry[V])}
}

func (c *ttlCache[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[K, V]) put(k K, v V, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= cacheMax {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= cacheMax {
			clear(c.m)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, until: now.Add(CacheTTL)}
}

// deleteFunc removes the entries for which drop returns true.
func (c *ttlCache[K, V]) deleteFunc(drop func(K, V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if drop(k, e.v) {
			delete(c.m, k)
		}
	}
}

func (c *ttlCache[K, V]) delete(k K) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// tenantEntry is a tenant with its allowlist parsed.
type tenantEntry struct {
	t     *store.Tenant
	allow []netip.Prefix
}

// keyEntry is a verified API key and the principal it resolves to.
type keyEntry struct {
	key    *store.APIKey
	tenant *tenantEntry
	p      principal.Principal
	// refusal, if set, is a final refusal (revoked, expired) remembered
	// for the cache TTL; p is then empty.
	refusal error
	// queued mirrors lastUsed.queued for this key (UnixNano), so that the
	// hot path skips the lastUsed lock within lastUsedEvery.
	queued atomic.Int64
}

// tenant returns the tenant by id through the cache.
func (s *Service) tenant(ctx context.Context, id string) (*tenantEntry, error) {
	return s.cachedTenant(ctx, id, func(ctx context.Context) (*store.Tenant, error) { return s.st.GetTenant(ctx, id) })
}

// tenantByName returns the tenant by name through the cache.
func (s *Service) tenantByName(ctx context.Context, name string) (*tenantEntry, error) {
	return s.cachedTenant(ctx, "name:"+name, func(ctx context.Context) (*store.Tenant, error) { return s.st.GetTenantByName(ctx, name) })
}

// cachedTenant returns the tenant cached under key, loading it with get
// (once for concurrent callers) when it is not.
func (s *Service) cachedTenant(ctx context.Context, key string, get func(context.Context) (*store.Tenant, error)) (*tenantEntry, error) {
	now := s.now()
	if e, ok := s.tenants.get(key, now); ok {
		return e, nil
	}
	v, err, _ := s.loads.Do("tenant:"+key, func() (any, error) {
		ctx, cancel := sharedLoadContext(ctx)
		defer cancel()
		t, err := get(ctx)
		if err != nil {
			return nil, err
		}
		e := newTenantEntry(t)
		s.tenants.put(key, e, now)
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tenantEntry), nil
}

// user returns the user by id (within tenantID) through the cache.
func (s *Service) user(ctx context.Context, tenantID, id string) (*store.User, error) {
	now := s.now()
	if u, ok := s.users.get(id, now); ok {
		if u.TenantID != tenantID {
			return nil, store.ErrNotFound
		}
		return u, nil
	}
	v, err, _ := s.loads.Do("user:"+tenantID+"/"+id, func() (any, error) {
		ctx, cancel := sharedLoadContext(ctx)
		defer cancel()
		u, err := s.st.GetUser(ctx, tenantID, id)
		if err != nil {
			return nil, err
		}
		s.users.put(id, u, now)
		return u, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*store.User), nil
}

// sharedLoadContext is the context of a store lookup shared by
// concurrent requests (singleflight): one caller going away must not fail
// the others, but the lookup stays bounded.
func sharedLoadContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

func newTenantEntry(t *store.Tenant) *tenantEntry {
	return &tenantEntry{t: t, allow: parseAllowlist(t.IPAllowlist)}
}

// parseAllowlist parses CIDRs (and bare addresses). Unparsable entries
// are dropped, which only narrows the list; a list whose entries are all
// unparsable allows nobody (checkIP fails closed on a non-empty list).
func parseAllowlist(list []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// checkTenant refuses a disabled tenant or a client outside its allowlist.
func checkTenant(te *tenantEntry, clientIP string) error {
	if te.t.Disabled {
		return forbidden("tenant disabled")
	}
	if len(te.t.IPAllowlist) == 0 {
		return nil
	}
	a, ok := parseClientIP(clientIP)
	if ok {
		for _, p := range te.allow {
			if p.Contains(a) {
				return nil
			}
		}
	}
	return forbidden("client address not allowed for this tenant")
}

func parseClientIP(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// storeErr turns a store failure on the authentication path into an
// error: a missing object is a refused credential, anything else is an
// internal error (not wrapped in ErrUnauthenticated: the caller should
// answer 5xx, not 401).
func storeErr(err error, reason string) error {
	if errors.Is(err, store.ErrNotFound) {
		return unauth(reason)
	}
	return err
}
