package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envMap is a lookup function over a fixed environment, so tests do not
// depend on (or mutate) the process environment and can run in parallel.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// problemStrings returns the formatted problems of err, failing the test if
// err is not a *Problems.
func problemStrings(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps *Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T, want *Problems: %v", err, err)
	}
	out := make([]string, len(*ps))
	for i, p := range *ps {
		out[i] = p.String()
	}
	return out
}

func parseT(t *testing.T, src string, env map[string]string) (*Config, []string) {
	t.Helper()
	c, err := parseTOML("c.toml", []byte(src), envMap(env))
	ps := problemStrings(t, err)
	if (c == nil) == (err == nil) {
		t.Fatalf("want exactly one of config and error, got %v and %v", c, err)
	}
	return c, ps
}

const exampleTOML = `[server]
listen = "127.0.0.1:8080"

[[upstreams]]
name = "everything"
transport = "stdio"
command = "npx"
args = ["-y", "@modelcontextprotocol/server-everything"]
env = { API_KEY = "${API_KEY}" }

[[upstreams]]
name = "remote"
transport = "http"
url = "http://127.0.0.1:3001/mcp"
headers = { Authorization = "Bearer ${REMOTE_TOKEN}" }
`

func TestExample(t *testing.T) {
	// Through the public API and the real environment, once.
	t.Setenv("API_KEY", "k-123")
	t.Setenv("REMOTE_TOKEN", "tok")
	c, err := Parse("example.toml", []byte(exampleTOML))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Server: Default().Server,
		Upstreams: []Upstream{
			{
				Name:           "everything",
				Transport:      "stdio",
				Command:        "npx",
				Args:           []string{"-y", "@modelcontextprotocol/server-everything"},
				Env:            map[string]string{"API_KEY": "k-123"},
				Timeout:        Duration(30 * time.Second),
				ConnectTimeout: Duration(10 * time.Second),
				Isolation:      "shared",
			},
			{
				Name:           "remote",
				Transport:      "http",
				URL:            "http://127.0.0.1:3001/mcp",
				Headers:        map[string]string{"Authorization": "Bearer tok"},
				Timeout:        Duration(30 * time.Second),
				ConnectTimeout: Duration(10 * time.Second),
				Isolation:      "shared",
			},
		},
		Lattice: Default().Lattice,
		Path:    "example.toml",
	}
	def := Default()
	want.Auth, want.Plans, want.Audit, want.Metering, want.Queue, want.Routing, want.Hub = def.Auth, def.Plans, def.Audit, def.Metering, def.Queue, def.Routing, def.Hub
	want.Telemetry = def.Telemetry
	want.Device = def.Device
	want.Backup = def.Backup
	want.Webhooks = def.Webhooks
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
	if got := c.Upstreams[0].NamePrefix(); got != "everything" {
		t.Errorf("NamePrefix = %q", got)
	}
}

func TestExampleMissingEnv(t *testing.T) {
	_, ps := parseT(t, exampleTOML, nil)
	want := []string{
		`c.toml:9:9: upstreams[0].env.API_KEY: environment variable API_KEY is not set (use ${API_KEY:-default} to supply a default)`,
		`c.toml:15:13: upstreams[1].headers.Authorization: environment variable REMOTE_TOKEN is not set (use ${REMOTE_TOKEN:-default} to supply a default)`,
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(ps, "\n"), strings.Join(want, "\n"))
	}
}

func TestDefaults(t *testing.T) {
	d := Default()
	s := d.Server
	if s.Listen != "127.0.0.1:8080" || s.AuthTokenEnv != "MCPEDGE_AUTH_TOKEN" || s.MaxBodyBytes != 4<<20 ||
		s.MaxJSONDepth != 64 || s.RequestTimeout.D() != 60*time.Second || s.ShutdownGrace.D() != 10*time.Second ||
		s.LogLevel != "info" || s.PageSize != 100 || s.AllowedOrigins != nil {
		t.Errorf("unexpected defaults %+v", s)
	}
	if d.Upstreams != nil || d.Path != "" {
		t.Errorf("Default has upstreams or path: %+v", d)
	}
	for _, src := range []string{"", "\n# only a comment\n", "[server]\n"} {
		c, ps := parseT(t, src, nil)
		if ps != nil {
			t.Fatalf("%q: %v", src, ps)
		}
		c.Path = ""
		if !reflect.DeepEqual(c, d) {
			t.Errorf("%q: got %+v, want defaults", src, c)
		}
	}

	c, ps := parseT(t, "[[upstreams]]\nname = \"a\"\ncommand = \"x\"\n", nil)
	if ps != nil {
		t.Fatal(ps)
	}
	u := c.Upstreams[0]
	if u.Transport != "stdio" || u.Timeout.D() != 30*time.Second || u.ConnectTimeout.D() != 10*time.Second ||
		u.Isolation != "shared" || u.Prefix != nil || u.Disabled || u.NamePrefix() != "a" {
		t.Errorf("unexpected upstream defaults %+v", u)
	}
}

