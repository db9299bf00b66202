package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

const goodPassword = "correct horse battery"

// sessionEnv is an env with tenant "acme" and user "alice" (admin).
func sessionEnv(t *testing.T, opts ...envOpt) (*env, *store.Tenant, *store.User) {
	e := newEnv(t, newTestStore(t), opts...)
	tn := e.tenant("acme")
	u := e.user(tn.ID, "alice", principal.RoleAdmin, goodPassword)
	return e, tn, u
}

func login(t *testing.T, e *env) *Tokens {
	t.Helper()
	tok, err := e.svc.Login(context.Background(), "acme", "alice", goodPassword, testIP)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	return tok
}

func TestLogin(t *testing.T) {
	t.Parallel()
	e, tn, u := sessionEnv(t)
	tok := login(t, e)
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 || !strings.HasPrefix(tok.RefreshToken, refreshPrefix) || tok.AccessToken == "" {
		t.Fatalf("tokens %+v", tok)
	}
	p := mustAuth(t, e.svc, tok.AccessToken, testIP)
	if p.Kind != principal.KindUser || p.ID != u.ID || p.UserID != u.ID || p.TenantID != tn.ID || p.TenantName != "acme" ||
		p.Role != principal.RoleAdmin || p.SessionID == "" || p.TokenID == "" || len(p.Scopes) != 0 {
		t.Fatalf("principal %+v", p)
	}
	if !p.ExpiresAt.Equal(e.clock.Now().Add(15 * time.Minute).Truncate(time.Second)) {
		t.Errorf("ExpiresAt %v", p.ExpiresAt)
	}
	if a := e.audit.find("auth.login", "ok"); len(a) != 1 || a[0].Actor != u.ID || a[0].TenantID != tn.ID || a[0].ClientIP != testIP {
		t.Fatalf("audit %+v", a)
	}
	// The role comes from the user record, not the token.
	u.Role = principal.RoleViewer
	if err := e.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(CacheTTL)
	if p := mustAuth(t, e.svc, tok.AccessToken, testIP); p.Role != principal.RoleViewer {
		t.Fatalf("role %q after demotion", p.Role)
	}
}

// TestLoginFailuresLookAlike: unknown tenant, unknown user, wrong
// password and no password set all get the same error.
func TestLoginFailuresLookAlike(t *testing.T) {
	t.Parallel()
	e, tn, _ := sessionEnv(t)
	e.user(tn.ID, "nopass", principal.RoleMember, "")
	ctx := context.Background()
	var msgs []string
	for _, c := range []struct{ tenant, user, pw, audit string }{
		{"nope", "alice", goodPassword, "unknown tenant"},
		{"acme", "bob", goodPassword, "unknown user"},
		{"acme", "alice", "wrong password!", "wrong password"},
		{"acme", "nopass", goodPassword, "no password set"},
	} {
		_, err := e.svc.Login(ctx, c.tenant, c.user, c.pw, testIP)
		wantErr(t, err, ErrUnauthenticated, "")
		msgs = append(msgs, err.Error())
		if a := e.audit.last(); a.Action != "auth.login" || a.Outcome != "denied" || !strings.Contains(string(a.Detail), c.audit) {
			t.Errorf("%+v: audit %s", c, a.Detail)
		}
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Fatalf("login errors differ: %q", msgs)
		}
	}
}

func TestLoginLockout(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t) // threshold 3, base 1m, max 10m
	ctx := context.Background()
	fail := func() {
		t.Helper()
		_, err := e.svc.Login(ctx, "acme", "alice", "wrong password!", testIP)
		wantErr(t, err, ErrUnauthenticated, "invalid tenant, user or password")
	}
	for range 3 {
		fail()
	}
	if a := e.audit.last(); !strings.Contains(string(a.Detail), "locked") {
		t.Fatalf("third failure should lock: %s", a.Detail)
	}
	// Locked: the right password is refused with the same error, and the
	// audit entry says why.
	_, err := e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
	wantErr(t, err, ErrUnauthenticated, "invalid tenant, user or password")
	if a := e.audit.last(); a.Actor != u.ID || !strings.Contains(string(a.Detail), `"reason":"locked"`) {
		t.Fatalf("audit %s", a.Detail)
	}
	e.clock.Advance(59 * time.Second)
	_, err = e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
	wantErr(t, err, ErrUnauthenticated, "")
	// After the lock, one more failure locks for twice as long.
	e.clock.Advance(time.Second)
	fail()
	e.clock.Advance(time.Minute + 59*time.Second)
	_, err = e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
	wantErr(t, err, ErrUnauthenticated, "")
	e.clock.Advance(time.Second)
	login(t, e)
	// Success reset the count: two failures do not lock.
	fail()
	fail()
	login(t, e)
}

