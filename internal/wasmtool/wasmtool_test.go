package wasmtool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpedge/mcpedge/internal/wasmtool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func resultText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// call calls tool on m and returns the text of a successful result.
func call(t *testing.T, m *wasmtool.Module, tool string, args any) string {
	t.Helper()
	res, err := callErr(t, m, tool, args)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		t.Fatalf("%s: error result: %s", tool, resultText(res))
	}
	return resultText(res)
}

func callErr(t *testing.T, m *wasmtool.Module, tool string, args any) (*mcp.CallToolResult, error) {
	t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	return m.CallTool(ctxT(t, 60*time.Second), tool, b)
}

func TestListAndCall(t *testing.T) {
	m := load(t, "textstats", wasmtool.Sandbox{}, nil)
	tools, err := m.ListTools(ctxT(t, 60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(tools) != 1 || tools[0].Name != "textstats" || tools[0].OutputSchema == nil {
		t.Fatalf("tools = %+v", tools)
	}
	res, err := callErr(t, m, "textstats", map[string]any{"text": "hello wörld\nsecond line\n"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resultText(res), "2 lines, 4 words, 24 characters, 25 bytes"; got != want || res.IsError {
		t.Errorf("text = %q (isError %v), want %q", got, res.IsError, want)
	}
	want := map[string]any{"lines": 2.0, "words": 4.0, "chars": 24.0, "bytes": 25.0}
	if diff := cmp.Diff(want, res.StructuredContent); diff != "" {
		t.Errorf("structured content mismatch (-want +got):\n%s", diff)
	}
	// A tool-level refusal is a result with isError, not a failure.
	res, err = callErr(t, m, "textstats", map[string]any{})
	if err != nil || !res.IsError || !strings.Contains(resultText(res), `"text"`) {
		t.Errorf("missing argument: %v %+v", err, res)
	}
}

// TestFreshInstances: every call gets a new instance, so nothing a call
// leaves in memory is seen by the next, even when calls overlap.
func TestFreshInstances(t *testing.T) {
	m := load(t, "testtool", wasmtool.Sandbox{MaxInstances: 4}, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got := call(t, m, "counter", nil); got != "1" {
				t.Errorf("counter = %q, want 1 (state leaked between calls)", got)
			}
		})
	}
	wg.Wait()
}

// runTimeout is the sandbox timeout of tests that want one to pass: short,
// yet long enough for an ordinary call on a loaded machine under -race
// (where a run of a Go module takes some 50 to 100 ms).
const runTimeout = 3 * time.Second

// TestTimeout: a module looping forever without calling the host, or
// sleeping, is stopped at the sandbox's timeout, and the next call works.
func TestTimeout(t *testing.T) {
	m := load(t, "testtool", wasmtool.Sandbox{Timeout: runTimeout}, nil)
	for _, tc := range []struct {
		tool string
		args any
	}{
		{"loop", nil},
		{"sleep", map[string]any{"ms": 3_600_000}},
	} {
		start := time.Now()
		_, err := callErr(t, m, tc.tool, tc.args)
		if !errors.Is(err, wasmtool.ErrTimeout) {
			t.Fatalf("%s: err = %v, want ErrTimeout", tc.tool, err)
		}
		if !strings.Contains(err.Error(), "stopped after 3s") {
			t.Errorf("%s: err = %v", tc.tool, err)
		}
		// The bound is generous for -race on a busy machine; what matters
		// is that the call ends, long before the loop or the hour would.
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("%s: stopped after %s", tc.tool, took)
		}
		if got := call(t, m, "echo", map[string]any{"after": tc.tool}); got != `{"after":"`+tc.tool+`"}` {
			t.Errorf("call after %s = %q", tc.tool, got)
		}
	}
	// The caller's own deadline stops a run too, and says so.
	m2 := load(t, "testtool", wasmtool.Sandbox{Timeout: time.Hour}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := m2.CallTool(ctx, "loop", nil)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, wasmtool.ErrTimeout) {
		t.Errorf("caller deadline: err = %v", err)
	}
}

func TestMemoryLimit(t *testing.T) {
	small := load(t, "testtool", wasmtool.Sandbox{MemoryMB: 16, Timeout: time.Minute}, nil)
	_, err := callErr(t, small, "alloc", map[string]any{"mb": 64})
	if !errors.Is(err, wasmtool.ErrFailed) || !strings.Contains(err.Error(), "out of memory: the sandbox allows 16 MiB") {
		t.Errorf("alloc 64 MiB in 16: err = %v", err)
	}
	if got := call(t, small, "alloc", map[string]any{"mb": 1}); got != "allocated 1 MiB" {
		t.Errorf("alloc 1 MiB = %q", got)
	}
	// The same compiled code (from the shared cache) under another limit.
	big := load(t, "testtool", wasmtool.Sandbox{MemoryMB: 256, Timeout: time.Minute}, nil)
	if got := call(t, big, "alloc", map[string]any{"mb": 64}); got != "allocated 64 MiB" {
		t.Errorf("alloc 64 MiB in 256 = %q", got)
	}
	// A module whose initial memory is over the limit is refused at once.
	_, err = wasmtool.Load(context.Background(), "tiny", module(t, "testtool"), wasmtool.Sandbox{MemoryMB: 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "over limit") {
		t.Errorf("1 MiB sandbox: err = %v", err)
	}
}

func TestEnvAllowList(t *testing.T) {
	t.Setenv("MCPEDGE_WASM_TEST_SECRET", "hunter2")
	m := load(t, "testtool", wasmtool.Sandbox{Env: []string{"VISIBLE=yes", "EMPTY="}}, nil)
	if got, want := call(t, m, "env", nil), "VISIBLE=yes\nEMPTY="; got != want {
		t.Errorf("environment = %q, want %q", got, want)
	}
	if got, want := call(t, m, "env", map[string]any{"name": "MCPEDGE_WASM_TEST_SECRET"}), `MCPEDGE_WASM_TEST_SECRET="" set=false`; got != want {
		t.Errorf("host variable: %q, want %q", got, want)
	}
}

func TestMounts(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	out := filepath.Join(root, "out")
	for _, d := range []string{data, out, filepath.Join(data, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(root, "secret.txt")
	for p, s := range map[string]string{filepath.Join(data, "a.txt"): "alpha", secret: "outside"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Links planted in the mounted directory must not lead out of it.
	if err := os.Symlink(secret, filepath.Join(data, "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret.txt", filepath.Join(data, "rel-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(data, "inside-link")); err != nil {
		t.Fatal(err)
	}
	m := load(t, "testtool", wasmtool.Sandbox{Mounts: []wasmtool.Mount{
		{Host: data, Guest: "/data"},
		{Host: out, Guest: "/out", Writable: true},
	}}, nil)

	if got := call(t, m, "read", map[string]any{"path": "/data/a.txt"}); got != "alpha" {
		t.Errorf("read = %q", got)
	}
	if got := call(t, m, "read", map[string]any{"path": "/data/inside-link"}); got != "alpha" {
		t.Errorf("read through a link inside = %q", got)
	}
	if got := call(t, m, "list", map[string]any{"path": "/data"}); got != "a.txt,abs-link,inside-link,rel-link,sub" {
		t.Errorf("list = %q", got)
	}

	refused := func(tool string, args map[string]any, want string) {
		t.Helper()
		res, err := callErr(t, m, tool, args)
		if err != nil {
			t.Fatalf("%s %v: %v", tool, args, err)
		}
		if !res.IsError || !strings.Contains(resultText(res), want) {
			t.Errorf("%s %v: got %q (isError %v), want an error containing %q", tool, args, resultText(res), res.IsError, want)
		}
	}
	// Read-only: nothing can be created, changed or removed.
	refused("write", map[string]any{"path": "/data/new.txt", "text": "x"}, "Read-only file system")
	refused("write", map[string]any{"path": "/data/a.txt", "text": "x"}, "Read-only file system")
	refused("mkdir", map[string]any{"path": "/data/dir"}, "Read-only file system")
	refused("remove", map[string]any{"path": "/data/a.txt"}, "Read-only file system")
	// Outside every mount, by path, by "..", and through planted links.
	refused("read", map[string]any{"path": secret}, "")
	refused("read", map[string]any{"path": "/etc/passwd"}, "")
	refused("read", map[string]any{"path": "/data/../secret.txt"}, "")
	refused("read", map[string]any{"path": "/data/abs-link"}, "")
	refused("read", map[string]any{"path": "/data/rel-link"}, "")
	refused("list", map[string]any{"path": "/"}, "")

	// Read-write: the module's changes land in the host directory.
	if got := call(t, m, "write", map[string]any{"path": "/out/result.txt", "text": "done"}); got != "written" {
		t.Errorf("write = %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(out, "result.txt")); err != nil || string(b) != "done" {
		t.Errorf("host sees %q, %v", b, err)
	}
	call(t, m, "mkdir", map[string]any{"path": "/out/d"})
	call(t, m, "remove", map[string]any{"path": "/out/d"})

	// Nothing changed in the read-only directory.
	b, err := os.ReadFile(filepath.Join(data, "a.txt"))
	if err != nil || string(b) != "alpha" {
		t.Errorf("a.txt = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(data, "new.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("new.txt exists: %v", err)
	}

	// No mounts, no files at all.
	none := load(t, "testtool", wasmtool.Sandbox{}, nil)
	res, err := callErr(t, none, "read", map[string]any{"path": filepath.Join(data, "a.txt")})
	if err != nil || !res.IsError {
		t.Errorf("read without mounts: %v %q", err, resultText(res))
	}
}

func TestBadRuns(t *testing.T) {
	m := load(t, "testtool", wasmtool.Sandbox{MaxOutput: 1 << 20}, nil)
	for _, tc := range []struct {
		tool string
		args any
		is   error
		msg  string
	}{
		{"garbage", nil, wasmtool.ErrBadOutput, "stdout does not hold a JSON object"},
		{"two", nil, wasmtool.ErrBadOutput, "more than one JSON value on stdout"},
		{"empty", nil, wasmtool.ErrBadOutput, "the module wrote nothing to stdout"},
		{"null", nil, wasmtool.ErrBadOutput, "stdout does not hold a JSON object"},
		{"badcontent", nil, wasmtool.ErrBadOutput, "hologram"},
		{"flood", map[string]any{"mb": 8}, wasmtool.ErrOutputTooLarge, "more than 1048576 bytes on stdout"},
		{"exit", map[string]any{"code": 3}, wasmtool.ErrFailed, "exit status 3"},
		{"panic", nil, wasmtool.ErrFailed, "exit status 2"},
	} {
		_, err := callErr(t, m, tc.tool, tc.args)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want %v containing %q", tc.tool, err, tc.is, tc.msg)
		}
	}
	// A result asking for client input is relayed as a plain result.
	res, err := callErr(t, m, "inputreq", nil)
	if err != nil || res.InputRequests != nil || res.RequestState != "" || resultText(res) != "x" {
		t.Errorf("inputreq: %v %+v", err, res)
	}
}

func TestListProblems(t *testing.T) {
	for _, tc := range []struct {
		mode string
		is   error
		msg  string
	}{
		{"garbage", wasmtool.ErrBadOutput, "tools/list: malformed output: invalid character"},
		{"exit", wasmtool.ErrFailed, "tools/list: module failed: exit status 3"},
		{"loop", wasmtool.ErrTimeout, "tools/list: time limit exceeded: stopped after 3s"},
		{"noschema", wasmtool.ErrBadOutput, `tools[0]: x: inputSchema must be a JSON Schema object with "type": "object"`},
		{"badname", wasmtool.ErrBadOutput, `tools[0]: name "has space": must be 1 to 128 letters, digits, _, - or .`},
		{"dup", wasmtool.ErrBadOutput, `tools[1]: duplicate name "x"`},
		{"notools", wasmtool.ErrBadOutput, `no "tools" array`},
	} {
		m := load(t, "testtool", wasmtool.Sandbox{Timeout: runTimeout, Env: []string{"MODE=" + tc.mode}}, nil)
		_, err := m.NewServer(ctxT(t, 60*time.Second))
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want %v containing %q", tc.mode, err, tc.is, tc.msg)
		}
	}
	m := load(t, "testtool", wasmtool.Sandbox{Env: []string{"MODE=none"}}, nil)
	if _, err := m.NewServer(ctxT(t, 60*time.Second)); err != nil {
		t.Errorf("no tools: %v", err)
	}
}

func TestCompileProblems(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		bin  []byte
		sb   wasmtool.Sandbox
		msg  string
	}{
		{"text", []byte("#!/bin/sh\n"), wasmtool.Sandbox{}, `not a WebAssembly module (it does not start with \0asm)`},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), wasmtool.Sandbox{}, "not a WebAssembly core module"},
		{"truncated", []byte("\x00asm\x01\x00\x00\x00\x01\x05"), wasmtool.Sandbox{}, "compiling module"},
		{"no _start", []byte("\x00asm\x01\x00\x00\x00"), wasmtool.Sandbox{}, "module does not export _start"},
		// (import "env" "f" (func))
		{"foreign import", []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x02\x09\x01\x03env\x01f\x00\x00"), wasmtool.Sandbox{}, "module imports env.f; only wasi_snapshot_preview1 is provided"},
		{"missing mount", []byte("\x00asm\x01\x00\x00\x00"), wasmtool.Sandbox{Mounts: []wasmtool.Mount{{Host: filepath.Join(dir, "nope")}}}, "sandbox directory: stat " + filepath.Join(dir, "nope")},
	} {
		_, err := wasmtool.Compile(context.Background(), tc.name, tc.bin, tc.sb, nil)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.msg)
		}
	}
	_, err := wasmtool.Load(context.Background(), "missing", filepath.Join(dir, "missing.wasm"), wasmtool.Sandbox{}, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestMaxInstances: with one instance allowed, a second call waits for the
// first and gives up when its context does.
func TestMaxInstances(t *testing.T) {
	m := load(t, "testtool", wasmtool.Sandbox{MaxInstances: 1, Timeout: time.Hour}, nil)
	busyCtx, stopBusy := context.WithCancel(context.Background())
	defer stopBusy()
	busy := make(chan error, 1)
	go func() {
		_, err := m.CallTool(busyCtx, "loop", nil)
		busy <- err
	}()
	// Until the loop holds the slot, a quick call may still get it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := m.CallTool(ctx, "echo", nil)
		cancel()
		if err != nil {
			if !strings.Contains(err.Error(), "waiting for a free instance (max_instances 1)") {
				t.Fatalf("err = %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the looping call never held the instance slot")
		}
	}
	stopBusy()
	if err := <-busy; !errors.Is(err, context.Canceled) {
		t.Errorf("busy call: %v", err)
	}
	if got := call(t, m, "echo", map[string]any{"a": 1}); got != `{"a":1}` {
		t.Errorf("after: %q", got)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStderrLogged(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := load(t, "testtool", wasmtool.Sandbox{}, &wasmtool.Options{Logger: log})
	if got := call(t, m, "stderr", nil); got != "done" {
		t.Errorf("stderr tool = %q", got)
	}
	s := logs.String()
	if !strings.Contains(s, `msg="wasm stderr" module=testtool line="line 0 eee`) || !strings.Contains(s, "wasm stderr truncated") {
		t.Errorf("stderr not logged line by line, bounded:\n%.500s", s)
	}
	if n := strings.Count(s, `msg="wasm stderr" `); n >= 1000 {
		t.Errorf("%d stderr lines logged, want the bounded first part", n)
	}
	_, _ = callErr(t, m, "exit", map[string]any{"code": 4})
	if s := logs.String(); !strings.Contains(s, `msg="wasm run failed"`) || !strings.Contains(s, "exiting on purpose with 4") {
		t.Errorf("failure not logged with stderr:\n%s", s[max(0, len(s)-1000):])
	}
}

// TestServer drives the module's MCP server with the SDK client over
// in-memory transports, as a wasm upstream does.
func TestServer(t *testing.T) {
	m := load(t, "testtool", wasmtool.Sandbox{Timeout: runTimeout}, nil)
	ctx := ctxT(t, 60*time.Second)
	srv, err := m.NewServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if got := cs.InitializeResult().ServerInfo; got.Name != "wasm:testtool" || got.Version != m.Hash()[:12] {
		t.Errorf("server info = %+v", got)
	}
	lt, err := cs.ListTools(ctx, nil)
	if err != nil || len(lt.Tools) < 10 {
		t.Fatalf("list: %v %d", err, len(lt.Tools))
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"k": "v"}})
	if err != nil || res.IsError || resultText(res) != `{"k":"v"}` {
		t.Errorf("echo: %v %+v", err, res)
	}
	for tool, want := range map[string]string{
		"loop":    `tool "loop" failed: time limit exceeded: stopped after 3s`,
		"garbage": `tool "garbage" failed: malformed output: stdout does not hold a JSON object`,
	} {
		res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: tool})
		if err != nil || !res.IsError || resultText(res) != want {
			t.Errorf("%s: %v %q, want isError %q", tool, err, resultText(res), want)
		}
	}
}

// TestTrap: a module that traps (here, (func $_start unreachable)) fails
// the run with the trap's first line.
func TestTrap(t *testing.T) {
	bin := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type section: func () -> ()
		"\x03\x02\x01\x00" + // function section: one function of type 0
		"\x07\x0a\x01\x06_start\x00\x00" + // export section: _start = func 0
		"\x0a\x05\x01\x03\x00\x00\x0b") // code section: no locals, unreachable, end
	m, err := wasmtool.Compile(context.Background(), "trap", bin, wasmtool.Sandbox{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	_, err = m.Run(ctxT(t, 30*time.Second), []byte(`{"method":"tools/list"}`))
	if want := "module failed: module[] function[_start] failed: wasm error: unreachable"; !errors.Is(err, wasmtool.ErrFailed) || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}
