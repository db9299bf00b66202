// Package wasmtool runs MCP tool servers compiled to WebAssembly inside the
// gateway, sandboxed with wazero (pure Go, no cgo).
//
// A tool server is a WASI preview 1 command module: each run reads one JSON
// request from stdin, writes one JSON response to stdout and exits (the ABI
// is in docs/wasm.md and in [Module.ListTools] and [Module.CallTool]). Any
// language that targets WASI can produce one; Go does with
// GOOS=wasip1 GOARCH=wasm.
//
// # Life cycle
//
// [Compile] (or [Load]) validates and compiles a module once. Every run —
// the tools/list at start and each tools/call — then instantiates a fresh
// instance from the compiled code and throws it away after, so no state
// survives from one call, or one tenant, to the next. Instantiating from
// compiled code is cheap (a few milliseconds for a Go module, mostly the Go
// runtime starting); compiling is not (a second or more), which is why the
// compiled module lives as long as the [Module]. Compiled code is kept in a
// compilation cache shared by the process and counted by reference, so
// several Modules of the same bytes (an upstream replaced on reload because
// only its timeout changed, say) share one compilation, and the code is
// freed when the last of them is closed.
//
// Instances are not pooled: a command module does its work in _start, so an
// instance cannot be reused, and a pool of pre-started ones would be a place
// for state to leak between callers. [Sandbox.MaxInstances] bounds how many
// run at once instead.
//
// # Sandbox
//
// A module gets nothing it was not given: no network (WASI preview 1 has no
// sockets to open, and no other host functions are provided), no files but
// the [Mount]s, each confined to its directory (see rootFS) and read-only
// unless writable, no environment but [Sandbox.Env], a bounded memory, a
// bounded run time after which it is stopped even in a loop that never
// calls out, bounded output, and real clocks and randomness.
package wasmtool

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Defaults and bounds of a [Sandbox].
const (
	DefaultMemoryMB     = 64
	DefaultTimeout      = 5 * time.Second
	DefaultMaxInstances = 4
	// DefaultMaxOutput bounds what one run may write to stdout: one
	// response, which the gateway holds in memory and relays.
	DefaultMaxOutput = 4 << 20
	// MaxStderr is how much of a run's stderr is kept for the log; the rest
	// is dropped (the module does not notice).
	MaxStderr = 64 << 10
	// MaxModuleBytes bounds a module file read by [Load].
	MaxModuleBytes = 256 << 20
	// pageSize is the size of a WebAssembly memory page.
	pageSize = 64 << 10
	// stopGrace is how long a run whose time is up may take to stop before
	// the caller is answered anyway. A module is stopped at its next
	// instruction boundary check, which is immediate unless it is blocked
	// in a host call (a read of a FIFO in a mounted directory, say); such
	// a run keeps its instance slot until it ends.
	stopGrace = time.Second
)

// Errors a run can end with, wrapped with details. A tool call that fails
// with one of them is answered with an isError result naming the cause.
var (
	// ErrTimeout: the run exceeded [Sandbox.Timeout] and was stopped.
	ErrTimeout = errors.New("time limit exceeded")
	// ErrOutputTooLarge: the module wrote more than [Sandbox.MaxOutput]
	// bytes to stdout; it was stopped.
	ErrOutputTooLarge = errors.New("output too large")
	// ErrBadOutput: stdout did not hold the one JSON response expected.
	ErrBadOutput = errors.New("malformed output")
	// ErrFailed: the module exited with a non-zero status or trapped.
	ErrFailed = errors.New("module failed")
)

// Sandbox is what the instances of a module may use. Zero fields take the
// defaults above.
type Sandbox struct {
	// MemoryMB caps each instance's linear memory, in MiB (at most 4096,
	// all a 32-bit memory can address).
	MemoryMB int
	// Timeout bounds one run, from instantiation to exit.
	Timeout time.Duration
	// Mounts are the only host directories the module can see.
	Mounts []Mount
	// Env is the module's whole environment, as "NAME=value" entries.
	Env []string
	// MaxInstances bounds concurrent runs; further runs wait for a slot
	// as long as their context allows.
	MaxInstances int
	// MaxOutput bounds a run's stdout, in bytes.
	MaxOutput int
}

// Mount makes the host directory Host visible to the module at Guest.
type Mount struct {
	// Host is the directory on this machine.
	Host string
	// Guest is the absolute slash-separated path the module uses; "" means
	// Host made absolute.
	Guest string
	// Writable allows changes; a mount is read-only by default.
	Writable bool
}

// Options configure [Compile] and [Load]. A nil *Options uses the defaults.
type Options struct {
	// Logger receives the modules' stderr (debug level, or warn with the
	// failure of a run). If nil, nothing is logged.
	Logger *slog.Logger
	// Cache holds compiled code. If nil, a cache shared by the process is
	// used (see the package documentation).
	Cache wazero.CompilationCache
}