func TestLockoutSchedule(t *testing.T) {
	t.Parallel()
	e, _, _ := sessionEnv(t) // threshold 3, base 1m, max 10m
	now := e.clock.Now()
	for n, want := range map[int]time.Duration{1: 0, 2: 0, 3: time.Minute, 4: 2 * time.Minute, 5: 4 * time.Minute, 6: 8 * time.Minute, 7: 10 * time.Minute, 100: 10 * time.Minute} {
		got := e.svc.lockUntil(now, n)
		if (want == 0) != got.IsZero() || (want != 0 && got.Sub(now) != want) {
			t.Errorf("failure %d: locked until +%v, want +%v", n, got.Sub(now), want)
		}
	}
}

func TestLoginDisabledUserAndTenant(t *testing.T) {
	t.Parallel()
	e, tn, u := sessionEnv(t)
	ctx := context.Background()
	u.Disabled = true
	if err := e.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
	wantErr(t, err, ErrUnauthenticated, "")
	u.Disabled = false
	if err := e.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	tn.Disabled = true
	e.updateTenant(tn)
	_, err = e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
	wantErr(t, err, ErrForbidden, "tenant disabled")
	tn.Disabled, tn.IPAllowlist = false, []string{"10.0.0.0/8"}
	e.updateTenant(tn)
	e.clock.Advance(CacheTTL)
	_, err = e.svc.Login(ctx, "acme", "alice", goodPassword, testIP)
	wantErr(t, err, ErrForbidden, "client address not allowed for this tenant")
	if _, err := e.svc.Login(ctx, "acme", "alice", goodPassword, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	e, _, _ := sessionEnv(t)
	ctx := context.Background()
	t1 := login(t, e)
	e.clock.Advance(time.Minute)
	t2, err := e.svc.Refresh(ctx, t1.RefreshToken, testIP)
	if err != nil {
		t.Fatal(err)
	}
	if t2.RefreshToken == t1.RefreshToken || t2.AccessToken == t1.AccessToken {
		t.Fatal("refresh did not rotate")
	}
	p1 := mustAuth(t, e.svc, t1.AccessToken, testIP)
	p2 := mustAuth(t, e.svc, t2.AccessToken, testIP)
	if p1.SessionID != p2.SessionID || p1.TokenID == p2.TokenID {
		t.Fatalf("sessions %q %q, tokens %q %q", p1.SessionID, p2.SessionID, p1.TokenID, p2.TokenID)
	}
	t3, err := e.svc.Refresh(ctx, t2.RefreshToken, testIP)
	if err != nil {
		t.Fatal(err)
	}
	if a := e.audit.find("auth.refresh", "ok"); len(a) != 2 {
		t.Fatalf("refresh audits %d", len(a))
	}
	// Reuse of t1's refresh token (already exchanged): the whole session
	// is revoked, including the newest tokens.
	_, err = e.svc.Refresh(ctx, t1.RefreshToken, testIP)
	wantErr(t, err, ErrUnauthenticated, "refresh token reused: the session was revoked; log in again")
	if a := e.audit.last(); a.Action != "auth.refresh" || a.Outcome != "denied" || !strings.Contains(string(a.Detail), "reused") {
		t.Fatalf("audit %+v", a)
	}
	_, err = e.svc.Refresh(ctx, t3.RefreshToken, testIP)
	wantErr(t, err, ErrUnauthenticated, "")
	_, err = e.svc.Authenticate(ctx, t3.AccessToken, testIP)
	wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
	// Another replica learns it from the store.
	_, err = e.service().Authenticate(ctx, t2.AccessToken, testIP)
	wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
	// A new login is a new session.
	mustAuth(t, e.svc, login(t, e).AccessToken, testIP)
}

func TestRefreshInvalidAndExpired(t *testing.T) {
	t.Parallel()
	e, _, _ := sessionEnv(t)
	ctx := context.Background()
	for _, bad := range []string{"", "x", refreshPrefix + strings.Repeat("A", 43), strings.Repeat("A", 300)} {
		_, err := e.svc.Refresh(ctx, bad, testIP)
		wantErr(t, err, ErrUnauthenticated, "invalid refresh token")
	}
	tok := login(t, e)
	// Rotation does not extend the session past RefreshTTL from login.
	e.clock.Advance(23 * time.Hour)
	tok, err := e.svc.Refresh(ctx, tok.RefreshToken, testIP)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	_, err = e.svc.Refresh(ctx, tok.RefreshToken, testIP)
	wantErr(t, err, ErrUnauthenticated, "session expired; log in again")
}

func TestLogout(t *testing.T) {
	t.Parallel()
	e, _, _ := sessionEnv(t)
	ctx := context.Background()
	tok := login(t, e)
	other := login(t, e) // a second session of the same user
	p := mustAuth(t, e.svc, tok.AccessToken, testIP)
	if err := e.svc.Logout(ctx, p); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Authenticate(ctx, tok.AccessToken, testIP)
	wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
	_, err = e.svc.Refresh(ctx, tok.RefreshToken, testIP)
	wantErr(t, err, ErrUnauthenticated, "")
	_, err = e.service().Authenticate(ctx, tok.AccessToken, testIP)
	wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
	mustAuth(t, e.svc, other.AccessToken, testIP)
	if a := e.audit.find("auth.logout", "ok"); len(a) != 1 {
		t.Fatalf("logout audit %+v", a)
	}
	if err := e.svc.Logout(ctx, &principal.Principal{Kind: principal.KindKey, ID: "k"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("logout of a key: %v", err)
	}
}

func TestRevokeUser(t *testing.T) {
	t.Parallel()
	e, tn, u := sessionEnv(t)
	ctx := context.Background()
	a, b := login(t, e), login(t, e)
	if err := e.svc.RevokeUser(ctx, tn.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []*Tokens{a, b} {
		_, err := e.svc.Authenticate(ctx, tok.AccessToken, testIP)
		wantErr(t, err, ErrUnauthenticated, "session revoked; log in again")
		_, err = e.svc.Refresh(ctx, tok.RefreshToken, testIP)
		wantErr(t, err, ErrUnauthenticated, "")
	}
	// A login after the revocation works, even within the same second.
	e.clock.Advance(time.Millisecond)
	c := login(t, e)
	mustAuth(t, e.svc, c.AccessToken, testIP)
	mustAuth(t, e.service(), c.AccessToken, testIP)
	if _, err := e.svc.Refresh(ctx, c.RefreshToken, testIP); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeUser(ctx, "other-tenant", u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant RevokeUser: %v", err)
	}
}

func TestAccessTokenDisabledUser(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	tok := login(t, e)
	u.Disabled = true
	if err := e.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(CacheTTL)
	_, err := e.svc.Authenticate(context.Background(), tok.AccessToken, testIP)
	wantErr(t, err, ErrUnauthenticated, "user disabled")
}

// ownToken signs claims like the gateway's access tokens, with changes.
func ownToken(t *testing.T, e *env, u *store.User, method jwt.SigningMethod, key any, mod func(*accessClaims)) string {
	t.Helper()
	now := e.clock.Now()
	c := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: e.cfg.Issuer, Subject: u.ID, Audience: jwt.ClaimStrings{e.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), NotBefore: jwt.NewNumericDate(now),
			IssuedAt: jwt.NewNumericDate(now), ID: store.NewID(),
		},
		TenantID: u.TenantID, SessionID: store.NewID(), IssuedMS: now.UnixMilli(),
	}
	if mod != nil {
		mod(&c)
	}
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAccessTokenControl(t *testing.T) {
	t.Parallel()
	// The helper's token, signed with the real key, is accepted: the
	// hostile variants below fail for the reason they test.
	e, _, u := sessionEnv(t)
	mustAuth(t, e.svc, ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, nil), testIP)
}

func TestAccessTokenAlgNone(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	tok := ownToken(t, e, u, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil)
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token signature invalid")
	// "none" with a signature part copied from a real token.
	real := ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, nil)
	forged := tok + real[strings.LastIndex(real, ".")+1:]
	_, err = e.svc.Authenticate(context.Background(), forged, testIP)
	wantErr(t, err, ErrUnauthenticated, "")
}

