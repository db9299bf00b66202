package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTLSParse(t *testing.T) {
	src := `[server]
listen = "0.0.0.0:8443"
[server.tls]
cert_file = "${TLS_DIR}/cert.pem"
key_file = "${TLS_DIR}/key.pem"
min_version = "1.2"
client_ca_file = "/etc/mcpedge/agents-ca.pem"

[[server.tls.client_certs]]
subject_cn = "agent-1"
tenant = "acme"

[[server.tls.client_certs]]
san = "spiffe://example.org/agent"
tenant = "acme"
role = "admin"
scopes = ["mcp:call"]

[[server.tls.client_certs]]
fingerprint = "SHA256:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
tenant = "beta"

[hub]
url = "https://hub.example.com"
[hub.tls]
ca_file = "/etc/mcpedge/hub-ca.pem"
cert_file = "/etc/mcpedge/edge.pem"
key_file = "/etc/mcpedge/edge-key.pem"

[auth.oidc]
issuer = "https://idp.example.com"
audience = "mcpedge"
jwks_url = "https://idp.example.com/jwks"
default_tenant = "acme"
[auth.oidc.tls]
ca_file = "/etc/mcpedge/idp-ca.pem"

[[upstreams]]
name = "remote"
url = "https://mcp.example.com/mcp"
[upstreams.tls]
ca_file = "/etc/mcpedge/mcp-ca.pem"
server_name = "mcp.internal"
`
	c, ps := parseT(t, src, map[string]string{"TLS_DIR": "/etc/tls"})
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	s := c.Server.TLS
	if !s.Enabled() || s.CertFile != "/etc/tls/cert.pem" || s.KeyFile != "/etc/tls/key.pem" || s.MinVersion != TLSVersion12 ||
		s.ClientAuth != ClientAuthOptional || len(s.ClientCerts) != 3 {
		t.Fatalf("server.tls: %+v", s)
	}
	if cc := s.ClientCerts[0]; cc.Role != "member" || cc.Match() != "cn:agent-1" {
		t.Errorf("client_certs[0] (role defaults to member): %+v", cc)
	}
	if cc := s.ClientCerts[1]; cc.Role != "admin" || !slices.Equal(cc.Scopes, []string{"mcp:call"}) || cc.Match() != "san:spiffe://example.org/agent" {
		t.Errorf("client_certs[1]: %+v", cc)
	}
	if cc := s.ClientCerts[2]; cc.Fingerprint != strings.Repeat("abcdef0123456789", 4) {
		t.Errorf("client_certs[2] fingerprint not normalised: %q", cc.Fingerprint)
	}
	if c.Hub.TLS.CertFile != "/etc/mcpedge/edge.pem" || c.Auth.OIDC.TLS.CAFile != "/etc/mcpedge/idp-ca.pem" || c.Upstreams[0].TLS.ServerName != "mcp.internal" {
		t.Errorf("client tls: hub %+v oidc %+v upstream %+v", c.Hub.TLS, c.Auth.OIDC.TLS, c.Upstreams[0].TLS)
	}

	// Defaults: TLS 1.3, no client certificates; and none of it without
	// [server.tls].
	c, ps = parseT(t, "[server.tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n", nil)
	if ps != nil || c.Server.TLS.MinVersion != TLSVersion13 || c.Server.TLS.ClientAuth != ClientAuthNone {
		t.Fatalf("defaults: %q %+v", ps, c.Server.TLS)
	}
	c, _ = parseT(t, "", nil)
	if c.Server.TLS.Enabled() {
		t.Fatalf("TLS on without [server.tls]: %+v", c.Server.TLS)
	}

	// ACME.
	c, ps = parseT(t, "[server.tls.acme]\ndomains = [\"MCP.Example.com.\"]\nemail = \"ops@example.com\"\naccept_terms = true\n", nil)
	if ps != nil {
		t.Fatalf("acme problems: %q", ps)
	}
	a := c.Server.TLS.ACME
	if !c.Server.TLS.Enabled() || a.Domains[0] != "mcp.example.com" || a.DirectoryURL != DefaultACMEDirectory || a.Challenge != ChallengeTLSALPN || a.RenewBefore != 0 {
		t.Fatalf("acme: %+v", a)
	}
	c, ps = parseT(t, "[server.tls.acme]\ndomains = [\"a.example.com\"]\nchallenge = \"http-01\"\nrenew_before = \"240h\"\naccept_terms = true\ndirectory_url = \"https://ca.internal/acme/directory\"\n", nil)
	if ps != nil || c.Server.TLS.ACME.HTTPListen != ":80" || c.Server.TLS.ACME.RenewBefore.D() != 240*time.Hour {
		t.Fatalf("acme http-01: %q %+v", ps, c.Server.TLS.ACME)
	}
}

