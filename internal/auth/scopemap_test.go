package auth

import (
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
)

// TestOIDCScopeMap: a provider whose tokens carry its own scope names
// ("mcp", "MCP.Call", Okta's array) gives callers nothing until
// [auth.oidc] scope_map says which gateway scopes those grant. Tokens are
// signed here and verified against the local JWKS.
func TestOIDCScopeMap(t *testing.T) {
	t.Parallel()
	k := testKeys()
	sign := func(e *env, claim string, value any) string {
		cl := idpClaims(e.clock.Now())
		cl[claim] = value
		return signIDP(t, jwt.SigningMethodRS256, k.rsa, map[string]any{"kid": "rsa1"}, cl)
	}

	plain, _ := oidcEnv(t)
	p := mustAuth(t, plain.svc, sign(plain, "scope", "openid profile mcp"), testIP)
	if p.CanList() || p.CanCall() {
		t.Fatalf("without scope_map, a token scoped \"mcp\" is not limited to nothing: %+v", p)
	}

	mapped, _ := oidcEnv(t, func(o *config.OIDC) {
		o.ScopeMap = map[string][]string{
			"mcp":            {"mcp:list", "mcp:call"}, // Keycloak, Auth0: "scope": "openid mcp"
			"MCP.Read":       {"mcp:list"},             // Entra ID: "scp": "MCP.Read"
			"mcp.access":     {"mcp:list", "mcp:call"}, // Okta: "scp": ["mcp.access"]
			"openid":         {},                       // says nothing about the gateway
			"offline_access": {},
		}
	})
	for _, c := range []struct {
		name       string
		claim      string
		value      any
		want       string
		list, call bool
	}{
		{"keycloak", "scope", "openid profile mcp", "profile mcp:list mcp:call", true, true},
		{"entra", "scp", "MCP.Read", "mcp:list", true, false},
		{"okta", "scp", []string{"mcp.access", "offline_access"}, "mcp:list mcp:call", true, true},
		{"gateway scopes pass", "scope", "mcp:list", "mcp:list", true, false},
		{"all mapped to nothing", "scope", "openid offline_access", "none", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := mustAuth(t, mapped.svc, sign(mapped, c.claim, c.value), testIP)
			if got := strings.Join(p.Scopes, " "); got != c.want || p.CanList() != c.list || p.CanCall() != c.call {
				t.Errorf("scopes %q (want %q), can list %v call %v", got, c.want, p.CanList(), p.CanCall())
			}
		})
	}
}

// TestGatewayScopesKnown: the scopes config validates scope_map against
// are the ones the gateway gives a meaning.
func TestGatewayScopesKnown(t *testing.T) {
	if !slices.Equal(config.GatewayScopes, principal.KnownScopes) {
		t.Fatalf("config.GatewayScopes %v, principal.KnownScopes %v", config.GatewayScopes, principal.KnownScopes)
	}
}
