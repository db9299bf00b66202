package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The loaders read files an operator wrote, but they also run on hot reload
// while the gateway serves traffic, so no input may panic or hang them. The
// seeds below run as ordinary tests; `go test -fuzz=FuzzParse` explores
// further.

var fuzzEnv = envMap(map[string]string{"API_KEY": "k", "REMOTE_TOKEN": "t", "EMPTY": ""})

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		exampleTOML,
		"[server]\nlisten = \":0\"\nallowed_origins = [\"https://a.example\"]\nrequest_timeout = \"1m\"\n",
		"upstreams = [{ name = \"a\", command = \"x\", env = { A = \"${EMPTY:-d}\" } }]\n",
		"[[upstreams]]\nname = \"a\"\nurl = \"https://${X}/\"\nheaders.A = \"$$\"\ndisabled = true\n",
		"[[upstreams]]\n[upstreams.env]\nA = 1\n[[upstreams]]\nname = \"a\"\nprefix = \"\"\nisolation = \"session\"\n",
		"[[upstreams.x]]\n[[upstreams]]\n[a.b.c]\nd.e = [[1], {f = 2}]\n",
		"a = 1979-05-27T07:32:00Z\nb = inf\nc = 0x1F\n'q k' = \"\"\"\nx\"\"\"\n",
		"[server]\nmax_json_depth = -9223372036854775808\npage_size = 9223372036854775807\n",
		"[server\n",
		"[[upstreams]]\nname = \"a\"\ncommand = \"x\"\ninherit_env = [\"A\", \"MCPEDGE_X\"]\n",
		"[[upstreams]]\nname = \"a\"\nurl = \"http://[::ffff:a9fe:a9fe]/\"\nallow_private = [\"169.254.0.0/16\", \"0x1\"]\n",
		"[server.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_ca_file = \"ca\"\n[[server.tls.client_certs]]\nfingerprint = \"sha256:00\"\ntenant = \"t\"\n[server.tls.acme]\ndomains = [\"a.b\"]\n",
		"[hub]\nurl = \"https://h\"\ntls = { ca_file = \"x\", cert_file = \"c\" }\n[[upstreams]]\nname = \"a\"\nurl = \"https://a\"\ntls.server_name = \"a:b\"\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseTOML("f.toml", data, fuzzEnv)
		checkResult(t, data, c, err)
		// Same input, same answer: nothing may depend on map order.
		c2, err2 := parseTOML("f.toml", data, fuzzEnv)
		if errString(err) != errString(err2) || (c == nil) != (c2 == nil) {
			t.Fatalf("non-deterministic result:\n%v\n---\n%v", err, err2)
		}
	})
}