func TestTLSProblems(t *testing.T) {
	const files = "cert_file = \"c.pem\"\nkey_file = \"k.pem\"\n"
	tests := []struct{ src, want string }{
		{"[server.tls]\n", "server.tls.cert_file: [server.tls] needs cert_file and key_file, or [server.tls.acme]"},
		{"[server.tls]\ncert_file = \"c.pem\"\n", "server.tls.key_file: is required with cert_file"},
		{"[server.tls]\nkey_file = \"k.pem\"\n", "server.tls.cert_file: is required with key_file"},
		{"[server.tls]\n" + files + "min_version = \"1.1\"\n", `server.tls.min_version: must be "1.3" (the default) or "1.2", got "1.1"`},
		{"[server.tls]\n" + files + "client_auth = \"required\"\n", `server.tls.client_auth: "required" needs client_ca_file`},
		{"[server.tls]\n" + files + "client_auth = \"always\"\n", "server.tls.client_auth: must be one of none, optional, required"},
		{"[server.tls]\n" + files + "[[server.tls.client_certs]]\nsubject_cn = \"a\"\ntenant = \"t\"\n", "server.tls.client_certs: need client_ca_file"},
		{"[server.tls]\n" + files + "client_ca_file = \"ca.pem\"\n[[server.tls.client_certs]]\nsubject_cn = \"a\"\nsan = \"b\"\ntenant = \"t\"\n", "server.tls.client_certs[0].subject_cn: set exactly one of subject_cn, san and fingerprint"},
		{"[server.tls]\n" + files + "client_ca_file = \"ca.pem\"\n[[server.tls.client_certs]]\nfingerprint = \"md5:00\"\ntenant = \"t\"\n", "server.tls.client_certs[0].fingerprint: must be \"sha256:\" and 64 hex digits"},
		{"[server.tls]\n" + files + "client_ca_file = \"ca.pem\"\n[[server.tls.client_certs]]\nsubject_cn = \"a\"\n", "server.tls.client_certs[0].tenant: is required"},
		{"[server.tls]\n" + files + "client_ca_file = \"ca.pem\"\n[[server.tls.client_certs]]\nsubject_cn = \"a\"\ntenant = \"t\"\nrole = \"god\"\n", "server.tls.client_certs[0].role: must be one of viewer, member, admin, owner"},
		{"[server.tls]\n" + files + "client_ca_file = \"ca.pem\"\n[[server.tls.client_certs]]\nsubject_cn = \"a\"\ntenant = \"t\"\n[[server.tls.client_certs]]\nsubject_cn = \"a\"\ntenant = \"u\"\n", "server.tls.client_certs[1].subject_cn: matches the same certificates as client_certs[0]"},
		{"[server.tls]\n" + files + "client_ca_file = \"ca.pem\"\n[[server.tls.client_certs]]\ncn = \"a\"\ntenant = \"t\"\n", `server.tls.client_certs[0].cn: unknown key "cn"`},
		{"[server.tls]\n" + files + "client_certs = 1\n", "expected an array of tables ([[server.tls.client_certs]])"},
		{"[server.tls]\n" + files + "[server.tls.acme]\ndomains = [\"a.example.com\"]\naccept_terms = true\n", "server.tls.cert_file: cannot be used with [server.tls.acme]"},
		{"[server.tls.acme]\ndomains = [\"a.example.com\"]\n", "server.tls.acme.accept_terms: must be true"},
		{"[server.tls.acme]\ndomains = []\naccept_terms = true\n", "server.tls.acme.domains: must name at least one host name"},
		{"[server.tls.acme]\ndomains = [\"*.example.com\"]\naccept_terms = true\n", `server.tls.acme.domains[0]: "*.example.com" is not a fully qualified host name`},
		{"[server.tls.acme]\ndomains = [\"localhost\"]\naccept_terms = true\n", `server.tls.acme.domains[0]: "localhost" is not a fully qualified host name`},
		{"[server.tls.acme]\ndomains = [\"a.example.com\"]\naccept_terms = true\ndirectory_url = \"http://ca/dir\"\n", "server.tls.acme.directory_url: must be an https:// URL"},
		{"[server.tls.acme]\ndomains = [\"a.example.com\"]\naccept_terms = true\nchallenge = \"dns-01\"\n", `server.tls.acme.challenge: must be "tls-alpn-01" or "http-01", got "dns-01"`},
		{"[server.tls.acme]\ndomains = [\"a.example.com\"]\naccept_terms = true\nhttp_listen = \":80\"\n", `server.tls.acme.http_listen: is only used with challenge = "http-01"`},
		{"[server.tls.acme]\ndomains = [\"a.example.com\"]\naccept_terms = true\nrenew_before = \"2000h\"\n", "server.tls.acme.renew_before: must be between 1s and 720h0m0s"},
		{"[server.tls]\n" + files + "ciphers = []\n", `server.tls.ciphers: unknown key "ciphers"`},
		{"[[upstreams]]\nname = \"a\"\nurl = \"https://a.example.com/mcp\"\n[upstreams.tls]\ncert_file = \"c.pem\"\n", "upstreams[0].tls.key_file: is required with cert_file"},
		{"[[upstreams]]\nname = \"a\"\ncommand = \"x\"\n[upstreams.tls]\nca_file = \"ca.pem\"\n", "upstreams[0].tls: is only used by http and sse upstreams, not stdio"},
		{"[[upstreams]]\nname = \"a\"\nurl = \"https://a.example.com/mcp\"\n[upstreams.tls]\nserver_name = \"a:1\"\n", `upstreams[0].tls.server_name: "a:1" is not a host name`},
		{"[hub]\n[hub.tls]\nca_file = \"ca.pem\"\n", "hub.tls: is only used with [hub] url"},
		{"[hub]\nurl = \"https://h.example.com\"\n[hub.tls]\nkey_file = \"k.pem\"\n", "hub.tls.cert_file: is required with key_file"},
		{"[auth.oidc]\nissuer = \"https://i\"\n[auth.oidc.tls]\nca = \"x\"\n", `auth.oidc.tls.ca: unknown key "ca"`},
	}
	for _, tt := range tests {
		_, ps := parseT(t, tt.src, nil)
		if !strings.Contains(strings.Join(ps, "\n"), tt.want) {
			t.Errorf("%q: problems %q, want one containing %q", tt.src, ps, tt.want)
		}
	}
}

