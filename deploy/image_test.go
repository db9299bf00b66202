package deploy_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/mcpedge/mcpedge/internal/ociimage"
)

// caBundle is the build machine's CA bundle, which mkimage puts in the
// image (Debian's ca-certificates).
func caBundle(t *testing.T) string {
	t.Helper()
	const p = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(p); err != nil {
		missing(t, p, "apt-get install ca-certificates")
	}
	return p
}

// runMkimage runs deploy/mkimage as the release script does.
func runMkimage(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", "./deploy/mkimage"}, args...)...)
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkimage %v: %v\n%s", args, err, out)
	}
}

// imageFiles reads an image's flattened filesystem: headers and the
// contents of regular files.
func imageFiles(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(h.Name, "/")
		hdrs[name] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			data[name] = b
		}
	}
}

// TestImageBuiltWithoutDaemon builds the multi-platform image from the
// real cross-built gateway with deploy/mkimage, reads it back as a
// registry or `docker load` would, checks its configuration and files,
// and runs the binary and the configuration taken out of it.
func TestImageBuiltWithoutDaemon(t *testing.T) {
	ca := caBundle(t)
	amd64 := gatewayBinary(t, "linux", "amd64", "")
	arm64 := gatewayBinary(t, "linux", "arm64", "")
	out := t.TempDir()
	layoutDir := filepath.Join(out, "oci")
	tarFile := filepath.Join(out, "mcpedge-amd64.tar")
	runMkimage(t, "build", "--version", "9.8.7-test", "--revision", "0123abc", "--created", "2026-12-01T00:00:00Z",
		"--ca-bundle", ca, "--layout", layoutDir, "--tarball", tarFile, "--tag", "mcpedge:9.8.7-test",
		"linux/amd64="+amd64, "linux/arm64="+arm64)

	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		platforms = append(platforms, d.Platform.OS+"/"+d.Platform.Architecture)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"linux/amd64": amd64, "linux/arm64": arm64}[platforms[len(platforms)-1]]
		checkImage(t, img, *d.Platform, want)
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, platforms); diff != "" {
		t.Errorf("platforms mismatch (-want +got):\n%s", diff)
	}

	// The docker-load tarball holds the amd64 image.
	img, err := tarball.ImageFromPath(tarFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, v1.Platform{OS: "linux", Architecture: "amd64"}, amd64)
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tarFile) })
	if err != nil || len(m) != 1 || !slices.Contains(m[0].RepoTags, "mcpedge:9.8.7-test") {
		t.Errorf("tarball manifest %+v, %v: want the tag mcpedge:9.8.7-test", m, err)
	}

	// The binary and configuration taken out of the image work: the
	// default configuration passes `config check`, and the healthcheck
	// the image runs answers for a live gateway and fails for a dead one.
	_, files := imageFiles(t, img)
	dir := t.TempDir()
	bin := filepath.Join(dir, "mcpedge")
	if err := os.WriteFile(bin, files["/mcpedge"], 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mcpedge.toml")
	if err := os.WriteFile(cfg, files[ociimage.ConfigPath], 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "config", "check", "--config", cfg).CombinedOutput(); err != nil {
		t.Errorf("config check of the image's configuration: %v\n%s", err, out)
	}
	g := startGateway(t, nil, bin, "[server]\nlog_level = \"warn\"\n", 30*time.Second)
	if out, err := exec.Command(bin, "healthcheck", "--url", g.URL+"/healthz").CombinedOutput(); err != nil {
		t.Errorf("healthcheck of a live gateway: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "healthcheck", "--url", g.URL+"/nothing-here").CombinedOutput(); err == nil {
		t.Errorf("healthcheck of a 404 succeeded: %s", out)
	}
	_ = g.cmd.Process.Kill()
	_ = g.cmd.Wait()
	out2, err := exec.Command(bin, "healthcheck", "--url", g.URL+"/healthz", "--timeout", "2s").CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Errorf("healthcheck of a stopped gateway: exit %d, want 1: %s", code, out2)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func checkImage(t *testing.T, img v1.Image, p v1.Platform, binary string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture {
		t.Errorf("config platform %s/%s, want %s/%s", cf.OS, cf.Architecture, p.OS, p.Architecture)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("%s: user %q, want the unprivileged 65532:65532", p.Architecture, c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/mcpedge"}) || !slices.Equal(c.Cmd, []string{"serve", "--config", "/etc/mcpedge/mcpedge.toml"}) {
		t.Errorf("%s: entrypoint %q cmd %q", p.Architecture, c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("%s: exposed ports %v, want 8080/tcp", p.Architecture, c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("%s: volumes %v, want /data", p.Architecture, c.Volumes)
	}
	if c.Healthcheck == nil || !slices.Equal(c.Healthcheck.Test, []string{"CMD", "/mcpedge", "healthcheck"}) {
		t.Errorf("%s: healthcheck %+v", p.Architecture, c.Healthcheck)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  "9.8.7-test",
		"org.opencontainers.image.revision": "0123abc",
		"org.opencontainers.image.created":  "2026-12-01T00:00:00Z",
		"org.opencontainers.image.title":    "mcpedge",
	} {
		if c.Labels[k] != want {
			t.Errorf("%s: label %s = %q, want %q", p.Architecture, k, c.Labels[k], want)
		}
	}
	hdrs, files := imageFiles(t, img)
	want, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(files["/mcpedge"]) != sha256.Sum256(want) || hdrs["/mcpedge"].Mode != 0o755 {
		t.Errorf("%s: /mcpedge is not the binary given, or not executable", p.Architecture)
	}
	if h := hdrs["/data"]; h == nil || h.Uid != 65532 || h.Mode != 0o700 {
		t.Errorf("%s: /data %+v, want a directory of 65532 with mode 0700", p.Architecture, h)
	}
	if !bytes.Contains(files["/etc/passwd"], []byte(":65532:65532:")) {
		t.Errorf("%s: /etc/passwd does not name the user 65532", p.Architecture)
	}
	if len(files[ociimage.CABundlePath]) == 0 {
		t.Errorf("%s: no CA bundle", p.Architecture)
	}
}

// dockerfileStage returns the instructions of the Dockerfile's last
// stage, continuation lines joined, as (keyword, rest) pairs.
func dockerfileStage(t *testing.T) (all, last [][2]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var joined []string
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		joined = append(joined, cur+trimmed)
		cur = ""
	}
	for _, l := range joined {
		kw, rest, _ := strings.Cut(l, " ")
		ins := [2]string{strings.ToUpper(kw), strings.TrimSpace(rest)}
		all = append(all, ins)
		if ins[0] == "FROM" {
			last = nil
		}
		last = append(last, ins)
	}
	return all, last
}

// TestDockerfileMatchesImage checks that the Dockerfile builds the image
// deploy/mkimage builds: same base (scratch), files (mkimage rootfs),
// user, entrypoint, command, port, volume, healthcheck and labels.
func TestDockerfileMatchesImage(t *testing.T) {
	all, final := dockerfileStage(t)
	cfg := ociimage.Config(ociimage.Metadata{Version: "${VERSION}"})
	got := map[string][]string{}
	for _, ins := range final {
		got[ins[0]] = append(got[ins[0]], ins[1])
	}
	jsonArray := func(s string) []string {
		var a []string
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			t.Errorf("%q is not an exec-form JSON array: %v", s, err)
		}
		return a
	}
	one := func(kw string) string {
		if len(got[kw]) != 1 {
			t.Errorf("the final stage has %d %s instructions, want 1", len(got[kw]), kw)
			return ""
		}
		return got[kw][0]
	}
	if one("FROM") != "scratch" {
		t.Errorf("final stage FROM %q, want scratch", one("FROM"))
	}
	if one("USER") != cfg.User {
		t.Errorf("USER %q, image %q", one("USER"), cfg.User)
	}
	if diff := cmp.Diff(cfg.Entrypoint, jsonArray(one("ENTRYPOINT"))); diff != "" {
		t.Errorf("ENTRYPOINT mismatch (-image +Dockerfile):\n%s", diff)
	}
	if diff := cmp.Diff(cfg.Cmd, jsonArray(one("CMD"))); diff != "" {
		t.Errorf("CMD mismatch (-image +Dockerfile):\n%s", diff)
	}
	if _, ok := cfg.ExposedPorts[one("EXPOSE")]; !ok || len(cfg.ExposedPorts) != 1 {
		t.Errorf("EXPOSE %q, image %v", one("EXPOSE"), cfg.ExposedPorts)
	}
	if vols := jsonArray(one("VOLUME")); len(vols) != 1 || vols[0] != ociimage.DataDir {
		t.Errorf("VOLUME %q, want [%q]", vols, ociimage.DataDir)
	}
	if one("WORKDIR") != cfg.WorkingDir || one("STOPSIGNAL") != cfg.StopSignal {
		t.Errorf("WORKDIR %q STOPSIGNAL %q, image %q %q", one("WORKDIR"), one("STOPSIGNAL"), cfg.WorkingDir, cfg.StopSignal)
	}
	if len(got["ENV"]) != 0 || len(cfg.Env) != 0 {
		t.Errorf("ENV %q, image %q: neither sets an environment (the configuration file says everything)", got["ENV"], cfg.Env)
	}
	hc := one("HEALTHCHECK")
	hcRE := regexp.MustCompile(`^--interval=(\S+) --timeout=(\S+) --start-period=(\S+) --retries=(\d+) CMD (\[.*\])$`)
	if m := hcRE.FindStringSubmatch(hc); m == nil {
		t.Errorf("HEALTHCHECK %q: want --interval --timeout --start-period --retries CMD [...]", hc)
	} else {
		h := cfg.Healthcheck
		for i, d := range []time.Duration{h.Interval, h.Timeout, h.StartPeriod} {
			if parsed, err := time.ParseDuration(m[i+1]); err != nil || parsed != d {
				t.Errorf("HEALTHCHECK option %d = %s, image %s", i, m[i+1], d)
			}
		}
		if m[4] != "3" || h.Retries != 3 {
			t.Errorf("HEALTHCHECK retries %s, image %d", m[4], h.Retries)
		}
		if diff := cmp.Diff(h.Test[1:], jsonArray(m[5])); diff != "" {
			t.Errorf("HEALTHCHECK command mismatch (-image +Dockerfile):\n%s", diff)
		}
	}
	labels := map[string]string{}
	labelRE := regexp.MustCompile(`([a-z.]+)="([^"]*)"`)
	for _, l := range got["LABEL"] {
		for _, m := range labelRE.FindAllStringSubmatch(l, -1) {
			labels[m[1]] = m[2]
		}
	}
	for k, v := range cfg.Labels {
		if k == "org.opencontainers.image.created" {
			continue // the builder's time; docker sets its own
		}
		if labels[k] != v {
			t.Errorf("LABEL %s = %q, image %q", k, labels[k], v)
		}
	}
	// The files: mkimage's rootfs, /data given to the user, the binary.
	copies := strings.Join(got["COPY"], "\n")
	for _, want := range []string{"--from=build /rootfs/ /", "--from=build --chown=65532:65532 /rootfs/data /data", "--from=build /out/mcpedge /mcpedge"} {
		if !strings.Contains(copies, want) {
			t.Errorf("final stage lacks COPY %s", want)
		}
	}
	var build string
	for _, ins := range all {
		if ins[0] == "RUN" {
			build += ins[1] + "\n"
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "go run ./deploy/mkimage rootfs /rootfs"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build stage does not run %q", want)
		}
	}
	// The Go version the image is built with is the module's.
	mod, _ := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	goVer := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if goVer == nil || !slices.Contains(all, [2]string{"ARG", "GO_VERSION=" + string(goVer[1])}) {
		t.Errorf("Dockerfile ARG GO_VERSION is not go.mod's go %s", goVer)
	}
}
