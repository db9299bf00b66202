package ociimage

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/mcpedge/mcpedge/internal/config"
)

const testPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

var (
	helloOnce sync.Once
	helloPath string
	helloErr  error
)

// hello builds a tiny static linux/amd64 program to stand for the gateway
// (the real binary goes through the same code in deploy/image_test.go).
func hello(t *testing.T) string {
	t.Helper()
	helloOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ociimage-hello")
		if err != nil {
			helloErr = err
			return
		}
		src := filepath.Join(dir, "main.go")
		if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o600); err != nil {
			helloErr = err
			return
		}
		helloPath = filepath.Join(dir, "hello")
		cmd := exec.Command("go", "build", "-o", helloPath, src)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod", "GO111MODULE=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			helloErr = errors.New(string(out))
		}
	})
	if helloErr != nil {
		t.Fatalf("building the test binary: %v", helloErr)
	}
	return helloPath
}

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

func TestImage(t *testing.T) {
	m := Metadata{Version: "1.2.3", Revision: "abc123", Source: "https://example.com/mcpedge", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	img, err := Image(Binary{Platform: amd64, Path: hello(t)}, []byte(testPEM), m)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Equal(m.Created) {
		t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("User = %q", c.User)
	}
	if diff := cmp.Diff([]string{"/mcpedge"}, c.Entrypoint); diff != "" {
		t.Errorf("Entrypoint mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"serve", "--config", "/etc/mcpedge/mcpedge.toml"}, c.Cmd); diff != "" {
		t.Errorf("Cmd mismatch (-want +got):\n%s", diff)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("ExposedPorts = %v", c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 1 {
		t.Errorf("Volumes = %v", c.Volumes)
	}
	if c.Healthcheck == nil || !slices.Equal(c.Healthcheck.Test, []string{"CMD", "/mcpedge", "healthcheck"}) {
		t.Errorf("Healthcheck = %+v", c.Healthcheck)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  "1.2.3",
		"org.opencontainers.image.revision": "abc123",
		"org.opencontainers.image.source":   "https://example.com/mcpedge",
		"org.opencontainers.image.created":  "2026-01-02T03:04:05Z",
		"org.opencontainers.image.title":    "mcpedge",
	} {
		if c.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], want)
		}
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers = %d, %v; want 2", len(layers), err)
	}

	// The filesystem as a container runtime would lay it out.
	got := map[string]*tar.Header{}
	data := map[string]string{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(h.Name, "/")
		got[name] = h
		if h.Typeflag == tar.TypeReg && h.Size < 1<<16 {
			b, _ := io.ReadAll(tr)
			data[name] = string(b)
		}
	}
	check := func(p string, typ byte, mode int64, uid int) {
		t.Helper()
		h, ok := got[p]
		if !ok {
			t.Errorf("%s missing from the image", p)
			return
		}
		if h.Typeflag != typ || h.Mode != mode || h.Uid != uid || !h.ModTime.Equal(m.Created) {
			t.Errorf("%s: type %c mode %o uid %d mtime %v; want %c %o %d %v", p, h.Typeflag, h.Mode, h.Uid, h.ModTime, typ, mode, uid, m.Created)
		}
	}
	check("/mcpedge", tar.TypeReg, 0o755, 0)
	check("/data", tar.TypeDir, 0o700, UID)
	check("/tmp", tar.TypeDir, 0o1777, 0)
	check("/etc/passwd", tar.TypeReg, 0o644, 0)
	check(ConfigPath, tar.TypeReg, 0o644, 0)
	check(CABundlePath, tar.TypeReg, 0o644, 0)
	if !strings.Contains(data["/etc/passwd"], "mcpedge:x:65532:65532:") {
		t.Errorf("/etc/passwd = %q", data["/etc/passwd"])
	}
	if data[ConfigPath] != DefaultConfig || data[CABundlePath] != testPEM {
		t.Errorf("config or CA bundle differ: %q %q", data[ConfigPath], data[CABundlePath])
	}

	// One input, one digest.
	again, err := Image(Binary{Platform: amd64, Path: hello(t)}, []byte(testPEM), m)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same input: %s and %s", d1, d2)
	}
}

