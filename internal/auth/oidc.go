package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
)

const (
	// minJWKSRefresh spaces the refreshes a request can trigger (the first
	// fetch, or a token whose kid is not in the set), so that a flood of
	// tokens with made-up kids costs the identity provider at most one
	// request per interval.
	minJWKSRefresh = 10 * time.Second
	maxJWKSBytes   = 1 << 20
	minRSABits     = 2048
)

// oidcVerifier verifies tokens of the configured identity provider.
//
// The key set is a deliberately small piece of code around two
// libraries: go-jose parses each JWK into a crypto key, golang-jwt checks
// signatures and claims. It fetches only the configured JWKS URL, never a
// URL or key named in a token (jku, x5u, jwk and x5c headers are not
// read), and replaces the whole set on each successful fetch, so a key the
// provider withdrew stops working at the next refresh. (MicahParks/keyfunc
// v3 would do the fetching, but the version of its jwkset dependency it
// needs is not available to this build; go-jose is the widely used,
// maintained alternative for the parsing part.)
type oidcVerifier struct {
	cfg    config.OIDC
	hc     *http.Client
	now    func() time.Time
	log    *slog.Logger
	parser *jwt.Parser

	mu      sync.RWMutex
	keys    []jose.JSONWebKey
	fetched bool

	limiter *rate.Limiter
	fetches singleflight.Group
}

func newOIDCVerifier(cfg config.OIDC, hc *http.Client, now func() time.Time, log *slog.Logger) (*oidcVerifier, error) {
	if cfg.Audience == "" {
		return nil, errors.New("auth: [auth.oidc] audience is required")
	}
	if cfg.JWKSURL == "" {
		return nil, errors.New("auth: [auth.oidc] jwks_url is required")
	}
	var algs []string
	for _, a := range cfg.Algorithms {
		if keyTypeFor(a) == "" {
			return nil, fmt.Errorf("auth: [auth.oidc] algorithm %q is not accepted (only asymmetric signatures)", a)
		}
		algs = append(algs, a)
	}
	return &oidcVerifier{
		cfg: cfg,
		hc:  hc,
		now: now,
		log: log,
		parser: jwt.NewParser(
			jwt.WithValidMethods(algs),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		),
		limiter: rate.NewLimiter(rate.Every(minJWKSRefresh), 1),
	}, nil
}

// keyTypeFor names the key type an algorithm needs ("" for algorithms
// never accepted from an identity provider: none and HMAC).
func keyTypeFor(alg string) string {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return "RSA"
	case "ES256", "ES384", "ES512":
		return "EC"
	case "EdDSA":
		return "OKP"
	}
	return ""
}

// keyFits reports whether k may verify a signature made with alg.
func keyFits(k *jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		return keyTypeFor(alg) == "RSA" && pk.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pk.Curve == elliptic.P256()
		case "ES384":
			return pk.Curve == elliptic.P384()
		case "ES512":
			return pk.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// refresh fetches the configured JWKS and replaces the key set; on
// failure the previous set stays.
func (v *oidcVerifier) refresh(ctx context.Context) error {
	_, err, _ := v.fetches.Do("", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := v.hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching JWKS: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetching JWKS: HTTP %d", resp.StatusCode)
		}
		var raw struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&raw); err != nil {
			return nil, fmt.Errorf("decoding JWKS: %w", err)
		}
		var keys []jose.JSONWebKey
		for i, r := range raw.Keys {
			var k jose.JSONWebKey
			if err := k.UnmarshalJSON(r); err != nil {
				v.log.Warn("auth: skipping an unreadable JWKS key", "index", i, "err", err)
				continue
			}
			if k.Use != "" && k.Use != "sig" {
				continue
			}
			pub := k.Public() // only the public half is ever used; symmetric keys become invalid
			if !pub.Valid() || !pub.IsPublic() {
				continue
			}
			pub.Certificates, pub.CertificatesURL = nil, nil
			keys = append(keys, pub)
		}
		if len(keys) == 0 {
			return nil, errors.New("JWKS holds no usable signing key")
		}
		v.mu.Lock()
		v.keys, v.fetched = keys, true
		v.mu.Unlock()
		return nil, nil
	})
	return err
}

// find returns the key for kid and alg. Without a kid, the set must hold
// exactly one key that fits.
func (v *oidcVerifier) find(kid, alg string) (any, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var found any
	n := 0
	for i := range v.keys {
		k := &v.keys[i]
		if (kid != "" && k.KeyID != kid) || !keyFits(k, alg) {
			continue
		}
		if kid != "" {
			return k.Key, true
		}
		found = k.Key
		n++
	}
	return found, n == 1
}

