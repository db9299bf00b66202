package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var binary string

func TestMain(m *testing.M) {
	if os.Getenv(hostileEnv) == "stdio" {
		// This test binary is the hostile stdio upstream of a gateway
		// under test (hostile_test.go).
		os.Exit(runHostileStdio())
	}
	if os.Getenv(hostileEnv) == "shadow" {
		// The impostor of guard_shadow_e2e_test.go, over stdio.
		os.Exit(runShadowStdio())
	}
	dir, err := os.MkdirTemp("", "mcpedge-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mcpedge")
	cmd := exec.Command("go", "build", "-o", binary, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		panic("building mcpedge: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func everything(t *testing.T) (string, []string) {
	root, err := nodeclient.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := nodeclient.Check(root); err != nil {
		t.Fatal(err)
	}
	return nodeclient.EverythingStdioCommand(root)
}

func writeConfig(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "mcpedge.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func everythingBlock(t *testing.T, name string) string {
	cmd, args := everything(t)
	a, _ := json.Marshal(args)
	c, _ := json.Marshal(cmd)
	return "\n[[upstreams]]\nname = \"" + name + "\"\ncommand = " + string(c) + "\nargs = " + string(a) + "\n"
}

// gatewayProc is a running `mcpedge serve`.
type gatewayProc struct {
	cmd    *exec.Cmd
	URL    string
	mu     sync.Mutex
	lines  []string
	stderr *lockedBuffer
}

func (p *gatewayProc) stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// lockedBuffer is a strings.Builder safe for the exec copier goroutine and
// the test reading it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listenRE = regexp.MustCompile(`listening on (https?://\S+)/mcp`)

func startServe(t *testing.T, env []string, args ...string) *gatewayProc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	// Every gateway gets its own data directory (its own store) and a
	// known operator key, unless the test says otherwise.
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+t.TempDir(), "MCPEDGE_ADMIN_KEY="+testAdminKey)
	cmd.Env = append(cmd.Env, env...)
	out, _ := cmd.StdoutPipe()
	p := &gatewayProc{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	found := make(chan string, 1)
	go func() {
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				found <- m[1]
			}
		}
		close(found)
	}()
	select {
	case u, ok := <-found:
		if !ok {
			t.Fatalf("gateway exited before listening: %s", p.stderr.String())
		}
		p.URL = u
	case <-time.After(30 * time.Second): // a loaded CI machine: opening the store, migrations
		t.Fatalf("gateway did not report its address: %s", p.stderr.String())
	}
	// stderr is copied by its own goroutine, which may lag behind stdout:
	// wait (briefly; a log level above info never logs it) for the start
	// log's "listening" line, so that tests can read everything the
	// gateway logged while starting.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(p.stderr.String(), `"msg":"listening"`) {
			break
		}
	}
	return p
}

