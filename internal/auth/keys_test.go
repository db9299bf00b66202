package auth

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

func TestKeyFormatAndStorage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme")
	secret, k := e.key(tn.ID, principal.RoleMember, 0)
	if !strings.HasPrefix(secret, KeyPrefix) || len(secret) != len(KeyPrefix)+40 {
		t.Fatalf("key %q: want %q + 40 characters", secret, KeyPrefix)
	}
	for _, r := range secret[len(KeyPrefix):] {
		if !strings.ContainsRune(base62, r) {
			t.Fatalf("key %q has a non-base62 character %q", secret, r)
		}
	}
	stored, err := e.st.GetKey(context.Background(), tn.ID, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Prefix != secret[:12] {
		t.Errorf("prefix %q, want %q", stored.Prefix, secret[:12])
	}
	if string(stored.Hash) == secret || len(stored.Hash) != 32 || strings.Contains(string(stored.Hash), secret[5:]) {
		t.Errorf("stored hash looks like the secret")
	}
	if a, b := newKeySecret(), newKeySecret(); a == b {
		t.Errorf("two keys are equal")
	}
}

func TestAuthenticateKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme", func(t *store.Tenant) { t.Plan = "pro" })
	secret, k := e.key(tn.ID, principal.RoleAdmin, time.Hour, func(k *store.APIKey) { k.Scopes = []string{"mcp:call", "mcp:list"} })
	p := mustAuth(t, e.svc, secret, testIP)
	want := principal.Principal{Kind: principal.KindKey, ID: k.ID, KeyID: k.ID, TenantID: tn.ID, TenantName: "acme",
		Plan: "pro", Role: principal.RoleAdmin, Scopes: []string{"mcp:call", "mcp:list"}}
	if p.Kind != want.Kind || p.ID != want.ID || p.KeyID != want.KeyID || p.TenantID != want.TenantID ||
		p.TenantName != want.TenantName || p.Plan != want.Plan || p.Role != want.Role || strings.Join(p.Scopes, ",") != "mcp:call,mcp:list" {
		t.Fatalf("principal %+v, want %+v", p, want)
	}
	if !p.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Errorf("ExpiresAt %v, want %v", p.ExpiresAt, e.clock.Now().Add(time.Hour))
	}
	// Cached path: same answer, and a mutated copy does not leak back.
	p.Role = "owner"
	if p2 := mustAuth(t, e.svc, secret, testIP); p2.Role != principal.RoleAdmin {
		t.Fatalf("cached principal changed: %+v", p2)
	}
}

func TestKeyUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	e.tenant("acme")
	_, err := e.svc.Authenticate(context.Background(), newKeySecret(), testIP)
	wantErr(t, err, ErrUnauthenticated, "unknown API key")
	_, err = e.svc.Authenticate(context.Background(), "", testIP)
	wantErr(t, err, ErrUnauthenticated, "missing credential")
	if got := e.audit.find("auth.reject", "denied"); len(got) != 1 || got[0].ActorKind != "anonymous" {
		t.Fatalf("audit %+v", got)
	}
}

func TestKeyRevoked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme")
	secret, k := e.key(tn.ID, principal.RoleMember, 0)
	mustAuth(t, e.svc, secret, testIP) // now cached
	if err := e.svc.RevokeKey(context.Background(), tn.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Authenticate(context.Background(), secret, testIP)
	wantErr(t, err, ErrUnauthenticated, "API key revoked")
	// A fresh Service (empty cache, revocations loaded from the store).
	_, err = e.service().Authenticate(context.Background(), secret, testIP)
	wantErr(t, err, ErrUnauthenticated, "API key revoked")
	if got := e.audit.find("key.revoke", "ok"); len(got) != 1 || got[0].Target != k.ID {
		t.Fatalf("key.revoke audit %+v", got)
	}
	rej := e.audit.find("auth.reject", "denied")
	if len(rej) == 0 || rej[0].Actor != k.ID || rej[0].ActorKind != "key" || rej[0].TenantID != tn.ID {
		t.Fatalf("reject audit %+v", rej)
	}
	if strings.Contains(string(rej[0].Detail), secret) {
		t.Fatal("audit detail contains the key")
	}
	// Revoking a key of another tenant is "not found".
	other := e.tenant("other")
	_, k2 := e.key(other.ID, principal.RoleMember, 0)
	if err := e.svc.RevokeKey(context.Background(), tn.ID, k2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant revoke: %v", err)
	}
}

func TestKeyExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme")
	secret, _ := e.key(tn.ID, principal.RoleMember, time.Minute)
	mustAuth(t, e.svc, secret, testIP) // cached
	e.clock.Advance(time.Minute)
	_, err := e.svc.Authenticate(context.Background(), secret, testIP)
	wantErr(t, err, ErrUnauthenticated, "API key expired")
	_, err = e.service().Authenticate(context.Background(), secret, testIP)
	wantErr(t, err, ErrUnauthenticated, "API key expired")
}

func TestKeyDisabledTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme")
	secret, _ := e.key(tn.ID, principal.RoleMember, 0)
	mustAuth(t, e.svc, secret, testIP)
	tn.Disabled = true
	e.updateTenant(tn)
	e.clock.Advance(CacheTTL) // the documented bound for non-revocation changes
	_, err := e.svc.Authenticate(context.Background(), secret, testIP)
	wantErr(t, err, ErrForbidden, "tenant disabled")
}

func TestKeyClientIPAllowlist(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme", func(t *store.Tenant) { t.IPAllowlist = []string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"} })
	secret, _ := e.key(tn.ID, principal.RoleMember, 0)
	for _, ip := range []string{"10.1.2.3", "::ffff:10.9.9.9", "2001:db8::1", "192.0.2.7", "10.0.0.1:5555"} {
		if _, err := e.svc.Authenticate(context.Background(), secret, ip); err != nil {
			t.Errorf("%s: %v", ip, err)
		}
	}
	for _, ip := range []string{"11.0.0.1", "192.0.2.8", "2001:db9::1", "", "not-an-ip"} {
		_, err := e.svc.Authenticate(context.Background(), secret, ip)
		if !errors.Is(err, ErrForbidden) || errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%q: got %v, want ErrForbidden", ip, err)
		}
	}
	// An allowlist of nothing but garbage allows nobody.
	tn.IPAllowlist = []string{"garbage"}
	e.updateTenant(tn)
	e.clock.Advance(CacheTTL)
	_, err := e.svc.Authenticate(context.Background(), secret, "10.1.2.3")
	wantErr(t, err, ErrForbidden, "client address not allowed for this tenant")
}

func TestKeyOfDisabledUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme")
	u := e.user(tn.ID, "alice", principal.RoleAdmin, "")
	secret, _ := e.key(tn.ID, principal.RoleAdmin, 0, func(k *store.APIKey) { k.UserID = u.ID })
	if p := mustAuth(t, e.svc, secret, testIP); p.UserID != u.ID || p.Role != principal.RoleAdmin {
		t.Fatalf("principal %+v", p)
	}
	// Demoting the user caps the key's role.
	u.Role = principal.RoleViewer
	if err := e.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(CacheTTL)
	if p := mustAuth(t, e.svc, secret, testIP); p.Role != principal.RoleViewer {
		t.Fatalf("role %q after demotion, want viewer", p.Role)
	}
	u.Disabled = true
	if err := e.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(CacheTTL)
	_, err := e.svc.Authenticate(context.Background(), secret, testIP)
	wantErr(t, err, ErrUnauthenticated, "API key's user is disabled")
}

func TestCreateKeyValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme")
	other := e.tenant("other")
	u := e.user(tn.ID, "bob", principal.RoleMember, "")
	ctx := context.Background()
	asAdmin := principal.With(ctx, &principal.Principal{Kind: principal.KindUser, ID: "u1", TenantID: tn.ID, Role: principal.RoleAdmin})
	for _, c := range []struct {
		name string
		ctx  context.Context
		k    store.APIKey
		exp  time.Duration
		want error
	}{
		{"no tenant", ctx, store.APIKey{Name: "x", Role: "member"}, 0, ErrInvalid},
		{"unknown tenant", ctx, store.APIKey{TenantID: "nope", Name: "x", Role: "member"}, 0, ErrInvalid},
		{"no name", ctx, store.APIKey{TenantID: tn.ID, Role: "member"}, 0, ErrInvalid},
		{"bad role", ctx, store.APIKey{TenantID: tn.ID, Name: "x", Role: "root"}, 0, ErrInvalid},
		{"bad scope", ctx, store.APIKey{TenantID: tn.ID, Name: "x", Role: "member", Scopes: []string{"has space"}}, 0, ErrInvalid},
		{"negative expiry", ctx, store.APIKey{TenantID: tn.ID, Name: "x", Role: "member"}, -time.Second, ErrInvalid},
		{"above its user", ctx, store.APIKey{TenantID: tn.ID, Name: "x", Role: "admin", UserID: u.ID}, 0, ErrInvalid},
		{"unknown user", ctx, store.APIKey{TenantID: tn.ID, Name: "x", Role: "member", UserID: "nope"}, 0, ErrInvalid},
		{"above its creator", asAdmin, store.APIKey{TenantID: tn.ID, Name: "x", Role: "owner"}, 0, ErrForbidden},
		{"other tenant", asAdmin, store.APIKey{TenantID: other.ID, Name: "x", Role: "member"}, 0, ErrForbidden},
		{"ok", asAdmin, store.APIKey{TenantID: tn.ID, Name: "x", Role: "admin", Scopes: []string{"mcp:call", "mcp:call", "tools:weather/*"}}, 0, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := c.k
			_, err := e.svc.CreateKey(c.ctx, &k, c.exp)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(k.Scopes, ",") != "mcp:call,tools:weather/*" {
					t.Errorf("scopes %v", k.Scopes)
				}
				if a := e.audit.last(); a.Action != "key.create" || a.Actor != "u1" || a.ActorKind != "user" {
					t.Errorf("audit %+v", a)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestImportKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme")
	ctx := context.Background()
	for _, bad := range []string{"short-secret-1234567", "has space in it 1234567890", "aaaaaaaaaa.bbbbbbbbbbbb.cccccccc", "ünïcödé-ünïcödé-ünïcödé-x"} {
		if err := e.svc.ImportKey(ctx, &store.APIKey{TenantID: tn.ID, Name: "env", Role: "owner"}, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ImportKey(%q): %v, want ErrInvalid", bad, err)
		}
	}
	secret := "my-own-admin-secret-0123456789"
	k := &store.APIKey{TenantID: tn.ID, Name: "env", Role: principal.RoleOwner}
	if err := e.svc.ImportKey(ctx, k, secret); err != nil {
		t.Fatal(err)
	}
	if k.Prefix != secret[:12] {
		t.Errorf("prefix %q", k.Prefix)
	}
	p := mustAuth(t, e.svc, secret, testIP)
	if p.KeyID != k.ID || p.Role != principal.RoleOwner {
		t.Fatalf("principal %+v", p)
	}
	// An imported key that looks like a generated one works as well.
	gen := newKeySecret()
	if err := e.svc.ImportKey(ctx, &store.APIKey{TenantID: tn.ID, Name: "env2", Role: "viewer"}, gen); err != nil {
		t.Fatal(err)
	}
	mustAuth(t, e.svc, gen, testIP)
	if err := e.svc.ImportKey(ctx, &store.APIKey{TenantID: tn.ID, Name: "again", Role: "owner"}, secret); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second import: %v, want ErrConflict", err)
	}
	var d map[string]any
	for _, a := range e.audit.find("key.create", "ok") {
		if err := json.Unmarshal(a.Detail, &d); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(a.Detail), secret) || strings.Contains(string(a.Detail), gen) {
			t.Fatal("audit contains a secret")
		}
	}
}

func TestRotateKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme")
	oldSecret, old := e.key(tn.ID, principal.RoleMember, 30*24*time.Hour, func(k *store.APIKey) { k.Scopes = []string{"mcp:call"} })
	mustAuth(t, e.svc, oldSecret, testIP)
	newSecret, next, err := e.svc.RotateKey(context.Background(), tn.ID, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if newSecret == oldSecret || next.ID == old.ID || next.Role != old.Role || strings.Join(next.Scopes, ",") != "mcp:call" {
		t.Fatalf("successor %+v", next)
	}
	if !next.ExpiresAt.After(e.clock.Now().Add(29 * 24 * time.Hour)) {
		t.Errorf("successor expires at %v; want about 30 days on", next.ExpiresAt)
	}
	mustAuth(t, e.svc, oldSecret, testIP) // overlap
	mustAuth(t, e.svc, newSecret, testIP)
	if _, _, err := e.svc.RotateKey(context.Background(), tn.ID, old.ID); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second rotation of the old key: %v", err)
	}
	e.clock.Advance(e.cfg.KeyRotateOverlap.D())
	_, err = e.svc.Authenticate(context.Background(), oldSecret, testIP)
	wantErr(t, err, ErrUnauthenticated, "API key expired")
	mustAuth(t, e.svc, newSecret, testIP)
	if a := e.audit.find("key.rotate", "ok"); len(a) != 1 || a[0].Target != next.ID || !strings.Contains(string(a[0].Detail), old.ID) {
		t.Fatalf("audit %+v", a)
	}
}

func TestKeyLastUsedBatched(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme")
	secret, k := e.key(tn.ID, principal.RoleMember, 0)
	lastUsed := func() time.Time {
		t.Helper()
		got, err := e.st.GetKey(context.Background(), tn.ID, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastUsedAt
	}
	t0 := e.clock.Now()
	for range 5 {
		mustAuth(t, e.svc, secret, testIP)
		e.clock.Advance(time.Second)
	}
	if !lastUsed().IsZero() {
		t.Fatal("last-used written before the flush")
	}
	e.svc.flushLastUsed(context.Background())
	if got := lastUsed(); !got.Equal(t0) {
		t.Fatalf("last used %v, want the first use %v", got, t0)
	}
	e.clock.Advance(time.Minute)
	mustAuth(t, e.svc, secret, testIP)
	if err := e.svc.Close(); err != nil { // Close flushes
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(e.clock.Now()) {
		t.Fatalf("last used %v, want %v", got, e.clock.Now())
	}
}

func TestKeyConcurrentAuthenticate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme")
	secret, k := e.key(tn.ID, principal.RoleMember, 0)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 50 {
				p, err := e.svc.Authenticate(context.Background(), secret, testIP)
				if err != nil || p.KeyID != k.ID {
					t.Errorf("goroutine %d/%d: %v", i, j, err)
					return
				}
				if j%10 == 0 {
					e.clock.Advance(CacheTTL)
				}
			}
		})
	}
	wg.Wait()
}
