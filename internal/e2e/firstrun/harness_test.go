// Package firstrun tests what a newcomer meets in the first hour with
// mcpedge, on the real binary: upstreams that do not start and say why,
// logs a person can read, the configuration files of the common MCP
// clients, and the README's quick start.
package firstrun

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
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
)

// binary is the mcpedge built for this test run.
var binary string

// operatorKey is the first-start owner key of every gateway the tests run
// (MCPEDGE_ADMIN_KEY), for the ones whose authentication is on.
const operatorKey = "mcpe_firstrunoperatorkey0123456789abcdefghijklmn"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := nodeclient.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "mcpedge-firstrun")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "mcpedge")
	cmd := exec.Command("go", "build", "-o", binary, "./cmd/mcpedge")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building mcpedge: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// everything returns the command line of the reference "everything"
// server installed under test/node.
func everything(t *testing.T) (string, []string) {
	t.Helper()
	root, err := nodeclient.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := nodeclient.Check(root); err != nil {
		t.Fatal(err)
	}
	return nodeclient.EverythingStdioCommand(root)
}

// proc is a running `mcpedge serve`.
type proc struct {
	cmd    *exec.Cmd
	URL    string
	stderr *syncBuffer
}

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

var listenRE = regexp.MustCompile(`listening on (http://\S+)/mcp`)

// serve starts `mcpedge serve` with args on a free loopback port, in a
// data directory of its own, and waits until it listens.
func serve(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return serveIn(t, "", env, args...)
}

// serveIn is serve with the gateway's working directory dir ("" for the
// test's).
func serveIn(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+t.TempDir(), "MCPEDGE_ADMIN_KEY="+operatorKey)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("gateway log:\n%s", p.stderr.String())
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
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
	case <-time.After(60 * time.Second):
		t.Fatalf("gateway did not report its address: %s", p.stderr.String())
	}
	return p
}

// stop sends SIGTERM and waits for the gateway to exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Errorf("gateway did not stop on SIGTERM")
		_ = p.cmd.Process.Kill()
	}
}

// readiness is /readyz's answer.
type readiness struct {
	Ready     bool             `json:"ready"`
	Upstreams []upstreamStatus `json:"upstreams"`
}

type upstreamStatus struct {
	Name      string   `json:"name"`
	State     string   `json:"state"`
	LastError string   `json:"last_error"`
	Stderr    []string `json:"stderr"`
	Tools     int      `json:"tools"`
}

func (p *proc) readyz(t *testing.T) (readiness, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+operatorKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	return r, resp.StatusCode
}

// waitUpstream polls /readyz until ok holds for the named upstream's
// status, and returns that status; it fails the test after limit.
func (p *proc) waitUpstream(t *testing.T, name string, limit time.Duration, what string, ok func(upstreamStatus) bool) upstreamStatus {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last upstreamStatus
	for {
		r, _ := p.readyz(t)
		for _, u := range r.Upstreams {
			if u.Name == name {
				last = u
				if ok(u) {
					return u
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream %q: %s: not within %s; last status %+v", name, what, limit, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logLines returns the gateway's JSON log lines (the ones that decode).
func (p *proc) logLines() []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] != nil {
			out = append(out, m)
		}
	}
	return out
}

// waitLog waits until a log line satisfies ok.
func (p *proc) waitLog(t *testing.T, limit time.Duration, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, l := range p.logLines() {
			if ok(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %s within %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

func qlist(l []string) string { b, _ := json.Marshal(l); return string(b) }