func TestAccessTokenOtherSecret(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	tok := ownToken(t, e, u, jwt.SigningMethodHS256, []byte("an attacker's guess at the secret, 32+ bytes long"), nil)
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token signature invalid")
	if a := e.audit.last(); a.Action != "auth.reject" || a.Outcome != "denied" {
		t.Fatalf("audit %+v", a)
	}
}

func TestAccessTokenOtherHMACAlgs(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
		tok := ownToken(t, e, u, m, e.svc.jwtKey, nil)
		_, err := e.svc.Authenticate(context.Background(), tok, testIP)
		wantErr(t, err, ErrUnauthenticated, "token signature invalid")
	}
}

func TestAccessTokenExpired(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	tok := ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, nil) // exp = now+1m
	e.clock.Advance(time.Minute + leeway + time.Second)
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token expired")
}

func TestAccessTokenNotYetValid(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	tok := ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, func(c *accessClaims) {
		c.NotBefore = jwt.NewNumericDate(e.clock.Now().Add(time.Hour))
	})
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token not valid yet")
}

func TestAccessTokenIssuedInFuture(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	tok := ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, func(c *accessClaims) {
		c.IssuedAt = jwt.NewNumericDate(e.clock.Now().Add(time.Hour))
	})
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token issued in the future")
}

