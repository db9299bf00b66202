package admin

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/mcpedge/mcpedge/internal/latticesvc"
)

// adminDoc describes the admin and auth endpoints; the lattice API's
// document is merged into it (see mergeDocs), so /api/openapi.json
// describes everything under /api in one document.
//
//go:embed openapi.json
var adminDoc []byte

var merged = sync.OnceValues(func() ([]byte, error) {
	b, err := mergeDocs(adminDoc, latticesvc.OpenAPIDocument())
	if err != nil {
		return nil, err
	}
	return mergeDocs(b, hub.OpenAPIDocument())
})

// OpenAPIDocument returns the OpenAPI 3.1 document of everything
// [Handler] serves. It panics if the embedded documents do not merge,
// which a test rules out.
func OpenAPIDocument() []byte {
	b, err := merged()
	if err != nil {
		panic("admin: " + err.Error())
	}
	return b
}

// mergeDocs adds the lattice document's paths and components to the admin
// document. Its own /api/openapi.json and info give way to the admin
// document's; every lattice operation also answers 401 here (Handler
// requires a principal). A component of the same name must be identical
// in both; any other clash is an error.
func mergeDocs(base, lattice []byte) ([]byte, error) {
	var doc, lat map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	if err := json.Unmarshal(lattice, &lat); err != nil {
		return nil, fmt.Errorf("lattice openapi.json: %w", err)
	}
	paths, _ := doc["paths"].(map[string]any)
	lpaths, _ := lat["paths"].(map[string]any)
	if paths == nil || lpaths == nil {
		return nil, fmt.Errorf("a document has no paths")
	}
	for p, item := range lpaths {
		if p == "/api/openapi.json" {
			continue
		}
		if _, dup := paths[p]; dup {
			return nil, fmt.Errorf("path %s is in both documents", p)
		}
		ops, _ := item.(map[string]any)
		for method, o := range ops {
			if method == "parameters" {
				continue
			}
			if om, ok := o.(map[string]any); ok {
				if rs, ok := om["responses"].(map[string]any); ok {
					if _, has := rs["401"]; !has {
						rs["401"] = map[string]any{"$ref": "#/components/responses/Unauthenticated"}
					}
				}
			}
		}
		paths[p] = item
	}
	comps, _ := doc["components"].(map[string]any)
	lcomps, _ := lat["components"].(map[string]any)
	for kind, lv := range lcomps {
		lm, _ := lv.(map[string]any)
		m, _ := comps[kind].(map[string]any)
		if m == nil {
			m = map[string]any{}
			comps[kind] = m
		}
		for name, c := range lm {
			if have, dup := m[name]; dup {
				if !reflect.DeepEqual(have, c) {
					return nil, fmt.Errorf("components/%s/%s differs between the admin and lattice documents", kind, name)
				}
				continue
			}
			m[name] = c
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