func TestServerSettings(t *testing.T) {
	src := `[server]
listen = ":9000"
auth_token_env = ""
allowed_origins = ["https://App.Example.com", "http://localhost:3000/", "vscode-webview://abc"]
max_body_bytes = 1024
max_json_depth = 1000
request_timeout = "1m30s"
shutdown_grace = "500ms"
allowed_hosts = ["MCP.Example.com."]
read_header_timeout = "3s"
body_read_timeout = "2s"
log_level = "DEBUG"
page_size = 7
hot_path = false
data_dir = "/var/lib/mcpedge"
`
	c, ps := parseT(t, src, nil)
	if ps != nil {
		t.Fatal(ps)
	}
	want := Server{
		Listen:            ":9000",
		AuthTokenEnv:      "",
		AllowedOrigins:    []string{"https://app.example.com", "http://localhost:3000", "vscode-webview://abc"},
		MaxBodyBytes:      1024,
		MaxJSONDepth:      1000,
		RequestTimeout:    Duration(90 * time.Second),
		ShutdownGrace:     Duration(500 * time.Millisecond),
		AllowedHosts:      []string{"mcp.example.com"},
		ReadHeaderTimeout: Duration(3 * time.Second),
		BodyReadTimeout:   Duration(2 * time.Second),
		LogLevel:          "debug",
		PageSize:          7,
		HotPath:           false,
		DataDir:           "/var/lib/mcpedge",
	}
	if !reflect.DeepEqual(c.Server, want) {
		t.Errorf("got %+v\nwant %+v", c.Server, want)
	}
	if !Default().Server.HotPath {
		t.Error("hot_path is off by default, want on")
	}
}