func TestAccessTokenMissingExp(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	tok := ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, func(c *accessClaims) { c.ExpiresAt = nil })
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token lacks required claims")
}

func TestAccessTokenWrongIssuer(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	tok := ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, func(c *accessClaims) { c.Issuer = "someone-else" })
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token from an unknown issuer")
}

func TestAccessTokenWrongAudience(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	tok := ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, func(c *accessClaims) { c.Audience = jwt.ClaimStrings{"another-service"} })
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token not meant for this gateway")
	tok = ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, func(c *accessClaims) { c.Audience = nil })
	_, err = e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "")
}

func TestAccessTokenMissingClaims(t *testing.T) {
	t.Parallel()
	e, _, u := sessionEnv(t)
	for name, mod := range map[string]func(*accessClaims){
		"sub": func(c *accessClaims) { c.Subject = "" },
		"tid": func(c *accessClaims) { c.TenantID = "" },
		"sid": func(c *accessClaims) { c.SessionID = "" },
		"jti": func(c *accessClaims) { c.ID = "" },
		"iat": func(c *accessClaims) { c.IssuedAt = nil },
	} {
		tok := ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, mod)
		_, err := e.svc.Authenticate(context.Background(), tok, testIP)
		if !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("without %s: %v", name, err)
		}
	}
	// A valid signature over another tenant's id does not reach the user.
	tok := ownToken(t, e, u, jwt.SigningMethodHS256, e.svc.jwtKey, func(c *accessClaims) { c.TenantID = "another" })
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "user no longer exists")
}

func TestMalformedTokens(t *testing.T) {
	t.Parallel()
	e, _, _ := sessionEnv(t)
	for _, tok := range []string{"a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "...", strings.Repeat("a", maxTokenLen+1)} {
		_, err := e.svc.Authenticate(context.Background(), tok, testIP)
		if !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%.20q: %v", tok, err)
		}
		if strings.Contains(err.Error(), tok) {
			t.Errorf("error echoes the token: %v", err)
		}
	}
}

// TestLoginLockoutBurst: concurrent guesses on one account take turns,
// so a burst does not get more than LockoutThreshold guesses checked.
func TestLoginLockoutBurst(t *testing.T) {
	t.Parallel()
	e, _, _ := sessionEnv(t) // threshold 3
	var wg sync.WaitGroup
	for range 24 {
		wg.Go(func() {
			_, err := e.svc.Login(context.Background(), "acme", "alice", "wrong password!", testIP)
			if !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Login: %v", err)
			}
		})
	}
	wg.Wait()
	checked := 0
	for _, a := range e.audit.find("auth.login", "denied") {
		if strings.Contains(string(a.Detail), "wrong password") {
			checked++
		}
	}
	if checked != e.cfg.LockoutThreshold {
		t.Fatalf("%d guesses were checked, want %d", checked, e.cfg.LockoutThreshold)
	}
	_, err := e.svc.Login(context.Background(), "acme", "alice", goodPassword, testIP)
	wantErr(t, err, ErrUnauthenticated, "")
}
