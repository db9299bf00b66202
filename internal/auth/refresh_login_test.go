package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// TestRefreshReuseRevokesFamily (control): presenting a refresh
// token twice ends the session, including the successor issued by the
// first use.
func TestRefreshReuseRevokesFamily(t *testing.T) {
	ctx := context.Background()
	e, _, _ := sessionEnv(t)
	tok := login(t, e)
	next, err := e.svc.Refresh(ctx, tok.RefreshToken, testIP)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Refresh(ctx, tok.RefreshToken, testIP); err == nil {
		t.Fatal("a used refresh token worked again")
	}
	if _, err := e.svc.Refresh(ctx, next.RefreshToken, testIP); err == nil {
		t.Fatal("the successor still works after reuse was detected")
	}
	if _, err := e.svc.Authenticate(ctx, next.AccessToken, testIP); err == nil {
		t.Fatal("the successor's access token still works after reuse was detected")
	}
}

// TestLoginAllowlistIsNoPasswordOracle: a tenant's IP allowlist is
// checked only after the password. From outside the allowlist a wrong
// password answers 401 ("invalid tenant, user or password") but the right
// one 403 ("client address not allowed"): the allowlist does not stop
// password guessing from anywhere, it tells the guesser when it is right.
func TestLoginAllowlistIsNoPasswordOracle(t *testing.T) {
	e := newEnv(t, newTestStore(t))
	tn := e.tenant("acme", func(t *store.Tenant) { t.IPAllowlist = []string{"10.0.0.0/8"} })
	e.user(tn.ID, "alice", principal.RoleAdmin, goodPassword)
	ctx := context.Background()
	_, wrong := e.svc.Login(ctx, "acme", "alice", "not the password", testIP)
	_, right := e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
	if wrong == nil || right == nil {
		t.Fatalf("a login from outside the allowlist succeeded: %v / %v", wrong, right)
	}
	if errors.Is(wrong, ErrForbidden) != errors.Is(right, ErrForbidden) || Reason(wrong) != Reason(right) {
		t.Fatalf("from outside the allowlist, a wrong password answers %q and the right one %q", wrong, right)
	}
}
