package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadAppliesAuth: an [auth] change in the file takes effect at the
// next reload with no restart warning — the resource URL of the OAuth
// metadata and the lifetime of new access tokens — while auth.mode is
// named, key by key, as needing a restart.
func TestReloadAppliesAuth(t *testing.T) {
	env := append(secEnv(t), "MCPEDGE_ADMIN_PASSWORD=correct horse battery staple")
	cfgPath := writeConfig(t, "[auth]\nresource_url = \"https://a.example/mcp\"\n")
	p := startServe(t, env, "--config", cfgPath)

	resource := func() string {
		t.Helper()
		code, b := apiDo(t, http.MethodGet, p.URL+"/.well-known/oauth-protected-resource/mcp", "", "")
		var md struct {
			Resource string `json:"resource"`
		}
		if code != 200 || json.Unmarshal(b, &md) != nil {
			t.Fatalf("protected resource metadata: %d %s", code, b)
		}
		return md.Resource
	}
	expiresIn := func() int {
		t.Helper()
		code, b := apiDo(t, http.MethodPost, p.URL+"/api/auth/login", "", `{"tenant":"default","user":"owner","password":"correct horse battery staple"}`)
		var tok struct {
			ExpiresIn int `json:"expires_in"`
		}
		if code != 200 || json.Unmarshal(b, &tok) != nil {
			t.Fatalf("login: %d %s", code, b)
		}
		return tok.ExpiresIn
	}
	if r, e := resource(), expiresIn(); r != "https://a.example/mcp" || e != 900 {
		t.Fatalf("before the reload: resource %q, expires_in %d", r, e)
	}

	if err := os.WriteFile(cfgPath, []byte("[auth]\nresource_url = \"https://b.example/mcp\"\naccess_ttl = \"2m\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the reload", func() bool {
		return strings.Count(p.stderr.String(), `"msg":"configuration reloaded"`) >= 1
	})
	if r, e := resource(), expiresIn(); r != "https://b.example/mcp" || e != 120 {
		t.Errorf("after the reload: resource %q, expires_in %d; want https://b.example/mcp and 120", r, e)
	}
	if strings.Contains(p.stderr.String(), "restart to apply") {
		t.Errorf("an [auth] change that applies live asked for a restart:\n%s", p.stderr.String())
	}

	// An [auth] section the credential service refuses keeps the running
	// one, and says why.
	if err := os.WriteFile(cfgPath, []byte("[auth]\nresource_url = \"https://c.example/mcp\"\naccess_ttl = \"2m\"\n[auth.oidc]\nissuer = \"https://idp.example\"\njwks_url = \"https://idp.example/jwks\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the refusal", func() bool {
		return strings.Contains(p.stderr.String(), "[auth] not reloaded") || strings.Count(p.stderr.String(), `"msg":"reload failed`) >= 1
	})
	if r := resource(); r != "https://b.example/mcp" {
		t.Errorf("after a refused [auth]: resource %q, want the running https://b.example/mcp", r)
	}

	// auth.mode only applies at a restart: the warning names it.
	if err := os.WriteFile(cfgPath, []byte("[auth]\nmode = \"off\"\nresource_url = \"https://b.example/mcp\"\naccess_ttl = \"2m\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, "the restart warning", func() bool {
		return strings.Contains(p.stderr.String(), "[auth] changed; restart to apply them: auth.mode")
	})
}
