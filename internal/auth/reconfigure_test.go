package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpedge/mcpedge/internal/config"
)

// TestReconfigureAppliesAuthSettings: a reload's [auth] reaches the
// running Service: token lifetimes and lockout of new logins, the audience
// of new and accepted tokens, and a bad section changes nothing.
func TestReconfigureAppliesAuthSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	ten := e.tenant("acme")
	ann := e.user(ten.ID, "ann", "member", "correct horse battery")
	ctx := context.Background()

	before, err := e.svc.Login(ctx, "acme", "ann", "correct horse battery", testIP)
	if err != nil {
		t.Fatal(err)
	}
	if before.ExpiresIn != int((15 * time.Minute).Seconds()) {
		t.Fatalf("expires_in %d before the reload", before.ExpiresIn)
	}

	next := e.cfg
	next.AccessTTL = config.Duration(2 * time.Minute)
	next.Audience = "gateway-b"
	next.LockoutThreshold = 1
	if err := e.svc.Reconfigure(next); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	after, err := e.svc.Login(ctx, "acme", "ann", "correct horse battery", testIP)
	if err != nil {
		t.Fatal(err)
	}
	if after.ExpiresIn != 120 {
		t.Fatalf("expires_in %d after the reload, want 120", after.ExpiresIn)
	}
	var cl jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(after.AccessToken, &cl); err != nil || len(cl.Audience) != 1 || cl.Audience[0] != "gateway-b" {
		t.Fatalf("new token's audience %v (%v)", cl.Audience, err)
	}
	mustAuth(t, e.svc, after.AccessToken, testIP)
	// A token of the old audience is refused now, as after a restart.
	if _, err := e.svc.Authenticate(ctx, before.AccessToken, testIP); err == nil {
		t.Fatal("a token for the old audience still accepted")
	}

	// Lockout threshold 1: one failure locks the account.
	if _, err := e.svc.Login(ctx, "acme", "ann", "wrong", testIP); err == nil {
		t.Fatal("wrong password accepted")
	}
	if u, err := e.st.GetUser(ctx, ten.ID, ann.ID); err != nil || u.LockedUntil.IsZero() {
		t.Fatalf("after one failure with lockout_threshold = 1 the user is not locked (%v)", err)
	}
	if _, err := e.svc.Login(ctx, "acme", "ann", "correct horse battery", testIP); err == nil {
		t.Fatal("a locked account logged in")
	}

	// A section the Service can not use is refused whole.
	bad := next
	bad.AccessTTL = config.Duration(time.Hour)
	bad.OIDC = config.OIDC{Issuer: next.Issuer, Audience: "x", JWKSURL: "https://idp.example/jwks"}
	if err := e.svc.Reconfigure(bad); err == nil {
		t.Fatal("an OIDC issuer equal to the gateway's own was accepted")
	}
	if got := e.svc.cfg().AccessTTL; got != next.AccessTTL {
		t.Fatalf("a refused section changed access_ttl to %v", got)
	}
}

// TestReconfigureOIDC: [auth.oidc] added by a reload is honoured at once;
// a reload that leaves it unchanged keeps the fetched key set; removing it
// refuses the provider's tokens.
func TestReconfigureOIDC(t *testing.T) {
	t.Parallel()
	e, srv := oidcEnv(t)
	k := testKeys()
	tok := signIDP(t, jwt.SigningMethodRS256, k.rsa, map[string]any{"kid": "rsa1"}, idpClaims(e.clock.Now()))
	withOIDC := e.cfg

	noOIDC := e.cfg
	noOIDC.OIDC = config.OIDC{}
	if err := e.svc.Reconfigure(noOIDC); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(context.Background(), tok, testIP); err == nil {
		t.Fatal("a provider token accepted after [auth.oidc] was removed")
	}
	if err := e.svc.Reconfigure(withOIDC); err != nil {
		t.Fatal(err)
	}
	mustAuth(t, e.svc, tok, testIP)
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
	// Unchanged [auth.oidc], other settings changed: the verifier and its
	// key set are kept (no second fetch).
	other := withOIDC
	other.LockoutMax = config.Duration(time.Hour)
	if err := e.svc.Reconfigure(other); err != nil {
		t.Fatal(err)
	}
	mustAuth(t, e.svc, tok, testIP)
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times after a reload that kept [auth.oidc], want 1", n)
	}
	// A provider section missing its audience is refused, and the running
	// one stays.
	broken := other
	broken.OIDC.Audience = ""
	if err := e.svc.Reconfigure(broken); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("Reconfigure without an audience: %v", err)
	}
	mustAuth(t, e.svc, tok, testIP)
}
