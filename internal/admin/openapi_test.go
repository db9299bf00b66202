package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/mcpedge/mcpedge/internal/latticesvc"
)

// TestOpenAPIDocument: the merged document is OpenAPI 3.1, every $ref
// resolves, every component schema compiles, every request example
// matches its schema, and it has all of the lattice API.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadDoc(t)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi %v", doc["openapi"])
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				if r := doc.deref(x); r == nil || fmt.Sprint(r) == fmt.Sprint(x) {
					t.Errorf("unresolved $ref %s", ref)
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(map[string]any(doc))
	for name, s := range doc["components"].(map[string]any)["schemas"].(map[string]any) {
		_ = name
		doc.resolved(t, doc.inline(s))
	}
	for path, item := range doc["paths"].(map[string]any) {
		for method, o := range item.(map[string]any) {
			om, ok := o.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			if om["operationId"] == nil || om["summary"] == nil {
				t.Errorf("%s %s: no operationId or summary", method, path)
			}
			rb, ok := om["requestBody"].(map[string]any)
			if !ok {
				continue
			}
			media := rb["content"].(map[string]any)["application/json"].(map[string]any)
			ex, _ := media["examples"].(map[string]any)
			if len(ex) == 0 {
				t.Errorf("%s %s: a request body without examples", method, path)
			}
			rs := doc.resolved(t, doc.inline(media["schema"]))
			for name, e := range ex {
				if err := rs.Validate(e.(map[string]any)["value"]); err != nil {
					t.Errorf("%s %s example %s does not match its schema: %v", method, path, name, err)
				}
			}
		}
	}
	// All of the lattice document's paths are in.
	var lat apiDoc
	if err := json.Unmarshal(latticesvc.OpenAPIDocument(), &lat); err != nil {
		t.Fatal(err)
	}
	for p := range lat["paths"].(map[string]any) {
		if doc["paths"].(map[string]any)[p] == nil {
			t.Errorf("lattice path %s is missing", p)
		}
	}
	if !bytes.Equal(OpenAPIDocument(), OpenAPIDocument()) {
		t.Error("the document is not stable")
	}
}

// TestMergeClash: the merge refuses components that differ.
func TestMergeClash(t *testing.T) {
	a := `{"paths": {"/a": {}}, "components": {"schemas": {"Error": {"type": "object"}}}}`
	b := `{"paths": {"/b": {}}, "components": {"schemas": {"Error": {"type": "string"}}}}`
	if _, err := mergeDocs([]byte(a), []byte(b)); err == nil || !strings.Contains(err.Error(), "Error") {
		t.Errorf("clash: %v", err)
	}
	c := `{"paths": {"/a": {}}, "components": {}}`
	if _, err := mergeDocs([]byte(a), []byte(c)); err == nil {
		t.Error("a path in both documents was accepted")
	}
}

var paramRE = regexp.MustCompile(`\{[a-z]+\}`)

// TestOpenAPIMatchesRoutes: every documented path and method is served,
// by the route the document names, and every admin route is documented.
// The lattice and auth routes are served by their own packages; the
// document must have each of theirs, and nothing else under their prefixes
// is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, nil)
	documented := map[string]bool{}
	for path, item := range e.doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			if method != "parameters" {
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	for _, r := range routes {
		if !documented[r.method+" "+r.pattern] {
			t.Errorf("route %s %s is not in the document", r.method, r.pattern)
		}
	}
	keys := make([]string, 0, len(documented))
	for k := range documented {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		method, path, _ := strings.Cut(k, " ")
		concrete := paramRE.ReplaceAllString(path, "x")
		_, pattern := e.h.mux.Handler(httptest.NewRequest(method, concrete, nil))
		switch {
		case hub.Owns(path):
			if !slices.Contains(hubPatterns, pattern) {
				t.Errorf("documented %s is not forwarded to the hub API (%q)", k, pattern)
			}
		case strings.HasPrefix(path, "/api/lattices"):
			if pattern != latticeRoot && pattern != latticeSubtree {
				t.Errorf("documented %s is not forwarded to the lattice API (%q)", k, pattern)
			}
		case pattern != k:
			t.Errorf("documented %s is served by %q", k, pattern)
		}
	}
	// Under /api/auth/ only the documented endpoints answer.
	for _, p := range []string{"/api/auth/token", "/api/auth/me", "/api/auth/keys", "/api/auth/users", "/api/auth/revoke", "/api/auth/login/x", "/api/auth"} {
		for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
			if _, pattern := e.h.mux.Handler(httptest.NewRequest(m, p, nil)); pattern != "" {
				t.Errorf("%s %s is served by %q but not documented", m, p, pattern)
			}
		}
	}
	// The document served is the merged one.
	r := e.do(nil, "GET", "/api/openapi.json", nil)
	if r.status != 200 || !bytes.Equal(r.raw, OpenAPIDocument()) {
		t.Errorf("GET /api/openapi.json: %d, %d bytes", r.status, len(r.raw))
	}
}
