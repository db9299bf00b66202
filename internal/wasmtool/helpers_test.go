package wasmtool_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/wasmtool"
)

// Sources of the modules the tests use, built on first use with
// GOOS=wasip1 GOARCH=wasm go build (so plain go test works) into a
// directory removed after the run.
var sources = map[string]string{
	"testtool":  "testdata/testtool",
	"textstats": "../../examples/wasm/textstats",
	"readfile":  "../../examples/wasm/readfile",
}

var (
	buildDir string
	buildMu  sync.Mutex
	built    = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	path string
	err  error
	// keep holds the first compilation open for the whole run: compiled
	// code lives in the process-wide cache only while some Module uses it,
	// and compiling a Go module takes seconds (many under -race).
	keep *wasmtool.Module
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasmtool-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	// Compiled code is kept between runs: compiling the test modules takes
	// about half a minute each under -race.
	if cache, err := os.UserCacheDir(); err == nil {
		if err := wasmtool.UseCacheDir(filepath.Join(cache, "mcpedge", "wasmtool-test")); err != nil {
			fmt.Fprintln(os.Stderr, "wasm compilation cache:", err)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// goTool returns the go command that runs these tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

var prewarm sync.Once

// module builds the named module (once per run) and returns its path. The
// first call starts building and compiling every module, side by side.
func module(t testing.TB, name string) string {
	t.Helper()
	if _, ok := sources[name]; !ok {
		t.Fatalf("no module %q", name)
	}
	prewarm.Do(func() {
		for n := range sources {
			go build(n)
		}
	})
	b := build(name)
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func build(name string) *buildResult {
	src := sources[name]
	buildMu.Lock()
	b := built[name]
	if b == nil {
		b = &buildResult{}
		built[name] = b
	}
	buildMu.Unlock()
	b.once.Do(func() {
		b.path = filepath.Join(buildDir, name+".wasm")
		cmd := exec.Command(goTool(), "build", "-o", b.path, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building %s: %v\n%s", src, err, out)
			return
		}
		b.keep, b.err = wasmtool.Load(context.Background(), name, b.path, wasmtool.Sandbox{}, nil)
	})
	return b
}

// load compiles the named module for sb, closed when the test ends. A
// zero timeout becomes a minute rather than the default 5 s: tests that do
// not test the timeout must not trip over it on a loaded machine.
func load(t testing.TB, name string, sb wasmtool.Sandbox, opts *wasmtool.Options) *wasmtool.Module {
	t.Helper()
	if sb.Timeout == 0 {
		sb.Timeout = time.Minute
	}
	m, err := wasmtool.Load(context.Background(), name, module(t, name), sb, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}
