package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

const (
	idpIssuer   = "https://idp.example.test"
	idpAudience = "mcpedge-api"
)

// Keys are generated once per test binary: RSA generation is slow under
// -race.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsa2, attacker *rsa.PrivateKey
	ec                  *ecdsa.PrivateKey
	ed                  ed25519.PrivateKey
}) {
	var err error
	for _, p := range []**rsa.PrivateKey{&k.rsa, &k.rsa2, &k.attacker} {
		if *p, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// jwksServer serves a JWK Set and counts requests.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	set  jose.JSONWebKeySet
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	s := &jwksServer{set: jose.JSONWebKeySet{Keys: keys}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(keys ...jose.JSONWebKey) {
	s.mu.Lock()
	s.set = jose.JSONWebKeySet{Keys: keys}
	s.mu.Unlock()
}

func pubJWK(key any, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// oidcEnv is an env with OIDC configured against a JWKS server holding
// an RSA key "rsa1" and an EC key "ec1", and tenants "acme" and
// "disabled".
func oidcEnv(t *testing.T, mod ...func(*config.OIDC)) (*env, *jwksServer) {
	t.Helper()
	k := testKeys()
	srv := newJWKSServer(t, pubJWK(&k.rsa.PublicKey, "rsa1", "RS256"), pubJWK(&k.ec.PublicKey, "ec1", "ES256"), pubJWK(k.ed.Public(), "ed1", "EdDSA"))
	e := &env{t: t, st: newTestStore(t), clock: newClock(), audit: &auditLog{}, cfg: testConfig()}
	e.cfg.OIDC = config.OIDC{
		Issuer: idpIssuer, Audience: idpAudience, JWKSURL: srv.URL + "/jwks",
		JWKSRefresh: config.Duration(time.Hour), TenantClaim: "tenant", RoleClaim: "role", DefaultRole: "member",
		Algorithms: []string{"RS256", "ES256", "PS256", "EdDSA"},
	}
	for _, f := range mod {
		f(&e.cfg.OIDC)
	}
	e.svc = e.service(func(o *Options) { o.HTTPClient = srv.Client() })
	e.tenant("acme")
	e.tenant("disabled", func(t *store.Tenant) { t.Disabled = true })
	return e, srv
}

func idpClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": idpIssuer, "aud": idpAudience, "sub": "user-123", "tenant": "acme",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": store.NewID(),
	}
}

func signIDP(t *testing.T, m jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDCValid(t *testing.T) {
	t.Parallel()
	e, srv := oidcEnv(t)
	k := testKeys()
	now := e.clock.Now()
	for _, c := range []struct {
		name string
		m    jwt.SigningMethod
		key  any
		kid  string
	}{
		{"RS256", jwt.SigningMethodRS256, k.rsa, "rsa1"},
		{"ES256", jwt.SigningMethodES256, k.ec, "ec1"},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, "ed1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := idpClaims(now)
			cl["role"] = "admin"
			cl["scope"] = "mcp:list mcp:call"
			tok := signIDP(t, c.m, c.key, map[string]any{"kid": c.kid}, cl)
			p := mustAuth(t, e.svc, tok, testIP)
			if p.Kind != principal.KindOIDC || p.ID != "oidc:user-123" || p.TenantName != "acme" || p.Role != "admin" ||
				strings.Join(p.Scopes, " ") != "mcp:list mcp:call" || p.TokenID != cl["jti"] || p.ExpiresAt.IsZero() {
				t.Fatalf("principal %+v", p)
			}
		})
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
}

func TestOIDCClaimMapping(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t, func(o *config.OIDC) { o.DefaultTenant = "acme" })
	k := testKeys()
	now := e.clock.Now()
	sign := func(mod func(jwt.MapClaims)) string {
		cl := idpClaims(now)
		mod(cl)
		return signIDP(t, jwt.SigningMethodRS256, k.rsa, map[string]any{"kid": "rsa1"}, cl)
	}
	// No tenant claim: the default tenant; no role: the default role;
	// "scp" as an array.
	p := mustAuth(t, e.svc, sign(func(c jwt.MapClaims) { delete(c, "tenant"); c["scp"] = []string{"mcp:list", "x"} }), testIP)
	if p.TenantName != "acme" || p.Role != "member" || strings.Join(p.Scopes, ",") != "mcp:list,x" {
		t.Fatalf("principal %+v", p)
	}
	for _, c := range []struct {
		name   string
		mod    func(jwt.MapClaims)
		want   error
		reason string
	}{
		{"unknown tenant", func(c jwt.MapClaims) { c["tenant"] = "nope" }, ErrForbidden, "unknown tenant"},
		{"disabled tenant", func(c jwt.MapClaims) { c["tenant"] = "disabled" }, ErrForbidden, "tenant disabled"},
		{"tenant not a string", func(c jwt.MapClaims) { c["tenant"] = 42 }, ErrUnauthenticated, "invalid tenant claim"},
		{"bad role", func(c jwt.MapClaims) { c["role"] = "root" }, ErrUnauthenticated, "invalid role claim"},
		{"no sub", func(c jwt.MapClaims) { delete(c, "sub") }, ErrUnauthenticated, "token lacks a subject"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.svc.Authenticate(context.Background(), sign(c.mod), testIP)
			wantErr(t, err, c.want, c.reason)
		})
	}
}