var (
	sharedCacheMu sync.Mutex
	sharedCache   wazero.CompilationCache
)

// processCache returns the process-wide compilation cache. wazero counts
// references to each compiled module in it and frees the code when the
// last runtime using it is closed, so it holds no more than the modules in
// use (plus, with [UseCacheDir], their files on disk).
func processCache() wazero.CompilationCache {
	sharedCacheMu.Lock()
	defer sharedCacheMu.Unlock()
	if sharedCache == nil {
		sharedCache = wazero.NewCompilationCache()
	}
	return sharedCache
}

// UseCacheDir makes the process-wide compilation cache also keep compiled
// code in dir, so that a restarted process does not compile the same
// module again (compiling a Go module takes seconds, more on a small
// device). It must be called before the first [Compile] that uses that
// cache. wazero runs the machine code it finds in dir: dir must be writable
// by nobody but the gateway's own user.
func UseCacheDir(dir string) error {
	sharedCacheMu.Lock()
	defer sharedCacheMu.Unlock()
	if sharedCache != nil {
		return errors.New("the compilation cache is already in use")
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return fmt.Errorf("compilation cache directory: %w", err)
	}
	sharedCache = c
	return nil
}

// A Module is a compiled tool server and the sandbox its instances run in.
// Its methods may be called concurrently.
type Module struct {
	name   string
	hash   string
	sb     Sandbox
	mounts []Mount // with Guest filled in
	log    *slog.Logger
	rt     wazero.Runtime
	code   wazero.CompiledModule
	base   wazero.ModuleConfig // everything but the per-run parts
	slots  chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Load reads the module file at path and compiles it; see [Compile].
func Load(ctx context.Context, name, path string, sb Sandbox, opts *Options) (*Module, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading module: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxModuleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading module: %w", err)
	}
	if len(data) > MaxModuleBytes {
		return nil, fmt.Errorf("reading module: %s is larger than %d MiB", path, MaxModuleBytes>>20)
	}
	return Compile(ctx, name, data, sb, opts)
}

// Compile validates and compiles the WebAssembly module bin for the sandbox
// sb. name identifies the module in logs and is its argv[0]. The module must
// be a WASI preview 1 command (exporting _start) that imports nothing but
// wasi_snapshot_preview1, and every mount's directory must exist.
func Compile(ctx context.Context, name string, bin []byte, sb Sandbox, opts *Options) (_ *Module, err error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Cache == nil {
		o.Cache = processCache()
	}
	sb = withDefaults(sb)
	if sb.MemoryMB > 4096 {
		return nil, fmt.Errorf("memory limit %d MiB is above the 4096 MiB a WebAssembly memory can address", sb.MemoryMB)
	}
	if len(bin) < 8 || !bytes.Equal(bin[:4], []byte("\x00asm")) {
		return nil, errors.New("not a WebAssembly module (it does not start with \\0asm)")
	}
	if !bytes.Equal(bin[4:8], []byte{1, 0, 0, 0}) {
		return nil, errors.New("not a WebAssembly core module (a component, or an unknown version); build a WASI preview 1 module")
	}
	mounts, err := checkMounts(sb.Mounts)
	if err != nil {
		return nil, err
	}

	sum := sha256.Sum256(bin)
	m := &Module{
		name: name, hash: hex.EncodeToString(sum[:]), sb: sb, mounts: mounts,
		log:   o.Logger,
		slots: make(chan struct{}, sb.MaxInstances),
	}
	cfg := wazero.NewRuntimeConfig().
		// Stop a run when its context ends, even in a loop that never calls
		// the host: the compiler adds a check at function entries and loop
		// back-edges (a small cost on hot loops).
		WithCloseOnContextDone(true).
		// In pages of 64 KiB, computed in uint32 so that 4096 MiB does not
		// overflow an int on 32-bit platforms.
		WithMemoryLimitPages(uint32(sb.MemoryMB) * (1 << 20 / pageSize)).
		WithCompilationCache(o.Cache)
	m.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	defer func() {
		if err != nil {
			_ = m.rt.Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, m.rt); err != nil {
		return nil, fmt.Errorf("providing WASI: %w", err)
	}
	cctx := experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0))
	m.code, err = m.rt.CompileModule(cctx, bin)
	if err != nil {
		return nil, fmt.Errorf("compiling module: %w", err)
	}
	for _, f := range m.code.ImportedFunctions() {
		if mod, fn, _ := f.Import(); mod != wasi_snapshot_preview1.ModuleName {
			return nil, fmt.Errorf("module imports %s.%s; only %s is provided", mod, fn, wasi_snapshot_preview1.ModuleName)
		}
	}
	for _, mem := range m.code.ImportedMemories() {
		mod, field, _ := mem.Import()
		return nil, fmt.Errorf("module imports memory %s.%s; it must define its own", mod, field)
	}
	if _, ok := m.code.ExportedFunctions()["_start"]; !ok {
		return nil, errors.New("module does not export _start: build it as a WASI command (for Go: GOOS=wasip1 GOARCH=wasm go build, package main)")
	}

	base := wazero.NewModuleConfig().
		// Anonymous, so that instances can run side by side.
		WithName("").
		WithArgs(name).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	for _, kv := range sb.Env {
		k, v, _ := strings.Cut(kv, "=")
		base = base.WithEnv(k, v)
	}
	m.base = base
	return m, nil
}

