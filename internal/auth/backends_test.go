package auth

import (
	"context"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// TestFlowOnEachBackend runs the main flows once on every database (the
// other tests use SQLite in memory): keys (create, authenticate, rotate,
// revoke, expire, last-used), sessions (login, refresh, reuse, logout),
// lockout and user revocation.
func TestFlowOnEachBackend(t *testing.T) {
	t.Parallel()
	for _, be := range sharedBackends() {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t, 1)[0])
			ctx := context.Background()
			tn := e.tenant("acme", func(t *store.Tenant) { t.IPAllowlist = []string{"192.0.2.0/24"} })
			u := e.user(tn.ID, "alice", principal.RoleAdmin, goodPassword)

			secret, k := e.key(tn.ID, principal.RoleMember, time.Hour, func(k *store.APIKey) { k.Scopes = []string{"mcp:call"} })
			if p := mustAuth(t, e.svc, secret, testIP); p.KeyID != k.ID || p.Scopes[0] != "mcp:call" {
				t.Fatalf("principal %+v", p)
			}
			_, err := e.svc.Authenticate(ctx, secret, "198.51.100.1")
			wantErr(t, err, ErrForbidden, "")
			next, nk, err := e.svc.RotateKey(ctx, tn.ID, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			mustAuth(t, e.svc, next, testIP)
			mustAuth(t, e.svc, secret, testIP)
			if err := e.svc.RevokeKey(ctx, tn.ID, nk.ID); err != nil {
				t.Fatal(err)
			}
			_, err = e.svc.Authenticate(ctx, next, testIP)
			wantErr(t, err, ErrUnauthenticated, "API key revoked")
			e.svc.flushLastUsed(ctx)
			if got, err := e.st.GetKey(ctx, tn.ID, k.ID); err != nil || !got.LastUsedAt.Equal(e.clock.Now()) {
				t.Fatalf("last used %v, %v", got.LastUsedAt, err)
			}
			e.clock.Advance(e.cfg.KeyRotateOverlap.D())
			_, err = e.service().Authenticate(ctx, secret, testIP)
			wantErr(t, err, ErrUnauthenticated, "API key expired")

			tok, err := e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
			if err != nil {
				t.Fatal(err)
			}
			tok2, err := e.svc.Refresh(ctx, tok.RefreshToken, testIP)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.svc.Refresh(ctx, tok.RefreshToken, testIP)
			wantErr(t, err, ErrUnauthenticated, "refresh token reused: the session was revoked; log in again")
			_, err = e.service().Authenticate(ctx, tok2.AccessToken, testIP)
			wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")

			tok3, err := e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
			if err != nil {
				t.Fatal(err)
			}
			p := mustAuth(t, e.svc, tok3.AccessToken, testIP)
			if err := e.svc.Logout(ctx, p); err != nil {
				t.Fatal(err)
			}
			_, err = e.service().Authenticate(ctx, tok3.AccessToken, testIP)
			wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")

			tok4, err := e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Millisecond)
			if err := e.svc.RevokeUser(ctx, tn.ID, u.ID); err != nil {
				t.Fatal(err)
			}
			_, err = e.service().Authenticate(ctx, tok4.AccessToken, testIP)
			wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
			_, err = e.svc.Refresh(ctx, tok4.RefreshToken, testIP)
			wantErr(t, err, ErrUnauthenticated, "")

			for range e.cfg.LockoutThreshold {
				if _, err := e.svc.Login(ctx, "acme", "alice", "wrong password!", testIP); err == nil {
					t.Fatal("wrong password accepted")
				}
			}
			_, err = e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
			wantErr(t, err, ErrUnauthenticated, "")
			e.clock.Advance(e.cfg.LockoutBase.D())
			if _, err := e.svc.Login(ctx, "acme", "alice", goodPassword, testIP); err != nil {
				t.Fatalf("login after the lock: %v", err)
			}
		})
	}
}
