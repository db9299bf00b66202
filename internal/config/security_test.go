package config

import (
	"strings"
	"testing"
)

func TestSecurityProblems(t *testing.T) {
	src := `[auth]
mode = "off"
[auth.oidc]
issuer = "https://idp"
jwks_url = "ftp://x"
algorithms = ["HS256", "none"]
[plans.gold]
key_per_minute = -1
[limits]
trusted_proxies = ["10.0.0.0/8", "garbage"]
[audit]
arguments = "all"
[store]
url = "mysql://u:secret@h/db"
[server]
listen = "0.0.0.0:8080"
`
	_, ps := parseT(t, src, nil)
	got := strings.Join(ps, "\n")
	for _, want := range []string{
		`c.toml:2:1: auth.mode: "off" is only allowed`,
		`auth.oidc.audience: must be set`,
		`auth.oidc.jwks_url: must be an absolute http(s) URL`,
		`auth.oidc.algorithms[0]: "HS256" is not an accepted`,
		`auth.oidc.algorithms[1]: "none" is not an accepted`,
		`plans.gold.key_per_minute: must not be negative`,
		`limits.trusted_proxies[1]: "garbage" is not a CIDR`,
		`audit.arguments: must be`,
		`store.url: must start with sqlite: or postgres://, got "mysql://u:xxxxx@h/db"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "secret") {
		t.Errorf("a password leaked into an error:\n%s", got)
	}
}

func TestSecurityValid(t *testing.T) {
	src := `[auth]
mode = "required"
access_ttl = "5m"
[auth.oidc]
issuer = "https://idp.example"
audience = "mcpedge"
jwks_url = "https://idp.example/jwks"
[plans.free]
monthly_quota = 5
[plans.gold]
key_per_minute = 10
[store]
url = "postgres://u:p@127.0.0.1/db"
[redis]
url = "redis://127.0.0.1:6379/0"
[limits]
trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
`
	c, ps := parseT(t, src, nil)
	if ps != nil {
		t.Fatal(ps)
	}
	if c.Plans["free"].MonthlyQuota != 5 || c.Plans["free"].KeyPerMinute != 60 || c.Plans["gold"].KeyPerMinute != 10 || c.Plans["pro"].Name != "pro" {
		t.Errorf("plans not merged with defaults: %+v", c.Plans)
	}
	if c.Auth.AccessTTL.D().Minutes() != 5 || c.Auth.OIDC.TenantClaim != "tenant" {
		t.Errorf("auth: %+v", c.Auth)
	}
}

func TestJWKSURLHost(t *testing.T) {
	const head = "[auth]\nmode = \"required\"\n[auth.oidc]\nissuer = \"https://idp.example\"\naudience = \"mcpedge\"\n"
	for src, want := range map[string]string{
		head + "jwks_url = \"http://169.254.169.254/jwks\"\n": "auth.oidc.jwks_url: points at 169.254.169.254 (link-local/metadata address",
		head + "jwks_url = \"http://2130706433/jwks\"\n":      "auth.oidc.jwks_url: host \"2130706433\" is the IPv4 address 127.0.0.1 written in a non-standard form",
		head + "jwks_url = \"http://10.0.0.7/jwks\"\n":        "", // an identity provider on the private network is fine
	} {
		_, ps := parseT(t, src, nil)
		got := strings.Join(ps, "\n")
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("%s: problems %q, want %q", src, got, want)
		}
	}
}
