package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Tokens is what Login and Refresh return (the OAuth 2.0 token response
// shape).
type Tokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// refreshPrefix starts every refresh token, so that secret scanners and
// people can tell one from an API key.
const refreshPrefix = "mcpr_"

// maxNameLen bounds tenant and user names in a login.
const maxNameLen = 128

// errBadLogin is the one answer to every failed login, whatever failed
// (unknown tenant or user, wrong password, locked account), so that the
// answer does not tell which accounts exist.
var errBadLogin = &failure{kind: ErrUnauthenticated, reason: "invalid tenant, user or password"}

// accessClaims are the claims of the gateway's own access tokens. The
// role is not among them: it is read from the user record on each use
// (through the cache), so a demotion takes effect at once.
type accessClaims struct {
	jwt.RegisteredClaims
	TenantID  string `json:"tid"`
	SessionID string `json:"sid"`
	// IssuedMS is the issue time in milliseconds. iat has one-second
	// precision; this orders a token against a user revocation made in the
	// same second (a login right after a password change must work).
	IssuedMS int64 `json:"ims"`
	// StartMS is when the session (the login) started, in milliseconds:
	// a user revocation at or after it ends the session, so an access
	// token that a refresh racing the revocation issued after it is
	// refused too. Zero in tokens from older versions.
	StartMS int64 `json:"sst,omitempty"`
}

// Login checks a password and starts a session. Every failure returns the
// same error (ErrUnauthenticated); the audit entry says what failed. After
// LockoutThreshold failures in a row the account is locked for
// LockoutBase, doubling with each further failure up to LockoutMax; while
// locked, even the right password is refused, and attempts are not
// counted (so a lock does not grow while nobody can try). Attempts on
// one replica are checked a few at a time (the hashing concurrency), so a
// burst of guesses overshoots the threshold by at most that many.
func (s *Service) Login(ctx context.Context, tenant, user, password, clientIP string) (*Tokens, error) {
	deny := func(w who, reason string, extra map[string]any) error {
		d := map[string]any{"reason": reason, "user": truncate(user, maxNameLen)}
		for k, v := range extra {
			d[k] = v
		}
		s.emit(ctx, &store.AuditEntry{TenantID: w.tenant, Actor: w.id, ActorKind: orAnonymous(w.kind),
			Action: "auth.login", Outcome: outcomeDenied, ClientIP: clientIP}, d)
		return errBadLogin
	}
	if tenant == "" || user == "" || password == "" || len(tenant) > maxNameLen || len(user) > maxNameLen {
		return nil, deny(who{}, "malformed", nil)
	}
	t, err := s.st.GetTenantByName(ctx, tenant)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		s.burn(ctx, password)
		return nil, deny(who{}, "unknown tenant", map[string]any{"tenant": truncate(tenant, maxNameLen)})
	}
	// A disabled tenant, or an address outside its allowlist, is refused
	// before any password is looked at: answering only after checking it
	// would tell a guesser outside the allowlist when a guess was right
	// (403 instead of 401), and let it lock accounts out.
	if err := checkTenant(newTenantEntry(t), clientIP); err != nil {
		s.emit(ctx, &store.AuditEntry{TenantID: t.ID, ActorKind: principal.KindAnonymous,
			Action: "auth.login", Outcome: outcomeDenied, ClientIP: clientIP}, map[string]any{"reason": Reason(err), "user": truncate(user, maxNameLen)})
		return nil, err
	}
	u, err := s.st.GetUserByName(ctx, t.ID, user)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		s.burn(ctx, password)
		return nil, deny(who{tenant: t.ID}, "unknown user", nil)
	}
	// Attempts on one account take turns on this replica, and each reads
	// the account afresh in its turn: a burst of concurrent guesses sees
	// the failures before it and the lock they set, so it can not
	// overshoot LockoutThreshold (across replicas, by at most one guess
	// per other replica in flight).
	unlock, err := s.accounts.lock(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	release, err := s.acquireHashSlot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if u, err = s.st.GetUser(ctx, t.ID, u.ID); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		_, _ = VerifyPassword(s.dummy(), password)
		return nil, deny(who{tenant: t.ID}, "unknown user", nil)
	}
	w := userWho(u)
	now := s.now()
	if u.PasswordHash == "" {
		_, _ = VerifyPassword(s.dummy(), password)
		return nil, deny(w, "no password set", nil)
	}
	if now.Before(u.LockedUntil) {
		_, _ = VerifyPassword(s.dummy(), password)
		return nil, deny(w, "locked", map[string]any{"locked_until": u.LockedUntil.UTC()})
	}
	ok, err := VerifyPassword(u.PasswordHash, password)
	if err != nil || !ok {
		reason := "wrong password"
		if err != nil {
			reason = "unreadable password hash"
			s.log.Error("auth: unreadable password hash", "user", u.ID, "err", err)
		}
		failures := u.FailedLogins + 1
		lockedUntil := s.lockUntil(now, failures)
		n, rerr := s.st.RecordLogin(ctx, u.ID, false, lockedUntil)
		if rerr != nil {
			return nil, rerr
		}
		extra := map[string]any{"failures": n}
		if !lockedUntil.IsZero() {
			reason = "wrong password; locked"
			extra["locked_until"] = lockedUntil.UTC()
		}
		return nil, deny(w, reason, extra)
	}
	if u.Disabled {
		return nil, deny(w, "user disabled", nil)
	}
	te, err := s.tenant(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	if err := checkTenant(te, clientIP); err != nil {
		d := map[string]any{"reason": Reason(err), "user": u.Name}
		s.emit(ctx, &store.AuditEntry{TenantID: w.tenant, Actor: w.id, ActorKind: w.kind,
			Action: "auth.login", Outcome: outcomeDenied, ClientIP: clientIP}, d)
		return nil, err
	}
	if u.FailedLogins != 0 || !u.LockedUntil.IsZero() {
		if _, err := s.st.RecordLogin(ctx, u.ID, true, time.Time{}); err != nil {
			return nil, err
		}
	}
	tok, err := s.startSession(ctx, u, now)
	if err != nil {
		return nil, err
	}
	s.emit(ctx, &store.AuditEntry{TenantID: u.TenantID, Actor: u.ID, ActorKind: principal.KindUser,
		Action: "auth.login", Outcome: outcomeOK, ClientIP: clientIP}, map[string]any{"user": u.Name})
	return tok, nil
}

