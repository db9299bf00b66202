package deploy_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestReleaseArtifacts checks what scripts/release.sh wrote: the binaries
// (stamped, stripped, static, built with -trimpath), checksums that
// verify, a CycloneDX SBOM of the binary's modules, and the image.
func TestReleaseArtifacts(t *testing.T) {
	dir := release(t)
	root := repoRoot(t)

	// Checksums: every artifact listed, every line verifies.
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(sums)))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q is not sha256sum's format", sc.Text())
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("SHA256SUMS names %s: %v", name, err)
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: checksum does not match SHA256SUMS", name)
		}
		listed[name] = true
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "mcpedge-") && !listed[e.Name()] {
			t.Errorf("%s is not in SHA256SUMS", e.Name())
		}
	}

	// Binaries.
	type target struct{ goos, goarch, file string }
	targets := []target{
		{"linux", "amd64", "mcpedge-" + releaseVersion + "-linux-amd64"},
		{"linux", "arm64", "mcpedge-" + releaseVersion + "-linux-arm64"},
		{"linux", "arm", "mcpedge-" + releaseVersion + "-linux-armv7"},
	}
	if os.Getenv("MCPEDGE_TEST_RELEASE") == "all" {
		targets = append(targets,
			target{"darwin", "amd64", "mcpedge-" + releaseVersion + "-darwin-amd64"},
			target{"darwin", "arm64", "mcpedge-" + releaseVersion + "-darwin-arm64"},
			target{"windows", "amd64", "mcpedge-" + releaseVersion + "-windows-amd64.exe"})
	} else {
		t.Log("darwin and windows builds not run: set MCPEDGE_TEST_RELEASE=all")
	}
	for _, tg := range targets {
		p := filepath.Join(dir, tg.file)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s/%s: %v", tg.goos, tg.goarch, err)
			continue
		}
		if strings.Contains(string(b), root) {
			t.Errorf("%s holds the build directory %s: not built with -trimpath", tg.file, root)
		}
		if !strings.Contains(string(b), releaseVersion) {
			t.Errorf("%s does not hold its version %s", tg.file, releaseVersion)
		}
		// A reachable text/template executor (cobra's version and usage
		// templates, or html/template anywhere) makes the linker keep
		// every exported method of every type put in an interface: about
		// 10 MB more (docs/benchmarks.md, "Footprint"). Function names
		// stay in a stripped binary (for stack traces), so its executor
		// shows. The console writes its pages without templates.
		if strings.Contains(string(b), "text/template.(*state).evalCall") {
			t.Errorf("%s links text/template's executor: something executes a template (html/template, cobra's Set…Template?)", tg.file)
		}
		switch tg.goos {
		case "linux":
			f, err := elf.Open(p)
			if err != nil {
				t.Errorf("%s: %v", tg.file, err)
				continue
			}
			want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM}[tg.goarch]
			if f.Machine != want {
				t.Errorf("%s: machine %s, want %s", tg.file, f.Machine, want)
			}
			if f.Section(".symtab") != nil {
				t.Errorf("%s: has a symbol table (not stripped)", tg.file)
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Errorf("%s: dynamically linked", tg.file)
				}
			}
			f.Close()
		case "darwin":
			f, err := macho.Open(p)
			if err != nil {
				t.Errorf("%s: %v", tg.file, err)
				continue
			}
			want := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[tg.goarch]
			if f.Cpu != want {
				t.Errorf("%s: cpu %s, want %s", tg.file, f.Cpu, want)
			}
			f.Close()
		case "windows":
			f, err := pe.Open(p)
			if err != nil {
				t.Errorf("%s: %v", tg.file, err)
				continue
			}
			if f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
				t.Errorf("%s: machine %#x, want amd64", tg.file, f.Machine)
			}
			f.Close()
		}
	}
	out, err := exec.Command(hostBinary(t), "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "mcpedge "+releaseVersion {
		t.Errorf("mcpedge --version = %q, %v; want %q", out, err, "mcpedge "+releaseVersion)
	}

	t.Run("sbom", func(t *testing.T) {
		if !rel.sbom {
			missing(t, "cyclonedx-gomod", "scripts/test.sh builds it")
		}
		for _, tg := range targets {
			checkSBOM(t, filepath.Join(dir, strings.TrimSuffix(tg.file, ".exe")+".cdx.json"))
		}
	})

	t.Run("image", func(t *testing.T) {
		oci := t.TempDir()
		tarball := filepath.Join(dir, "mcpedge-"+releaseVersion+"-oci.tar")
		if out, err := exec.Command("tar", "-xf", tarball, "-C", oci).CombinedOutput(); err != nil {
			t.Fatalf("untar %s: %v\n%s", tarball, err, out)
		}
		idx, err := layout.ImageIndexFromPath(oci)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var platforms []string
		for _, d := range im.Manifests {
			p := d.Platform.OS + "/" + d.Platform.Architecture
			if d.Platform.Variant != "" {
				p += "/" + d.Platform.Variant
			}
			platforms = append(platforms, p)
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Config.Labels["org.opencontainers.image.version"] != releaseVersion || cf.Config.User != "65532:65532" {
				t.Errorf("%s: labels %v user %q", p, cf.Config.Labels, cf.Config.User)
			}
			if cf.Variant != d.Platform.Variant {
				t.Errorf("%s: config variant %q", p, cf.Variant)
			}
		}
		if want := []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}; !slices.Equal(platforms, want) {
			t.Errorf("image platforms %v, want %v", platforms, want)
		}
	})
}

