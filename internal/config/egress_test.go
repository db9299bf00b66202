package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// TestEgressRules: inherit_env and allow_private are checked where they
// are written, and URLs that point where the gateway will not connect are
// refused before the gateway starts.
func TestEgressRules(t *testing.T) {
	const up = "[[upstreams]]\nname = \"a\"\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"inherit_env ok", up + "command = \"x\"\ninherit_env = [\"GITHUB_TOKEN\", \"NODE_OPTIONS\"]\n", nil},
		{"inherit_env gateway variable", up + "command = \"x\"\ninherit_env = [\"OK\", \"MCPEDGE_ADMIN_KEY\"]\n",
			[]string{`c.toml:4:22: upstreams[0].inherit_env[1]: "MCPEDGE_ADMIN_KEY" is one of the gateway's own variables (MCPEDGE_…), which never pass to an upstream, so that no upstream can read the gateway's keys; give the upstream a credential of its own in env`}},
		{"inherit_env gateway variable any case", up + "command = \"x\"\ninherit_env = [\"mcpedge_store_key\"]\n",
			[]string{`c.toml:4:16: upstreams[0].inherit_env[0]: "mcpedge_store_key" is one of the gateway's own variables (MCPEDGE_…), which never pass to an upstream, so that no upstream can read the gateway's keys; give the upstream a credential of its own in env`}},
		{"inherit_env renamed gateway secret", "[auth]\nbootstrap_key_env = \"ADMIN_KEY\"\n" + up + "command = \"x\"\ninherit_env = [\"ADMIN_KEY\"]\n",
			[]string{`c.toml:6:16: upstreams[0].inherit_env[0]: "ADMIN_KEY" holds a secret of the gateway (auth.bootstrap_key_env names it), which never passes to an upstream; give the upstream a credential of its own in env`}},
		{"inherit_env static token", "[server]\nauth_token_env = \"GW_TOKEN\"\n" + up + "command = \"x\"\ninherit_env = [\"GW_TOKEN\"]\n",
			[]string{`c.toml:6:16: upstreams[0].inherit_env[0]: "GW_TOKEN" holds a secret of the gateway (server.auth_token_env names it), which never passes to an upstream; give the upstream a credential of its own in env`}},
		{"inherit_env pattern", up + "command = \"x\"\ninherit_env = [\"AWS_*\"]\n",
			[]string{`c.toml:4:16: upstreams[0].inherit_env[0]: "AWS_*": patterns are not supported; list each variable by name`}},
		{"inherit_env bad name", up + "command = \"x\"\ninherit_env = [\"A=B\"]\n",
			[]string{`c.toml:4:16: upstreams[0].inherit_env[0]: invalid environment variable name: must be non-empty without = or NUL`}},
		{"inherit_env on http", up + "url = \"https://h.example/mcp\"\ninherit_env = [\"X\"]\n",
			[]string{`c.toml:4:1: upstreams[0].inherit_env: is only used by the stdio transport (it names variables a child process inherits)`}},
		{"allow_private on stdio", up + "command = \"x\"\nallow_private = [\"10.0.0.0/8\"]\n",
			[]string{`c.toml:4:1: upstreams[0].allow_private: is only used by the http and sse transports (it allows the addresses they connect to)`}},
		{"allow_private ok", up + "url = \"http://10.1.2.3:8080/mcp\"\nallow_private = [\"10.0.0.0/8\", \"fd00::/8\", \"169.254.169.254\"]\n", nil},
		{"private literal refused", up + "url = \"http://10.1.2.3:8080/mcp\"\n",
			[]string{`c.toml:3:1: upstreams[0].url: points at 10.1.2.3 (private (RFC 1918) address), which the gateway refuses to connect to; allow it with allow_private = ["10.1.2.3/32"] if you mean it`}},
		{"metadata literal refused", up + "url = \"http://169.254.169.254/latest/meta-data/\"\n",
			[]string{`c.toml:3:1: upstreams[0].url: points at 169.254.169.254 (link-local/metadata address: cloud instance metadata and credentials), which the gateway refuses to connect to; allow it with allow_private = ["169.254.169.254/32"] if you mean it`}},
		{"mapped metadata literal refused", up + "url = \"http://[::ffff:169.254.169.254]/\"\nallow_private = [\"10.0.0.0/8\"]\n",
			[]string{`c.toml:3:1: upstreams[0].url: points at 169.254.169.254 (link-local/metadata address: cloud instance metadata and credentials), which the gateway refuses to connect to; allow it with allow_private = ["169.254.169.254/32"] if you mean it`}},
		{"unique-local literal refused", up + "url = \"http://[fd00::1]/\"\n",
			[]string{`c.toml:3:1: upstreams[0].url: points at fd00::1 (unique-local (fc00::/7) address), which the gateway refuses to connect to; allow it with allow_private = ["fd00::1/128"] if you mean it`}},
		{"hex host refused", up + "url = \"http://0xA9FEA9FE/\"\n",
			[]string{`c.toml:3:1: upstreams[0].url: host "0xA9FEA9FE" is the IPv4 address 169.254.169.254 written in a non-standard form (some resolvers read it so, others as a name); write the address as four decimal numbers, 169.254.169.254`}},
		{"integer host refused", up + "url = \"http://2852039166/\"\n",
			[]string{`c.toml:3:1: upstreams[0].url: host "2852039166" is the IPv4 address 169.254.169.254 written in a non-standard form (some resolvers read it so, others as a name); write the address as four decimal numbers, 169.254.169.254`}},
		{"credentials in url", up + "url = \"https://me:${PW}@h.example/mcp\"\n",
			[]string{`c.toml:3:1: upstreams[0].url: must not carry credentials (user:password@host): they would be sent to the server as Basic auth, and they show in logs; put them in the headers table instead, e.g. headers = { Authorization = "Bearer ${TOKEN}" }`}},
		{"loopback literal ok", up + "url = \"http://127.0.0.1:9/mcp\"\n", nil},
		{"localhost ok", up + "url = \"http://localhost:9/mcp\"\n", nil},
		{"names are judged at connect", up + "url = \"http://internal.example/mcp\"\n", nil},
		{"allow_private not a range", up + "url = \"https://h.example/\"\nallow_private = [\"10.0.0.0/33\", \"ten\", \"10.1.0.0/8\", \"::ffff:10.0.0.0/104\", \"012.0.0.1\", \"fe80::1%eth0\"]\n",
			[]string{
				`c.toml:4:18: upstreams[0].allow_private[0]: "10.0.0.0/33" is not a CIDR range: write e.g. "10.0.0.0/8", "fd00::/8" or a single address`,
				`c.toml:4:33: upstreams[0].allow_private[1]: "ten" is neither an IP address nor a CIDR range, e.g. "10.0.0.0/8"`,
				`c.toml:4:40: upstreams[0].allow_private[2]: "10.1.0.0/8" has address bits set past its length: write "10.0.0.0/8"`,
				`c.toml:4:54: upstreams[0].allow_private[3]: "::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 range: write the IPv4 range itself (addresses are compared after unmapping)`,
				`c.toml:4:77: upstreams[0].allow_private[4]: "012.0.0.1" is not an address in the standard form: write "10.0.0.1"`,
				`c.toml:4:90: upstreams[0].allow_private[5]: "fe80::1%eth0" has a zone (%eth0): leave it out`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := parseT(t, tt.src, map[string]string{"PW": "hunter2"})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("source:\n%s\ngot:\n%s\nwant:\n%s", tt.src, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, p := range got {
				if strings.Contains(p, "hunter2") {
					t.Errorf("a problem shows the password: %s", p)
				}
			}
		})
	}
}

