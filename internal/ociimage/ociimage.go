// Package ociimage assembles mcpedge's container image from cross-built
// binaries, without a container daemon, using go-containerregistry.
//
// The image is the one the repository's Dockerfile builds: an empty base
// (scratch), a first layer with the files a static binary needs (an
// /etc/passwd and /etc/group naming the unprivileged user, the CA bundle
// for outbound TLS, a default configuration, /data and /tmp), and a second
// layer with the binary at /mcpedge. The Dockerfile gets the first layer's
// files from [WriteRootFS], so both ways share one description of them;
// deploy/image_test.go checks that the Dockerfile's USER, ENTRYPOINT, CMD,
// EXPOSE, VOLUME, HEALTHCHECK and LABELs say what [Config] says.
//
// Nothing here is part of the gateway binary: it is used by
// deploy/mkimage (the release script's image step) and the tests.
package ociimage

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed layout. The Dockerfile uses the same values.
const (
	// UID and GID are the unprivileged user the gateway runs as (the
	// "nonroot" id of distroless images).
	UID = 65532
	GID = 65532
	// UserName is its name in /etc/passwd.
	UserName = "mcpedge"
	// BinaryPath is where the binary is, and the entrypoint.
	BinaryPath = "/mcpedge"
	// DataDir is server.data_dir in the default configuration and the
	// image's volume: the SQLite store, the queue, keys, the WASM cache.
	DataDir = "/data"
	// ConfigPath is the configuration the default command loads; mount
	// your own file (or a Kubernetes ConfigMap) over it.
	ConfigPath = "/etc/mcpedge/mcpedge.toml"
	// Port is the port the default configuration listens on.
	Port = "8080/tcp"
	// CABundlePath is where Go's crypto/x509 looks for roots on Linux.
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
)

// DefaultConfig is the configuration file in the image: listen on every
// interface (authentication stays "required", the default) and keep state
// in the volume. It names no upstream; a real deployment mounts its own.
const DefaultConfig = `# mcpedge in a container (docs/deploy.md). Mount your own file over
# /etc/mcpedge/mcpedge.toml; keep data_dir on the /data volume.
[server]
listen = "0.0.0.0:8080"
data_dir = "/data"
`

// Metadata is what the image says about the build, as OCI labels.
type Metadata struct {
	// Version is the release version (the binary's `mcpedge version`).
	Version string
	// Revision is the source revision (a git commit), "" if unknown.
	Revision string
	// Source is the repository URL, "" to leave the label out.
	Source string
	// Created is the build time, also every file's modification time and
	// the config's created time, so that one input gives one digest.
	// Zero means the Unix epoch.
	Created time.Time
}

// Labels returns the image's OCI annotation labels.
func (m Metadata) Labels() map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "mcpedge",
		"org.opencontainers.image.description": "A secure, observable gateway for Model Context Protocol servers",
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.created":     m.created().UTC().Format(time.RFC3339),
	}
	if m.Revision != "" {
		l["org.opencontainers.image.revision"] = m.Revision
	}
	if m.Source != "" {
		l["org.opencontainers.image.source"] = m.Source
	}
	return l
}

func (m Metadata) created() time.Time {
	if m.Created.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return m.Created.UTC()
}

// Config returns the image's runtime configuration: the user, entrypoint,
// default command, exposed port, volume, healthcheck and labels.
func Config(m Metadata) v1.Config {
	return v1.Config{
		User:         fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"serve", "--config", ConfigPath},
		WorkingDir:   DataDir,
		ExposedPorts: map[string]struct{}{Port: {}},
		Volumes:      map[string]struct{}{DataDir: {}},
		Labels:       m.Labels(),
		Healthcheck: &v1.HealthConfig{
			Test:        []string{"CMD", BinaryPath, "healthcheck"},
			Interval:    30 * time.Second,
			Timeout:     5 * time.Second,
			StartPeriod: 10 * time.Second,
			Retries:     3,
		},
		StopSignal: "SIGTERM",
	}
}

// File is one entry of the image's base layer.
type File struct {
	Path string // absolute, without a trailing slash
	Mode int64  // permission bits (and sticky), without the type
	Dir  bool
	UID  int
	GID  int
	Data []byte
}

// BaseFiles returns the base layer's entries, parents before children.
// caBundle is the PEM bundle of trusted roots (Debian's ca-certificates
// file on the build machine); it must hold at least one certificate.
func BaseFiles(caBundle []byte) ([]File, error) {
	if !bytes.Contains(caBundle, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, errors.New("ociimage: the CA bundle holds no PEM certificate")
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:mcpedge:%s:/sbin/nologin\n", UserName, UID, GID, DataDir)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", UserName, GID)
	return []File{
		{Path: "/etc", Dir: true, Mode: 0o755},
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(passwd)},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(group)},
		{Path: "/etc/mcpedge", Dir: true, Mode: 0o755},
		{Path: ConfigPath, Mode: 0o644, Data: []byte(DefaultConfig)},
		{Path: "/etc/ssl", Dir: true, Mode: 0o755},
		{Path: "/etc/ssl/certs", Dir: true, Mode: 0o755},
		{Path: CABundlePath, Mode: 0o644, Data: caBundle},
		{Path: DataDir, Dir: true, Mode: 0o700, UID: UID, GID: GID},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
	}, nil
}