// lockUntil is the lock after the n-th failure in a row (zero: none).
func (s *Service) lockUntil(now time.Time, n int) time.Time {
	th := s.cfg().LockoutThreshold
	if n < th {
		return time.Time{}
	}
	d := s.cfg().LockoutBase.D()
	maxD := s.cfg().LockoutMax.D()
	for i := th; i < n && d < maxD; i++ {
		d *= 2
	}
	return now.Add(min(d, maxD)).UTC()
}

// startSession creates a refresh-token family and its first tokens.
func (s *Service) startSession(ctx context.Context, u *store.User, now time.Time) (*Tokens, error) {
	family := store.NewID()
	return s.issue(ctx, u, family, now, now, now.Add(s.cfg().RefreshTTL.D()))
}

// issue stores a new refresh token of family (the session that started
// at sessionStart, valid until sessionEnd) and signs an access token.
func (s *Service) issue(ctx context.Context, u *store.User, family string, now, sessionStart, sessionEnd time.Time) (*Tokens, error) {
	refresh := refreshPrefix + randomBase62(43)
	rt := &store.RefreshToken{
		FamilyID:  family,
		UserID:    u.ID,
		TenantID:  u.TenantID,
		Hash:      hmacSHA256(s.refreshKey, []byte(refresh)),
		ExpiresAt: sessionEnd.UTC(),
	}
	if err := s.st.CreateRefreshToken(ctx, rt); err != nil {
		return nil, fmt.Errorf("auth: storing refresh token: %w", err)
	}
	access, exp, err := s.signAccess(u, family, now, sessionStart)
	if err != nil {
		return nil, err
	}
	return &Tokens{
		AccessToken:  access,
		TokenType:    "Bearer",
		ExpiresIn:    int(exp.Sub(now).Round(time.Second) / time.Second),
		RefreshToken: refresh,
	}, nil
}

func (s *Service) signAccess(u *store.User, family string, now, sessionStart time.Time) (string, time.Time, error) {
	exp := now.Add(s.cfg().AccessTTL.D())
	c := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg().Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{s.cfg().Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        store.NewID(),
		},
		TenantID:  u.TenantID,
		SessionID: family,
		IssuedMS:  now.UnixMilli(),
		StartMS:   sessionStart.UnixMilli(),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = secretJWT
	signed, err := t.SignedString(s.jwtKey)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: signing access token: %w", err)
	}
	return signed, exp, nil
}