// TestRules checks every validation rule: each case is a small file and the
// exact problems it must produce.
func TestRules(t *testing.T) {
	const up = "[[upstreams]]\nname = \"a\"\n" // line 1-2
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []string
	}{
		// Server.
		{"listen not host:port", "[server]\nlisten = \"8080\"\n",
			nil, []string{`c.toml:2:1: server.listen: must be host:port, e.g. "127.0.0.1:8080" or ":8080" ("8080")`}},
		{"listen bad port", "[server]\nlisten = \"localhost:http\"\n",
			nil, []string{`c.toml:2:1: server.listen: port must be a number from 0 to 65535, got "http"`}},
		{"listen port range", "[server]\nlisten = \"[::1]:70000\"\n",
			nil, []string{`c.toml:2:1: server.listen: port must be a number from 0 to 65535, got "70000"`}},
		{"listen ipv6 ok", "[server]\nlisten = \"[::1]:0\"\n", nil, nil},
		{"listen wrong type", "[server]\nlisten = 8080\n",
			nil, []string{`c.toml:2:1: server.listen: expected string, got integer`}},
		{"auth_token_env invalid", "[server]\nauth_token_env = \"MY-TOKEN\"\n",
			nil, []string{`c.toml:2:1: server.auth_token_env: "MY-TOKEN" is not a valid environment variable name (letters, digits and _, not starting with a digit); use "" to disable token authentication`}},
		{"allowed_origins wildcard", "[server]\nallowed_origins = [\"*\"]\n",
			nil, []string{`c.toml:2:1: server.allowed_origins[0]: wildcard origins are not supported: list each allowed origin, e.g. "https://app.example.com"`}},
		{"allowed_origins null", "[server]\nallowed_origins = [\"https://a.example\", \"null\"]\n",
			nil, []string{`c.toml:2:1: server.allowed_origins[1]: the "null" origin (sandboxed frames, file: pages) cannot be allowed safely`}},
		{"allowed_origins path", "[server]\nallowed_origins = [\"https://a.example/x\"]\n",
			nil, []string{`c.toml:2:1: server.allowed_origins[0]: invalid origin "https://a.example/x": an origin has no user info, path, query or fragment`}},
		{"allowed_origins not url", "[server]\nallowed_origins = [\"example.com\"]\n",
			nil, []string{`c.toml:2:1: server.allowed_origins[0]: invalid origin "example.com": want scheme://host[:port], e.g. "https://app.example.com"`}},
		{"allowed_origins element type", "[server]\nallowed_origins = [\n  \"https://a.example\",\n  1,\n]\n",
			nil, []string{`c.toml:4:3: server.allowed_origins[1]: expected string, got integer`}},
		{"max_body_bytes zero", "[server]\nmax_body_bytes = 0\n",
			nil, []string{`c.toml:2:1: server.max_body_bytes: must be greater than 0, got 0`}},
		{"max_body_bytes float", "[server]\nmax_body_bytes = 1.5\n",
			nil, []string{`c.toml:2:1: server.max_body_bytes: expected integer, got float`}},
		{"max_json_depth zero", "[server]\nmax_json_depth = 0\n",
			nil, []string{`c.toml:2:1: server.max_json_depth: must be between 1 and 1000, got 0`}},
		{"max_json_depth too big", "[server]\nmax_json_depth = 1001\n",
			nil, []string{`c.toml:2:1: server.max_json_depth: must be between 1 and 1000, got 1001`}},
		{"max_json_depth huge", "[server]\nmax_json_depth = 9223372036854775807\n",
			nil, []string{`c.toml:2:1: server.max_json_depth: must be between 1 and 1000, got 2147483647`}},
		{"request_timeout zero", "[server]\nrequest_timeout = \"0s\"\n",
			nil, []string{`c.toml:2:1: server.request_timeout: must be greater than 0, got 0s`}},
		{"request_timeout no unit", "[server]\nrequest_timeout = \"30\"\n",
			nil, []string{`c.toml:2:1: server.request_timeout: invalid duration "30": missing unit, e.g. "30s"`}},
		{"request_timeout integer", "[server]\nrequest_timeout = 30\n",
			nil, []string{`c.toml:2:1: server.request_timeout: expected a duration string with a unit, e.g. "30s", got integer`}},
		{"shutdown_grace negative", "[server]\nshutdown_grace = \"-1s\"\n",
			nil, []string{`c.toml:2:1: server.shutdown_grace: must be greater than 0, got -1s`}},
		{"allowed_hosts with a port", "[server]\nallowed_hosts = [\"mcp.example.com\", \"x:8080\"]\n",
			nil, []string{`c.toml:2:1: server.allowed_hosts[1]: "x:8080" is not a host name: give the name alone, without scheme, port or wildcard, e.g. "mcp.example.com"`}},
		{"body_read_timeout zero", "[server]\nbody_read_timeout = \"0s\"\n",
			nil, []string{`c.toml:2:1: server.body_read_timeout: must be greater than 0, got 0s`}},
		{"read_header_timeout negative", "[server]\nread_header_timeout = \"-1s\"\n",
			nil, []string{`c.toml:2:1: server.read_header_timeout: must be greater than 0, got -1s`}},
		{"shutdown_grace garbage", "[server]\nshutdown_grace = \"soon\"\n",
			nil, []string{`c.toml:2:1: server.shutdown_grace: invalid duration "soon": want a number with a unit, e.g. "30s", "1m30s", "500ms"`}},
		{"log_level", "[server]\nlog_level = \"verbose\"\n",
			nil, []string{`c.toml:2:1: server.log_level: must be one of debug, info, warn, error, got "verbose"`}},
		{"page_size", "[server]\npage_size = -1\n",
			nil, []string{`c.toml:2:1: server.page_size: must be greater than 0, got -1`}},
		{"unknown server key", "[server]\nlisten_addr = \"x\"\n",
			nil, []string{`c.toml:2:1: server.listen_addr: unknown key "listen_addr"`}},
		{"typo server key", "[server]\nlog_lvel = \"info\"\n",
			nil, []string{`c.toml:2:1: server.log_lvel: unknown key "log_lvel" (did you mean "log_level"?)`}},
		{"unknown top-level key", "listen = \"x\"\n[servers]\n",
			nil, []string{`c.toml:1:1: listen: unknown key "listen"`, `c.toml:2:1: servers: unknown key "servers" (did you mean "server"?)`}},
		{"server not a table", "server = 1\n",
			nil, []string{`c.toml:1:1: server: expected table ([server]), got integer`}},
		{"upstreams not array", "[upstreams]\nname = \"a\"\n",
			nil, []string{`c.toml:1:1: upstreams: expected an array of tables ([[upstreams]]), got table`}},
		{"upstreams inline array", "upstreams = [ { name = \"a\", command = \"x\" }, 3 ]\n",
			nil, []string{`c.toml:1:46: upstreams[1]: expected table, got integer`}},

		// Upstream names.
		{"name missing", "[[upstreams]]\ncommand = \"x\"\n",
			nil, []string{`c.toml:1:1: upstreams[0].name: is required`}},
		{"name empty", "[[upstreams]]\nname = \"\"\ncommand = \"x\"\n",
			nil, []string{`c.toml:2:1: upstreams[0].name: is required`}},
		{"name charset", "[[upstreams]]\nname = \"My_Server\"\ncommand = \"x\"\n",
			nil, []string{`c.toml:2:1: upstreams[0].name: "My_Server" must contain only lower-case letters, digits and -`}},
		{"name max length ok", "[[upstreams]]\nname = \"" + strings.Repeat("a", 48) + "\"\ncommand = \"x\"\n", nil, nil},
		{"name too long", "[[upstreams]]\nname = \"" + strings.Repeat("a", 49) + "\"\ncommand = \"x\"\n",
			nil, []string{`c.toml:2:1: upstreams[0].name: must be at most 48 characters, got 49`}},
		{"name duplicate", "[[upstreams]]\nname = \"a\"\ncommand = \"x\"\n\n[[upstreams]]\nname = \"a\"\nurl = \"http://h/\"\n",
			nil, []string{`c.toml:6:1: upstreams[1].name: duplicate name "a" (first used by upstreams[0].name, line 2)`}},

		// Transports.
		{"transport inferred stdio", up + "command = \"x\"\n", nil, nil},
		{"transport inferred http", up + "url = \"https://h/mcp\"\n", nil, nil},
		{"transport invalid", up + "transport = \"websocket\"\ncommand = \"x\"\n",
			nil, []string{`c.toml:3:1: upstreams[0].transport: must be one of stdio, http, sse, wasm; got "websocket"`}},
		{"transport alias", up + "transport = \"streamable-http\"\nurl = \"https://h/mcp\"\n", nil, nil},
		{"neither command nor url", up,
			nil, []string{`c.toml:1:1: upstreams[0].command: one of command (stdio), url (http, sse) or module (wasm) is required`}},
		{"both command and url", up + "command = \"x\"\nurl = \"http://h/\"\n",
			nil, []string{`c.toml:1:1: upstreams[0].transport: both command and url are set: remove one, or set transport to say which is meant`}},
		{"stdio without command", up + "transport = \"stdio\"\n",
			nil, []string{`c.toml:1:1: upstreams[0].command: is required for the stdio transport`}},
		{"stdio with url and headers", up + "transport = \"stdio\"\ncommand = \"x\"\nurl = \"http://h/\"\nheaders = { A = \"b\" }\n",
			nil, []string{
				`c.toml:5:1: upstreams[0].url: is not used by the stdio transport`,
				`c.toml:6:1: upstreams[0].headers: are not used by the stdio transport`,
			}},
		{"http without url", up + "transport = \"http\"\n",
			nil, []string{`c.toml:1:1: upstreams[0].url: is required for the http transport`}},
		{"sse with stdio fields", up + "transport = \"sse\"\nurl = \"http://h/sse\"\ncommand = \"x\"\nargs = []\nenv = {}\ndir = \"/tmp\"\n",
			nil, []string{
				`c.toml:5:1: upstreams[0].command: is not used by the sse transport`,
				`c.toml:6:1: upstreams[0].args: are not used by the sse transport`,
				`c.toml:7:1: upstreams[0].env: is not used by the sse transport (it sets a child process's environment)`,
				`c.toml:8:1: upstreams[0].dir: is not used by the sse transport`,
			}},
		{"url scheme", up + "url = \"ws://h/mcp\"\n",
			nil, []string{`c.toml:3:1: upstreams[0].url: must be an http:// or https:// URL`}},
		{"url no host", up + "url = \"http:///mcp\"\n",
			nil, []string{`c.toml:3:1: upstreams[0].url: must include a host, e.g. https://mcp.example.com/mcp`}},
		{"url unparsable", up + "url = \"http://h:port/\"\n",
			nil, []string{`c.toml:3:1: upstreams[0].url: is not a valid URL`}},
		{"url expanded", up + "url = \"https://${HOST}/mcp\"\n", map[string]string{"HOST": "h.example"}, nil},
		{"url unset variable", up + "url = \"https://${HOST}/mcp\"\n",
			nil, []string{`c.toml:3:1: upstreams[0].url: environment variable HOST is not set (use ${HOST:-default} to supply a default)`}},

		// Other upstream fields.
		{"isolation", up + "command = \"x\"\nisolation = \"per-client\"\n",
			nil, []string{`c.toml:4:1: upstreams[0].isolation: must be "shared" or "session", got "per-client"`}},
		{"display name", up + "command = \"x\"\ndisplay_name = \"Anything goes: ✓\"\n", nil, nil},
		{"isolation session", up + "command = \"x\"\nisolation = \"session\"\n", nil, nil},
		{"timeout zero", up + "command = \"x\"\ntimeout = \"0s\"\nconnect_timeout = \"-5s\"\n",
			nil, []string{
				`c.toml:4:1: upstreams[0].timeout: must be greater than 0, got 0s`,
				`c.toml:5:1: upstreams[0].connect_timeout: must be greater than 0, got -5s`,
			}},
		{"prefix invalid", up + "command = \"x\"\nprefix = \"a b\"\n",
			nil, []string{`c.toml:4:1: upstreams[0].prefix: "a b" may contain only letters, digits, _, . and - (tool names allow nothing else)`}},
		{"prefix empty ok", up + "command = \"x\"\nprefix = \"\"\n[[upstreams]]\nname = \"b\"\ncommand = \"y\"\nprefix = \"\"\n", nil, nil},
		{"prefix collision", up + "command = \"x\"\n[[upstreams]]\nname = \"b\"\ncommand = \"y\"\nprefix = \"a\"\n",
			nil, []string{`c.toml:7:1: upstreams[1].prefix: tool namespace "a" is also used by upstream "a"; set a distinct prefix`}},
		{"prefix collision disabled ok", up + "command = \"x\"\n[[upstreams]]\nname = \"b\"\ncommand = \"y\"\nprefix = \"a\"\ndisabled = true\n", nil, nil},
		{"disabled wrong type", up + "command = \"x\"\ndisabled = \"yes\"\n",
			nil, []string{`c.toml:4:1: upstreams[0].disabled: expected boolean (true or false), got string`}},
		{"args wrong type", up + "command = \"x\"\nargs = \"-y pkg\"\n",
			nil, []string{`c.toml:4:1: upstreams[0].args: expected array of strings, got string`}},
		{"args NUL", up + "command = \"x\"\nargs = [\"ok\", \"a\\u0000b\"]\n",
			nil, []string{`c.toml:4:15: upstreams[0].args[1]: must not contain NUL bytes`}},
		{"env wrong type", up + "command = \"x\"\nenv = [\"A=b\"]\n",
			nil, []string{`c.toml:4:1: upstreams[0].env: expected table of strings, got array`}},
		{"env value type", up + "command = \"x\"\n[upstreams.env]\nPORT = 8080\n",
			nil, []string{`c.toml:5:1: upstreams[0].env.PORT: expected string, got integer`}},
		{"env bad name", up + "command = \"x\"\nenv = { \"A=B\" = \"c\" }\n",
			nil, []string{`c.toml:4:9: upstreams[0].env["A=B"]: invalid environment variable name: must be non-empty without = or NUL`}},
		{"header bad name", up + "url = \"http://h/\"\nheaders = { \"X Y\" = \"v\" }\n",
			nil, []string{`c.toml:4:13: upstreams[0].headers["X Y"]: invalid HTTP header name`}},
		{"header injection", up + "url = \"http://h/\"\nheaders = { X = \"v\\r\\nEvil: 1\" }\n",
			nil, []string{`c.toml:4:13: upstreams[0].headers.X: value must not contain CR, LF or NUL`}},
		{"header bad expansion", up + "url = \"http://h/\"\n[upstreams.headers]\nAuthorization = \"Bearer $TOKEN\"\n",
			nil, []string{`c.toml:5:1: upstreams[0].headers.Authorization: "$" must be followed by "{" (as in ${VAR}) or by "$" (a literal "$")`}},
		{"unknown upstream key", up + "command = \"x\"\ncomand = \"y\"\n",
			nil, []string{`c.toml:4:1: upstreams[0].comand: unknown key "comand" (did you mean "command"?)`}},
		{"unknown nested key", up + "command = \"x\"\nfoo.bar = 1\n",
			nil, []string{`c.toml:4:1: upstreams[0].foo: unknown key "foo"`}},
		{"disabled tolerates unset variables", up + "disabled = true\nurl = \"https://${HOST}/mcp\"\nheaders = { A = \"${TOKEN}\" }\n", nil, nil},
		{"disabled still validated", up + "disabled = true\nurl = \"ftp://h\"\n",
			nil, []string{`c.toml:4:1: upstreams[0].url: must be an http:// or https:// URL`}},
		{"no expansion elsewhere", up + "command = \"${X}\"\nargs = [\"$HOME\"]\ndir = \"$$\"\n", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, got := parseT(t, tt.src, tt.env)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("source:\n%s\ngot:\n%s\nwant:\n%s", tt.src, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestManyProblems checks that all problems of a file are reported together,
// in file order, with the right positions.
func TestManyProblems(t *testing.T) {
	src := `[server]
listen = "nope"
log_level = "loud"
colour = true

[[upstreams]]
name = "Bad Name"
command = "x"
isolation = "private"

[[upstreams]]
name = "remote"
transport = "http"
headers = { Authorization = "Bearer ${REMOTE_TOKEN}" }
timeout = 30

# a syntactically fine but semantically empty entry
[[upstreams]]

[[upstreams]]
name = "remote"
command = "y"
`
	_, got := parseT(t, src, nil)
	want := []string{
		`c.toml:2:1: server.listen: must be host:port, e.g. "127.0.0.1:8080" or ":8080" ("nope")`,
		`c.toml:3:1: server.log_level: must be one of debug, info, warn, error, got "loud"`,
		`c.toml:4:1: server.colour: unknown key "colour"`,
		`c.toml:7:1: upstreams[0].name: "Bad Name" must contain only lower-case letters, digits and -`,
		`c.toml:9:1: upstreams[0].isolation: must be "shared" or "session", got "private"`,
		`c.toml:11:1: upstreams[1].url: is required for the http transport`,
		`c.toml:14:13: upstreams[1].headers.Authorization: environment variable REMOTE_TOKEN is not set (use ${REMOTE_TOKEN:-default} to supply a default)`,
		`c.toml:15:1: upstreams[1].timeout: expected a duration string with a unit, e.g. "30s", got integer`,
		`c.toml:18:1: upstreams[2].name: is required`,
		`c.toml:18:1: upstreams[2].command: one of command (stdio), url (http, sse) or module (wasm) is required`,
		`c.toml:21:1: upstreams[3].name: duplicate name "remote" (first used by upstreams[1].name, line 12)`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	_, err := parseTOML("c.toml", []byte(src), envMap(nil))
	if msg := err.Error(); msg != strings.Join(want, "\n") {
		t.Errorf("Error() = %q", msg)
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"duplicate key", "[server]\nlisten = \"a\"\nlisten = \"b\"\n", "c.toml:3:1: key listen is already defined"},
		{"unterminated table", "[server\n", "c.toml:1:8: expected ']' to close table name"},
		{"missing value", "[server]\nlisten = ", "c.toml:2:9: expected value, not end of input"},
		{"bad escape", "[server]\nlisten = \"\\q\"", "c.toml:2:11: invalid escape character U+0071 'q'"},
		{"table vs array", "[[upstreams]]\nname = \"a\"\n[upstreams]\n", "c.toml:3:2: table upstreams already exists as an array of tables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := parseT(t, tt.src, nil)
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTOMLShapes checks that the position index follows TOML's table rules:
// sub-tables of array elements, dotted keys and inline arrays of tables.
func TestTOMLShapes(t *testing.T) {
	src := `upstreams = [
  { name = "inline", command = "x", timeout = "1s" },
]
`
	c, ps := parseT(t, src, nil)
	if ps != nil || c.Upstreams[0].Timeout.D() != time.Second {
		t.Fatalf("inline array: %v %+v", ps, c)
	}
	_, ps = parseT(t, "upstreams = [\n  { name = \"inline\", command = \"x\", timeout = 1 },\n]\n", nil)
	if want := `c.toml:2:37: upstreams[0].timeout: expected a duration string with a unit, e.g. "1s", got integer`; len(ps) != 1 || ps[0] != want {
		t.Errorf("got %q, want %q", ps, want)
	}

	src = `[[upstreams]]
name = "a"
command = "x"
[upstreams.env]
A = "1"

[[upstreams]]
name = "b"
url = "http://h/"
headers.Authorization = "x"
headers."X Trace" = "y"
`
	_, ps = parseT(t, src, nil)
	want := []string{`c.toml:11:9: upstreams[1].headers["X Trace"]: invalid HTTP header name`}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("got %q, want %q", ps, want)
	}
}

func TestExpandString(t *testing.T) {
	env := envMap(map[string]string{"A": "alpha", "EMPTY": "", "B_2": "beta"})
	tests := []struct {
		in, want string
		missing  []string
		err      string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x${A}y${B_2}z", want: "xalphaybetaz"},
		{in: "${env:A}", want: "alpha"},
		{in: "$${A}", want: "${A}"},
		{in: "cost: $$5", want: "cost: $5"},
		{in: "${EMPTY}", want: ""},
		{in: "${EMPTY:-dflt}", want: "dflt"},
		{in: "${UNSET:-dflt}", want: "dflt"},
		{in: "${UNSET:-}", want: ""},
		{in: "${A:-dflt}", want: "alpha"},
		{in: "${UNSET:-a$b}", want: "a$b"},
		{in: "${UNSET}-${UNSET}-${OTHER}", want: "--", missing: []string{"UNSET", "OTHER"}},
		{in: "$A", err: `"$" must be followed by "{" (as in ${VAR}) or by "$" (a literal "$")`},
		{in: "trailing $", err: `"$" must be followed by "{" (as in ${VAR}) or by "$" (a literal "$")`},
		{in: "${A", err: `unterminated "${": missing "}"`},
		{in: "${}", err: `invalid variable name "" in ${...}: want letters, digits and _, not starting with a digit`},
		{in: "${1A}", err: `invalid variable name "1A" in ${...}: want letters, digits and _, not starting with a digit`},
		{in: "${A B}", err: `invalid variable name "A B" in ${...}: want letters, digits and _, not starting with a digit`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, missing, err := expandString(tt.in, env, false)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || !reflect.DeepEqual(missing, tt.missing) {
				t.Errorf("got %q %q, want %q %q", got, missing, tt.want, tt.missing)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	prefix := "p"
	base := Upstream{
		Name: "a", Transport: "stdio", Command: "x", Args: []string{"1", "2"},
		Env: map[string]string{"A": "1", "B": "2"}, Dir: "/d", Timeout: Duration(time.Second),
		ConnectTimeout: Duration(time.Second), Isolation: "shared",
	}
	fp := base.Fingerprint()
	if fp != base.Fingerprint() || len(fp) != 32 {
		t.Fatalf("fingerprint not stable or wrong length: %q", fp)
	}
	same := map[string]func(u *Upstream){
		"name":         func(u *Upstream) { u.Name = "b" },
		"display name": func(u *Upstream) { u.DisplayName = "B" },
		"prefix":       func(u *Upstream) { u.Prefix = &prefix },
		"disabled":     func(u *Upstream) { u.Disabled = true },
		"env copy":     func(u *Upstream) { u.Env = map[string]string{"B": "2", "A": "1"} },
	}
	changed := map[string]func(u *Upstream){
		"transport":       func(u *Upstream) { u.Transport = "http" },
		"command":         func(u *Upstream) { u.Command = "y" },
		"args":            func(u *Upstream) { u.Args = []string{"12"} },
		"args split":      func(u *Upstream) { u.Args = []string{"1", "", "2"} },
		"env value":       func(u *Upstream) { u.Env = map[string]string{"A": "1", "B": "3"} },
		"env key":         func(u *Upstream) { u.Env = map[string]string{"A": "1", "C": "2"} },
		"dir":             func(u *Upstream) { u.Dir = "/e" },
		"url":             func(u *Upstream) { u.URL = "http://h/" },
		"headers":         func(u *Upstream) { u.Headers = map[string]string{"A": "1"} },
		"isolation":       func(u *Upstream) { u.Isolation = "session" },
		"timeout":         func(u *Upstream) { u.Timeout = Duration(2 * time.Second) },
		"connect_timeout": func(u *Upstream) { u.ConnectTimeout = Duration(2 * time.Second) },
	}
	for name, f := range same {
		t.Run("same/"+name, func(t *testing.T) {
			u := base
			f(&u)
			if u.Fingerprint() != fp {
				t.Error("fingerprint changed")
			}
		})
	}
	for name, f := range changed {
		t.Run("changed/"+name, func(t *testing.T) {
			u := base
			f(&u)
			if u.Fingerprint() == fp {
				t.Error("fingerprint did not change")
			}
		})
	}
}

func TestNamePrefix(t *testing.T) {
	empty, custom := "", "fs"
	tests := []struct {
		name   string
		prefix *string
		want   string
	}{
		{"nil means name", nil, "files"},
		{"empty means none", &empty, ""},
		{"custom", &custom, "fs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := Upstream{Name: "files", Prefix: tt.prefix}
			if got := u.NamePrefix(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		json string
		want time.Duration
		err  bool
	}{
		{`"30s"`, 30 * time.Second, false},
		{`"1m30s"`, 90 * time.Second, false},
		{`45`, 45 * time.Second, false},
		{` 2 `, 2 * time.Second, false},
		{`1.5`, 0, true},
		{`"30"`, 0, true},
		{`"x"`, 0, true},
		{`true`, 0, true},
		{`9223372036854775807`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.json, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.json), &d)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if !tt.err && d.D() != tt.want {
				t.Errorf("got %v, want %v", d, tt.want)
			}
		})
	}
	d := Duration(90 * time.Second)
	b, err := json.Marshal(struct{ D Duration }{d})
	if err != nil || string(b) != `{"D":"1m30s"}` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
	var back struct{ D Duration }
	if err := json.Unmarshal(b, &back); err != nil || back.D != d {
		t.Errorf("round trip = %v, %v", back.D, err)
	}
	null := Duration(time.Second)
	if err := json.Unmarshal([]byte("null"), &null); err != nil || null != Duration(time.Second) {
		t.Errorf("null changed the value: %v %v", null, err)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "f", Line: 1, Col: 2, Field: "a.b", Msg: "m"}, "f:1:2: a.b: m"},
		{Problem{File: "f", Line: 1, Field: "a.b", Msg: "m"}, "f:1: a.b: m"},
		{Problem{File: "f", Col: 3, Field: "a.b", Msg: "m"}, "f: a.b: m"},
		{Problem{File: "f", Line: 4, Col: 5, Msg: "m"}, "f:4:5: m"},
		{Problem{Msg: "m"}, "m"},
		{Problem{Field: "x", Msg: "m"}, "x: m"},
		{Problem{Line: 2, Col: 1, Field: "x", Msg: "m"}, "2:1: x: m"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Errorf("got %q", got)
			}
		})
	}
	var nilPs *Problems
	if nilPs.Error() != "" {
		t.Error("nil Problems has a message")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mcpedge.toml")
	src := "[[upstreams]]\nname = \"a\"\ncommand = \"./srv\"\ndir = \"servers/a\"\n" +
		"[[upstreams]]\nname = \"b\"\ncommand = \"srv\"\ndir = \"/abs\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path {
		t.Errorf("Path = %q", c.Path)
	}
	if got, want := c.Upstreams[0].Dir, filepath.Join(dir, "servers/a"); got != want {
		t.Errorf("relative dir = %q, want %q", got, want)
	}
	if got := c.Upstreams[1].Dir; got != "/abs" {
		t.Errorf("absolute dir = %q", got)
	}
	// Parse has no file system context and leaves dir alone.
	c, err = Parse(path, []byte(src))
	if err != nil || c.Upstreams[0].Dir != "servers/a" {
		t.Errorf("Parse dir = %q, %v", c.Upstreams[0].Dir, err)
	}

	if _, err := Load(filepath.Join(dir, "missing.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[server]\nlisten = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if want := bad + ":2:1: server.listen: expected string, got integer"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// check_arguments: on unless set to false, a boolean, per upstream (not
// per target), and outside the fingerprint (turning it off reconnects
// nothing; a reload applies it).
func TestCheckArguments(t *testing.T) {
	const up = "[[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/mcp\"\n"
	for _, tc := range []struct {
		name, src string
		want      bool
	}{
		{"default", up, true},
		{"true", up + "check_arguments = true\n", true},
		{"false", up + "check_arguments = false\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("c.toml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Upstreams[0].ChecksArguments(); got != tc.want {
				t.Errorf("ChecksArguments() = %v, want %v", got, tc.want)
			}
		})
	}
	if !(Upstream{}).ChecksArguments() {
		t.Error("an upstream built in code does not check arguments")
	}
	for _, tc := range []struct{ name, src, want string }{
		{"not a boolean", up + "check_arguments = \"no\"\n", `c.toml:4:1: upstreams[0].check_arguments: expected boolean (true or false), got string`},
		{"per target", "[[upstreams]]\nname = \"a\"\n[[upstreams.targets]]\nname = \"t\"\nurl = \"http://127.0.0.1:9/mcp\"\ncheck_arguments = false\n", `unknown key "check_arguments"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.toml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	on, err := Parse("c.toml", []byte(up))
	if err != nil {
		t.Fatal(err)
	}
	off, err := Parse("c.toml", []byte(up+"check_arguments = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if on.Upstreams[0].Fingerprint() != off.Upstreams[0].Fingerprint() {
		t.Error("check_arguments changes the fingerprint: turning it off would reconnect the upstream")
	}
	if keys := RestartKeys(on, off); len(keys) != 0 {
		t.Errorf("a reload does not apply check_arguments: restart keys %v", keys)
	}
}