// WriteRootFS writes the base files under dir, for the Dockerfile's build
// stage (which copies them into a scratch image). Ownership is left to
// the Dockerfile (COPY --chown for /data): a build stage may not run as
// root.
func WriteRootFS(dir string, caBundle []byte) error {
	files, err := BaseFiles(caBundle)
	if err != nil {
		return err
	}
	for _, f := range files {
		p := dir + f.Path
		if f.Dir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(p, os.FileMode(f.Mode&0o777)|stickyBit(f.Mode)); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, f.Data, os.FileMode(f.Mode)); err != nil {
			return err
		}
	}
	return nil
}

func stickyBit(mode int64) os.FileMode {
	if mode&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

// Binary is one platform's gateway binary.
type Binary struct {
	Platform v1.Platform
	// Path is the file to put at BinaryPath; it must be a static binary
	// for Platform (CGO_ENABLED=0).
	Path string
}

// Image assembles the image of one platform.
func Image(bin Binary, caBundle []byte, m Metadata) (v1.Image, error) {
	files, err := BaseFiles(caBundle)
	if err != nil {
		return nil, err
	}
	created := m.created()
	base, err := layer(files, created)
	if err != nil {
		return nil, err
	}
	exe, err := os.ReadFile(bin.Path)
	if err != nil {
		return nil, fmt.Errorf("ociimage: reading the binary: %w", err)
	}
	if err := checkExecutable(exe, bin.Platform); err != nil {
		return nil, fmt.Errorf("ociimage: %s: %w", bin.Path, err)
	}
	app, err := layer([]File{{Path: BinaryPath, Mode: 0o755, Data: exe}}, created)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "ociimage: passwd, group, CA bundle, default configuration, /data, /tmp", Comment: "base"}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "ociimage: " + BinaryPath, Comment: "mcpedge " + m.Version}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = bin.Platform.OS
	cf.Architecture = bin.Platform.Architecture
	cf.Variant = bin.Platform.Variant
	cf.Created = v1.Time{Time: created}
	cf.Config = Config(m)
	return mutate.ConfigFile(img, cf)
}

// Index assembles a multi-platform image index of one image per binary.
func Index(bins []Binary, caBundle []byte, m Metadata) (v1.ImageIndex, error) {
	if len(bins) == 0 {
		return nil, errors.New("ociimage: no binary")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, b := range bins {
		img, err := Image(b, caBundle, m)
		if err != nil {
			return nil, err
		}
		p := b.Platform
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.AppendManifests(idx, adds...), nil
}

// WriteLayout writes idx as an OCI image layout in dir (which must not
// exist or be empty), for `skopeo copy oci:DIR …`, `crane push` or a
// registry's import.
func WriteLayout(dir string, idx v1.ImageIndex) error {
	_, err := layout.Write(dir, idx)
	return err
}

// WriteTarball writes one image as a `docker load` tarball tagged ref
// (for example "mcpedge:1.2.3").
func WriteTarball(file, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("ociimage: bad image reference %q: %w", ref, err)
	}
	return tarball.WriteToFile(file, tag, img)
}

// elfMachines are the ELF machines of the platforms the image is built for.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM}

// checkExecutable refuses a binary that is not a static Linux executable
// for p: a scratch image has no dynamic loader and no libc.
func checkExecutable(exe []byte, p v1.Platform) error {
	if p.OS != "linux" {
		return fmt.Errorf("platform %s: the image is for linux only", p.OS)
	}
	want, ok := elfMachines[p.Architecture]
	if !ok {
		return fmt.Errorf("platform linux/%s: not one the image is built for (amd64, arm64, arm)", p.Architecture)
	}
	f, err := elf.NewFile(bytes.NewReader(exe))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("built for %s, not linux/%s", f.Machine, p.Architecture)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (build it with CGO_ENABLED=0)")
		}
	}
	return nil
}

// layer builds an uncompressed tar of files (sorted by path, times set to
// created, owners as given) and wraps it as a gzip layer.
func layer(files []File, created time.Time) (v1.Layer, error) {
	sorted := append([]File(nil), files...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range sorted {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("ociimage: bad path %q", f.Path)
		}
		h := &tar.Header{
			Name:    f.Path[1:],
			Mode:    f.Mode,
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: created,
			Format:  tar.FormatPAX,
		}
		if f.Dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// ParseBinary parses "os/arch[/variant]=path", as given on mkimage's
// command line, e.g. "linux/arm/v7=dist/mcpedge-linux-armv7".
func ParseBinary(s string) (Binary, error) {
	plat, file, ok := strings.Cut(s, "=")
	if !ok || file == "" {
		return Binary{}, fmt.Errorf("ociimage: %q: want os/arch[/variant]=path", s)
	}
	parts := strings.Split(plat, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Binary{}, fmt.Errorf("ociimage: platform %q: want os/arch or os/arch/variant", plat)
	}
	for _, p := range parts {
		if p == "" || strings.IndexFunc(p, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) >= 0 {
			return Binary{}, fmt.Errorf("ociimage: platform %q: each part must be lower-case letters and digits", plat)
		}
	}
	b := Binary{Platform: v1.Platform{OS: parts[0], Architecture: parts[1]}, Path: file}
	if len(parts) == 3 {
		b.Platform.Variant = parts[2]
	}
	if b.Platform.OS != "linux" {
		return Binary{}, fmt.Errorf("ociimage: platform %q: the image is for linux only", plat)
	}
	if _, ok := elfMachines[b.Platform.Architecture]; !ok {
		return Binary{}, fmt.Errorf("ociimage: platform %q: not one the image is built for (amd64, arm64, arm)", plat)
	}
	return b, nil
}