func (p *gatewayProc) readyz(t *testing.T) map[string]any {
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

func (p *gatewayProc) waitReady(t *testing.T, names ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		m := p.readyz(t)
		ups, _ := m["upstreams"].([]any)
		ready := 0
		for _, u := range ups {
			um := u.(map[string]any)
			for _, n := range names {
				if um["name"] == n && um["state"] == "ready" {
					ready++
				}
			}
		}
		if ready == len(names) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("upstreams %v not ready: %v", names, p.readyz(t))
	return nil
}

func connect(t *testing.T, url string) *mcp.ClientSession {
	c := mcp.NewClient(&mcp.Implementation{Name: "cli-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hc := &http.Client{Transport: bearer{token: testAdminKey, base: http.DefaultTransport}}
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "mcpedge ") {
		t.Fatalf("version: %q %v", out, err)
	}
}

func TestConfigCheck(t *testing.T) {
	good := writeConfig(t, "[server]\nlisten = \"127.0.0.1:9000\"\n[[upstreams]]\nname = \"a\"\ncommand = \"true\"\n")
	out, err := exec.Command(binary, "config", "check", "--config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("good config: %s %v", out, err)
	}
	bad := writeConfig(t, "[server]\nlisten = \"nope\"\n\n[[upstreams]]\nname = \"Bad Name\"\ntransport = \"stdio\"\n\n[[upstreams]]\nname = \"x\"\ntransport = \"http\"\nurl = \"ftp://h/\"\n")
	out, err = exec.Command(binary, "config", "check", "--config", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("bad config accepted: %s", out)
	}
	for _, want := range []string{bad + ":2:", bad + ":5:", bad + ":11:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestServeDefaults runs the binary with no configuration at all: it listens
// on loopback, explains how to add upstreams, and serves its status tool.
func TestServeDefaults(t *testing.T) {
	p := startServe(t, nil)
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(p.stdout(), "add MCP servers") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.stdout(), "add MCP servers") {
		t.Errorf("no hint on adding upstreams: %s", p.stdout())
	}
	cs := connect(t, p.URL+"/mcp")
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "mcpedge__status", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("status tool: %v %v", res, err)
	}
	if !strings.HasPrefix(strings.TrimPrefix(p.URL, "http://"), "127.0.0.1:") {
		t.Errorf("default bind is %s", p.URL)
	}
}

// TestRefusesPublicBindWithoutAuth: auth off is for loopback only, also
// when --listen overrides the file.
func TestRefusesPublicBindWithoutAuth(t *testing.T) {
	cfg := writeConfig(t, "[auth]\nmode = \"off\"\n")
	cmd := exec.Command(binary, "serve", "--config", cfg, "--listen", "0.0.0.0:0")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to listen") {
		t.Fatalf("public bind with auth off: err %v, output %s", err, out)
	}
}

// TestStdioMode launches `mcpedge stdio` the way a desktop client does and
// calls an upstream tool through it.
func TestStdioMode(t *testing.T) {
	cfg := writeConfig(t, everythingBlock(t, "ev"))
	c := mcp.NewClient(&mcp.Implementation{Name: "desktop", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc := exec.Command(binary, "stdio", "--config", cfg)
	sc.Env = append(os.Environ(), "XDG_DATA_HOME="+t.TempDir())
	cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: sc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "stdio"}})
	if err != nil {
		t.Fatal(err)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "Echo: stdio" {
		t.Errorf("result %+v", res.Content)
	}
}

// TestMCPServersFile serves a desktop client's JSON configuration as is.
func TestMCPServersFile(t *testing.T) {
	cmd, args := everything(t)
	b, _ := json.Marshal(map[string]any{"mcpServers": map[string]any{"Everything Server": map[string]any{"command": cmd, "args": args}}})
	path := filepath.Join(t.TempDir(), "claude_desktop_config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, nil, "--mcp-servers", path)
	p.waitReady(t, "everything-server")
	cs := connect(t, p.URL+"/mcp")
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "everything-server__echo", Arguments: map[string]any{"message": "x"}}); err != nil {
		t.Fatal(err)
	}
}

// TestSignals checks SIGHUP reload and SIGTERM drain on the real binary: a
// reload adds an upstream without restarting the other's child; SIGTERM lets
// an in-flight call finish, exits 0, and leaves no child process behind.
func TestSignals(t *testing.T) {
	path := writeConfig(t, "[server]\nshutdown_grace = \"10s\"\n"+everythingBlock(t, "one"))
	p := startServe(t, nil, "--config", path)
	m := p.waitReady(t, "one")
	pid := int(m["upstreams"].([]any)[0].(map[string]any)["pid"].(float64))

	if err := os.WriteFile(path, []byte("[server]\nshutdown_grace = \"10s\"\n"+everythingBlock(t, "one")+everythingBlock(t, "two")), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	m = p.waitReady(t, "one", "two")
	var pids []int
	for _, u := range m["upstreams"].([]any) {
		um := u.(map[string]any)
		if _, ok := um["pid"].(float64); !ok {
			continue // the built-in lattice upstream runs in-process
		}
		pids = append(pids, int(um["pid"].(float64)))
		if um["name"] == "one" && int(um["pid"].(float64)) != pid {
			t.Errorf("reload restarted the unchanged upstream")
		}
	}

	cs := connect(t, p.URL+"/mcp")
	done := make(chan error, 1)
	go func() {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "one__trigger-long-running-operation", Arguments: map[string]any{"duration": 2, "steps": 2}})
		if err == nil && res.IsError {
			err = io.ErrUnexpectedEOF
		}
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("in-flight call during drain: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("in-flight call never finished")
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not exit after SIGTERM")
	}
	for _, cp := range pids {
		if err := syscall.Kill(cp, 0); err == nil {
			t.Errorf("child %d survived the gateway", cp)
		}
	}
}
