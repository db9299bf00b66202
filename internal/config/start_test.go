package config

import (
	"strings"
	"testing"
	"time"
)

func TestIsPackageRunner(t *testing.T) {
	tests := []struct {
		command string
		args    []string
		want    bool
	}{
		{"npx", []string{"-y", "@modelcontextprotocol/server-memory"}, true},
		{"/usr/local/bin/npx", nil, true},
		{`C:\Program Files\nodejs\npx.cmd`, []string{"-y", "x"}, false}, // backslashes are not separators off Windows
		{"npx.cmd", []string{"-y", "x"}, true},
		{"uvx", []string{"mcp-server-git"}, true},
		{"bunx", []string{"x"}, true},
		{"pipx", []string{"run", "mcp-server-fetch"}, true},
		{"pipx", []string{"install", "x"}, false},
		{"docker", []string{"run", "-i", "--rm", "mcp/fetch"}, true},
		{"docker", []string{"--context", "x", "run", "img"}, false}, // --context takes a value: not followed
		{"docker", []string{"exec", "c", "srv"}, false},
		{"uv", []string{"tool", "run", "x"}, true},
		{"pnpm", []string{"dlx", "x"}, true},
		{"node", []string{"server.js"}, false},
		{"python", []string{"-m", "srv"}, false},
	}
	for _, tc := range tests {
		u := Upstream{Transport: TransportStdio, Command: tc.command, Args: tc.args}
		if got := u.IsPackageRunner(); got != tc.want {
			t.Errorf("%s %v: IsPackageRunner = %v, want %v", tc.command, tc.args, got, tc.want)
		}
	}
	if (Upstream{Transport: TransportHTTP, URL: "http://x/npx"}).IsPackageRunner() {
		t.Error("an http upstream is not a package runner")
	}
}

func TestStartTimeout(t *testing.T) {
	c, err := Parse("t.toml", []byte(`
[[upstreams]]
name = "npx"
command = "npx"
args = ["-y", "pkg"]

[[upstreams]]
name = "node"
command = "node"
args = ["s.js"]

[[upstreams]]
name = "set"
command = "node"
start_timeout = "45s"

[[upstreams]]
name = "short"
command = "npx"
connect_timeout = "20s"
start_timeout = "5s"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"npx": DefaultStartTimeout.D(), "node": DefaultConnectTimeout.D(), "set": 45 * time.Second, "short": 20 * time.Second}
	for _, u := range c.Upstreams {
		if got := u.EffectiveStartTimeout().D(); got != want[u.Name] {
			t.Errorf("%s: EffectiveStartTimeout = %s, want %s", u.Name, got, want[u.Name])
		}
	}
	_, err = Parse("t.toml", []byte("[[upstreams]]\nname = \"a\"\ncommand = \"npx\"\nstart_timeout = \"-1s\"\n"))
	if err == nil || !strings.Contains(err.Error(), "t.toml:4:") || !strings.Contains(err.Error(), "start_timeout") {
		t.Errorf("a negative start_timeout: %v", err)
	}
}