func TestOIDCNoTenant(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t) // no default tenant
	cl := idpClaims(e.clock.Now())
	delete(cl, "tenant")
	tok := signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, cl)
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token names no tenant")
}

func TestOIDCClientIPAllowlist(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t)
	e.tenant("walled", func(t *store.Tenant) { t.IPAllowlist = []string{"10.0.0.0/8"} })
	cl := idpClaims(e.clock.Now())
	cl["tenant"] = "walled"
	tok := signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, cl)
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrForbidden, "client address not allowed for this tenant")
	mustAuth(t, e.svc, tok, "10.1.1.1")
}

func TestOIDCAlgNone(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t)
	tok := signIDP(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": "rsa1"}, idpClaims(e.clock.Now()))
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token signature invalid")
}

// TestOIDCHS256WithPublicKey is the key-confusion attack: an HS256 token
// whose HMAC secret is the provider's RSA public key, in each encoding a
// verifier might hand to HMAC.
func TestOIDCHS256WithPublicKey(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t)
	pub := &testKeys().rsa.PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, _ := json.Marshal(pubJWK(pub, "rsa1", "RS256"))
	for name, secret := range map[string][]byte{"PEM": pemBytes, "DER": der, "PKCS1": x509.MarshalPKCS1PublicKey(pub), "JWK": jwkJSON, "modulus": pub.N.Bytes()} {
		t.Run(name, func(t *testing.T) {
			for _, kid := range []string{"rsa1", ""} {
				tok := signIDP(t, jwt.SigningMethodHS256, secret, map[string]any{"kid": kid}, idpClaims(e.clock.Now()))
				_, err := e.svc.Authenticate(context.Background(), tok, testIP)
				wantErr(t, err, ErrUnauthenticated, "token signature invalid")
			}
		})
	}
}

func TestOIDCExpired(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t)
	tok := signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, idpClaims(e.clock.Now()))
	e.clock.Advance(5*time.Minute + leeway + time.Second)
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token expired")
}

func TestOIDCNotYetValid(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t)
	cl := idpClaims(e.clock.Now())
	cl["nbf"] = e.clock.Now().Add(time.Hour).Unix()
	tok := signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, cl)
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token not valid yet")
}

func TestOIDCMissingExp(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t)
	cl := idpClaims(e.clock.Now())
	delete(cl, "exp")
	tok := signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, cl)
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token lacks required claims")
}

func TestOIDCWrongIssuer(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t)
	cl := idpClaims(e.clock.Now())
	cl["iss"] = "https://evil.example.test"
	tok := signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, cl)
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token from an unknown issuer")
	// The provider's key does not make a token of the gateway's own
	// issuer valid.
	cl["iss"] = e.cfg.Issuer
	tok = signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, cl)
	_, err = e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token signature invalid")
}

