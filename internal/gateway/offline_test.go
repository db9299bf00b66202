package gateway

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestDecodeSavedCatalog(t *testing.T) {
	good, _ := json.Marshal(savedCatalog{Version: savedCatalogVersion, Upstream: "ev", Init: &mcp.InitializeResult{ProtocolVersion: "2025-11-25"},
		Tools: []*mcp.Tool{{Name: "echo", InputSchema: map[string]any{"type": "object"}}}})
	cat, err := decodeSavedCatalog(good, "ev")
	if err != nil || len(cat.Tools) != 1 || cat.Tools[0].Name != "echo" || cat.Init == nil {
		t.Fatalf("good file: %+v %v", cat, err)
	}
	for _, tt := range []struct{ name, file, want string }{
		{"garbage", "{", "not a saved catalog"},
		{"other upstream", strings.Replace(string(good), `"upstream":"ev"`, `"upstream":"other"`, 1), `catalog of upstream "other"`},
		{"newer version", strings.Replace(string(good), `"version":1`, `"version":2`, 1), "version 2"},
		{"no init", `{"version":1,"upstream":"ev"}`, "no initialize result"},
		{"null tool", `{"version":1,"upstream":"ev","init":{},"tools":[null]}`, "null item"},
	} {
		if _, err := decodeSavedCatalog([]byte(tt.file), "ev"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func FuzzDecodeSavedCatalog(f *testing.F) {
	f.Add([]byte(`{"version":1,"upstream":"ev","init":{"protocolVersion":"2025-11-25"},"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}`))
	f.Add([]byte(`{"version":1,"upstream":"ev","init":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cat, err := decodeSavedCatalog(b, "ev")
		if err == nil && cat.Init == nil {
			t.Fatal("accepted a catalog without an initialize result")
		}
	})
}

// TestCatalogDirSetup: setting up the catalog store tightens a directory
// readable by others to 0700 (and logs it) and removes the temporary files
// of interrupted saves older than a minute, leaving fresh ones (a save in
// progress) and every other file alone.
func TestCatalogDirSetup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "catalogs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Minute)
	files := map[string]bool{ // name -> stays
		".ev-123.tmp":    false,
		".a-b-c-9.tmp":   false,
		".ev-456.tmp":    true, // fresh: a save may be writing it
		"ev.json":        true,
		"notes.tmp":      true,
		".ev-7.tmp.keep": true,
	}
	for name := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		if name != ".ev-456.tmp" {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	var logs bytes.Buffer
	cfg, err := config.Parse("t.toml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	g := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), telemetry.NewMetrics())
	g.SetCatalogDir(dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode %#o, want 0700", perm)
	}
	if !strings.Contains(logs.String(), "restricted to its owner") || !strings.Contains(logs.String(), "was=0755") {
		t.Errorf("the tightening was not logged: %s", logs.String())
	}
	for name, stays := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if exists := err == nil; exists != stays {
			t.Errorf("%s: exists %v, want %v", name, exists, stays)
		}
	}
	// A directory that is already private is left alone, silently.
	logs.Reset()
	g.SetCatalogDir(dir)
	if strings.Contains(logs.String(), "restricted") {
		t.Errorf("a 0700 directory was reported: %s", logs.String())
	}
	// A save still works and leaves no temporary file behind.
	cs := g.catalogs
	cs.pending["ev"] = []byte(`{"version":1,"upstream":"ev","init":{}}`)
	if err := cs.save("ev"); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".ev-*.tmp")); len(m) != 1 { // the fresh one only
		t.Errorf("temporary files after a save: %v", m)
	}
}