// keyFor is the jwt.Keyfunc: the configured set's key for the token's kid
// and algorithm, refreshing the set (rate-limited) when the kid is new.
func (v *oidcVerifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	if k, ok := v.find(kid, alg); ok {
		return k, nil
	}
	v.mu.RLock()
	fetched := v.fetched
	v.mu.RUnlock()
	if v.limiter.AllowN(v.now(), 1) {
		if err := v.refresh(ctx); err != nil {
			v.log.Warn("auth: refreshing the OIDC key set", "err", err)
			if !fetched {
				return nil, unauth("identity provider keys unavailable")
			}
		}
		if k, ok := v.find(kid, alg); ok {
			return k, nil
		}
	}
	if kid == "" {
		return nil, unauth("token names no signing key")
	}
	return nil, unauth("unknown signing key")
}

// authenticateOIDC verifies a token of the identity provider and maps it
// to a tenant, role and scopes.
func (s *Service) authenticateOIDC(ctx context.Context, v *oidcVerifier, token, clientIP string) (*principal.Principal, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t) })
	if err != nil {
		reason := jwtReason(err)
		if r := Reason(err); r != "" {
			reason = r
		}
		return nil, s.reject(ctx, who{kind: principal.KindOIDC}, clientIP, unauth(reason), map[string]any{"issuer": v.cfg.Issuer})
	}
	sub, _ := claims["sub"].(string)
	if sub == "" || len(sub) > 255 {
		return nil, s.reject(ctx, who{kind: principal.KindOIDC}, clientIP, unauth("token lacks a subject"), nil)
	}
	w := who{id: "oidc:" + sub, kind: principal.KindOIDC}
	jti, _ := claims["jti"].(string)
	if s.rev.has(revJTI, jti) {
		return nil, s.reject(ctx, w, clientIP, unauth("token revoked"), nil)
	}
	tenantName := v.cfg.DefaultTenant
	if v.cfg.TenantClaim != "" {
		if c, ok := claims[v.cfg.TenantClaim]; ok {
			str, _ := c.(string)
			if str == "" {
				return nil, s.reject(ctx, w, clientIP, unauth("invalid tenant claim"), nil)
			}
			tenantName = str
		}
	}
	if tenantName == "" {
		return nil, s.reject(ctx, w, clientIP, unauth("token names no tenant"), nil)
	}
	role := v.cfg.DefaultRole
	if v.cfg.RoleClaim != "" {
		if c, ok := claims[v.cfg.RoleClaim]; ok {
			str, _ := c.(string)
			if !principal.ValidRole(str) {
				return nil, s.reject(ctx, w, clientIP, unauth("invalid role claim"), nil)
			}
			role = str
		}
	}
	te, err := s.tenantByName(ctx, tenantName)
	if err != nil {
		if f := storeErr(err, ""); errors.Is(f, ErrUnauthenticated) {
			return nil, s.reject(ctx, w, clientIP, forbidden("unknown tenant"), map[string]any{"tenant": truncate(tenantName, maxNameLen)})
		}
		return nil, err
	}
	w.tenant = te.t.ID
	if err := checkTenant(te, clientIP); err != nil {
		return nil, s.reject(ctx, w, clientIP, err, nil)
	}
	exp, _ := claims.GetExpirationTime()
	p := &principal.Principal{
		Kind:        principal.KindOIDC,
		ID:          w.id,
		TenantID:    te.t.ID,
		TenantName:  te.t.Name,
		Plan:        te.t.Plan,
		Operator:    te.t.Operator,
		Role:        role,
		Scopes:      mapScopes(oidcScopes(claims), v.cfg.ScopeMap),
		IPAllowlist: te.t.IPAllowlist,
		TokenID:     jti,
	}
	if exp != nil {
		p.ExpiresAt = exp.Time
	}
	return p, nil
}

// mapScopes applies [auth.oidc] scope_map to a token's scopes: a mapped
// scope is replaced by the gateway scopes it grants, an unmapped one kept.
// A token whose scopes all map to nothing is left with none of them and so
// grants nothing, rather than being read as unscoped (every right of its
// role).
func mapScopes(scopes []string, m map[string][]string) []string {
	if len(m) == 0 {
		return scopes
	}
	var out []string
	dropped := false
	for _, s := range scopes {
		to, ok := m[s]
		if !ok {
			to = []string{s}
		}
		if len(to) == 0 {
			dropped = true
		}
		for _, g := range to {
			if !slices.Contains(out, g) && len(out) < maxScopes*4 {
				out = append(out, g)
			}
		}
	}
	if len(out) == 0 && dropped {
		return []string{noScope}
	}
	return out
}

// noScope stands for "scoped, but to nothing": a principal's empty scope
// list would mean unscoped.
const noScope = "none"

// oidcScopes reads "scope" (space-separated, RFC 8693/9068) and "scp" (a
// string or an array of strings, as some providers send).
func oidcScopes(c jwt.MapClaims) []string {
	var out []string
	add := func(v string) {
		for _, f := range strings.Fields(v) {
			if !slices.Contains(out, f) && len(out) < maxScopes*4 {
				out = append(out, f)
			}
		}
	}
	if s, ok := c["scope"].(string); ok {
		add(s)
	}
	switch scp := c["scp"].(type) {
	case string:
		add(scp)
	case []any:
		for _, x := range scp {
			if s, ok := x.(string); ok {
				add(s)
			}
		}
	}
	return out
}