func withDefaults(sb Sandbox) Sandbox {
	if sb.MemoryMB <= 0 {
		sb.MemoryMB = DefaultMemoryMB
	}
	if sb.Timeout <= 0 {
		sb.Timeout = DefaultTimeout
	}
	if sb.MaxInstances <= 0 {
		sb.MaxInstances = DefaultMaxInstances
	}
	if sb.MaxOutput <= 0 {
		sb.MaxOutput = DefaultMaxOutput
	}
	return sb
}

// checkMounts checks that every host directory exists and fills in the
// guest paths.
func checkMounts(in []Mount) ([]Mount, error) {
	out := make([]Mount, 0, len(in))
	for _, mt := range in {
		fi, err := os.Stat(mt.Host)
		if err != nil {
			return nil, fmt.Errorf("sandbox directory: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("sandbox directory %s is not a directory", mt.Host)
		}
		if mt.Guest == "" {
			abs, err := filepath.Abs(mt.Host)
			if err != nil {
				return nil, fmt.Errorf("sandbox directory %s: %w", mt.Host, err)
			}
			mt.Guest = filepath.ToSlash(abs)
		}
		if !strings.HasPrefix(mt.Guest, "/") {
			return nil, fmt.Errorf("sandbox directory %s: guest path %q is not absolute", mt.Host, mt.Guest)
		}
		out = append(out, mt)
	}
	return out, nil
}

// Hash returns the hex SHA-256 of the module's bytes.
func (m *Module) Hash() string { return m.hash }

// Close frees the compiled code and stops every run still going. It is safe
// to call more than once.
func (m *Module) Close(ctx context.Context) error {
	m.closeOnce.Do(func() { m.closeErr = m.rt.Close(ctx) })
	return m.closeErr
}

// Run runs one fresh instance of the module with req on its stdin and
// returns what it wrote to stdout. It waits for an instance slot as long as
// ctx allows; the run itself is bounded by the sandbox's timeout and ctx.
// A run that does not exit with status 0 fails with [ErrFailed],
// [ErrTimeout] or [ErrOutputTooLarge] (wrapped), or with ctx's error.
func (m *Module) Run(ctx context.Context, req []byte) ([]byte, error) {
	select {
	case m.slots <- struct{}{}:
	default:
		select {
		case m.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a free instance (max_instances %d): %w", m.sb.MaxInstances, context.Cause(ctx))
		}
	}
	released := false
	defer func() {
		if !released {
			<-m.slots
		}
	}()

	tctx, cancelTimeout := context.WithTimeoutCause(ctx, m.sb.Timeout, ErrTimeout)
	defer cancelTimeout()
	rctx, cancel := context.WithCancelCause(tctx)
	defer cancel(nil)

	stdout := &limitedBuffer{max: m.sb.MaxOutput, full: func() { cancel(ErrOutputTooLarge) }}
	stderr := &limitedBuffer{max: MaxStderr, quiet: true}
	fsc := wazero.NewFSConfig()
	var roots []*os.Root
	closeRoots := func() {
		for _, r := range roots {
			_ = r.Close()
		}
	}
	for _, mt := range m.mounts {
		// A root per run: a directory replaced since the last run is seen
		// as it is now.
		root, err := os.OpenRoot(mt.Host)
		if err != nil {
			closeRoots()
			return nil, fmt.Errorf("opening sandbox directory: %w", err)
		}
		roots = append(roots, root)
		fsc = fsc.(sysfs.FSConfig).WithSysFSMount(&rootFS{root: root, readOnly: !mt.Writable}, mt.Guest)
	}
	cfg := m.base.
		WithStdin(bytes.NewReader(req)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithNanosleep(sleeper(rctx)).
		WithFSConfig(fsc)

	start := time.Now()
	done := make(chan error, 1)
	released = true // the goroutine releases the slot when the instance is gone
	go func() {
		defer func() { <-m.slots }()
		defer closeRoots()
		var err error
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("%w: runtime panic: %v", ErrFailed, p)
			}
			done <- err
		}()
		var mod api.Module
		mod, err = m.rt.InstantiateModule(rctx, m.code, cfg)
		if mod != nil {
			_ = mod.Close(context.WithoutCancel(rctx))
		}
	}()

	var err error
	select {
	case err = <-done:
	case <-rctx.Done():
		t := time.NewTimer(stopGrace)
		select {
		case err = <-done:
			t.Stop()
		case <-t.C:
			// Blocked in a host call: answer now, and let the instance
			// end on its own (it holds its slot until then). Its buffers
			// are still being written, so they are not read.
			m.log.Warn("wasm run did not stop in time", "module", m.name, "cause", context.Cause(rctx), "grace", stopGrace)
			return nil, m.stopErr(rctx, ctx)
		}
	}
	took := time.Since(start)

	switch {
	case stdout.over:
		err = fmt.Errorf("%w: more than %d bytes on stdout", ErrOutputTooLarge, m.sb.MaxOutput)
	case err == nil:
	case rctx.Err() != nil:
		err = m.stopErr(rctx, ctx)
	default:
		var ee *sys.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: exit status %d", ErrFailed, ee.ExitCode())
		} else if !errors.Is(err, ErrFailed) {
			// A trap: "module[] function[_start] failed: wasm error:
			// unreachable" and a stack trace; the first line says it.
			msg, _, _ := strings.Cut(err.Error(), "\n")
			err = fmt.Errorf("%w: %s", ErrFailed, msg)
		}
		if bytes.Contains(stderr.buf.Bytes(), []byte("out of memory")) {
			err = fmt.Errorf("%w (out of memory: the sandbox allows %d MiB)", err, m.sb.MemoryMB)
		}
	}
	m.logStderr(stderr, err, took)
	if err != nil {
		return nil, err
	}
	return stdout.buf.Bytes(), nil
}