func FuzzParseMCPServers(f *testing.F) {
	seeds := []string{
		"",
		"{}",
		`{"mcpServers": {"My Files": {"command": "npx", "args": ["-y", "x"], "env": {"A": "${API_KEY}"}}, "r": {"url": "http://h/mcp", "type": "sse", "headers": {"A": "b"}}}}`,
		`{"mcpServers": {"a": {"serverUrl": "https://h/", "disabled": true, "cwd": "d", "autoApprove": []}, "A": {"command": "c"}, "a-2": {"command": "c"}}}`,
		`{"mcpServers": {"a": {"command": 1, "args": [null], "env": [], "type": "x"}, "a": 2}}`,
		`{"mcpServers": [[[[{}]]]]}`,
		"{\"mcpServers\": {\"\\u65e5\": {\"command\": \"x\"}}} trailing",
		`{"a": 1e999, "b": -0.0, "c": 12345678901234567890}`,
		`{"inputs": [{"id": "t", "default": "d"}], "servers": {"a": {"type": "stdio", "command": "${workspaceFolder}/x", "args": ["${input:t}"], "env": {"A": "${input:u}"}}}}`,
		`{"mcp": {"servers": {"r": {"type": "http", "url": "https://h/", "envFile": "x"}}}}`,
		`{"name": "io.github.a/b", "packages": [{"registryType": "npm", "identifier": "x", "packageArguments": [{"type": "named", "name": "--p", "value": "{p}"}], "environmentVariables": [{"name": "K"}]}], "remotes": [{"type": "sse", "url": "https://{h}/"}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseMCPServers("f.json", data, fuzzEnv)
		checkResult(t, data, c, err)
		c2, err2 := parseMCPServers("f.json", data, fuzzEnv)
		if errString(err) != errString(err2) || (c == nil) != (c2 == nil) {
			t.Fatalf("non-deterministic result:\n%v\n---\n%v", err, err2)
		}
		if c != nil {
			for i := range c.Upstreams {
				if c.Upstreams[i].Name != c2.Upstreams[i].Name {
					t.Fatalf("non-deterministic names")
				}
			}
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkResult checks the loader's contract: either a config that satisfies
// the validation rules, or a non-empty *Problems whose positions lie inside
// the input.
func checkResult(t *testing.T, data []byte, c *Config, err error) {
	t.Helper()
	if err != nil {
		if c != nil {
			t.Fatal("config returned along with an error")
		}
		var ps *Problems
		if !errors.As(err, &ps) || len(*ps) == 0 {
			t.Fatalf("error is not a non-empty *Problems: %T %v", err, err)
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, p := range *ps {
			if p.Msg == "" || p.Line < 0 || p.Col < 0 || p.Line > lines {
				t.Fatalf("bad problem %+v (input has %d lines)", p, lines)
			}
		}
		return
	}
	if c == nil {
		t.Fatal("nil config without error")
	}
	s := c.Server
	if s.MaxBodyBytes <= 0 || s.MaxJSONDepth < 1 || s.MaxJSONDepth > MaxJSONDepthLimit || s.RequestTimeout <= 0 ||
		s.ShutdownGrace <= 0 || s.PageSize <= 0 {
		t.Fatalf("invalid server settings accepted: %+v", s)
	}
	names := map[string]bool{}
	for _, u := range c.Upstreams {
		if !nameRE.MatchString(u.Name) || len(u.Name) > MaxNameLen || names[u.Name] {
			t.Fatalf("invalid or duplicate name accepted: %q", u.Name)
		}
		names[u.Name] = true
		switch u.Transport {
		case TransportStdio:
			if u.Command == "" || u.URL != "" {
				t.Fatalf("bad stdio upstream accepted: %+v", u)
			}
		case TransportHTTP, TransportSSE:
			if u.Command != "" || (!u.Disabled && (checkUpstreamURL(u.URL) != "" || refusedLiteral(u.URL, u.AllowPrivate) != "")) {
				t.Fatalf("bad %s upstream accepted: %+v", u.Transport, u)
			}
		default:
			t.Fatalf("transport %q accepted", u.Transport)
		}
		for _, e := range u.InheritEnv {
			if strings.HasPrefix(strings.ToUpper(e), OwnEnvPrefix) {
				t.Fatalf("inherit_env %q accepted", e)
			}
		}
		for _, p := range u.AllowPrivate {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() {
				t.Fatalf("allow_private %s accepted", p)
			}
		}
		if u.Timeout <= 0 || u.ConnectTimeout <= 0 || (u.Isolation != IsolationShared && u.Isolation != IsolationSession) {
			t.Fatalf("bad upstream settings accepted: %+v", u)
		}
		_ = u.Fingerprint()
	}
}

// TestPathological feeds inputs that once took quadratic time (or could
// blow the stack); each must be answered quickly.
func TestPathological(t *testing.T) {
	manyKeys := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"mcpServers": {`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"a` + strings.Repeat("!", i%50) + strings.Repeat(" ", i/50) + `": {"command": "x"}`)
		}
		b.WriteString("}}")
		return b.String()
	}
	tests := []struct {
		name  string
		parse func(string, []byte, func(string) (string, bool)) (*Config, error)
		src   string
	}{
		{"deep dotted key", parseTOML, strings.Repeat("a.", 30000) + "b = 1\n"},
		{"deep table header", parseTOML, "[" + strings.Repeat("a.", 30000) + "b]\n"},
		{"deep array table", parseTOML, "[[" + strings.Repeat("a.", 30000) + "b]]\n"},
		{"deep inline value", parseTOML, "a = " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n"},
		{"many array tables", parseTOML, strings.Repeat("[[upstreams]]\nname = \"a\"\n", 20000)},
		{"deep JSON", parseMCPServers, strings.Repeat("[", 100000) + strings.Repeat("]", 100000)},
		{"many colliding names", parseMCPServers, manyKeys(20000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				tt.parse("p", []byte(tt.src), fuzzEnv)
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("took more than 20s")
			}
		})
	}
}
