package auth

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

type hookStore struct {
	store.Store
	mu     sync.Mutex
	before func()
}

func (h *hookStore) CreateRefreshToken(ctx context.Context, t *store.RefreshToken) error {
	h.mu.Lock()
	f := h.before
	h.before = nil
	h.mu.Unlock()
	if f != nil {
		f()
	}
	return h.Store.CreateRefreshToken(ctx, t)
}

func TestRefreshRacingRevocationKeepsSession(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*env, *hookStore, *store.Tenant, *store.User) {
		hs := &hookStore{Store: newTestStore(t)}
		e := newEnv(t, hs)
		tn := e.tenant("acme")
		return e, hs, tn, e.user(tn.ID, "alice", principal.RoleAdmin, goodPassword)
	}
	survives := func(t *testing.T, e *env, got *Tokens, wait time.Duration) {
		t.Helper()
		e.clock.Advance(wait)
		if err := e.svc.pollRevocations(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Authenticate(ctx, got.AccessToken, testIP); err == nil {
			t.Fatal("racing access token accepted")
		}
		next, err := e.svc.Refresh(ctx, got.RefreshToken, testIP)
		if err != nil {
			return
		}
		if _, err := e.svc.Authenticate(ctx, next.AccessToken, testIP); err == nil {
			t.Fatal("the session survived its revocation")
		}
	}
	t.Run("RevokeUser", func(t *testing.T) {
		e, hs, tn, u := setup(t)
		tok := login(t, e)
		hs.before = func() { e.clock.Advance(time.Millisecond); _ = e.svc.RevokeUser(ctx, tn.ID, u.ID) }
		if got, err := e.svc.Refresh(ctx, tok.RefreshToken, testIP); err == nil {
			survives(t, e, got, time.Second)
		}
	})
	t.Run("Logout", func(t *testing.T) {
		e, hs, _, _ := setup(t)
		tok := login(t, e)
		p := mustAuth(t, e.svc, tok.AccessToken, testIP)
		hs.before = func() { _ = e.svc.Logout(ctx, p) }
		if got, err := e.svc.Refresh(ctx, tok.RefreshToken, testIP); err == nil {
			survives(t, e, got, e.cfg.AccessTTL.D()+2*time.Minute)
		}
	})
}

// TestRefreshRacingRevocationOnAnotherReplica: the revocation that lands
// between UseRefreshToken and CreateRefreshToken is made by a second
// replica, which this one has not heard of (no Redis, an hour to its next
// poll): the refresh still fails, and neither its tokens nor the old ones
// work afterwards.
func TestRefreshRacingRevocationOnAnotherReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, be := range sharedBackends() {
		for _, how := range []string{"RevokeUser", "Logout"} {
			t.Run(be.name+"/"+how, func(t *testing.T) {
				stores := be.open(t, 2)
				hs := &hookStore{Store: stores[0]}
				e := newEnv(t, hs)
				b := e.service(onStore(stores[1]))
				tn := e.tenant("acme")
				u := e.user(tn.ID, "alice", principal.RoleAdmin, goodPassword)
				tok := login(t, e)
				p := mustAuth(t, b, tok.AccessToken, testIP)
				e.clock.Advance(time.Minute)
				hs.before = func() {
					e.clock.Advance(time.Millisecond)
					var err error
					if how == "RevokeUser" {
						err = b.RevokeUser(ctx, tn.ID, u.ID)
					} else {
						err = b.Logout(ctx, p)
					}
					if err != nil {
						t.Error(err)
					}
				}
				got, err := e.svc.Refresh(ctx, tok.RefreshToken, testIP)
				wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
				if got != nil {
					t.Fatalf("tokens %+v", got)
				}
				_, err = e.svc.Authenticate(ctx, tok.AccessToken, testIP)
				wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
				_, err = e.svc.Refresh(ctx, tok.RefreshToken, testIP)
				wantErr(t, err, ErrUnauthenticated, "")
				// A new login is a new session.
				e.clock.Advance(time.Millisecond)
				next := login(t, e)
				mustAuth(t, e.svc, next.AccessToken, testIP)
				if _, err := e.svc.Refresh(ctx, next.RefreshToken, testIP); err != nil {
					t.Fatalf("refresh of a session started after the revocation: %v", err)
				}
			})
		}
	}
}

// TestRefreshEscapedRevocation: a revocation whose store update missed a
// refresh token created concurrently (PostgreSQL, READ COMMITTED: the
// update's snapshot predates the insert) and that committed only after
// the refresh had looked for it. Its record is all that is left: the
// refresh's access token is refused once the revocation is known (even
// when the revocation's time is before the refresh), and the escaped
// refresh token is refused for the session's whole life, long after
// the in-memory tail of access-token revocations.
func TestRefreshEscapedRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, kind := range []string{revUser, revFamily} {
		t.Run(kind, func(t *testing.T) {
			e, _, u := sessionEnv(t)
			tok := login(t, e)
			e.clock.Advance(time.Minute)
			at := e.clock.Now().Add(-time.Millisecond) // decided before the refresh, recorded after it
			got, err := e.svc.Refresh(ctx, tok.RefreshToken, testIP)
			if err != nil {
				t.Fatal(err)
			}
			p := mustAuth(t, e.svc, got.AccessToken, testIP)
			subject := u.ID
			if kind == revFamily {
				subject = p.SessionID
			}
			if err := e.st.Revoke(ctx, &store.Revocation{Kind: kind, Subject: subject, At: at}); err != nil {
				t.Fatal(err)
			}
			for _, s := range []*Service{e.svc, e.service()} {
				if err := s.pollRevocations(ctx); err != nil {
					t.Fatal(err)
				}
				_, err = s.Authenticate(ctx, got.AccessToken, testIP)
				wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
			}
			e.clock.Advance(e.cfg.AccessTTL.D() + 2*time.Minute)
			if err := e.svc.pollRevocations(ctx); err != nil {
				t.Fatal(err)
			}
			for _, s := range []*Service{e.svc, e.service()} {
				_, err = s.Refresh(ctx, got.RefreshToken, testIP)
				wantErr(t, err, ErrUnauthenticated, "")
			}
		})
	}
}

// TestRefreshSeesUnpolledRevocation: Refresh brings the revocation list
// up to date with the store before deciding, so a user revocation made
// by another replica counts even before this one's poll.
func TestRefreshSeesUnpolledRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, _, u := sessionEnv(t)
	tok := login(t, e)
	e.clock.Advance(time.Millisecond)
	// Recorded in the store only, leaving the refresh token itself alive
	// (as a racing refresh would have).
	if err := e.st.Revoke(ctx, &store.Revocation{Kind: revUser, Subject: u.ID, At: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Refresh(ctx, tok.RefreshToken, testIP)
	wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
}

// TestSyncRevocationsConcurrent: concurrent refreshes share the
// revocation polls and all succeed.
func TestSyncRevocationsConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, _, _ := sessionEnv(t)
	toks := make([]*Tokens, 8)
	for i := range toks {
		toks[i] = login(t, e)
	}
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			for range 3 {
				next, err := e.svc.Refresh(ctx, tok.RefreshToken, testIP)
				if err != nil {
					t.Error(err)
					return
				}
				tok = next
			}
		})
	}
	wg.Wait()
}