// stopErr says why a run was stopped early: its own time limit, too much
// output, or the caller's context.
func (m *Module) stopErr(rctx, ctx context.Context) error {
	cause := context.Cause(rctx)
	switch {
	case errors.Is(cause, ErrOutputTooLarge):
		return fmt.Errorf("%w: more than %d bytes on stdout", ErrOutputTooLarge, m.sb.MaxOutput)
	case ctx.Err() != nil:
		return fmt.Errorf("run stopped: %w", context.Cause(ctx))
	case errors.Is(cause, ErrTimeout):
		return fmt.Errorf("%w: stopped after %s", ErrTimeout, m.sb.Timeout)
	}
	return fmt.Errorf("run stopped: %w", cause)
}

// logStderr logs what a run wrote to stderr: line by line at debug level,
// and its tail with the error when the run failed.
func (m *Module) logStderr(stderr *limitedBuffer, runErr error, took time.Duration) {
	b := stderr.buf.Bytes()
	if runErr != nil {
		tail := b
		if len(tail) > 2048 {
			tail = tail[len(tail)-2048:]
		}
		m.log.Warn("wasm run failed", "module", m.name, "err", runErr, "took", took, "stderr", string(tail), "stderr_truncated", stderr.over)
		return
	}
	if len(b) == 0 || !m.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	for line := range strings.SplitSeq(strings.TrimRight(string(b), "\n"), "\n") {
		m.log.Debug("wasm stderr", "module", m.name, "line", line)
	}
	if stderr.over {
		m.log.Debug("wasm stderr truncated", "module", m.name, "kept", MaxStderr)
	}
}

// limitedBuffer keeps the first max bytes written to it. Past that, it
// calls full once and refuses further writes, or, if quiet, drops them
// while reporting success, so that a chatty stderr does not fail the run.
// Only the instance's goroutine writes; it is read after the run.
type limitedBuffer struct {
	buf   bytes.Buffer
	max   int
	over  bool
	quiet bool
	full  func()
}

var errOutputFull = errors.New("output limit reached")

func (l *limitedBuffer) Write(p []byte) (int, error) {
	room := l.max - l.buf.Len()
	if len(p) <= room {
		return l.buf.Write(p)
	}
	l.buf.Write(p[:max(room, 0)])
	if !l.over {
		l.over = true
		if l.full != nil {
			l.full()
		}
	}
	if l.quiet {
		return len(p), nil
	}
	return max(room, 0), errOutputFull
}

// sleeper is the module's nanosleep (WASI poll_oneoff with a clock): a real
// sleep that ends early when the run's context does, so a module asleep is
// stopped on time too.
func sleeper(ctx context.Context) sys.Nanosleep {
	return func(ns int64) {
		if ns <= 0 {
			return
		}
		t := time.NewTimer(time.Duration(ns))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}