// Refresh exchanges a refresh token for new tokens. Each refresh token
// works once: presenting one again (a sign that it was stolen) revokes
// the whole session, on every replica.
func (s *Service) Refresh(ctx context.Context, refreshToken, clientIP string) (*Tokens, error) {
	deny := func(w who, err error, extra map[string]any) error {
		d := map[string]any{"reason": Reason(err)}
		for k, v := range extra {
			d[k] = v
		}
		s.emit(ctx, &store.AuditEntry{TenantID: w.tenant, Actor: w.id, ActorKind: orAnonymous(w.kind),
			Action: "auth.refresh", Outcome: outcomeDenied, ClientIP: clientIP}, d)
		return err
	}
	if len(refreshToken) < len(refreshPrefix)+20 || len(refreshToken) > 256 {
		return nil, deny(who{}, unauth("invalid refresh token"), nil)
	}
	now := s.now()
	rt, err := s.st.UseRefreshToken(ctx, hmacSHA256(s.refreshKey, []byte(refreshToken)), now.UTC())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, deny(who{}, unauth("invalid refresh token"), nil)
	case errors.Is(err, store.ErrReused):
		w := who{kind: principal.KindUser}
		if rt != nil {
			w = who{id: rt.UserID, kind: principal.KindUser, tenant: rt.TenantID}
			// The store recorded the family revocation; apply and spread
			// it now rather than at the next poll.
			s.revokeLocal(ctx, store.Revocation{Kind: revFamily, Subject: rt.FamilyID, At: now.UTC(), ExpiresAt: rt.ExpiresAt})
		}
		return nil, deny(w, unauth("refresh token reused: the session was revoked; log in again"), map[string]any{"session": familyOf(rt)})
	case err != nil:
		return nil, err
	}
	w := who{id: rt.UserID, kind: principal.KindUser, tenant: rt.TenantID}
	if !now.Before(rt.ExpiresAt) {
		return nil, deny(w, unauth("session expired; log in again"), map[string]any{"session": rt.FamilyID})
	}
	start := s.sessionStart(rt, now)
	revoked := func() error {
		switch ok, err := s.sessionRevoked(ctx, rt, start); {
		case err != nil:
			return err
		case ok:
			return deny(w, unauth("session revoked; log in again"), map[string]any{"session": rt.FamilyID})
		}
		return nil
	}
	if err := revoked(); err != nil {
		return nil, err
	}
	u, err := s.st.GetUser(ctx, rt.TenantID, rt.UserID)
	if err != nil {
		return nil, deny(w, storeErr(err, "user no longer exists"), nil)
	}
	if u.Disabled {
		return nil, deny(w, unauth("user disabled"), nil)
	}
	te, err := s.tenant(ctx, u.TenantID)
	if err != nil {
		return nil, deny(w, storeErr(err, "tenant no longer exists"), nil)
	}
	if err := checkTenant(te, clientIP); err != nil {
		return nil, deny(w, err, nil)
	}
	tok, err := s.issue(ctx, u, rt.FamilyID, now, start, rt.ExpiresAt)
	if err != nil {
		return nil, err
	}
	// A logout or a user revocation that landed between UseRefreshToken
	// and CreateRefreshToken (on any replica) revoked the tokens that
	// existed, not the one just stored: look again now that it is stored.
	// The new tokens have not left this function, so refusing here is
	// enough; the store records the session revoked as well.
	if err := revoked(); err != nil {
		var f *failure
		if errors.As(err, &f) {
			s.endRacingSession(ctx, rt)
		}
		return nil, err
	}
	s.emit(ctx, &store.AuditEntry{TenantID: u.TenantID, Actor: u.ID, ActorKind: principal.KindUser,
		Action: "auth.refresh", Outcome: outcomeOK, ClientIP: clientIP}, map[string]any{"session": rt.FamilyID})
	return tok, nil
}

// sessionStart is when rt's session started (its login): every token of
// a family carries the session's end, RefreshTTL after its start. If
// RefreshTTL changed since, the result is off by the change (never after
// now).
func (s *Service) sessionStart(rt *store.RefreshToken, now time.Time) time.Time {
	start := rt.ExpiresAt.Add(-s.cfg().RefreshTTL.D())
	if start.After(now) {
		return now
	}
	return start
}

