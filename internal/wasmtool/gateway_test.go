package wasmtool_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The tests below run wasm upstreams through a real gateway behind an
// httptest server, reached with the go-sdk client, as internal/e2e does for
// the other transports.

type testGateway struct {
	*gateway.Gateway
	URL string
}

func startGateway(t *testing.T, cfg *config.Config) *testGateway {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if os.Getenv("MCPEDGE_TEST_LOG") != "" {
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g := gateway.New(cfg, log, telemetry.NewMetrics())
	ctx, cancel := context.WithCancel(context.Background())
	g.Start(ctx)
	srv := httptest.NewServer(g.Handler(gateway.HTTPOptions{MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxJSONDepth: cfg.Server.MaxJSONDepth}))
	t.Cleanup(func() {
		g.CloseSessions(context.Background())
		srv.Close()
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		g.Stop(stop)
		cancel()
	})
	g.WaitAttempted(ctx, 120*time.Second)
	return &testGateway{Gateway: g, URL: srv.URL}
}

func connect(t *testing.T, url string) *mcp.ClientSession {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "wasm-e2e", Version: "1"}, nil).
		Connect(ctxT(t, 30*time.Second), &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(ctxT(t, 30*time.Second), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func callTool(t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(ctxT(t, 60*time.Second), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

func readyz(t *testing.T, url string) gateway.Readiness {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r gateway.Readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func status(r gateway.Readiness, name string) gateway.UpstreamStatus {
	for _, s := range r.Upstreams {
		if s.Name == name {
			return s
		}
	}
	return gateway.UpstreamStatus{}
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyModule(t *testing.T, name, dst string) {
	t.Helper()
	b, err := os.ReadFile(module(t, name))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, b)
}

// TestGateway loads wasm upstreams from a config file, lists and calls
// their tools through /mcp and /mcp/<name>, and checks the sandbox from the
// client's side.
func TestGateway(t *testing.T) {
	dir := t.TempDir()
	copyModule(t, "textstats", filepath.Join(dir, "tools", "textstats.wasm"))
	copyModule(t, "readfile", filepath.Join(dir, "tools", "readfile.wasm"))
	copyModule(t, "testtool", filepath.Join(dir, "tools", "testtool.wasm"))
	writeFile(t, filepath.Join(dir, "docs", "hello.txt"), []byte("hello from the sandbox\n"))
	writeFile(t, filepath.Join(dir, "secret.txt"), []byte("not for tools\n"))
	t.Setenv("MCPEDGE_WASM_E2E_PASS", "passed")
	t.Setenv("MCPEDGE_WASM_E2E_HIDDEN", "hidden")
	path := filepath.Join(dir, "mcpedge.toml")
	writeFile(t, path, []byte(`
[[upstreams]]
name = "stats"
module = "tools/textstats.wasm"

[[upstreams]]
name = "files"
transport = "wasm"
module = "tools/readfile.wasm"
[upstreams.sandbox]
dirs = ["docs:/docs"]
env = ["PWD=/docs"]

[[upstreams]]
name = "tt"
module = "tools/testtool.wasm"
[upstreams.sandbox]
timeout = "3s"
memory_mb = 32
env = ["MCPEDGE_WASM_E2E_PASS", "MCPEDGE_WASM_E2E_UNSET", "LITERAL=1"]
`))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg)

	r := readyz(t, g.URL)
	for _, name := range []string{"stats", "files", "tt"} {
		if s := status(r, name); s.State != "ready" || s.Transport != "wasm" || s.ServerName != "wasm:"+name {
			t.Errorf("%s: %+v", name, s)
		}
	}

	cs := connect(t, g.URL+"/mcp")
	names := toolNames(t, cs)
	for _, want := range []string{"stats__textstats", "files__read_file", "files__list_dir", "tt__loop", "tt__echo"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not listed in %q", want, names)
		}
	}

	res := callTool(t, cs, "stats__textstats", map[string]any{"text": "one two\nthree"})
	if res.IsError || resultText(res) != "2 lines, 3 words, 13 characters, 13 bytes" {
		t.Errorf("textstats: %q", resultText(res))
	}
	res = callTool(t, cs, "files__read_file", map[string]any{"path": "hello.txt"})
	if res.IsError || resultText(res) != "hello from the sandbox\n" {
		t.Errorf("read_file: %q", resultText(res))
	}
	for _, p := range []string{filepath.Join(dir, "secret.txt"), "../secret.txt", "/etc/passwd"} {
		res = callTool(t, cs, "files__read_file", map[string]any{"path": p})
		if !res.IsError || strings.Contains(resultText(res), "not for tools") {
			t.Errorf("read_file %s: %q (isError %v)", p, resultText(res), res.IsError)
		}
	}
	res = callTool(t, cs, "tt__env", nil)
	if got, want := resultText(res), "MCPEDGE_WASM_E2E_PASS=passed\nLITERAL=1"; got != want {
		t.Errorf("environment = %q, want %q", got, want)
	}

	// A runaway call is stopped and reported; the upstream stays usable.
	res = callTool(t, cs, "tt__loop", nil)
	if !res.IsError || !strings.Contains(resultText(res), "time limit exceeded: stopped after 3s") {
		t.Errorf("loop: %q (isError %v)", resultText(res), res.IsError)
	}
	res = callTool(t, cs, "tt__alloc", map[string]any{"mb": 64})
	if !res.IsError || !strings.Contains(resultText(res), "out of memory: the sandbox allows 32 MiB") {
		t.Errorf("alloc: %q (isError %v)", resultText(res), res.IsError)
	}
	res = callTool(t, cs, "tt__garbage", nil)
	if !res.IsError || !strings.Contains(resultText(res), "malformed output") {
		t.Errorf("garbage: %q (isError %v)", resultText(res), res.IsError)
	}
	res = callTool(t, cs, "tt__echo", map[string]any{"still": "here"})
	if res.IsError || resultText(res) != `{"still":"here"}` {
		t.Errorf("echo after failures: %q", resultText(res))
	}
	if s := status(readyz(t, g.URL), "tt"); s.State != "ready" || s.Restarts != 0 {
		t.Errorf("tt after failures: %+v", s)
	}

	// One upstream exactly as it is.
	per := connect(t, g.URL+"/mcp/files")
	if got := toolNames(t, per); !slices.Equal(got, []string{"list_dir", "read_file"}) {
		t.Errorf("/mcp/files tools = %q", got)
	}
	res = callTool(t, per, "list_dir", nil)
	if res.IsError || !strings.Contains(resultText(res), "hello.txt") {
		t.Errorf("list_dir: %q", resultText(res))
	}

	resp, err := http.Get(g.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mcpedge_upstream_state{state="ready",upstream="stats"} 1`,
		`mcpedge_upstream_catalog_items{kind="tools",upstream="files"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Reload: a changed module file changes the fingerprint and the
	// upstream is replaced; the others keep running untouched.
	copyModule(t, "testtool", filepath.Join(dir, "tools", "textstats.wasm"))
	cfg2, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg2.Upstreams[0].ModuleHash == cfg.Upstreams[0].ModuleHash {
		t.Fatal("module hash did not change")
	}
	_, _, changed := g.Apply(context.Background(), cfg2)
	if !slices.Equal(changed, []string{"stats"}) {
		t.Errorf("changed = %q, want [stats]", changed)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !slices.Contains(toolNames(t, cs), "stats__counter") {
		if time.Now().After(deadline) {
			t.Fatalf("reloaded module's tools never listed: %q", toolNames(t, cs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGatewayBadModules: modules that cannot be loaded leave their upstream
// failed, with the reason in /readyz, while the others serve. (Load refuses
// a missing or non-WebAssembly module outright; this configuration comes
// from Parse, which does not look at files, as a module replaced after
// loading would.)
func TestGatewayBadModules(t *testing.T) {
	dir := t.TempDir()
	notWasm := filepath.Join(dir, "not.wasm")
	writeFile(t, notWasm, []byte("#!/bin/sh\necho hi\n"))
	cfg, err := config.Parse("bad.toml", []byte(`
[[upstreams]]
name = "good"
module = "`+module(t, "textstats")+`"
isolation = "session"

[[upstreams]]
name = "missing"
module = "`+filepath.Join(dir, "missing.wasm")+`"

[[upstreams]]
name = "notwasm"
module = "`+notWasm+`"

[[upstreams]]
name = "badlist"
module = "`+module(t, "testtool")+`"
sandbox = { env = ["MODE=exit"] }
`))
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg)
	r := readyz(t, g.URL)
	if !r.Ready {
		t.Errorf("not ready: %+v", r)
	}
	for name, want := range map[string]string{
		"missing": "loading wasm module: reading module: open " + filepath.Join(dir, "missing.wasm") + ": no such file or directory",
		"notwasm": `loading wasm module: not a WebAssembly module (it does not start with \0asm)`,
		"badlist": "loading wasm module: tools/list: module failed: exit status 3",
	} {
		if s := status(r, name); s.State != "failed" || s.LastError != want {
			t.Errorf("%s: state %q, last error %q, want failed with %q", name, s.State, s.LastError, want)
		}
	}
	if s := status(r, "good"); s.State != "ready" {
		t.Errorf("good: %+v", s)
	}
	cs := connect(t, g.URL+"/mcp")
	if names := toolNames(t, cs); !slices.Equal(names, []string{"good__textstats", "mcpedge__status"}) {
		t.Errorf("tools = %q", names)
	}
	res := callTool(t, cs, "good__textstats", map[string]any{"text": "ok"})
	if res.IsError || resultText(res) != "1 lines, 1 words, 2 characters, 2 bytes" {
		t.Errorf("textstats: %q", resultText(res))
	}
}

// TestExampleConfig runs examples/wasm/mcpedge.toml as it is, with the
// example modules built where it expects them.
func TestExampleConfig(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("../../examples/wasm/mcpedge.toml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "mcpedge.toml"), src)
	copyModule(t, "textstats", filepath.Join(dir, "textstats", "textstats.wasm"))
	copyModule(t, "readfile", filepath.Join(dir, "readfile", "readfile.wasm"))
	hello, err := os.ReadFile("../../examples/wasm/readfile/sample/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "readfile", "sample", "hello.txt"), hello)

	cfg, err := config.Load(filepath.Join(dir, "mcpedge.toml"))
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg)
	cs := connect(t, g.URL+"/mcp")
	res := callTool(t, cs, "files__read_file", map[string]any{"path": "hello.txt"})
	if res.IsError || resultText(res) != string(hello) {
		t.Errorf("read_file: %q", resultText(res))
	}
	res = callTool(t, cs, "files__read_file", map[string]any{"path": "/etc/passwd"})
	if !res.IsError || resultText(res) != "/etc/passwd is outside the directories shared with this tool" {
		t.Errorf("read_file outside: %q", resultText(res))
	}
	res = callTool(t, cs, "textstats__textstats", map[string]any{"text": "a b c"})
	if res.IsError || resultText(res) != "1 lines, 3 words, 5 characters, 5 bytes" {
		t.Errorf("textstats: %q", resultText(res))
	}
}
