package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sampleEnv is the environment the client samples under testdata/clients
// are read with.
var sampleEnv = map[string]string{
	"SAMPLE_API_KEY":        "k1",
	InputEnvName("api-key"): "k2",
	"EVERYTHING_URL":        "http://127.0.0.1:9/mcp",
	"EVERYTHING_PORT":       "9",
}

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "clients", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientSamples reads the sample file of every client format as it
// is: the servers come out as the same upstreams.
func TestClientSamples(t *testing.T) {
	npx := func(name string, env map[string]string, args ...string) Upstream {
		if len(args) == 0 {
			args = []string{"-y", "@modelcontextprotocol/server-everything"}
		}
		return Upstream{Name: name, Transport: "stdio", Command: "npx", Args: args, Env: env}
	}
	tests := []struct {
		file   string
		format string
		want   []Upstream
	}{
		{"claude_desktop_config.json", FormatMCPServers, []Upstream{npx("everything", map[string]string{"SAMPLE_CLIENT": "claude-desktop"})}},
		{"cursor_mcp.json", FormatMCPServers, []Upstream{npx("everything", map[string]string{"SAMPLE_API_KEY": "k1"})}},
		{"vscode_mcp.json", FormatVSCode, []Upstream{npx("everything", map[string]string{"SAMPLE_API_KEY": "k2"})}},
		{"claude_code_mcp.json", FormatMCPServers, []Upstream{npx("everything", map[string]string{"SAMPLE_API_KEY": "k1"})}},
		{"windsurf_mcp_config.json", FormatMCPServers, []Upstream{npx("everything", nil), {Name: "everything-remote", Transport: "http", URL: "http://127.0.0.1:9/mcp"}}},
		{"server.json", FormatRegistry, []Upstream{npx("everything", map[string]string{"SAMPLE_API_KEY": "k1"}, "-y", "@modelcontextprotocol/server-everything@2026.8.31")}},
		{"server_remote.json", FormatRegistry, []Upstream{{Name: "everything-remote", Transport: "http", URL: "http://127.0.0.1:9/mcp", Headers: map[string]string{"X-Sample-Key": "none"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data := readSample(t, tc.file)
			if f := ClientFormat(data); f != tc.format {
				t.Errorf("format %q, want %q", f, tc.format)
			}
			c, err := parseMCPServers(tc.file, data, envMap(sampleEnv))
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Upstreams) != len(tc.want) {
				t.Fatalf("%d upstreams, want %d: %+v", len(c.Upstreams), len(tc.want), c.Upstreams)
			}
			for i, w := range tc.want {
				g := c.Upstreams[i]
				if g.Name != w.Name || g.Transport != w.Transport || g.Command != w.Command || !reflect.DeepEqual(g.Args, w.Args) ||
					!reflect.DeepEqual(g.Env, w.Env) || g.URL != w.URL || !reflect.DeepEqual(g.Headers, w.Headers) {
					t.Errorf("upstream %d:\n got %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

func TestVSCodeVariables(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proj")
	path := filepath.Join(dir, ".vscode", "mcp.json")
	src := `{
  "inputs": [
    {"type": "promptString", "id": "db", "description": "Database", "default": "dev.db"},
    {"type": "promptString", "id": "token", "description": "GitHub token", "password": true}
  ],
  "servers": {
    "db": {"command": "${workspaceFolder}/bin/db", "args": ["--file", "${input:db}", "cost: $5"], "env": {"T": "${input:token}"}}
  }
}`
	c, _, err := parseClientFile(path, []byte(src), envMap(map[string]string{InputEnvName("token"): "tok"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstreams[0]
	if u.Command != dir+"/bin/db" || !reflect.DeepEqual(u.Args, []string{"--file", "dev.db", "cost: $5"}) || u.Env["T"] != "tok" {
		t.Errorf("got %+v", u)
	}
	_, _, err = parseClientFile(path, []byte(src), envMap(nil), nil)
	want := `mcp.json:7:107: servers.db.env.T: input "token" (GitHub token) is asked of the user by VS Code; set environment variable MCPEDGE_INPUT_TOKEN for the gateway, or give the input a "default"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("an input without a value: %v\nwant %s", err, want)
	}
	_, _, err = parseClientFile("m.json", []byte(`{"servers": {"a": {"command": "x", "envFile": "${workspaceFolder}/.env"}}}`), envMap(nil), nil)
	if err == nil || !strings.Contains(err.Error(), "envFile is not read by mcpedge") {
		t.Errorf("envFile: %v", err)
	}
	// ${input:…} is a client file's: in TOML it is a mistake.
	_, err = parseTOML("c.toml", []byte("[[upstreams]]\nname = \"a\"\ncommand = \"x\"\nenv = { T = \"${input:token}\" }\n"), envMap(nil))
	if err == nil || !strings.Contains(err.Error(), "invalid variable name") {
		t.Errorf("${input:} in TOML: %v", err)
	}
}

func TestRegistryServerJSON(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		command string
		args    []string
		env     map[string]string
		url     string
		problem string
	}{
		{name: "pypi", src: `{"name": "io.github.x/fetch", "packages": [{"registryType": "pypi", "identifier": "mcp-server-fetch", "version": "1.2.0"}]}`,
			command: "uvx", args: []string{"mcp-server-fetch==1.2.0"}},
		{name: "oci passes its variables", src: `{"name": "x/y", "packages": [{"registryType": "oci", "identifier": "docker.io/mcp/fetch", "version": "1.0",
			"environmentVariables": [{"name": "API_KEY", "isRequired": true}]}]}`,
			command: "docker", args: []string{"run", "-i", "--rm", "-e", "API_KEY", "docker.io/mcp/fetch:1.0"}, env: map[string]string{"API_KEY": "k"}},
		{name: "oci tag kept", src: `{"name": "x/y", "packages": [{"registryType": "oci", "identifier": "ghcr.io/a/b:2.0", "version": "2.0"}]}`,
			command: "docker", args: []string{"run", "-i", "--rm", "ghcr.io/a/b:2.0"}},
		{name: "nuget", src: `{"name": "x/y", "packages": [{"registryType": "nuget", "identifier": "Some.Server", "version": "0.1.0"}]}`,
			command: "dnx", args: []string{"Some.Server@0.1.0", "--yes"}},
		{name: "runtime hint and arguments", src: `{"name": "x/y", "packages": [{"registryType": "npm", "identifier": "srv", "runtimeHint": "bunx",
			"runtimeArguments": [{"type": "named", "name": "--bun"}, {"type": "positional", "value": "--silent"}],
			"packageArguments": [{"type": "named", "name": "--port", "value": "{port}"}, {"type": "positional", "valueHint": "dir", "default": "/data"}, {"type": "named", "name": "--opt"}, {"type": "named", "name": "--flag", "isRequired": true}]}]}`,
			command: "bunx", args: []string{"--silent", "srv", "--port", "8080", "/data", "--flag"}},
		{name: "http package skipped for a remote", src: `{"name": "x/y", "packages": [{"registryType": "npm", "identifier": "srv", "transport": {"type": "streamable-http", "url": "http://localhost:3000/mcp"}}],
			"remotes": [{"type": "sse", "url": "https://{host}/sse", "headers": [{"name": "Authorization", "value": "Bearer {api_key}"}]}]}`,
			url: "https://h.example/sse"},
		{name: "required argument without a value", src: `{"name": "x/y", "packages": [{"registryType": "npm", "identifier": "srv", "packageArguments": [{"type": "positional", "valueHint": "path", "isRequired": true}]}]}`,
			problem: `packages[0].packageArguments[0]: required argument "path" has no value or default`},
		{name: "mcpb", src: `{"name": "x/y", "packages": [{"registryType": "mcpb", "identifier": "https://h/x.mcpb"}]}`,
			problem: `registry type "mcpb" is not supported`},
		{name: "nothing to run", src: `{"name": "x/y", "remotes": []}`,
			problem: `server.json "x/y" has no package a client starts over stdio`},
		{name: "remote without url", src: `{"name": "x/y", "remotes": [{"type": "streamable-http"}]}`,
			problem: `remotes[0]: a remote needs a "url"`},
		{name: "packages not an array", src: `{"name": "x/y", "packages": {}}`,
			problem: `packages: expected array, got object`},
	}
	env := envMap(map[string]string{"API_KEY": "k", "PORT": "8080", "HOST": "h.example", "API_KEY_": "x"})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseMCPServers("server.json", []byte(tc.src), env)
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("problem %v, want %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := c.Upstreams[0]
			if u.Name != "y" && u.Name != "fetch" {
				t.Errorf("name %q", u.Name)
			}
			if u.Command != tc.command || !reflect.DeepEqual(u.Args, tc.args) || (tc.env != nil && !reflect.DeepEqual(u.Env, tc.env)) || u.URL != tc.url {
				t.Errorf("got %q %q env %v url %q", u.Command, u.Args, u.Env, u.URL)
			}
			if tc.url != "" && u.Headers["Authorization"] != "Bearer k" {
				t.Errorf("headers %v", u.Headers)
			}
		})
	}
}

// TestImportRoundTrip: the TOML an import writes reads back to the same
// upstreams, and keeps the references it was given rather than their
// values.
func TestImportRoundTrip(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "clients"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			im, err := importClient(e.Name(), readSample(t, e.Name()), envMap(sampleEnv))
			if err != nil {
				t.Fatal(err)
			}
			toml := im.TOML()
			for _, secret := range []string{"k1", "k2"} {
				if strings.Contains(string(toml), `"`+secret+`"`) {
					t.Errorf("the value of a reference was written:\n%s", toml)
				}
			}
			back, err := parseTOML("imported.toml", toml, envMap(sampleEnv))
			if err != nil {
				t.Fatalf("%v\n%s", err, toml)
			}
			sameUpstreams(t, im.Config.Upstreams, back.Upstreams)
		})
	}
}

func sameUpstreams(t *testing.T, want, got []Upstream) {
	t.Helper()
	norm := func(l []Upstream) []Upstream {
		out := make([]Upstream, len(l))
		for i, u := range l {
			if u.DisplayName == "" {
				u.DisplayName = u.Name
			}
			// Empty and absent are the same setting.
			if len(u.Args) == 0 {
				u.Args = nil
			}
			if len(u.Env) == 0 {
				u.Env = nil
			}
			if len(u.Headers) == 0 {
				u.Headers = nil
			}
			if len(u.InheritEnv) == 0 {
				u.InheritEnv = nil
			}
			if len(u.AllowPrivate) == 0 {
				u.AllowPrivate = nil
			}
			out[i] = u
		}
		return out
	}
	if w, g := norm(want), norm(got); !reflect.DeepEqual(w, g) {
		t.Fatalf("read back differently:\n got %+v\nwant %+v", g, w)
	}
}

func TestAddUpstreams(t *testing.T) {
	base, err := parseTOML("gw.toml", []byte("[[upstreams]]\nname = \"files\"\ncommand = \"x\"\n\n[[upstreams]]\nname = \"git\"\ncommand = \"y\"\nprefix = \"code\"\n"), envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	extra, err := parseMCPServers("desktop.json", []byte(`{"mcpServers": {"memory": {"command": "npx"}}}`), envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	c := *base
	c.Upstreams = append([]Upstream(nil), base.Upstreams...)
	if err := c.AddUpstreams(extra); err != nil || len(c.Upstreams) != 3 || c.Upstreams[2].Name != "memory" {
		t.Fatalf("added: %v %+v", err, c.Upstreams)
	}
	clash, _ := parseMCPServers("desktop.json", []byte(`{"mcpServers": {"files": {"command": "npx"}, "code": {"command": "npx"}}}`), envMap(nil))
	c.Upstreams = append([]Upstream(nil), base.Upstreams...)
	err = c.AddUpstreams(clash)
	for _, want := range []string{`upstream "files" is in both gw.toml and desktop.json`, `upstream "code" of desktop.json uses the tool namespace "code" of upstream "git" of gw.toml`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("clash: %v\nwant %s", err, want)
		}
	}
	if len(c.Upstreams) != 2 {
		t.Errorf("a clash added upstreams: %+v", c.Upstreams)
	}
}

func FuzzImportClient(f *testing.F) {
	entries, _ := os.ReadDir(filepath.Join("testdata", "clients"))
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join("testdata", "clients", e.Name()))
		f.Add(b)
	}
	for _, s := range []string{
		`{"servers": {"a": {"command": "${input:x}", "args": ["${workspaceFolder}", "$${A}", "${"], "env": {"A": "${input:y}$$"}}}, "inputs": [{"id": "y", "default": "d}"}, 3]}`,
		`{"mcp": {"servers": {"a b": {"type": "http", "url": "https://h/${A}", "headers": {"K\"": "v\u007f"}}}}}`,
		`{"name": "a/b/", "packages": [{"registryType": "oci", "identifier": "x/", "version": "1", "environmentVariables": [{"name": "1x", "default": "}"}, {}]}]}`,
		`{"name": "", "remotes": [{"type": "sse", "url": "http://{a}{b}{/c", "headers": [{"name": "A-B", "value": "{x"}]}]}`,
	} {
		f.Add([]byte(s))
	}
	every := func(string) (string, bool) { return "v", true }
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := importClient("f.json", data, every)
		if err != nil {
			return
		}
		toml := im.TOML()
		back, err := parseTOML("imported.toml", toml, every)
		if err != nil {
			t.Fatalf("the imported TOML does not load: %v\n%s", err, toml)
		}
		sameUpstreams(t, im.Config.Upstreams, back.Upstreams)
	})
}