// sessionRevoked reports whether rt's session, started at start, was
// revoked: by a logout or a reuse (a "token_family" revocation, asked of
// the store, which keeps it for the session's lifetime) or by a user
// revocation at or after its start (the in-memory list, brought up to
// date with the store first and keeping user revocations for RefreshTTL).
// The store revokes a session's refresh tokens itself; this catches a
// token created concurrently with the revocation, which the store's
// update did not see.
func (s *Service) sessionRevoked(ctx context.Context, rt *store.RefreshToken, start time.Time) (bool, error) {
	if err := s.syncRevocations(ctx); err != nil {
		return false, err
	}
	if s.rev.has(revFamily, rt.FamilyID) {
		return true, nil
	}
	if at, ok := s.rev.revokedAt(revUser, rt.UserID); ok && start.UnixMilli() <= at.UnixMilli() {
		return true, nil
	}
	return s.st.IsRevoked(ctx, revFamily, rt.FamilyID)
}

// endRacingSession revokes the session of a refresh that lost a race
// with a revocation: its new refresh token may have escaped the store's
// update.
func (s *Service) endRacingSession(ctx context.Context, rt *store.RefreshToken) {
	if s.rev.has(revFamily, rt.FamilyID) {
		return // a logout or a reuse: the store already records it
	}
	now := s.now().UTC()
	if err := s.st.RevokeFamily(ctx, rt.FamilyID, now); err != nil {
		s.log.Warn("auth: revoking a session that a revocation raced", "session", rt.FamilyID, "err", err)
		return
	}
	s.revokeLocal(ctx, store.Revocation{Kind: revFamily, Subject: rt.FamilyID, At: now, ExpiresAt: rt.ExpiresAt})
}

func familyOf(rt *store.RefreshToken) string {
	if rt == nil {
		return ""
	}
	return rt.FamilyID
}

// Logout ends the session of a user principal: its refresh-token family
// and the access token it was authenticated with stop working on every
// replica.
func (s *Service) Logout(ctx context.Context, p *principal.Principal) error {
	if p == nil || p.Kind != principal.KindUser || p.SessionID == "" {
		return invalid("only a user session can log out")
	}
	now := s.now().UTC()
	if err := s.st.RevokeFamily(ctx, p.SessionID, now); err != nil {
		return err
	}
	// The family revocation ends the session: the refresh token and every
	// access token of it. Revoking the jti as well keeps the access token
	// dead even after the family record is pruned.
	s.revokeLocal(ctx, store.Revocation{Kind: revFamily, Subject: p.SessionID, At: now})
	if p.TokenID != "" {
		r := &store.Revocation{Kind: revJTI, Subject: p.TokenID, At: now, ExpiresAt: revocationExpiry(p.ExpiresAt)}
		if err := s.st.Revoke(ctx, r); err != nil {
			return err
		}
		s.revokeLocal(ctx, *r)
	}
	s.emit(ctx, &store.AuditEntry{TenantID: p.TenantID, Actor: p.ID, ActorKind: p.Kind,
		Action: "auth.logout", Outcome: outcomeOK}, map[string]any{"session": p.SessionID})
	return nil
}

// revocationExpiry is when a revocation of a credential expiring at exp
// may be forgotten.
func revocationExpiry(exp time.Time) time.Time {
	if exp.IsZero() {
		return time.Time{}
	}
	return exp.Add(leeway + time.Minute).UTC()
}

// RevokeUser ends every session of a user on every replica: refresh
// tokens stop working and access tokens issued before now are refused.
// Sessions started afterwards work (a password change revokes the old
// sessions, then the user logs in again). API keys are not sessions and
// are not affected; disable the user to stop its keys too.
func (s *Service) RevokeUser(ctx context.Context, tenantID, userID string) error {
	u, err := s.st.GetUser(ctx, tenantID, userID)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	if err := s.st.RevokeUserSessions(ctx, u.ID, now); err != nil {
		return err
	}
	s.revokeLocal(ctx, store.Revocation{Kind: revUser, Subject: u.ID, At: now})
	e := &store.AuditEntry{TenantID: u.TenantID, Action: "auth.logout", Target: u.ID, Outcome: outcomeOK}
	s.setActor(ctx, e)
	s.emit(ctx, e, map[string]any{"user": u.Name, "all_sessions": true})
	return nil
}

// authenticateJWT verifies a JWT of this gateway or of the OIDC provider.
func (s *Service) authenticateJWT(ctx context.Context, token, clientIP string) (*principal.Principal, error) {
	// The issuer only picks the verifier; each verifier checks it again
	// together with the signature.
	var peek jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &peek); err != nil {
		return nil, s.reject(ctx, who{}, clientIP, unauth("malformed token"), nil)
	}
	c := s.conf.Load() // one set of settings for the whole check
	switch {
	case peek.Issuer == c.cfg.Issuer:
		return s.authenticateAccess(ctx, c, token, clientIP)
	case c.oidc != nil && peek.Issuer == c.cfg.OIDC.Issuer:
		return s.authenticateOIDC(ctx, c.oidc, token, clientIP)
	}
	return nil, s.reject(ctx, who{}, clientIP, unauth("token from an unknown issuer"), nil)
}