func TestOIDCWrongAudience(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t)
	for _, aud := range []any{"another-api", []string{"another-api", "third"}, nil} {
		cl := idpClaims(e.clock.Now())
		cl["aud"] = aud
		if aud == nil {
			delete(cl, "aud")
		}
		tok := signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, cl)
		_, err := e.svc.Authenticate(context.Background(), tok, testIP)
		if aud == nil {
			wantErr(t, err, ErrUnauthenticated, "token lacks required claims")
		} else {
			wantErr(t, err, ErrUnauthenticated, "token not meant for this gateway")
		}
	}
	// An audience list that includes ours is fine.
	cl := idpClaims(e.clock.Now())
	cl["aud"] = []string{"another-api", idpAudience}
	mustAuth(t, e.svc, signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, cl), testIP)
}

func TestOIDCAlgorithmNotConfigured(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t, func(o *config.OIDC) { o.Algorithms = []string{"ES256"} })
	tok := signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, idpClaims(e.clock.Now()))
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token signature invalid")
	// The EC key under an RSA-PSS algorithm name, and an ES384 claim on
	// a P-256 key, are refused too.
	e2, _ := oidcEnv(t)
	tok = signIDP(t, jwt.SigningMethodPS256, testKeys().rsa, map[string]any{"kid": "ec1"}, idpClaims(e2.clock.Now()))
	_, err = e2.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "")
}

// TestOIDCUnknownKid: a kid not in the set triggers one refresh of the
// configured JWKS, then a refusal; further unknown kids within the rate
// limit do not reach the provider.
func TestOIDCUnknownKid(t *testing.T) {
	t.Parallel()
	e, srv := oidcEnv(t)
	k := testKeys()
	mustAuth(t, e.svc, signIDP(t, jwt.SigningMethodRS256, k.rsa, map[string]any{"kid": "rsa1"}, idpClaims(e.clock.Now())), testIP)
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("hits %d", n)
	}
	e.clock.Advance(minJWKSRefresh)
	tok := signIDP(t, jwt.SigningMethodRS256, k.rsa2, map[string]any{"kid": "rsa2"}, idpClaims(e.clock.Now()))
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "unknown signing key")
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("after an unknown kid: %d JWKS fetches, want 2", n)
	}
	for i := range 20 {
		tok := signIDP(t, jwt.SigningMethodRS256, k.rsa2, map[string]any{"kid": "made-up-" + string(rune('a'+i))}, idpClaims(e.clock.Now()))
		_, err := e.svc.Authenticate(context.Background(), tok, testIP)
		wantErr(t, err, ErrUnauthenticated, "unknown signing key")
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("a burst of unknown kids made %d JWKS fetches, want none beyond 2", n)
	}
	// The provider rotates in rsa2: after the rate-limit interval the
	// unknown kid triggers a refresh that finds it.
	srv.setKeys(pubJWK(&k.rsa2.PublicKey, "rsa2", "RS256"))
	e.clock.Advance(minJWKSRefresh)
	mustAuth(t, e.svc, tok2(t, e, k.rsa2, "rsa2"), testIP)
	// rsa1 was withdrawn from the set: it no longer verifies.
	e.clock.Advance(minJWKSRefresh)
	_, err = e.svc.Authenticate(context.Background(), tok2(t, e, k.rsa, "rsa1"), testIP)
	wantErr(t, err, ErrUnauthenticated, "unknown signing key")
}

func tok2(t *testing.T, e *env, key *rsa.PrivateKey, kid string) string {
	return signIDP(t, jwt.SigningMethodRS256, key, map[string]any{"kid": kid}, idpClaims(e.clock.Now()))
}