// checkSBOM checks a CycloneDX SBOM: its format, the component it
// describes, and that it lists the modules compiled into the binary, and
// no module only the tests use.
func checkSBOM(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var bom struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Component struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"component"`
		} `json:"metadata"`
		Components []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			PURL    string `json:"purl"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &bom); err != nil {
		t.Fatalf("SBOM: %v", err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" {
		t.Errorf("SBOM format %q %q", bom.BOMFormat, bom.SpecVersion)
	}
	if !strings.Contains(bom.Metadata.Component.Name, "mcpedge") || bom.Metadata.Component.Type != "application" {
		t.Errorf("SBOM describes %+v, want the mcpedge application", bom.Metadata.Component)
	}
	purls := map[string]bool{}
	for _, c := range bom.Components {
		purls[c.PURL] = true
	}
	mod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"github.com/modelcontextprotocol/go-sdk", "github.com/jackc/pgx/v5", "modernc.org/sqlite", "github.com/prometheus/client_golang"} {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(path) + ` (v\S+)`).FindSubmatch(mod)
		if m == nil {
			t.Fatalf("go.mod does not require %s", path)
		}
		want := "pkg:golang/" + path + "@" + string(m[1]) + "?"
		found := false
		for p := range purls {
			found = found || strings.HasPrefix(p, want)
		}
		if !found {
			t.Errorf("%s: SBOM lacks %s…", filepath.Base(file), want)
		}
	}
	for p := range purls {
		for _, testOnly := range []string{"k8s.io/", "github.com/google/go-containerregistry", "github.com/prometheus-operator/"} {
			if strings.Contains(p, testOnly) {
				t.Errorf("SBOM lists %s, which is not in the binary", p)
			}
		}
	}
}

// TestReleaseUnderEmulation runs the linux/arm64 and armv7 release
// binaries under qemu-user: their version, and a first MCP session (list
// the tools, call the built-in lattice engine and the status tool).
func TestReleaseUnderEmulation(t *testing.T) {
	for _, tc := range []struct{ name, goarch, goarm, qemu string }{
		{"arm64", "arm64", "", "qemu-aarch64-static"},
		{"armv7", "arm", "7", "qemu-arm-static"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qemu := lookTool(t, tc.qemu, "apt-get install qemu-user-static")
			bin := gatewayBinary(t, "linux", tc.goarch, tc.goarm)
			out, err := exec.Command(qemu, bin, "--version").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "mcpedge "+releaseVersion {
				t.Fatalf("%s version = %q, %v", tc.name, out, err)
			}
			// Emulation is slow: give the first start (store, migrations) time.
			g := startGateway(t, []string{qemu}, bin, "[server]\nlog_level = \"warn\"\n", 3*time.Minute)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cs := g.connect(t, ctx)
			// The built-in lattice upstream connects on its own after the
			// gateway listens (and tells clients with list_changed): under
			// emulation on a busy machine that can be after the first list.
			var names []string
			lattice := ""
			for lattice == "" || !slices.Contains(names, "mcpedge__status") {
				tools, err := cs.ListTools(ctx, nil)
				if err != nil {
					t.Fatalf("tools/list: %v (last list: %v)", err, names)
				}
				names = names[:0]
				for _, tl := range tools.Tools {
					names = append(names, tl.Name)
					if strings.HasSuffix(tl.Name, "lattice_list") {
						lattice = tl.Name
					}
				}
				if lattice == "" && ctx.Err() == nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				break
			}
			if lattice == "" || !slices.Contains(names, "mcpedge__status") {
				t.Fatalf("tools %v: want the lattice engine and mcpedge__status", names)
			}
			for _, name := range []string{lattice, "mcpedge__status"} {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{}})
				if err != nil || res.IsError {
					t.Fatalf("tools/call %s: %v %+v", name, err, res)
				}
			}
			if out, err := exec.Command(qemu, bin, "healthcheck", "--url", g.URL+"/healthz").CombinedOutput(); err != nil {
				t.Errorf("healthcheck under emulation: %v\n%s", err, out)
			}
		})
	}
}
