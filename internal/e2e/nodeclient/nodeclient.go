// Package nodeclient lets Go end-to-end tests drive real MCP peers written on
// the official TypeScript SDK: the client script test/node/client.mjs and the
// reference server @modelcontextprotocol/server-everything, both installed by
// `npm ci --prefix test/node` (scripts/test.sh does that).
//
// Nothing here downloads anything at test time: when the Node dependencies are
// missing the helpers fail the test and say which command installs them.
package nodeclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/faultproxy"
)

const modulePath = "github.com/mcpedge/mcpedge"

// Paths inside the repository.
const (
	NodeDir         = "test/node"
	ClientScript    = "test/node/client.mjs"
	LoopbackPreload = "test/node/loopback.mjs"
	EverythingEntry = "test/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
	sdkPackageJSON  = "test/node/node_modules/@modelcontextprotocol/sdk/package.json"
)

// InstallHint is the command that installs what these helpers need.
const InstallHint = "run `bash scripts/test.sh` (or `npm ci --prefix test/node`) from the repository root"

// RepoRoot returns the repository root: the nearest directory above the
// working directory (or above this source file) whose go.mod declares the
// mcpedge module.
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if isModuleRoot(dir) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("nodeclient: no go.mod for %s above %v", modulePath, starts)
}

func isModuleRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "module" && strings.Trim(f[1], `"`) == modulePath {
			return true
		}
	}
	return false
}

// Check reports whether node and the installed Node test dependencies are
// present under root, with an error that says how to install them.
func Check(root string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("nodeclient: node is not on PATH; %s", InstallHint)
	}
	for _, p := range []string{ClientScript, LoopbackPreload, EverythingEntry, sdkPackageJSON} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			return fmt.Errorf("nodeclient: %s is missing (Node test dependencies not installed); %s", p, InstallHint)
		}
	}
	return nil
}

// mustRoot returns the repository root after Check, or fails the test.
func mustRoot(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := Check(root); err != nil {
		t.Fatalf("%v", err)
	}
	return root
}

// nodeBin is the node executable (absolute when found on PATH).
func nodeBin() string {
	if p, err := exec.LookPath("node"); err == nil {
		return p
	}
	return "node"
}

// EverythingStdioCommand returns the command that runs server-everything over
// stdio from the installed node_modules of the repository at root (no npx, no
// download): node <root>/test/node/node_modules/.../dist/index.js stdio.
func EverythingStdioCommand(root string) (cmd string, args []string) {
	return nodeBin(), []string{filepath.Join(root, EverythingEntry), "stdio"}
}

// ---------------------------------------------------------------- client

// Option changes how Run invokes the client script.
type Option func(*config)

type config struct {
	headers         []string
	transport       string
	timeout         time.Duration
	protocolVersion string
	capabilities    any
	noTerminate     bool
	env             []string
}

// WithHeader adds an HTTP header to every request the client makes.
func WithHeader(name, value string) Option {
	return func(c *config) { c.headers = append(c.headers, name+": "+value) }
}

// WithSSE makes the client use the legacy HTTP+SSE transport (URL is then the
// SSE endpoint, e.g. http://host/sse).
func WithSSE() Option { return func(c *config) { c.transport = "sse" } }

// WithTimeout sets the scenario's overall deadline (default 30s).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithProtocolVersion makes the client request this protocol version in
// initialize. SDK 1.x speaks 2024-10-07 … 2025-11-25 only; any other version
// makes the script answer {"ok":false,"unsupported":true,...}.
func WithProtocolVersion(v string) Option { return func(c *config) { c.protocolVersion = v } }

// WithCapabilities replaces the client capabilities the script advertises
// (default: sampling, elicitation form+url, roots with listChanged). Pass
// map[string]any{} to advertise none.
func WithCapabilities(caps any) Option { return func(c *config) { c.capabilities = caps } }

// WithoutTerminate keeps the script from sending DELETE for its Streamable
// HTTP session on exit.
func WithoutTerminate() Option { return func(c *config) { c.noTerminate = true } }

// WithEnv adds KEY=VALUE entries to the script's environment.
func WithEnv(kv ...string) Option { return func(c *config) { c.env = append(c.env, kv...) } }