// TestOIDCHeaderKeysNotFollowed: jku, x5u, x5c and jwk headers pointing at
// (or carrying) an attacker's key are ignored; the attacker's server sees
// no request at all.
func TestOIDCHeaderKeysNotFollowed(t *testing.T) {
	t.Parallel()
	e, srv := oidcEnv(t)
	k := testKeys()
	attacker := newJWKSServer(t, pubJWK(&k.attacker.PublicKey, "evil", "RS256"), pubJWK(&k.attacker.PublicKey, "rsa1", "RS256"))
	attackerJWK := pubJWK(&k.attacker.PublicKey, "evil", "RS256")
	for _, kid := range []string{"evil", "rsa1", ""} {
		for name, h := range map[string]map[string]any{
			"jku": {"jku": attacker.URL + "/jwks"},
			"x5u": {"x5u": attacker.URL + "/cert.pem"},
			"jwk": {"jwk": attackerJWK},
			"all": {"jku": attacker.URL + "/jwks", "x5u": attacker.URL + "/cert.pem", "jwk": attackerJWK},
		} {
			h["kid"] = kid
			tok := signIDP(t, jwt.SigningMethodRS256, k.attacker, h, idpClaims(e.clock.Now()))
			_, err := e.svc.Authenticate(context.Background(), tok, testIP)
			if err == nil {
				t.Fatalf("kid %q, %s: an attacker-signed token was accepted", kid, name)
			}
			wantErr(t, err, ErrUnauthenticated, "")
			e.clock.Advance(minJWKSRefresh) // let every unknown kid refresh
		}
	}
	if n := attacker.hits.Load(); n != 0 {
		t.Fatalf("the attacker's server received %d requests, want 0", n)
	}
	if srv.hits.Load() == 0 {
		t.Fatal("the configured JWKS was never fetched")
	}
}

func TestOIDCJWKSUnavailable(t *testing.T) {
	t.Parallel()
	e, srv := oidcEnv(t)
	srv.Close()
	tok := signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, idpClaims(e.clock.Now()))
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "identity provider keys unavailable")
}

func TestOIDCJWKSContent(t *testing.T) {
	t.Parallel()
	// Symmetric keys, encryption keys, short RSA keys and private halves
	// in the set: only usable public signing keys are kept.
	k := testKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	e, srv := oidcEnv(t)
	srv.setKeys(
		jose.JSONWebKey{Key: []byte("symmetric-secret-symmetric-secret"), KeyID: "oct", Algorithm: "HS256"},
		jose.JSONWebKey{Key: &k.rsa2.PublicKey, KeyID: "enc", Use: "enc"},
		jose.JSONWebKey{Key: &small.PublicKey, KeyID: "small", Algorithm: "RS256"},
		jose.JSONWebKey{Key: k.rsa, KeyID: "rsa1", Algorithm: "RS256"}, // private: only its public half is used
	)
	mustAuth(t, e.svc, tok2(t, e, k.rsa, "rsa1"), testIP)
	for _, c := range []struct {
		kid string
		m   jwt.SigningMethod
		key any
	}{
		{"oct", jwt.SigningMethodHS256, []byte("symmetric-secret-symmetric-secret")},
		{"enc", jwt.SigningMethodRS256, k.rsa2},
		{"small", jwt.SigningMethodRS256, small},
	} {
		e.clock.Advance(minJWKSRefresh)
		_, err := e.svc.Authenticate(context.Background(), signIDP(t, c.m, c.key, map[string]any{"kid": c.kid}, idpClaims(e.clock.Now())), testIP)
		wantErr(t, err, ErrUnauthenticated, "")
	}
}

func TestOIDCRevokedJTI(t *testing.T) {
	t.Parallel()
	e, _ := oidcEnv(t)
	cl := idpClaims(e.clock.Now())
	tok := signIDP(t, jwt.SigningMethodRS256, testKeys().rsa, map[string]any{"kid": "rsa1"}, cl)
	mustAuth(t, e.svc, tok, testIP)
	r := &store.Revocation{Kind: "jti", Subject: cl["jti"].(string), At: e.clock.Now()}
	if err := e.st.Revoke(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.pollRevocations(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Authenticate(context.Background(), tok, testIP)
	wantErr(t, err, ErrUnauthenticated, "token revoked")
}

func TestOIDCConfigErrors(t *testing.T) {
	t.Parallel()
	st := newTestStore(t)
	for name, o := range map[string]config.OIDC{
		"same issuer": {Issuer: "mcpedge", Audience: "a", JWKSURL: "http://x/"},
		"HS256":       {Issuer: idpIssuer, Audience: "a", JWKSURL: "http://x/", Algorithms: []string{"HS256"}},
		"none":        {Issuer: idpIssuer, Audience: "a", JWKSURL: "http://x/", Algorithms: []string{"none"}},
		"no audience": {Issuer: idpIssuer, JWKSURL: "http://x/"},
	} {
		cfg := testConfig()
		cfg.OIDC = o
		if _, err := New(context.Background(), Options{Store: st, Config: cfg}); err == nil {
			t.Errorf("%s: New accepted the config", name)
		}
	}
}
