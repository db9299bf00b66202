package e2e

import (
	"bufio"
	"fmt"
	"net"
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

// The tests in this package that need the real binary (restarts, several
// replicas, a load balancer) run `mcpedge serve` processes built once per
// test binary.

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// mcpedgeBinary builds cmd/mcpedge (CGO_ENABLED=0, as shipped) once.
func mcpedgeBinary(t testing.TB) string {
	t.Helper()
	binaryOnce.Do(func() {
		root, err := nodeclient.RepoRoot()
		if err != nil {
			binaryErr = err
			return
		}
		dir, err := os.MkdirTemp("", "mcpedge-e2e-bin")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "mcpedge")
		cmd := exec.Command("go", "build", "-o", binaryPath, "./cmd/mcpedge")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("building mcpedge: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// lockedLog collects a process's output for the test to read.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// gatewayProc is a running `mcpedge serve`.
type gatewayProc struct {
	cmd    *exec.Cmd
	URL    string // http://127.0.0.1:port
	stderr *lockedLog
	exited chan error
}

var listenLine = regexp.MustCompile(`listening on (http://\S+)/mcp`)

// startProc starts `mcpedge serve --config cfg --listen addr` with env
// added to the test's environment, and waits until it listens. The
// process is killed at the end of the test if it still runs.
func startProc(t testing.TB, cfg, addr string, env ...string) *gatewayProc {
	t.Helper()
	cmd := exec.Command(mcpedgeBinary(t), "serve", "--config", cfg, "--listen", addr)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &gatewayProc{cmd: cmd, stderr: &lockedLog{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
		}
		if t.Failed() {
			t.Logf("gateway %s stderr (tail):\n%s", p.URL, tailLines(p.stderr.String(), 30))
		}
	})
	select {
	case u := <-found:
		p.URL = u
	case err := <-p.exited:
		p.exited <- err
		t.Fatalf("gateway exited before listening (%v): %s", err, p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("gateway did not report its address: %s", p.stderr.String())
	}
	return p
}

// stop sends sig and waits for the process to exit.
func (p *gatewayProc) stop(t testing.TB, sig syscall.Signal) {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.exited:
		p.exited <- err
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("gateway did not exit after %v", sig)
	}
}

// waitReady waits until /readyz says every upstream made its first
// attempt and the named ones are ready.
func (p *gatewayProc) waitReady(t testing.TB, token string, names ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var b strings.Builder
			_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
			resp.Body.Close()
			ok := resp.StatusCode == http.StatusOK
			for _, n := range names {
				if !strings.Contains(b.String(), `"name":"`+n+`"`) || !regexp.MustCompile(`"name":"`+regexp.QuoteMeta(n)+`"[^}]*"state":"ready"`).MatchString(b.String()) {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gateway %s: upstreams %v not ready; stderr:\n%s", p.URL, names, tailLines(p.stderr.String(), 20))
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeFile(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// bearerTransport adds a bearer token to every request.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}
