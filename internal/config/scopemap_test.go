package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const oidcBase = `[auth.oidc]
issuer = "https://idp.example.com/realms/main"
audience = "mcpedge"
jwks_url = "https://idp.example.com/realms/main/protocol/openid-connect/certs"
tenant_claim = "tenant"
`

func TestScopeMap(t *testing.T) {
	c, err := parseTOML("c.toml", []byte(oidcBase+`
[auth.oidc.scope_map]
mcp = ["mcp:list", "mcp:call"]
"MCP.Read" = ["mcp:list"]
"api://mcpedge/admin" = ["admin:read", "admin:write"]
openid = []
"read:tools" = ["tools-reader"]
`), envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"mcp": {"mcp:list", "mcp:call"}, "MCP.Read": {"mcp:list"}, "api://mcpedge/admin": {"admin:read", "admin:write"},
		"openid": {}, "read:tools": {"tools-reader"},
	}
	if !reflect.DeepEqual(c.Auth.OIDC.ScopeMap, want) {
		t.Errorf("scope_map %v", c.Auth.OIDC.ScopeMap)
	}
}

func TestScopeMapProblems(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"typo in a gateway scope", "[auth.oidc.scope_map]\nmcp = [\"mcp:calls\"]\n", `c.toml:8:1: auth.oidc.scope_map.mcp[0]: "mcp:calls" is not a gateway scope (mcp:list, mcp:call, admin:read, admin:write`},
		{"not a list", "[auth.oidc.scope_map]\nmcp = \"mcp:call\"\n", `c.toml:8:1: auth.oidc.scope_map.mcp: expected array of strings, got string`},
		{"a space", "[auth.oidc.scope_map]\n\"a b\" = [\"mcp:call\", \"x y\"]\n", `a provider scope is one word`},
		{"scope_map a string", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := oidcBase + "\n" + tc.src
			if tc.name == "scope_map a string" {
				src = strings.Replace(oidcBase, "tenant_claim", "scope_map = \"mcp\"\ntenant_claim", 1)
				tc.want = `auth.oidc.scope_map: expected table of arrays of scopes, got string`
			}
			_, err := parseTOML("c.toml", []byte(src), envMap(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestScopeMapDocExamples: the providers' examples in
// docs/configuration.md are valid configurations with a scope_map.
func TestScopeMapDocExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, block := range strings.Split(string(b), "```toml\n")[1:] {
		block = block[:strings.Index(block, "```")]
		if !strings.Contains(block, "[auth.oidc.scope_map]") {
			continue
		}
		n++
		c, err := parseTOML("example.toml", []byte(block), envMap(nil))
		if err != nil {
			t.Errorf("%v\n%s", err, block)
			continue
		}
		if len(c.Auth.OIDC.ScopeMap) == 0 {
			t.Errorf("no scope_map read from\n%s", block)
		}
	}
	if n < 4 {
		t.Errorf("%d scope_map examples in docs/configuration.md, want the four providers'", n)
	}
}
