// Package deploy_test proves the deployment artifacts under deploy/ (and
// the Dockerfile and scripts/release.sh) with the tools their users run:
// promtool and a real Prometheus scraping a real gateway, helm, the image
// assembled by deploy/mkimage, and the release binaries under qemu.
//
// Tools come from scripts/test.sh: Debian's prometheus (promtool) and
// qemu-user-static, and helm and cyclonedx-gomod built once into
// $MCPEDGE_TOOLS_DIR (default ~/.cache/mcpedge-tools). A missing tool skips
// its test, unless MCPEDGE_REQUIRE_SERVICES=1 (set by scripts/test.sh),
// where it fails.
package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Versions of the tools built from Go modules; scripts/test.sh builds the
// same ones (keep them in step).
const (
	helmVersion      = "v4.3.2"
	cyclonedxVersion = "v1.10.0"
)

// repoRoot is the module root: tests run in deploy/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found above deploy/: %v", err)
	}
	return root
}

// requireServices says whether a missing tool fails rather than skips.
func requireServices() bool { return os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" }

// missing skips or fails a test whose tool is not installed.
func missing(t testing.TB, what, hint string) {
	t.Helper()
	msg := fmt.Sprintf("%s is not installed (%s)", what, hint)
	if requireServices() {
		t.Fatal(msg + "; MCPEDGE_REQUIRE_SERVICES=1")
	}
	t.Skip(msg)
}

// lookTool finds a program on PATH or in /usr/bin, /usr/sbin.
func lookTool(t testing.TB, name, hint string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	missing(t, name, hint)
	return ""
}

// toolsDir is where scripts/test.sh caches tools built from Go modules.
func toolsDir() string {
	if d := os.Getenv("MCPEDGE_TOOLS_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "mcpedge-tools")
	}
	return filepath.Join(os.TempDir(), "mcpedge-tools")
}

// cachedTool returns the path of a tool scripts/test.sh built into
// toolsDir()/<name>-<version>/<name>.
func cachedTool(t testing.TB, name, version string) string {
	t.Helper()
	p := filepath.Join(toolsDir(), name+"-"+version, name)
	if _, err := os.Stat(p); err != nil {
		missing(t, name+" "+version, "scripts/test.sh builds it into "+filepath.Dir(p))
	}
	return p
}

// binaries builds each gateway binary once per test process.
var binaries struct {
	mu    sync.Mutex
	dir   string
	built map[string]string
}

// gatewayBinary returns a CGO_ENABLED=0 build of cmd/mcpedge for
// goos/goarch (goarm for arm), built once. -trimpath as in
// scripts/release.sh and the cross-compile check of scripts/test.sh, so
// that the compiled packages come from Go's build cache.
func gatewayBinary(t testing.TB, goos, goarch, goarm string) string {
	t.Helper()
	binaries.mu.Lock()
	defer binaries.mu.Unlock()
	key := goos + "-" + goarch + goarm
	if p, ok := binaries.built[key]; ok {
		return p
	}
	if binaries.dir == "" {
		d, err := os.MkdirTemp("", "mcpedge-deploy-bin")
		if err != nil {
			t.Fatal(err)
		}
		binaries.dir = d
		binaries.built = map[string]string{}
	}
	out := filepath.Join(binaries.dir, "mcpedge-"+key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./cmd/mcpedge")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOARM="+goarm)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		t.Fatalf("building mcpedge for %s: %v\n%s", key, err, buf.String())
	}
	binaries.built[key] = out
	return out
}

// hostBinary is the gateway for this machine.
func hostBinary(t testing.TB) string {
	t.Helper()
	goarm := ""
	if runtime.GOARCH == "arm" {
		goarm = "7"
	}
	return gatewayBinary(t, runtime.GOOS, runtime.GOARCH, goarm)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}
