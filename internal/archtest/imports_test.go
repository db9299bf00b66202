// Package archtest turns the data plane's layering rules into a test: it
// reads every package's imports (go/build) and fails on an import that
// breaks them. The rules are in docs/architecture.md ("Layers").
package archtest

import (
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/mcpedge/mcpedge/"

// pkg is one package of the module with its non-test imports of the
// module's own packages (relative to the module, e.g. "internal/audit").
type pkg struct {
	path    string
	imports []string
}

func modulePackages(t *testing.T) []pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var out []pkg
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
			return filepath.SkipDir
		}
		bp, err := build.Default.ImportDir(p, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel(root, p)
		var own []string
		for _, imp := range bp.Imports {
			if strings.HasPrefix(imp, module) {
				own = append(own, strings.TrimPrefix(imp, module))
			}
		}
		out = append(out, pkg{path: filepath.ToSlash(rel), imports: own})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("found only %d packages under %s", len(out), root)
	}
	return out
}

func TestDataPlaneLayers(t *testing.T) {
	pkgs := modulePackages(t)
	var stages int
	for _, p := range pkgs {
		switch {
		case p.path == "internal/pipeline" || p.path == "internal/mcpwire" || p.path == "internal/httpedge":
			// The spine and the wire types import no other package of
			// ours but the principal's type.
			for _, imp := range p.imports {
				if imp != "internal/principal" && imp != "internal/mcpwire" {
					t.Errorf("%s imports %s: it may import only internal/principal and internal/mcpwire", p.path, imp)
				}
			}
		case p.path == "internal/pin":
			// Tool pinning decides on a catalog it is given: it knows the
			// store, the canonical JSON and the store loop (which imports
			// nothing of ours), not the gateway, the upstreams or the
			// configuration.
			for _, imp := range p.imports {
				if imp != "internal/store" && imp != "internal/canonjson" && imp != "internal/storeloop" {
					t.Errorf("%s imports %s: it may import only internal/store, internal/canonjson and internal/storeloop", p.path, imp)
				}
			}
		case p.path == "internal/storeloop":
			for _, imp := range p.imports {
				t.Errorf("%s imports %s: it imports no package of ours", p.path, imp)
			}
		case strings.HasPrefix(p.path, "internal/stage/"):
			stages++
			// A stage imports the pipeline and its own service, never the
			// gateway, another stage, or what builds the data plane.
			for _, imp := range p.imports {
				if strings.HasPrefix(imp, "internal/stage/") || imp == "internal/gateway" || imp == "internal/tenancy" || strings.HasPrefix(imp, "cmd/") {
					t.Errorf("%s imports %s: a stage may import only internal/pipeline, internal/mcpwire and its own service", p.path, imp)
				}
			}
			if !slices.Contains(p.imports, "internal/pipeline") {
				t.Errorf("%s does not import internal/pipeline: is it a stage?", p.path)
			}
		}
		// No package imports the gateway's core just for a type: only the
		// wiring (cmd), the queue's adapter to it and tests may.
		if slices.Contains(p.imports, "internal/gateway") && !slices.Contains(allowedGatewayImporters(), p.path) {
			t.Errorf("%s imports internal/gateway; put the types it needs in a package of their own (internal/httpedge, internal/principal, internal/mcpwire, a stage)", p.path)
		}
	}
	if stages < 2 {
		t.Errorf("found %d stage packages", stages)
	}
}

// allowedGatewayImporters are the packages that use the gateway itself,
// not just a type of it.
func allowedGatewayImporters() []string {
	return []string{
		"cmd/mcpedge",
		"internal/deferq", // the offline queue delivers through Gateway.CallUpstream
		"internal/e2e",
		"bench",
		"bench/cmd/gwprof",
		"bench/cmd/mcpbench",
		"bench/internal/fixture",
	}
}
