// Package deploy_test proves the deployment artifacts under deploy/ (and
// the Dockerfile and scripts/release.sh) with the tools their users run:
// promtool and a real Prometheus scraping a real gateway, helm, the image
// assembled by deploy/mkimage, and the release binaries under qemu.
//
// The gateway binaries are those of scripts/release.sh, run once per test
// process (see release). Tools come from scripts/test.sh: Debian's prometheus (promtool) and
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
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"
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

// toolVersion reads a version from scripts/tools.sh, which builds the
// tools (e.g. HELM_VERSION).
func toolVersion(t testing.TB, variable string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts/tools.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + variable + `=(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("scripts/tools.sh does not set %s", variable)
	}
	return string(m[1])
}

// cachedTool returns the path of a tool scripts/test.sh built into
// toolsDir()/<name>-<version>/<name>, the version read from
// scripts/tools.sh's variable.
func cachedTool(t testing.TB, name, variable string) string {
	t.Helper()
	p := filepath.Join(toolsDir(), name+"-"+toolVersion(t, variable), name)
	if _, err := os.Stat(p); err != nil {
		missing(t, p, "scripts/test.sh builds it")
	}
	return p
}

// releaseVersion is what the tests' release is stamped with.
const releaseVersion = "1.2.3-test"

// rel is the release every test uses: scripts/release.sh run once per
// test process for the linux targets (MCPEDGE_TEST_RELEASE=all: every
// target), with its SBOM when cyclonedx-gomod is built, and the image.
var rel struct {
	once   sync.Once
	dir    string
	output string
	sbom   bool
	err    error
}

func release(t testing.TB) string {
	t.Helper()
	rel.once.Do(func() {
		dir, err := os.MkdirTemp("", "mcpedge-deploy-release")
		if err != nil {
			rel.err = err
			return
		}
		rel.dir = dir
		targets := "linux/amd64,linux/arm64,linux/arm/7"
		if os.Getenv("MCPEDGE_TEST_RELEASE") == "all" {
			targets += ",darwin/amd64,darwin/arm64,windows/amd64"
		}
		args := []string{"scripts/release.sh", "--version", releaseVersion, "--out", dir, "--targets", targets}
		cdx := filepath.Join(toolsDir(), "cyclonedx-gomod-"+toolVersion(t, "CYCLONEDX_GOMOD_VERSION"), "cyclonedx-gomod")
		if _, err := os.Stat(cdx); err == nil {
			rel.sbom = true
		} else {
			args = append(args, "--no-sbom")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", args...)
		cmd.Dir = repoRoot(t)
		// Never build a tool from a test: scripts/test.sh does that.
		cmd.Env = append(os.Environ(), "SKIP_INSTALL=1", "MCPEDGE_TOOLS_DIR="+toolsDir())
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		rel.err = cmd.Run()
		rel.output = buf.String()
	})
	if rel.err != nil {
		t.Fatalf("scripts/release.sh: %v\n%s", rel.err, rel.output)
	}
	return rel.dir
}

// gatewayBinary returns the release binary for goos/goarch (goarm "7"
// for linux/arm).
func gatewayBinary(t testing.TB, goos, goarch, goarm string) string {
	t.Helper()
	arch := goarch
	if goarch == "arm" {
		arch = "armv" + goarm
	}
	p := filepath.Join(release(t), "mcpedge-"+releaseVersion+"-"+goos+"-"+arch)
	if goos == "windows" {
		p += ".exe"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the release has no %s/%s binary: %v", goos, goarch, err)
	}
	return p
}

// hostBinary is the gateway for this machine.
func hostBinary(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skipf("the deployment tests run the linux/amd64 or linux/arm64 release binary; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	return gatewayBinary(t, "linux", runtime.GOARCH, "")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if rel.dir != "" {
		os.RemoveAll(rel.dir)
	}
	os.Exit(code)
}