// authenticateAccess verifies the gateway's own access token: HS256 only,
// iss, aud, exp required, nbf and iat checked; then session, token and
// user revocations, the user and the tenant.
func (s *Service) authenticateAccess(ctx context.Context, conf *authConf, token, clientIP string) (*principal.Principal, error) {
	var c accessClaims
	_, err := conf.accessParser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.jwtKey, nil })
	if err != nil {
		return nil, s.reject(ctx, who{}, clientIP, unauth(jwtReason(err)), map[string]any{"issuer": conf.cfg.Issuer})
	}
	w := who{id: c.Subject, kind: principal.KindUser, tenant: c.TenantID}
	if c.Subject == "" || c.TenantID == "" || c.SessionID == "" || c.ID == "" || c.IssuedAt == nil {
		return nil, s.reject(ctx, w, clientIP, unauth("token lacks required claims"), nil)
	}
	if s.rev.has(revJTI, c.ID) || s.rev.has(revFamily, c.SessionID) {
		return nil, s.reject(ctx, w, clientIP, unauth("session revoked; log in again"), map[string]any{"session": c.SessionID})
	}
	if at, ok := s.rev.revokedAt(revUser, c.Subject); ok && (issuedNotAfter(&c, at) || startedNotAfter(&c, at)) {
		return nil, s.reject(ctx, w, clientIP, unauth("session revoked; log in again"), map[string]any{"session": c.SessionID})
	}
	u, err := s.user(ctx, c.TenantID, c.Subject)
	if err != nil {
		return nil, s.rejectIf(ctx, w, clientIP, storeErr(err, "user no longer exists"))
	}
	if u.Disabled {
		return nil, s.reject(ctx, w, clientIP, unauth("user disabled"), nil)
	}
	te, err := s.tenant(ctx, c.TenantID)
	if err != nil {
		return nil, s.rejectIf(ctx, w, clientIP, storeErr(err, "tenant no longer exists"))
	}
	if err := checkTenant(te, clientIP); err != nil {
		return nil, s.reject(ctx, w, clientIP, err, nil)
	}
	return &principal.Principal{
		Kind:        principal.KindUser,
		ID:          u.ID,
		UserID:      u.ID,
		TenantID:    te.t.ID,
		TenantName:  te.t.Name,
		Plan:        te.t.Plan,
		Operator:    te.t.Operator,
		Role:        u.Role,
		IPAllowlist: te.t.IPAllowlist,
		ExpiresAt:   c.ExpiresAt.Time,
		SessionID:   c.SessionID,
		TokenID:     c.ID,
	}, nil
}

// newAccessParser returns the parser of the gateway's own access tokens:
// HS256 only, iss and aud must match, exp required, iat checked (nbf is
// always checked when present).
func newAccessParser(cfg config.Auth, now func() time.Time) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		// Reject non-canonical base64 (a signature with altered padding
		// bits must not verify as the same token).
		jwt.WithStrictDecoding(),
	)
}

// issuedNotAfter reports whether the token was issued at or before t.
func issuedNotAfter(c *accessClaims, t time.Time) bool {
	if c.IssuedMS > 0 {
		return c.IssuedMS <= t.UnixMilli()
	}
	return !c.IssuedAt.After(t.Truncate(time.Second)) // second precision: err on the safe side
}

// startedNotAfter reports whether the token's session started at or
// before t (false for tokens without the claim).
func startedNotAfter(c *accessClaims, t time.Time) bool {
	return c.StartMS > 0 && c.StartMS <= t.UnixMilli()
}

// rejectIf audits and returns refusals; other errors (the store is down)
// pass through unaudited.
func (s *Service) rejectIf(ctx context.Context, w who, clientIP string, err error) error {
	var f *failure
	if errors.As(err, &f) {
		return s.reject(ctx, w, clientIP, err, nil)
	}
	return err
}

// jwtReason is a short client-safe reason for a JWT validation error.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token lacks required claims"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token from an unknown issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token not meant for this gateway"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token signature invalid"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	}
	return "invalid token"
}