// Result is the single JSON object the client script printed.
type Result = map[string]any

// Run runs `node test/node/client.mjs --url url --scenario scenario` with arg
// (marshalled to JSON; nil means none; a json.RawMessage is passed as is) and
// returns the parsed result. It fails the test, with the script's stderr, when
// the script does not report {"ok":true}.
func Run(t testing.TB, url, scenario string, arg any, opts ...Option) Result {
	t.Helper()
	res, err := Try(t, url, scenario, arg, opts...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return res
}

// Try is Run without the failure: it returns whatever the script reported
// (nil if it printed no JSON) and an error when the result is not ok. Use it
// when a test expects the scenario to fail (say, a rejected API key).
// Missing Node dependencies still fail the test.
func Try(t testing.TB, url, scenario string, arg any, opts ...Option) (Result, error) {
	t.Helper()
	root := mustRoot(t)
	cfg := config{transport: "streamable", timeout: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	args := []string{filepath.Join(root, ClientScript),
		"--url", url,
		"--scenario", scenario,
		"--transport", cfg.transport,
		"--timeout", strconv.FormatFloat(cfg.timeout.Seconds(), 'f', -1, 64),
	}
	if arg != nil {
		var b []byte
		switch v := arg.(type) {
		case json.RawMessage:
			b = v
		case []byte:
			b = v
		default:
			var err error
			if b, err = json.Marshal(arg); err != nil {
				t.Fatalf("nodeclient: marshal arg: %v", err)
			}
		}
		args = append(args, "--arg", string(b))
	}
	for _, h := range cfg.headers {
		args = append(args, "--header", h)
	}
	if cfg.protocolVersion != "" {
		args = append(args, "--protocol-version", cfg.protocolVersion)
	}
	if cfg.capabilities != nil {
		b, err := json.Marshal(cfg.capabilities)
		if err != nil {
			t.Fatalf("nodeclient: marshal capabilities: %v", err)
		}
		args = append(args, "--capabilities", string(b))
	}
	if cfg.noTerminate {
		args = append(args, "--no-terminate")
	}

	// The script enforces its own deadline; this one only catches a wedged node.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), cfg.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	runErr := cmd.Run()

	desc := fmt.Sprintf("nodeclient: scenario %q against %s", scenario, url)
	line := lastLine(stdout.Bytes())
	var res Result
	if line == nil {
		return nil, fmt.Errorf("%s: no JSON on stdout after %s (exit: %v)\nstdout:\n%s\nstderr:\n%s",
			desc, time.Since(start).Round(time.Millisecond), runErr, stdout.String(), tail(stderr.String(), 8000))
	}
	if err := json.Unmarshal(line, &res); err != nil {
		return nil, fmt.Errorf("%s: stdout is not one JSON object: %v\nstdout:\n%s\nstderr:\n%s",
			desc, err, stdout.String(), tail(stderr.String(), 8000))
	}
	if ok, _ := res["ok"].(bool); !ok || runErr != nil {
		return res, fmt.Errorf("%s: not ok (exit: %v): %v\nresult: %s\nstderr:\n%s",
			desc, runErr, res["error"], tail(string(line), 8000), tail(stderr.String(), 8000))
	}
	return res, nil
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return b
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// ---------------------------------------------------------------- server-everything over HTTP

// StartEverythingHTTP starts server-everything in Streamable HTTP mode on a
// free loopback port, waits until it answers and returns its MCP endpoint
// (http://127.0.0.1:PORT/mcp). The process group is killed in t.Cleanup.
func StartEverythingHTTP(t testing.TB) (url string) {
	t.Helper()
	return StartEverything(t, "streamableHttp")
}

// StartEverythingProxied is StartEverythingHTTP behind a fault proxy
// (closed in t.Cleanup): it returns the proxy and the MCP endpoint
// reached through it.
func StartEverythingProxied(t testing.TB) (px *faultproxy.Proxy, url string) {
	t.Helper()
	return ProxyTo(t, StartEverythingHTTP(t))
}

// ProxyTo puts a fault proxy (closed in t.Cleanup) in front of the HTTP
// endpoint target: it returns the proxy and the endpoint reached through
// it.
func ProxyTo(t testing.TB, target string) (px *faultproxy.Proxy, url string) {
	t.Helper()
	u, err := neturl.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	if px, err = faultproxy.New(u.Host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	return px, "http://" + px.Addr() + u.Path
}

// StartEverythingSSE is StartEverythingHTTP for the legacy HTTP+SSE mode; it
// returns the SSE endpoint (http://127.0.0.1:PORT/sse).
func StartEverythingSSE(t testing.TB) (url string) {
	t.Helper()
	return StartEverything(t, "sse")
}

// StartEverything starts server-everything in mode "streamableHttp" or "sse"
// bound to 127.0.0.1 on a kernel-chosen port (test/node/loopback.mjs forces
// the bind address and announces the port) and returns its endpoint URL.
func StartEverything(t testing.TB, mode string) (url string) {
	t.Helper()
	var path string
	switch mode {
	case "streamableHttp":
		path = "/mcp"
	case "sse":
		path = "/sse"
	default:
		t.Fatalf("nodeclient: unknown server-everything mode %q", mode)
	}
	root := mustRoot(t)
	cmd := exec.Command(nodeBin(), "--import", "file://"+filepath.ToSlash(filepath.Join(root, LoopbackPreload)),
		filepath.Join(root, EverythingEntry), mode)
	cmd.Dir = filepath.Join(root, NodeDir)
	cmd.Env = append(os.Environ(), "PORT=0", "MCPEDGE_BIND_HOST=127.0.0.1")
	setProcessGroup(cmd)
	logs := &ringBuffer{max: 64 << 10}
	portc := make(chan string, 1)
	cmd.Stdout = logs // server-everything logs every request on stdout: keep draining it
	cmd.Stderr = &announceWatcher{out: logs, port: portc}
	if err := cmd.Start(); err != nil {
		t.Fatalf("nodeclient: start server-everything: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = killProcessGroup(cmd)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("nodeclient: server-everything (pid %d) did not exit after kill", cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("server-everything %s output (tail):\n%s", mode, logs.String())
		}
	})

	var port string
	select {
	case port = <-portc:
	case <-exited:
		t.Fatalf("nodeclient: server-everything %s exited before listening (%v):\n%s", mode, waitErr, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("nodeclient: server-everything %s did not announce its port within 30s:\n%s", mode, logs.String())
	}
	base := "http://127.0.0.1:" + port
	if err := waitAnswering(base+path, mode, exited, 20*time.Second); err != nil {
		t.Fatalf("nodeclient: server-everything %s on %s: %v\n%s", mode, base, err, logs.String())
	}
	return base + path
}

// waitAnswering polls the endpoint until the HTTP server answers at all. For
// streamableHttp a GET without a session gets a 400; for sse a GET opens an
// event stream, so only the status line is awaited.
func waitAnswering(url, mode string, exited <-chan struct{}, within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("process exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if mode == "sse" {
			req.Header.Set("Accept", "text/event-stream")
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			cancel()
			if resp.StatusCode < 500 {
				return nil
			}
			last = fmt.Errorf("status %s", resp.Status)
		} else {
			cancel()
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not answering after %s: %v", within, last)
}

// announceWatcher copies a child's stderr to out and sends the port of the
// first "MCPEDGE_LISTENING <host> <port>" line (from loopback.mjs) on port.
type announceWatcher struct {
	out     io.Writer
	port    chan<- string
	partial []byte
	done    bool
}

func (w *announceWatcher) Write(p []byte) (int, error) {
	_, _ = w.out.Write(p)
	if w.done {
		return len(p), nil
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		f := strings.Fields(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
		if len(f) == 3 && f[0] == "MCPEDGE_LISTENING" {
			w.done = true
			w.partial = nil
			w.port <- f[2]
			break
		}
	}
	if len(w.partial) > 64<<10 {
		w.partial = nil
	}
	return len(p), nil
}

// ringBuffer keeps the last max bytes written to it.
type ringBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (r *ringBuffer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.max; over > 0 {
		r.buf = append(r.buf[:0:0], r.buf[over:]...)
	}
	return len(p), nil
}

func (r *ringBuffer) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.buf)
}
