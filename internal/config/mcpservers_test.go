package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func parseJ(t *testing.T, src string, env map[string]string) (*Config, []string) {
	t.Helper()
	c, err := parseMCPServers("m.json", []byte(src), envMap(env))
	ps := problemStrings(t, err)
	if (c == nil) == (err == nil) {
		t.Fatalf("want exactly one of config and error, got %v and %v", c, err)
	}
	return c, ps
}

func TestMCPServers(t *testing.T) {
	src := `{
  "globalShortcut": "Ctrl+Space",
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
      "env": {"API_KEY": "${API_KEY}"},
      "cwd": "/srv",
      "autoApprove": ["read_file"],
      "timeout": 60
    },
    "My Remote": {
      "type": "streamable-http",
      "url": "https://mcp.example.com/mcp",
      "headers": {"Authorization": "Bearer ${TOKEN}"}
    },
    "legacy": {"serverUrl": "http://127.0.0.1:3001/sse", "type": "sse"},
    "off": {"command": "old-server", "disabled": true, "env": {"X": "${NOT_SET}"}},
    "plain-url": {"url": "http://127.0.0.1:9/mcp"}
  }
}`
	c, ps := parseJ(t, src, map[string]string{"API_KEY": "k", "TOKEN": "t"})
	if ps != nil {
		t.Fatal(ps)
	}
	d := func(s int) Duration { return Duration(time.Duration(s) * time.Second) }
	want := []Upstream{
		{Name: "filesystem", DisplayName: "filesystem", Transport: "stdio", Command: "npx",
			Args: []string{"-y", "@modelcontextprotocol/server-filesystem", "/tmp"},
			Env:  map[string]string{"API_KEY": "k"}, Dir: "/srv"},
		{Name: "legacy", DisplayName: "legacy", Transport: "sse", URL: "http://127.0.0.1:3001/sse"},
		{Name: "my-remote", DisplayName: "My Remote", Transport: "http", URL: "https://mcp.example.com/mcp",
			Headers: map[string]string{"Authorization": "Bearer t"}},
		{Name: "off", DisplayName: "off", Transport: "stdio", Command: "old-server", Disabled: true,
			Env: map[string]string{"X": ""}},
		{Name: "plain-url", DisplayName: "plain-url", Transport: "http", URL: "http://127.0.0.1:9/mcp"},
	}
	for i := range want {
		want[i].Timeout, want[i].ConnectTimeout, want[i].Isolation = d(30), d(10), "shared"
	}
	if !reflect.DeepEqual(c.Upstreams, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c.Upstreams, want)
	}
	if c.Path != "m.json" || !reflect.DeepEqual(c.Server, Default().Server) {
		t.Errorf("path or server settings wrong: %q %+v", c.Path, c.Server)
	}
}

func TestMCPServersProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"empty file", "  \n", []string{`m.json: file is empty: expected a JSON object with an "mcpServers" member`}},
		{"malformed", "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\",}\n  }\n}\n",
			[]string{`m.json:3:26: invalid JSON: invalid character '}' looking for beginning of object key string`}},
		{"truncated", "{\"mcpServers\": {", []string{`m.json:1:16: invalid JSON: unexpected end of JSON input`}},
		{"trailing data", "{\"mcpServers\": {}}\n{}", []string{`m.json:2:1: invalid JSON: invalid character '{' after top-level value`}},
		{"not an object", "[1]", []string{`m.json:1:1: expected a JSON object with an "mcpServers" member, got array`}},
		{"no mcpServers", "{\"other\": {}}", []string{`m.json:1:1: no "mcpServers" object found (nor VS Code's "servers", nor the "packages" or "remotes" of a registry server.json)`}},
		{"servers wrong type", "{\n\"servers\": 1}", []string{`m.json:2:1: servers: expected object, got number`}},
		{"vscode settings wrong type", "{\"mcp\": {\n  \"servers\": []}}", []string{`m.json:2:3: mcp.servers: expected object, got array`}},
		{"mcpServers wrong type", "{\n\"mcpServers\": []}", []string{`m.json:2:1: mcpServers: expected object, got array`}},
		{"empty mcpServers ok", "{\"mcpServers\": {}}", nil},
		{"entry wrong type", "{\"mcpServers\": {\n \"a\": \"npx x\"}}", []string{`m.json:2:2: mcpServers.a: expected object, got string`}},
		{"field types", `{"mcpServers": {"a": {
  "command": ["npx"],
  "args": "x",
  "env": {"A": 1},
  "disabled": "true",
  "type": 3
}}}`, []string{
			`m.json:2:3: mcpServers.a.command: expected string, got array`,
			`m.json:3:3: mcpServers.a.args: expected array of strings, got string`,
			`m.json:4:11: mcpServers.a.env.A: expected string, got number`,
			`m.json:5:3: mcpServers.a.disabled: expected boolean (true or false), got string`,
			`m.json:6:3: mcpServers.a.type: expected string, got number`,
		}},
		{"args element", `{"mcpServers": {"a": {"command": "x", "args": ["ok", null]}}}`,
			[]string{`m.json:1:54: mcpServers.a.args[1]: expected string, got null`}},
		{"unsupported type", "{\"mcpServers\": {\"a\": {\n\"type\": \"websocket\", \"url\": \"ws://h\"}}}",
			[]string{`m.json:2:1: mcpServers.a.type: must be one of stdio, http, sse; got "websocket"`}},
		{"both command and url", "{\"mcpServers\": {\n\"a\": {\"command\": \"x\", \"url\": \"http://h/\"}}}",
			[]string{`m.json:2:6: mcpServers.a.type: both command and url are set: remove one, or set transport to say which is meant`}},
		{"nothing to run", "{\"mcpServers\": {\n\"a\": {}}}",
			[]string{`m.json:2:6: mcpServers.a.command: one of command (stdio) or url (http, sse) is required`}},
		{"stdio cwd on http", "{\"mcpServers\": {\n\"a\": {\"url\": \"http://h/\",\n \"cwd\": \"/x\"}}}",
			[]string{`m.json:3:2: mcpServers.a.cwd: is not used by the http transport`}},
		{"bad url", "{\"mcpServers\": {\"a\": {\n\"serverUrl\": \"h/mcp\"}}}",
			[]string{`m.json:2:1: mcpServers.a.serverUrl: must be an http:// or https:// URL`}},
		{"unset variable", "{\"mcpServers\": {\"Odd Name\": {\"url\": \"http://h/\",\n \"headers\": {\"Authorization\": \"Bearer ${TOKEN}\"}}}}",
			[]string{`m.json:2:14: mcpServers["Odd Name"].headers.Authorization: environment variable TOKEN is not set (use ${TOKEN:-default} to supply a default)`}},
		{"duplicate key", "{\"mcpServers\": {\n\"a\": {\"command\": \"x\"},\n\"a\": {\"command\": \"y\"}}}",
			[]string{`m.json:3:1: duplicate key "a" (first at line 2)`}},
		{"too deep", "{\"mcpServers\": {\"a\": {\"x\": " + strings.Repeat("[", 1200) + strings.Repeat("]", 1200) + "}}}",
			[]string{`m.json:1:1025: invalid JSON: nested more than 1000 levels deep`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, got := parseJ(t, tt.src, nil)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("source:\n%s\ngot:\n%s\nwant:\n%s", tt.src, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDeriveNames(t *testing.T) {
	long := strings.Repeat("x", 60)
	tests := []struct {
		name string
		keys []string
		want []string
	}{
		{"valid kept", []string{"files", "git-hub", "a1"}, []string{"files", "git-hub", "a1"}},
		{"lower-cased", []string{"GitHub"}, []string{"github"}},
		{"others to dash, runs collapsed, trimmed", []string{"  My  Files!! "}, []string{"my-files"}},
		{"dotted and slashed", []string{"github.com/org/repo"}, []string{"github-com-org-repo"}},
		{"nothing left", []string{"日本語", "!!!"}, []string{"upstream-2", "upstream"}},
		{"empty key", []string{""}, []string{"upstream"}},
		{"valid names win over derived ones", []string{"My Files", "my-files"}, []string{"my-files-2", "my-files"}},
		{"dedupe in sorted key order", []string{"a_b", "A B", "a b"}, []string{"a-b-3", "a-b", "a-b-2"}},
		{"suffix does not collide with a valid name", []string{"A", "a-2", "a"}, []string{"a-3", "a-2", "a"}},
		{"truncated", []string{long + "!"}, []string{strings.Repeat("x", 48)}},
		{"truncated then deduped", []string{long + "!", long + "?"}, []string{strings.Repeat("x", 48), strings.Repeat("x", 46) + "-2"}},
		{"too long but valid", []string{long}, []string{strings.Repeat("x", 48)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := deriveNames(tt.keys)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("deriveNames(%q) = %q, want %q", tt.keys, got, tt.want)
			}
			for _, n := range got {
				if len(n) > MaxNameLen || !nameRE.MatchString(n) {
					t.Errorf("invalid derived name %q", n)
				}
			}
		})
	}
}

func TestLoadMCPServers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "claude_desktop_config.json")
	src := `{"mcpServers": {"Z": {"command": "z", "cwd": "rel"}, "a": {"command": "a"}}}`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadMCPServers(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Upstreams) != 2 || c.Upstreams[0].Name != "a" || c.Upstreams[1].Name != "z" {
		t.Fatalf("upstreams not sorted by name: %+v", c.Upstreams)
	}
	if got, want := c.Upstreams[1].Dir, filepath.Join(dir, "rel"); got != want {
		t.Errorf("cwd = %q, want %q", got, want)
	}
	if _, err := LoadMCPServers(filepath.Join(dir, "nope.json")); err == nil || !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}