// TestTLSPathsRelativeToConfig: Load resolves TLS file paths against the
// configuration file's directory.
func TestTLSPathsRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mcpedge.toml")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p, "[server.tls]\ncert_file = \"tls/cert.pem\"\nkey_file = \"/abs/key.pem\"\n[[upstreams]]\nname = \"a\"\nurl = \"https://a.example.com/mcp\"\n[upstreams.tls]\nca_file = \"ca.pem\"\n")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.TLS.CertFile != filepath.Join(dir, "tls/cert.pem") || c.Server.TLS.KeyFile != "/abs/key.pem" || c.Upstreams[0].TLS.CAFile != filepath.Join(dir, "ca.pem") {
		t.Fatalf("paths: %+v %+v", c.Server.TLS, c.Upstreams[0].TLS)
	}
}

// TestTLSReloadKeys: the certificate files and the mTLS settings are
// reloaded; ACME settings need a restart.
func TestTLSReloadKeys(t *testing.T) {
	a, _ := parseT(t, "[server.tls]\ncert_file = \"a.pem\"\nkey_file = \"a-key.pem\"\n", nil)
	b, _ := parseT(t, "[server.tls]\ncert_file = \"b.pem\"\nkey_file = \"b-key.pem\"\nmin_version = \"1.2\"\nclient_ca_file = \"ca.pem\"\n[[server.tls.client_certs]]\nsubject_cn = \"x\"\ntenant = \"t\"\n", nil)
	if keys := RestartKeys(a, b); len(keys) != 0 {
		t.Fatalf("restart keys %v, want none", keys)
	}
	x, _ := parseT(t, "[server.tls.acme]\ndomains = [\"a.example.com\"]\naccept_terms = true\n", nil)
	y, _ := parseT(t, "[server.tls.acme]\ndomains = [\"b.example.com\"]\naccept_terms = true\n", nil)
	if keys := RestartKeys(x, y); !slices.Equal(keys, []string{"server.tls.acme.domains"}) {
		t.Fatalf("restart keys %v, want server.tls.acme.domains", keys)
	}
}
