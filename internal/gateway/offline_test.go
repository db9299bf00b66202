package gateway

import (
	"encoding/json"
	"strings"
	"testing"

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