func TestImageRefusesUnfitBinaries(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "script")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		bin  Binary
		ca   string
		want string
	}{
		{"not ELF", Binary{Platform: amd64, Path: text}, testPEM, "not an ELF"},
		{"wrong architecture", Binary{Platform: v1.Platform{OS: "linux", Architecture: "arm64"}, Path: hello(t)}, testPEM, "not linux/arm64"},
		{"not linux", Binary{Platform: v1.Platform{OS: "darwin", Architecture: "arm64"}, Path: hello(t)}, testPEM, "linux only"},
		{"missing", Binary{Platform: amd64, Path: filepath.Join(dir, "nope")}, testPEM, "reading the binary"},
		{"no CA bundle", Binary{Platform: amd64, Path: hello(t)}, "", "no PEM certificate"},
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		// The shell of the build machine is dynamically linked.
		if sh, err := exec.LookPath("sh"); err == nil {
			if real, err := filepath.EvalSymlinks(sh); err == nil {
				tests = append(tests, struct {
					name string
					bin  Binary
					ca   string
					want string
				}{"dynamic", Binary{Platform: amd64, Path: real}, testPEM, "dynamically linked"})
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Image(tt.bin, []byte(tt.ca), Metadata{Version: "1"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Image = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestLayoutAndTarball(t *testing.T) {
	m := Metadata{Version: "1.2.3"}
	bins := []Binary{{Platform: amd64, Path: hello(t)}}
	idx, err := Index(bins, []byte(testPEM), m)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	if err := WriteLayout(dir, idx); err != nil {
		t.Fatal(err)
	}
	back, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := back.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Platform == nil || im.Manifests[0].Platform.Architecture != "amd64" {
		t.Fatalf("layout index: %+v %v", im, err)
	}
	fromLayout, err := back.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if cf, err := fromLayout.ConfigFile(); err != nil || cf.Config.User != "65532:65532" {
		t.Fatalf("image from the layout: %v %v", cf, err)
	}

	img, err := Image(bins[0], []byte(testPEM), m)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "image.tar")
	if err := WriteTarball(file, "mcpedge:1.2.3", img); err != nil {
		t.Fatal(err)
	}
	loaded, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.ConfigName()
	got, _ := loaded.ConfigName()
	if want != got {
		t.Errorf("tarball config %s, want %s", got, want)
	}
	if err := WriteTarball(file, "Not A Reference!", img); err == nil {
		t.Error("WriteTarball accepted a bad reference")
	}
	if _, err := Index(nil, []byte(testPEM), m); err == nil {
		t.Error("Index of no binary succeeded")
	}
}

func TestWriteRootFS(t *testing.T) {
	dir := t.TempDir()
	if err := WriteRootFS(dir, []byte(testPEM)); err != nil {
		t.Fatal(err)
	}
	files, _ := BaseFiles([]byte(testPEM))
	for _, f := range files {
		fi, err := os.Stat(dir + f.Path)
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		if fi.IsDir() != f.Dir || int64(fi.Mode().Perm()) != f.Mode&0o777 {
			t.Errorf("%s: dir %v mode %v, want dir %v mode %o", f.Path, fi.IsDir(), fi.Mode(), f.Dir, f.Mode)
		}
	}
	if fi, _ := os.Stat(dir + "/tmp"); fi.Mode()&os.ModeSticky == 0 {
		t.Error("/tmp is not sticky")
	}
	if err := WriteRootFS(dir, []byte("no pem")); err == nil {
		t.Error("WriteRootFS accepted a CA bundle without certificates")
	}
}

// The configuration baked into the image must be one the gateway accepts.
func TestDefaultConfigIsValid(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mcpedge.toml")
	if err := os.WriteFile(p, []byte(DefaultConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatalf("the image's default configuration: %v", err)
	}
	if cfg.Server.Listen != "0.0.0.0:8080" || cfg.Server.DataDir != DataDir || cfg.Auth.Mode != config.AuthRequired {
		t.Errorf("listen %q data_dir %q auth %q", cfg.Server.Listen, cfg.Server.DataDir, cfg.Auth.Mode)
	}
	if Port != "8080/tcp" {
		t.Errorf("Port %q does not match the default listen address", Port)
	}
}

func TestParseBinary(t *testing.T) {
	tests := []struct {
		in      string
		want    Binary
		wantErr string
	}{
		{in: "linux/amd64=dist/a", want: Binary{Platform: amd64, Path: "dist/a"}},
		{in: "linux/arm/v7=b=c", want: Binary{Platform: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, Path: "b=c"}},
		{in: "linux/amd64", wantErr: "want os/arch"},
		{in: "linux/amd64=", wantErr: "want os/arch"},
		{in: "linux=a", wantErr: "want os/arch or"},
		{in: "linux/arm/v7/x=a", wantErr: "want os/arch or"},
		{in: "linux//v7=a", wantErr: "lower-case"},
		{in: "Linux/amd64=a", wantErr: "lower-case"},
		{in: "windows/amd64=a", wantErr: "linux only"},
		{in: "linux/riscv64=a", wantErr: "not one the image"},
	}
	for _, tt := range tests {
		got, err := ParseBinary(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseBinary(%q) = %v, want error %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseBinary(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseBinary(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func FuzzParseBinary(f *testing.F) {
	for _, s := range []string{"linux/amd64=a", "linux/arm/v7=dist/x", "=", "linux/=", "a/b/c/d=e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBinary(s)
		if err != nil {
			return
		}
		if b.Path == "" || b.Platform.OS != "linux" || elfMachines[b.Platform.Architecture] == 0 {
			t.Fatalf("ParseBinary(%q) = %+v: accepted an unusable binary", s, b)
		}
	})
}
