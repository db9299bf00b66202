package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestHubServer(t *testing.T) {
	c, ps := parseT(t, "", nil)
	if ps != nil || c.HubServer.EKRoots != "" {
		t.Fatalf("default: %q %+v", ps, c.HubServer)
	}
	c, ps = parseT(t, "[hub_server]\nek_roots = \"/etc/mcpedge/tpm-roots.pem\"\n", nil)
	if ps != nil || c.HubServer.EKRoots != "/etc/mcpedge/tpm-roots.pem" {
		t.Fatalf("ek_roots: %q %+v", ps, c.HubServer)
	}
	for _, tc := range []struct{ src, want string }{
		{"[hub_server]\nek_roots = 1\n", "c.toml:2:1: hub_server.ek_roots: expected string, got integer"},
		{"[hub_server]\nek_root = \"x\"\n", `c.toml:2:1: hub_server.ek_root: unknown key "ek_root" (did you mean "ek_roots"?)`},
		{"hub_server = 1\n", "c.toml:1:1: hub_server: expected table ([hub_server]), got integer"},
		{"[hub_server]\nek_roots = \"a\\u0000b\"\n", "c.toml:2:1: hub_server.ek_roots: must not contain NUL bytes"},
	} {
		_, ps := parseT(t, tc.src, nil)
		if !slices.Contains(ps, tc.want) {
			t.Errorf("%q: problems %q, want %q", tc.src, ps, tc.want)
		}
	}

	// Load resolves a relative path against the config file's directory.
	dir := t.TempDir()
	p := filepath.Join(dir, "mcpedge.toml")
	if err := os.WriteFile(p, []byte("[hub_server]\nek_roots = \"tpm-roots.pem\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "tpm-roots.pem"); c.HubServer.EKRoots != want {
		t.Fatalf("ek_roots %q, want %q", c.HubServer.EKRoots, want)
	}
}