func TestEgressFieldsDecoded(t *testing.T) {
	src := `
[[upstreams]]
name = "a"
command = "x"
inherit_env = ["GITHUB_TOKEN"]

[[upstreams]]
name = "b"
url = "http://10.2.3.4/mcp"
allow_private = ["10.0.0.0/8", "169.254.169.254"]

[[upstreams]]
name = "c"
[[upstreams.targets]]
command = "y"
inherit_env = ["HTTP_PROXY"]
[[upstreams.targets]]
url = "http://[fd00::5]/mcp"
allow_private = ["fd00::/8"]
`
	c, ps := parseT(t, src, nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	if got := c.Upstreams[0].InheritEnv; !reflect.DeepEqual(got, []string{"GITHUB_TOKEN"}) {
		t.Errorf("inherit_env = %q", got)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("169.254.169.254/32")}
	if got := c.Upstreams[1].AllowPrivate; !reflect.DeepEqual(got, want) {
		t.Errorf("allow_private = %v, want %v", got, want)
	}
	tg := c.Upstreams[2].Targets
	if !reflect.DeepEqual(tg[0].InheritEnv, []string{"HTTP_PROXY"}) || tg[0].AllowPrivate != nil ||
		tg[1].InheritEnv != nil || !reflect.DeepEqual(tg[1].AllowPrivate, []netip.Prefix{netip.MustParsePrefix("fd00::/8")}) {
		t.Errorf("targets: %+v %+v", tg[0], tg[1])
	}

	// Set on the upstream while it has targets: it belongs in the targets.
	_, ps = parseT(t, "[[upstreams]]\nname = \"c\"\nallow_private = [\"10.0.0.0/8\"]\n[[upstreams.targets]]\nurl = \"https://h.example/\"\n", nil)
	if len(ps) != 1 || !strings.Contains(ps[0], "allow_private: is set per target") {
		t.Errorf("upstream-level allow_private with targets: %q", ps)
	}

	// Both change the connection: a reload reconnects.
	a := c.Upstreams[0]
	b := a
	b.InheritEnv = []string{"OTHER"}
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("inherit_env is not in the fingerprint")
	}
	a = c.Upstreams[1]
	b = a
	b.AllowPrivate = b.AllowPrivate[:1]
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("allow_private is not in the fingerprint")
	}
}

func TestEgressFieldsInMCPServers(t *testing.T) {
	src := `{"mcpServers": {
  "gh": {"command": "gh-mcp", "inherit_env": ["GITHUB_TOKEN"]},
  "lan": {"url": "http://192.168.1.20:8080/mcp", "allow_private": ["192.168.1.0/24"]},
  "bad": {"command": "x", "inherit_env": ["MCPEDGE_ADMIN_PASSWORD"]}
}}`
	_, err := ParseMCPServers("m.json", []byte(src))
	if err == nil || !strings.Contains(err.Error(), `mcpServers.bad.inherit_env[0]: "MCPEDGE_ADMIN_PASSWORD" is one of the gateway's own variables`) {
		t.Fatalf("got %v", err)
	}
	c, err := ParseMCPServers("m.json", []byte(strings.Replace(src, "MCPEDGE_ADMIN_PASSWORD", "HOME", 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range c.Upstreams {
		switch u.Name {
		case "gh":
			if !reflect.DeepEqual(u.InheritEnv, []string{"GITHUB_TOKEN"}) {
				t.Errorf("gh: %q", u.InheritEnv)
			}
		case "lan":
			if len(u.AllowPrivate) != 1 || u.AllowPrivate[0] != netip.MustParsePrefix("192.168.1.0/24") {
				t.Errorf("lan: %v", u.AllowPrivate)
			}
		}
	}
}
