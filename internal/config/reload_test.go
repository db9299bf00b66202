package config

import (
	"slices"
	"testing"
)

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{
		"MaxBodyBytes": "max_body_bytes", "OIDC": "oidc", "URL": "url", "JWKSURL": "jwks_url", "PCRs": "pcrs", "AccessTTL": "access_ttl", "MaxJSONDepth": "max_json_depth", "IPBurst": "ip_burst", "MemoryMB": "memory_mb",
		"RevocationPoll": "revocation_poll", "Listen": "listen", "EKRoots": "ek_roots", "TrustedProxies": "trusted_proxies",
	} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRestartKeys(t *testing.T) {
	base := func() *Config {
		c, err := Parse("a.toml", []byte(`
[server]
listen = "127.0.0.1:8080"
[store]
url = "sqlite:///tmp/a.db"
[audit]
arguments = "hash"
[plans.free]
key_per_minute = 60
[[upstreams]]
name = "a"
url = "http://127.0.0.1:9/mcp"
`))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"nothing", func(*Config) {}, nil},
		{"upstream url", func(c *Config) { c.Upstreams[0].URL = "http://127.0.0.1:10/mcp" }, nil},
		{"plan", func(c *Config) { p := c.Plans["free"]; p.KeyPerMinute = 1; c.Plans["free"] = p }, nil},
		{"audit arguments", func(c *Config) { c.Audit.Arguments = "full" }, nil},
		{"routing", func(c *Config) { c.Routing.LocalOnlyTenants = []string{"t"} }, nil},
		{"listen", func(c *Config) { c.Server.Listen = "127.0.0.1:9090" }, []string{"server.listen"}},
		{"store and auth", func(c *Config) {
			c.Store.URL = "sqlite:///tmp/b.db"
			c.Auth.RevocationPoll *= 2
		}, []string{"store.url"}},
		{"auth live", func(c *Config) {
			c.Auth.AccessTTL *= 2
			c.Auth.OIDC.Issuer = "https://idp.example"
		}, nil},
		{"auth mode and bootstrap", func(c *Config) {
			c.Auth.Mode = AuthOff
			c.Auth.BootstrapTenant = "other"
		}, []string{"auth.mode", "auth.bootstrap_tenant"}},
		{"limits", func(c *Config) { c.Limits.TrustedProxies = []string{"127.0.0.1/32"} }, []string{"limits.trusted_proxies"}},
		{"hub", func(c *Config) { c.Hub.URL = "http://127.0.0.1:1" }, []string{"hub.url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := base(), base()
			tc.change(b)
			if got := RestartKeys(a, b); !slices.Equal(got, tc.want) {
				t.Fatalf("RestartKeys = %v, want %v", got, tc.want)
			}
		})
	}
}

// A [queue] change needs a restart; the same [queue] does not (moved from
// cmd/mcpedge's TestRestartNeededQueue).
func TestRestartKeysQueue(t *testing.T) {
	a, b := Default(), Default()
	if keys := RestartKeys(a, b); len(keys) != 0 {
		t.Fatalf("identical configurations need a restart: %v", keys)
	}
	b.Queue.MaxEntries++
	if keys := RestartKeys(a, b); !slices.Equal(keys, []string{"queue.max_entries"}) {
		t.Errorf("a changed max_entries: %v", keys)
	}
	b = Default()
	b.Queue.Enabled = false
	if keys := RestartKeys(a, b); !slices.Equal(keys, []string{"queue.enabled"}) {
		t.Errorf("a disabled queue: %v", keys)
	}
}
