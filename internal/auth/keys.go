package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// API key format.
const (
	// KeyPrefix starts every generated API key.
	KeyPrefix = "mcpe_"
	// keyRandLen base62 characters follow the prefix.
	keyRandLen = 40
	// displayPrefixLen characters of a key are stored in the clear
	// ("mcpe_" and 7 random characters) so a person can recognise it.
	displayPrefixLen = 12
	// MinImportedKeyLen is the shortest secret ImportKey accepts.
	MinImportedKeyLen = 24
	maxImportedKeyLen = 512
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomBase62 returns n characters drawn uniformly from base62 using
// crypto/rand (bytes ≥ 248 are discarded so that every character is
// equally likely).
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic("auth: no randomness: " + err.Error())
		}
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}

// newKeySecret returns a fresh API key.
func newKeySecret() string { return KeyPrefix + randomBase62(keyRandLen) }

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// keyHash is the stored form of an API key.
func (s *Service) keyHash(secret string) []byte { return s.keyMAC.sum(nil, secret) }

// macPool reuses HMAC states: creating one costs more than hashing a key.
type macPool struct{ p sync.Pool }

func newMACPool(key []byte) *macPool {
	key = slices.Clone(key)
	return &macPool{p: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// sum appends HMAC-SHA256(key, msg) to dst.
func (m *macPool) sum(dst []byte, msg string) []byte {
	h := m.p.Get().(hash.Hash)
	h.Reset()
	_, _ = io.WriteString(h, msg)
	dst = h.Sum(dst)
	m.p.Put(h)
	return dst
}

var scopeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9:._*/-]{0,63}$`)

const (
	maxScopes     = 32
	maxKeyNameLen = 64
)

// authenticateKey resolves an API key.
func (s *Service) authenticateKey(ctx context.Context, secret, clientIP string) (*principal.Principal, error) {
	var buf [sha256.Size]byte
	sum := s.keyMAC.sum(buf[:0], secret)
	now := s.now()
	e, ok := s.keys.get(string(sum), now)
	if !ok {
		var err error
		e, err = s.loadKeyOnce(ctx, string(sum), now)
		if err != nil {
			var f *failure
			if errors.As(err, &f) {
				w := who{kind: principal.KindAnonymous}
				var detail map[string]any
				if k := keyFromErr(err); k != nil {
					w = keyWho(k)
					detail = map[string]any{"prefix": k.Prefix}
				}
				return nil, s.reject(ctx, w, clientIP, err, detail)
			}
			return nil, err
		}
	}
	if e.refusal != nil {
		return nil, s.reject(ctx, keyWho(e.key), clientIP, e.refusal, map[string]any{"prefix": e.key.Prefix})
	}
	// Checked on every use, cached or not: a revocation that raced with
	// loading the entry is still seen, and expiry needs no eviction.
	if s.rev.has(revKey, e.key.ID) {
		return nil, s.reject(ctx, keyWho(e.key), clientIP, unauth("API key revoked"), map[string]any{"prefix": e.key.Prefix})
	}
	if !e.p.ExpiresAt.IsZero() && !now.Before(e.p.ExpiresAt) {
		return nil, s.reject(ctx, keyWho(e.key), clientIP, unauth("API key expired"), map[string]any{"prefix": e.key.Prefix})
	}
	if err := checkTenant(e.tenant, clientIP); err != nil {
		return nil, s.reject(ctx, keyWho(e.key), clientIP, err, map[string]any{"prefix": e.key.Prefix})
	}
	if q := e.queued.Load(); q == 0 || now.UnixNano()-q >= int64(lastUsedEvery) {
		e.queued.Store(s.used.touch(e.key.ID, now).UnixNano())
	}
	p := e.p
	return &p, nil
}

// loadKeyOnce is loadKey shared by concurrent callers with the same key.
func (s *Service) loadKeyOnce(ctx context.Context, hash string, now time.Time) (*keyEntry, error) {
	v, err, _ := s.loads.Do("key:"+hash, func() (any, error) {
		ctx, cancel := sharedLoadContext(ctx)
		defer cancel()
		return s.loadKey(ctx, []byte(hash), now)
	})
	if err != nil {
		return nil, err
	}
	return v.(*keyEntry), nil
}

// keyFailure carries the key a refusal is about, for the audit entry.
type keyFailure struct {
	*failure
	key *store.APIKey
}

func (k *keyFailure) Unwrap() error { return k.failure }

func keyFromErr(err error) *store.APIKey {
	var kf *keyFailure
	if errors.As(err, &kf) {
		return kf.key
	}
	return nil
}

func keyRefused(k *store.APIKey, err error) error {
	var f *failure
	if errors.As(err, &f) {
		return &keyFailure{failure: f, key: k}
	}
	return err
}

// loadKey looks a key up in the store and checks what does not depend on
// the request (the client address is checked by the caller).
func (s *Service) loadKey(ctx context.Context, hash []byte, now time.Time) (*keyEntry, error) {
	k, err := s.st.GetKeyByHash(ctx, hash)
	if err != nil {
		return nil, storeErr(err, "unknown API key")
	}
	// The store found the key by its hash; comparing again in constant
	// time guards against an implementation whose lookup is looser
	// (prefix or case-insensitive matches).
	if subtle.ConstantTimeCompare(k.Hash, hash) != 1 {
		return nil, unauth("unknown API key")
	}
	// Revoked and expired are final: remember them for the cache TTL so
	// that a client retrying a dead key does not query the store each time.
	if !k.RevokedAt.IsZero() || s.rev.has(revKey, k.ID) {
		return nil, s.refuseKey(hash, k, now, unauth("API key revoked"))
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return nil, s.refuseKey(hash, k, now, unauth("API key expired"))
	}
	te, err := s.tenant(ctx, k.TenantID)
	if err != nil {
		return nil, keyRefused(k, storeErr(err, "unknown API key"))
	}
	role := k.Role
	if k.UserID != "" {
		u, err := s.user(ctx, k.TenantID, k.UserID)
		if err != nil {
			return nil, keyRefused(k, storeErr(err, "API key's user no longer exists"))
		}
		if u.Disabled {
			return nil, keyRefused(k, unauth("API key's user is disabled"))
		}
		// A key never outranks the user it belongs to, even after the
		// user is demoted.
		if principal.RoleRank(u.Role) < principal.RoleRank(role) {
			role = u.Role
		}
	}
	if !principal.ValidRole(role) {
		return nil, keyRefused(k, unauth("API key has no valid role"))
	}
	e := &keyEntry{key: k, tenant: te, p: principal.Principal{
		Kind:        principal.KindKey,
		ID:          k.ID,
		UserID:      k.UserID,
		KeyID:       k.ID,
		TenantID:    k.TenantID,
		TenantName:  te.t.Name,
		Plan:        te.t.Plan,
		Operator:    te.t.Operator,
		Role:        role,
		Scopes:      slices.Clone(k.Scopes),
		IPAllowlist: slices.Clone(te.t.IPAllowlist),
		ExpiresAt:   k.ExpiresAt,
	}}
	s.keys.put(string(hash), e, now)
	return e, nil
}

// refuseKey caches a final refusal of k and returns it.
func (s *Service) refuseKey(hash []byte, k *store.APIKey, now time.Time, err error) error {
	s.keys.put(string(hash), &keyEntry{key: k, refusal: err}, now)
	return keyRefused(k, err)
}

// validateKey checks the caller-supplied fields of a new key.
func (s *Service) validateKey(ctx context.Context, k *store.APIKey) error {
	if k == nil {
		return invalid("no key")
	}
	if k.TenantID == "" {
		return invalid("tenant_id is required")
	}
	k.Name = strings.TrimSpace(k.Name)
	if k.Name == "" || len(k.Name) > maxKeyNameLen || strings.ContainsFunc(k.Name, unicode.IsControl) {
		return invalid("name must be 1 to %d printable characters", maxKeyNameLen)
	}
	if !principal.ValidRole(k.Role) {
		return invalid("role must be one of viewer, member, admin, owner")
	}
	if len(k.Scopes) > maxScopes {
		return invalid("at most %d scopes", maxScopes)
	}
	for _, sc := range k.Scopes {
		if !scopeRE.MatchString(sc) {
			return invalid("scope %q is not valid (letters, digits and :._*/- up to 64 characters)", truncate(sc, 64))
		}
	}
	slices.Sort(k.Scopes)
	k.Scopes = slices.Compact(k.Scopes)
	if _, err := s.st.GetTenant(ctx, k.TenantID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return invalid("unknown tenant")
		}
		return err
	}
	if k.UserID != "" {
		u, err := s.st.GetUser(ctx, k.TenantID, k.UserID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return invalid("unknown user")
			}
			return err
		}
		if principal.RoleRank(k.Role) > principal.RoleRank(u.Role) {
			return invalid("a key can not have a stronger role (%s) than its user (%s)", k.Role, u.Role)
		}
	}
	// Defence in depth for the admin API: whoever creates a key may not
	// give it more than they have, nor create keys in another tenant,
	// unless they belong to an operator tenant.
	if p := principal.From(ctx); p != nil && !p.Operator {
		if p.TenantID != k.TenantID {
			return forbidden("a key can only be created in your own tenant")
		}
		if principal.RoleRank(k.Role) > principal.RoleRank(p.Role) {
			return forbidden("a key can not have a stronger role than yours")
		}
	}
	return nil
}

// CreateKey stores a new API key and returns its secret, which is shown
// once and never again. k needs TenantID, Name and Role; Scopes and
// UserID are optional. expiresIn 0 means the key does not expire. On
// success k is the stored key (ID, Prefix, CreatedAt, ExpiresAt set).
//
// If ctx carries a principal of a non-operator tenant, the key must be in
// that tenant and may not have a stronger role than the principal's.
func (s *Service) CreateKey(ctx context.Context, k *store.APIKey, expiresIn time.Duration) (secret string, err error) {
	if expiresIn < 0 {
		return "", invalid("expiry must not be negative")
	}
	if err := s.validateKey(ctx, k); err != nil {
		return "", err
	}
	k.ExpiresAt = time.Time{}
	if expiresIn > 0 {
		k.ExpiresAt = s.now().Add(expiresIn).UTC()
	}
	secret, err = s.storeNewKey(ctx, k, func(k *store.APIKey) error { return s.st.CreateKey(ctx, k) })
	if err != nil {
		return "", err
	}
	s.auditKey(ctx, "key.create", k)
	return secret, nil
}

// storeNewKey generates a secret for k and stores it with create,
// retrying on the (astronomically unlikely) clash of display prefixes.
func (s *Service) storeNewKey(ctx context.Context, k *store.APIKey, create func(*store.APIKey) error) (string, error) {
	for attempt := 0; ; attempt++ {
		secret := newKeySecret()
		k.ID, k.CreatedAt = "", time.Time{}
		k.Prefix = secret[:displayPrefixLen]
		k.Hash = s.keyHash(secret)
		k.RevokedAt, k.LastUsedAt, k.RotatedTo = time.Time{}, time.Time{}, ""
		err := create(k)
		if err == nil {
			return secret, nil
		}
		if !errors.Is(err, store.ErrConflict) || attempt == 2 {
			return "", fmt.Errorf("auth: storing key: %w", err)
		}
	}
}

// ImportKey stores a key whose secret comes from outside (the bootstrap
// environment variable). Any secret of at least MinImportedKeyLen
// printable, non-space characters is accepted, except JWT-shaped ones
// (two dots), which Authenticate would take for a token. Its display
// prefix is its first 12 characters. ErrConflict if it is already stored.
func (s *Service) ImportKey(ctx context.Context, k *store.APIKey, secret string) error {
	switch {
	case len(secret) < MinImportedKeyLen:
		return invalid("an imported key must be at least %d characters", MinImportedKeyLen)
	case len(secret) > maxImportedKeyLen:
		return invalid("an imported key must be at most %d characters", maxImportedKeyLen)
	case strings.ContainsFunc(secret, func(r rune) bool { return r <= ' ' || r == 0x7f || r > unicode.MaxASCII }):
		return invalid("an imported key must be printable ASCII without spaces")
	case isJWTShaped(secret):
		return invalid("an imported key must not contain exactly two dots (it would be taken for a JWT)")
	}
	if err := s.validateKey(ctx, k); err != nil {
		return err
	}
	k.ID, k.CreatedAt = "", time.Time{}
	k.Prefix = secret[:displayPrefixLen]
	k.Hash = s.keyHash(secret)
	if err := s.st.CreateKey(ctx, k); err != nil {
		return fmt.Errorf("auth: storing key: %w", err)
	}
	s.auditKey(ctx, "key.create", k, "imported", true)
	return nil
}

// RotateKey creates a successor of a key with the same tenant, user,
// name, role, scopes and lifetime, and returns its secret. The old key
// keeps working for Config.KeyRotateOverlap (or until its own expiry, if
// sooner). A revoked, expired or already rotated key can not be rotated.
func (s *Service) RotateKey(ctx context.Context, tenantID, keyID string) (secret string, next *store.APIKey, err error) {
	old, err := s.st.GetKey(ctx, tenantID, keyID)
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	switch {
	case !old.RevokedAt.IsZero():
		return "", nil, invalid("the key is revoked")
	case !old.ExpiresAt.IsZero() && !now.Before(old.ExpiresAt):
		return "", nil, invalid("the key has expired")
	case old.RotatedTo != "":
		return "", nil, invalid("the key was already rotated; rotate its successor")
	}
	next = &store.APIKey{
		TenantID: old.TenantID,
		UserID:   old.UserID,
		Name:     old.Name,
		Role:     old.Role,
		Scopes:   slices.Clone(old.Scopes),
	}
	if err := s.validateKey(ctx, next); err != nil {
		return "", nil, err
	}
	if !old.ExpiresAt.IsZero() {
		// Keep the key's lifetime policy: the successor lives as long as
		// the old key was meant to.
		next.ExpiresAt = now.Add(old.ExpiresAt.Sub(old.CreatedAt)).UTC()
	}
	oldExpires := now.Add(s.cfg().KeyRotateOverlap.D()).UTC()
	secret, err = s.storeNewKey(ctx, next, func(k *store.APIKey) error {
		return s.st.RotateKey(ctx, old.TenantID, old.ID, k, oldExpires)
	})
	if err != nil {
		return "", nil, err
	}
	// The old key's expiry changed: drop its cached entry.
	s.keys.deleteFunc(func(_ string, e *keyEntry) bool { return e.key.ID == old.ID })
	s.auditKey(ctx, "key.rotate", next, "rotated_from", old.ID, "old_expires_at", oldExpires)
	return secret, next, nil
}

// RevokeKey revokes a key at once: in the store, in this replica's cache,
// and (through Redis, or the store poll) on every other replica.
func (s *Service) RevokeKey(ctx context.Context, tenantID, keyID string) error {
	k, err := s.st.GetKey(ctx, tenantID, keyID)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	if err := s.st.RevokeKey(ctx, k.TenantID, k.ID, now); err != nil {
		return err
	}
	s.revokeLocal(ctx, store.Revocation{Kind: revKey, Subject: k.ID, At: now})
	s.auditKey(ctx, "key.revoke", k)
	return nil
}

// lastUsed batches key last-used times: a key is queued at most once per
// lastUsedEvery, and the queue is written every lastUsedFlush.
type lastUsed struct {
	mu      sync.Mutex
	queued  map[string]time.Time // last time each key was queued
	pending map[string]time.Time
}

func newLastUsed() *lastUsed {
	return &lastUsed{queued: make(map[string]time.Time), pending: make(map[string]time.Time)}
}

// touch queues now as the key's last use unless it was queued less than
// lastUsedEvery ago, and returns when it was last queued.
func (l *lastUsed) touch(id string, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	q, ok := l.queued[id]
	if !ok || now.Sub(q) >= lastUsedEvery {
		q = now
		l.queued[id] = now
		l.pending[id] = now.UTC()
	}
	return q
}

func (l *lastUsed) take(now time.Time) map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return nil
	}
	p := l.pending
	l.pending = make(map[string]time.Time)
	for id, q := range l.queued {
		if now.Sub(q) >= lastUsedEvery {
			delete(l.queued, id) // keeps the map as small as the active keys
		}
	}
	return p
}

func (s *Service) flushLastUsed(ctx context.Context) {
	p := s.used.take(s.now())
	if len(p) == 0 {
		return
	}
	if err := s.st.TouchKeys(ctx, p); err != nil {
		s.log.Warn("auth: recording key last-used times", "keys", len(p), "err", err)
	}
}

func (s *Service) auditKey(ctx context.Context, action string, k *store.APIKey, kv ...any) {
	d := map[string]any{"key_id": k.ID, "prefix": k.Prefix, "name": k.Name, "role": k.Role}
	for i := 0; i+1 < len(kv); i += 2 {
		d[kv[i].(string)] = kv[i+1]
	}
	e := &store.AuditEntry{TenantID: k.TenantID, Action: action, Target: k.ID, Outcome: "ok"}
	s.setActor(ctx, e)
	s.emit(ctx, e, d)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
