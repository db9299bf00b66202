package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// wasmBytes is the smallest valid WebAssembly core module: magic and
// version, no sections.
var wasmBytes = []byte("\x00asm\x01\x00\x00\x00")

func TestWASMUpstreamParse(t *testing.T) {
	src := `[[upstreams]]
name = "tools"
transport = "wasm"
module = "tools/stats.wasm"

[upstreams.sandbox]
memory_mb = 32
timeout = "2s"
max_instances = 8
dirs = ["data", "out:rw", "/srv/docs:/docs", "/srv/cache:/cache:rw", "/srv/x:ro"]
env = ["LANG", "MODE=fast", "EMPTY="]
`
	c, ps := parseT(t, src, nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	u := c.Upstreams[0]
	want := Sandbox{
		MemoryMB: 32, Timeout: Duration(2 * time.Second), MaxInstances: 8,
		Dirs: []SandboxDir{
			{Host: "data"},
			{Host: "out", Writable: true},
			{Host: "/srv/docs", Guest: "/docs"},
			{Host: "/srv/cache", Guest: "/cache", Writable: true},
			{Host: "/srv/x"},
		},
		Env: []string{"LANG", "MODE=fast", "EMPTY="},
	}
	if diff := cmp.Diff(want, u.Sandbox); diff != "" {
		t.Errorf("sandbox mismatch (-want +got):\n%s", diff)
	}
	if u.Transport != TransportWASM || u.Module != "tools/stats.wasm" || u.ModuleHash != "" {
		t.Errorf("transport %q module %q hash %q", u.Transport, u.Module, u.ModuleHash)
	}

	// Defaults, an inferred transport and an inline sandbox table.
	c, ps = parseT(t, "[[upstreams]]\nname = \"t\"\nmodule = \"/m.wasm\"\n", nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	if got := c.Upstreams[0]; got.Transport != TransportWASM || !reflect.DeepEqual(got.Sandbox, defaultSandbox()) {
		t.Errorf("inferred: transport %q sandbox %+v", got.Transport, got.Sandbox)
	}
	c, ps = parseT(t, "[[upstreams]]\nname = \"t\"\ntransport = \"WASM\"\nmodule = \"/m.wasm\"\nsandbox = { memory_mb = 16 }\n", nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	if got := c.Upstreams[0].Sandbox; got.MemoryMB != 16 || got.Timeout != DefaultSandboxTimeout {
		t.Errorf("inline sandbox %+v", got)
	}

	// Other transports keep a zero sandbox.
	c, _ = parseT(t, "[[upstreams]]\nname = \"s\"\ncommand = \"x\"\n", nil)
	if !reflect.DeepEqual(c.Upstreams[0].Sandbox, Sandbox{}) {
		t.Errorf("stdio sandbox = %+v", c.Upstreams[0].Sandbox)
	}
}

func TestWASMUpstreamProblems(t *testing.T) {
	const up = "[[upstreams]]\nname = \"w\"\n"
	const wasm = up + "module = \"/m.wasm\"\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"module missing", up + "transport = \"wasm\"\n",
			[]string{`c.toml:1:1: upstreams[0].module: is required for the wasm transport: the path of a WebAssembly (WASI preview 1) module`}},
		{"module not a string", up + "transport = \"wasm\"\nmodule = 3\n",
			[]string{`c.toml:4:1: upstreams[0].module: expected string, got integer`}},
		{"module on stdio", up + "command = \"x\"\nmodule = \"/m.wasm\"\n",
			[]string{`c.toml:4:1: upstreams[0].module: is only used by the wasm transport`}},
		{"sandbox on http", up + "url = \"http://h/\"\n[upstreams.sandbox]\nmemory_mb = 1\n",
			[]string{`c.toml:4:1: upstreams[0].sandbox: is only used by the wasm transport`}},
		{"other transports' keys", wasm + "command = \"x\"\nargs = []\nenv = {}\ndir = \"/d\"\nheaders = {}\ntransport = \"wasm\"\n",
			[]string{
				`c.toml:4:1: upstreams[0].command: is not used by the wasm transport`,
				`c.toml:5:1: upstreams[0].args: are not used by the wasm transport`,
				`c.toml:6:1: upstreams[0].env: is not used by the wasm transport (the module's environment is the allow-list sandbox.env)`,
				`c.toml:7:1: upstreams[0].dir: is not used by the wasm transport (sandbox.dirs lists the directories the module may use)`,
				`c.toml:8:1: upstreams[0].headers: are not used by the wasm transport`,
			}},
		{"url with wasm transport", up + "transport = \"wasm\"\nmodule = \"/m\"\nurl = \"http://h/\"\n",
			[]string{`c.toml:5:1: upstreams[0].url: is not used by the wasm transport`}},
		{"sandbox not a table", wasm + "sandbox = 3\n",
			[]string{`c.toml:4:1: upstreams[0].sandbox: expected table ([upstreams.sandbox]), got integer`}},
		{"ranges", wasm + "[upstreams.sandbox]\nmemory_mb = 0\ntimeout = \"0s\"\nmax_instances = 5000\n",
			[]string{
				`c.toml:5:1: upstreams[0].sandbox.memory_mb: must be between 1 and 4096, got 0`,
				`c.toml:6:1: upstreams[0].sandbox.timeout: must be greater than 0, got 0s`,
				`c.toml:7:1: upstreams[0].sandbox.max_instances: must be between 1 and 1024, got 5000`,
			}},
		{"memory too large", wasm + "[upstreams.sandbox]\nmemory_mb = 5000\n",
			[]string{`c.toml:5:1: upstreams[0].sandbox.memory_mb: must be between 1 and 4096, got 5000`}},
		{"bad types are reported once", wasm + "[upstreams.sandbox]\nmemory_mb = \"64\"\ntimeout = 5\n",
			[]string{
				`c.toml:5:1: upstreams[0].sandbox.memory_mb: expected integer, got string`,
				`c.toml:6:1: upstreams[0].sandbox.timeout: expected a duration string with a unit, e.g. "5s", got integer`,
			}},
		{"unknown sandbox key", wasm + "[upstreams.sandbox]\nmemory_nb = 3\n",
			[]string{`c.toml:5:1: upstreams[0].sandbox.memory_nb: unknown key "memory_nb" (did you mean "memory_mb"?)`}},
		{"dirs syntax", wasm + "[upstreams.sandbox]\ndirs = [\"\", \":rw\", \"a:b\", \"a:/b:rx\", \"ok\", \"ok\", \"x:/g\", \"y:/g:rw\"]\n",
			[]string{
				`c.toml:5:9: upstreams[0].sandbox.dirs[0]: "" names no host directory; write "host/dir" (read-only), "host/dir:rw" (read-write) or "host/dir:/guest/dir[:rw]"`,
				`c.toml:5:13: upstreams[0].sandbox.dirs[1]: ":rw" names no host directory; write "host/dir" (read-only), "host/dir:rw" (read-write) or "host/dir:/guest/dir[:rw]"`,
				`c.toml:5:20: upstreams[0].sandbox.dirs[2]: "a:b": after the host directory comes an absolute guest path or the mode ro or rw; write "host/dir" (read-only), "host/dir:rw" (read-write) or "host/dir:/guest/dir[:rw]"`,
				`c.toml:5:27: upstreams[0].sandbox.dirs[3]: "a:/b:rx": unknown mode "rx" (ro or rw)`,
				`c.toml:5:44: upstreams[0].sandbox.dirs[5]: mounts the same place as dirs[4]`,
				`c.toml:5:58: upstreams[0].sandbox.dirs[7]: mounts the same place as dirs[6]`,
			}},
		{"dirs type", wasm + "[upstreams.sandbox]\ndirs = \"/data\"\n",
			[]string{`c.toml:5:1: upstreams[0].sandbox.dirs: expected array of strings, got string`}},
		{"env entries", wasm + "[upstreams.sandbox]\nenv = [\"OK\", \"1BAD\", \"=x\", \"OK=again\", \"NUL=a\\u0000b\"]\n",
			[]string{
				`c.toml:5:14: upstreams[0].sandbox.env[1]: "1BAD" is not a valid environment variable name (letters, digits and _, not starting with a digit); write NAME to pass the gateway's NAME through, or NAME=value`,
				`c.toml:5:22: upstreams[0].sandbox.env[2]: "" is not a valid environment variable name (letters, digits and _, not starting with a digit); write NAME to pass the gateway's NAME through, or NAME=value`,
				`c.toml:5:28: upstreams[0].sandbox.env[3]: OK is already set by env[0]`,
				`c.toml:5:40: upstreams[0].sandbox.env[4]: value must not contain NUL bytes`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := parseT(t, tt.src, nil)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWASMNotInMCPServers: the mcpServers JSON format has no module key, so
// it does not offer the wasm transport.
func TestWASMNotInMCPServers(t *testing.T) {
	_, err := parseMCPServers("m.json", []byte(`{"mcpServers": {"a": {"type": "wasm", "command": "x"}}}`), envMap(nil))
	ps := problemStrings(t, err)
	want := []string{`m.json:1:23: mcpServers.a.type: must be one of stdio, http, sse; got "wasm"`}
	if diff := cmp.Diff(want, ps); diff != "" {
		t.Errorf("problems mismatch (-want +got):\n%s", diff)
	}
}

func TestWASMLoad(t *testing.T) {
	dir := t.TempDir()
	mustWrite := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mustWrite("tools/ok.wasm", wasmBytes)
	mustWrite("tools/text.wasm", []byte("#!/bin/sh\necho not wasm\n"))
	mustWrite("tools/component.wasm", []byte("\x00asm\x0d\x00\x01\x00rest"))
	mustWrite("data/readme.txt", []byte("hi"))
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasmBytes)

	load := func(src string) (*Config, []string) {
		t.Helper()
		p := mustWrite("mcpedge.toml", []byte(src))
		c, err := Load(p)
		return c, problemStrings(t, err)
	}

	c, ps := load("[[upstreams]]\nname = \"w\"\nmodule = \"tools/ok.wasm\"\n[upstreams.sandbox]\ndirs = [\"data\", \"out:/out:rw\", \"" + filepath.Join(dir, "data") + ":/abs\"]\n")
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	u := c.Upstreams[0]
	if want := filepath.Join(dir, "tools/ok.wasm"); u.Module != want {
		t.Errorf("module = %q, want %q", u.Module, want)
	}
	if want := hex.EncodeToString(sum[:]); u.ModuleHash != want {
		t.Errorf("module hash = %q, want %q", u.ModuleHash, want)
	}
	wantDirs := []SandboxDir{
		{Host: filepath.Join(dir, "data")},
		{Host: filepath.Join(dir, "out"), Guest: "/out", Writable: true},
		{Host: filepath.Join(dir, "data"), Guest: "/abs"},
	}
	if diff := cmp.Diff(wantDirs, u.Sandbox.Dirs); diff != "" {
		t.Errorf("dirs mismatch (-want +got):\n%s", diff)
	}

	_, ps = load(`[[upstreams]]
name = "missing"
module = "tools/nope.wasm"

[[upstreams]]
name = "text"
module = "tools/text.wasm"

[[upstreams]]
name = "component"
module = "tools/component.wasm"

[[upstreams]]
name = "dir-module"
module = "tools"

[[upstreams]]
name = "dirs"
module = "tools/ok.wasm"
sandbox = { dirs = ["data", "nope", "data/readme.txt:/f"] }

[[upstreams]]
name = "disabled"
disabled = true
module = "tools/nope.wasm"
sandbox = { dirs = ["nope"] }
`)
	f := filepath.Join(dir, "mcpedge.toml")
	want := []string{
		f + `:3:1: upstreams[0].module: cannot read the module: open ` + filepath.Join(dir, "tools/nope.wasm") + `: no such file or directory`,
		f + `:7:1: upstreams[1].module: ` + filepath.Join(dir, "tools/text.wasm") + ` is not a WebAssembly module (it does not start with \0asm)`,
		f + `:11:1: upstreams[2].module: ` + filepath.Join(dir, "tools/component.wasm") + ` is not a WebAssembly core module (a component, or an unknown version); build a WASI preview 1 module, e.g. GOOS=wasip1 GOARCH=wasm go build`,
		f + `:15:1: upstreams[3].module: ` + filepath.Join(dir, "tools") + ` is not a regular file`,
		f + `:20:29: upstreams[4].sandbox.dirs[1]: directory to mount: stat ` + filepath.Join(dir, "nope") + `: no such file or directory`,
		f + `:20:37: upstreams[4].sandbox.dirs[2]: ` + filepath.Join(dir, "data/readme.txt") + ` is not a directory`,
	}
	if diff := cmp.Diff(want, ps); diff != "" {
		t.Errorf("problems mismatch (-want +got):\n%s", diff)
	}

	// Parse has no file system: nothing is checked or resolved.
	c, err := Parse("x.toml", []byte("[[upstreams]]\nname = \"w\"\nmodule = \"tools/nope.wasm\"\nsandbox = { dirs = [\"nope\"] }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if u := c.Upstreams[0]; u.Module != "tools/nope.wasm" || u.ModuleHash != "" || u.Sandbox.Dirs[0].Host != "nope" {
		t.Errorf("Parse resolved or checked files: %+v", u)
	}
}

func TestWASMFingerprint(t *testing.T) {
	base := Upstream{
		Name: "w", Transport: TransportWASM, Module: "/m.wasm", ModuleHash: "aa",
		Timeout: Duration(time.Second), ConnectTimeout: Duration(time.Second), Isolation: "shared",
		Sandbox: Sandbox{
			MemoryMB: 64, Timeout: Duration(time.Second), MaxInstances: 4,
			Dirs: []SandboxDir{{Host: "/d"}}, Env: []string{"A"},
		},
	}
	fp := base.Fingerprint()
	changed := map[string]func(u *Upstream){
		"module":        func(u *Upstream) { u.Module = "/n.wasm" },
		"module hash":   func(u *Upstream) { u.ModuleHash = "bb" },
		"memory":        func(u *Upstream) { u.Sandbox.MemoryMB = 32 },
		"timeout":       func(u *Upstream) { u.Sandbox.Timeout = Duration(2 * time.Second) },
		"max instances": func(u *Upstream) { u.Sandbox.MaxInstances = 5 },
		"dir host":      func(u *Upstream) { u.Sandbox.Dirs = []SandboxDir{{Host: "/e"}} },
		"dir guest":     func(u *Upstream) { u.Sandbox.Dirs = []SandboxDir{{Host: "/d", Guest: "/g"}} },
		"dir writable":  func(u *Upstream) { u.Sandbox.Dirs = []SandboxDir{{Host: "/d", Writable: true}} },
		"dir added":     func(u *Upstream) { u.Sandbox.Dirs = []SandboxDir{{Host: "/d"}, {Host: "/e"}} },
		"env":           func(u *Upstream) { u.Sandbox.Env = []string{"A=1"} },
		"env split":     func(u *Upstream) { u.Sandbox.Env = []string{"A", ""} },
	}
	for name, f := range changed {
		t.Run(name, func(t *testing.T) {
			u := base
			f(&u)
			if u.Fingerprint() == fp {
				t.Error("fingerprint did not change")
			}
		})
	}
	// Other transports ignore the wasm fields.
	s := Upstream{Name: "s", Transport: TransportStdio, Command: "x"}
	sfp := s.Fingerprint()
	s.Module, s.ModuleHash, s.Sandbox = "/m", "h", Sandbox{MemoryMB: 1}
	if s.Fingerprint() != sfp {
		t.Error("stdio fingerprint depends on wasm fields")
	}
}
