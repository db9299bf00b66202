package latticesvc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/principal"
)

type restClient struct {
	t   testing.TB
	url string
}

func restServer(t testing.TB, svc *Service) *restClient {
	return restServerAs(t, svc, nil)
}

// restServerAs serves the API to p, attached to every request as the
// gateway does (nil: no principal).
func restServerAs(t testing.TB, svc *Service, p *principal.Principal) *restClient {
	h := RESTHandler(svc)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p != nil {
			r = r.WithContext(principal.With(r.Context(), p))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &restClient{t: t, url: srv.URL}
}

// do sends a request; body is sent as JSON unless it is a string (sent
// raw) or nil (no body). It returns the status, headers and decoded body.
func (c *restClient) do(method, path string, body any) (int, http.Header, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		rd = bytes.NewReader(must(json.Marshal(b)))
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			c.t.Fatalf("%s %s: response %q is not a JSON object: %v", method, path, data, err)
		}
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/json" {
		c.t.Errorf("%s %s: error with Content-Type %q", method, path, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, resp.Header, out
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func errMsg(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func TestRESTRoundTrip(t *testing.T) {
	c := restServer(t, newSvc(t))
	st, h, in := c.do("POST", "/api/lattices", map[string]any{"name": "cube", "dims": []int{50, 50, 50}, "blocked": map[string]any{"random": map[string]any{"density": 0.2, "seed": 7}}})
	id, _ := in["id"].(string)
	if st != 201 || h.Get("Location") != "/api/lattices/"+id || !validID(id) {
		t.Fatalf("create: %d %v %v", st, h, in)
	}
	if st, _, got := c.do("GET", "/api/lattices/"+id, nil); st != 200 || got["name"] != "cube" || num(got["points"]) != 125000 {
		t.Errorf("get: %d %v", st, got)
	}
	if st, _, l := c.do("GET", "/api/lattices", nil); st != 200 || len(l["lattices"].([]any)) != 1 {
		t.Errorf("list: %d %v", st, l)
	}
	st, _, p := c.do("POST", "/api/lattices/"+id+"/path", map[string]any{"from": []int{0, 0, 0}, "to": []int{49, 49, 49}})
	if st != 200 || p["reachable"] != true || p["lattice_id"] != id || num(p["length"]) < 147 {
		t.Fatalf("path: %d %v", st, p)
	}
	st, _, tr := c.do("POST", "/api/lattices/"+id+"/transform", map[string]any{"points": [][]int{{1, 2, 3}}, "transform": map[string]any{"kind": "rotate", "plane": []int{0, 1}, "quarter_turns": 2}})
	if st != 200 || fmt.Sprint(tr["points"]) != "[[48 47 3]]" || tr["inverse_check"] != true {
		t.Errorf("transform: %d %v", st, tr)
	}
	if st, _, out := c.do("DELETE", "/api/lattices/"+id, nil); st != 204 || out != nil {
		t.Errorf("delete: %d %v", st, out)
	}
	if st, _, out := c.do("GET", "/api/lattices/"+id, nil); st != 404 || errCode(out) != "not_found" {
		t.Errorf("get after delete: %d %v", st, out)
	}
}

func TestRESTErrors(t *testing.T) {
	svc := newSvc(t)
	c := restServer(t, svc)
	in, err := svc.Create(bg, "", Def{Dims: []int64{10, 10}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path string
		body         any
		status       int
		code, msg    string
	}{
		{"GET", "/api/nothing", nil, 404, "not_found", "no endpoint GET /api/nothing"},
		{"GET", "/api/lattices/", nil, 404, "not_found", "no endpoint"},
		{"GET", "/api/lattices/" + in.ID + "/path", nil, 405, "method_not_allowed", "allowed: POST"},
		{"PUT", "/api/lattices", map[string]any{}, 405, "method_not_allowed", "allowed: GET, POST"},
		{"POST", "/api/lattices", nil, 415, "unsupported_media_type", "Content-Type: application/json"},
		{"POST", "/api/lattices", "{", 400, "invalid_json", "not valid JSON"},
		{"POST", "/api/lattices", "  ", 400, "invalid_argument", "a JSON object is required"},
		{"POST", "/api/lattices", "[1]", 400, "invalid_argument", "must be a JSON object, got an array"},
		{"POST", "/api/lattices", "{} {}", 400, "invalid_json", "more data"},
		{"POST", "/api/lattices", map[string]any{"dims": []int{0}}, 400, "invalid_spec", "dims[0] is 0"},
		{"POST", "/api/lattices", map[string]any{"dims": []int{1 << 20, 1 << 20}}, 422, "too_many_points", "lattice.max_points"},
		{"GET", "/api/lattices/lat_zz", nil, 400, "invalid_id", "not a lattice id"},
		{"DELETE", "/api/lattices/lat_0123456789abcdef", nil, 404, "not_found", "no lattice with id"},
		{"POST", "/api/lattices/lat_0123456789abcdef/path", map[string]any{"from": []int{0, 0}, "to": []int{1, 1}}, 404, "not_found", "no lattice with id"},
		{"POST", "/api/lattices/" + in.ID + "/path", map[string]any{"from": []int{0, 0}, "to": []int{10, 0}}, 400, "out_of_bounds", "must be in [0, 10)"},
		{"POST", "/api/lattices/" + in.ID + "/path", map[string]any{"lattice_id": in.ID, "from": []int{0, 0}, "to": []int{1, 0}}, 400, "invalid_argument", `unknown field "lattice_id"`},
		{"POST", "/api/lattices/" + in.ID + "/path", map[string]any{"dims": []int{3}, "from": []int{0, 0}, "to": []int{1, 0}}, 400, "invalid_argument", `unknown field "dims"`},
		{"POST", "/api/lattices/" + in.ID + "/transform", map[string]any{"points": [][]int{{0, 0}}, "transform": map[string]any{"kind": "rotate", "plane": []int{0, 5}}}, 400, "invalid_transform", "axis 5"},
	}
	for _, tc := range cases {
		st, h, out := c.do(tc.method, tc.path, tc.body)
		if st != tc.status || errCode(out) != tc.code || !strings.Contains(errMsg(out), tc.msg) {
			t.Errorf("%s %s %v: got %d %v, want %d %s %q", tc.method, tc.path, tc.body, st, out, tc.status, tc.code, tc.msg)
		}
		if st == 405 && h.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}

	// Operation timeout: 504.
	lim := DefaultLimits()
	lim.OperationTimeout = 1
	svc.SetLimits(lim)
	blocked, err := svc.Create(bg, "", Def{Dims: []int64{10, 10}, Cells: [][]int64{{5, 5}}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _, out := c.do("POST", "/api/lattices/"+blocked.ID+"/path", map[string]any{"from": []int{0, 0}, "to": []int{9, 9}}); st != 504 || errCode(out) != "timeout" {
		t.Errorf("timeout: %d %v", st, out)
	}

	// Body over the handler's own limit: 413.
	old := maxRESTBody
	maxRESTBody = 64
	defer func() { maxRESTBody = old }()
	if st, _, out := c.do("POST", "/api/lattices", map[string]any{"name": strings.Repeat("x", 100), "dims": []int{1}}); st != 413 || errCode(out) != "body_too_large" {
		t.Errorf("large body: %d %v", st, out)
	}
}

func TestRESTStoreUnavailable(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lattices.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	tenant := addTenant(t, st, "acme")
	c := restServer(t, New(Options{Store: st, DefaultTenant: tenant, DataDir: dir, ImportTenant: tenant}))
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/lattices", nil},
		{"POST", "/api/lattices", map[string]any{"dims": []int{3}}},
		{"GET", "/api/lattices/lat_0123456789abcdef", nil},
		{"POST", "/api/lattices/lat_0123456789abcdef/path", map[string]any{"from": []int{0}, "to": []int{1}}},
	} {
		if st, _, out := c.do(r.method, r.path, r.body); st != 503 || errCode(out) != "store_unavailable" || !strings.Contains(errMsg(out), "lattices.json") {
			t.Errorf("%s %s with a broken lattices.json: %d %v", r.method, r.path, st, out)
		}
	}
}

// TestRESTBadInputs runs the bad-input table through the REST API: the
// lattice part of each case through create, the rest through path or
// transform on the created lattice. Codes and statuses must match the
// tools' and be documented for the operation.
func TestRESTBadInputs(t *testing.T) {
	c := restServer(t, newSvc(t, badInputLimits))
	doc := loadDoc(t)
	defKeys := []string{"name", "dims", "boundary", "blocked"}
	ran := 0
	defer func() {
		if ran < len(badInputs)-3 {
			t.Errorf("only %d of %d cases ran", ran, len(badInputs))
		}
	}()
	for _, bc := range badInputs {
		def, op := map[string]any{}, map[string]any{}
		for k, v := range bc.args {
			if slices.Contains(defKeys, k) {
				def[k] = v
			} else {
				op[k] = v
			}
		}
		var (
			st     int
			out    map[string]any
			method = "POST"
			route  string
		)
		switch {
		case bc.tool == "lattice_get":
			method, route = "GET", "/api/lattices/{id}"
			st, _, out = c.do("GET", "/api/lattices/"+op["lattice_id"].(string), nil)
		case op["lattice_id"] != nil && len(def) == 0:
			route = "/api/lattices/{id}/path"
			id := op["lattice_id"].(string)
			delete(op, "lattice_id")
			st, _, out = c.do("POST", "/api/lattices/"+id+"/path", op)
		case op["lattice_id"] != nil || len(def) == 0:
			continue // inline vs stored: a question the REST API does not have
		default:
			route = "/api/lattices"
			if _, ok := def["name"]; !ok && bc.tool != "lattice_create" {
				def["name"] = bc.name
			}
			var created map[string]any
			st, _, created = c.do("POST", "/api/lattices", def)
			out = created
			if st == 201 && bc.tool != "lattice_create" {
				kind := strings.TrimPrefix(bc.tool, "lattice_")
				route = "/api/lattices/{id}/" + kind
				st, _, out = c.do("POST", "/api/lattices/"+created["id"].(string)+"/"+kind, op)
			}
		}
		ran++
		if errCode(out) != bc.code || st != codeStatus[bc.code] || !strings.Contains(errMsg(out), bc.msg) {
			t.Errorf("%s: got %d %v, want %d %s %q", bc.name, st, out, codeStatus[bc.code], bc.code, bc.msg)
			continue
		}
		if !doc.documented(route, method, st) {
			t.Errorf("%s: status %d is not documented for %s %s", bc.name, st, method, route)
		}
	}
}

// apiDoc is the parsed OpenAPI document.
type apiDoc map[string]any

func loadDoc(t testing.TB) apiDoc {
	var d apiDoc
	if err := json.Unmarshal(openAPIDoc, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// deref follows a local $ref (any component kind).
func (d apiDoc) deref(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	ref, ok := m["$ref"].(string)
	if !ok {
		return v
	}
	var cur any = map[string]any(d)
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cm, _ := cur.(map[string]any)
		cur = cm[part]
	}
	return d.deref(cur)
}

func (d apiDoc) op(path, method string) map[string]any {
	p, _ := d["paths"].(map[string]any)[path].(map[string]any)
	o, _ := p[strings.ToLower(method)].(map[string]any)
	return o
}

func (d apiDoc) documented(path, method string, status int) bool {
	o := d.op(path, method)
	if o == nil {
		return false
	}
	_, ok := o["responses"].(map[string]any)[strconv.Itoa(status)]
	return ok
}

// responseSchema returns the inlined JSON schema of a documented response.
func (d apiDoc) responseSchema(path, method string, status int) any {
	o := d.op(path, method)
	r := d.deref(o["responses"].(map[string]any)[strconv.Itoa(status)]).(map[string]any)
	content, _ := r["content"].(map[string]any)
	if content == nil {
		return nil
	}
	return inline(content["application/json"].(map[string]any)["schema"])
}

// TestOpenAPIMatchesRoutes: every documented path and method is routed and
// every route is documented; every $ref resolves and every component
// schema is a valid JSON Schema.
func TestOpenAPIMatchesRoutes(t *testing.T) {
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
	for name := range doc["components"].(map[string]any)["schemas"].(map[string]any) {
		resolved(t, schema(name))
	}

	documented := map[string]bool{}
	for path, item := range doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, r := range routes {
		routed[r.method+" "+r.pattern] = true
		if !documented[r.method+" "+r.pattern] {
			t.Errorf("route %s %s is not in openapi.json", r.method, r.pattern)
		}
	}

	svc := newSvc(t)
	c := restServer(t, svc)
	in, err := svc.Create(bg, "", Def{Dims: []int64{50, 50, 50}})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(documented))
	for k := range documented {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { // DELETE last
		return strings.Compare(strings.Replace(a, "DELETE", "~", 1), strings.Replace(b, "DELETE", "~", 1))
	})
	for _, k := range keys {
		method, path, _ := strings.Cut(k, " ")
		if !routed[k] {
			t.Errorf("documented %s is not routed", k)
		}
		var body any
		if method == "POST" {
			body = firstExample(doc, path, method)
		}
		st, _, out := c.do(method, strings.ReplaceAll(path, "{id}", in.ID), body)
		if st < 200 || st > 299 {
			t.Errorf("%s with its example: %d %v", k, st, out)
		}
	}
}

func firstExample(doc apiDoc, path, method string) any {
	rb := doc.op(path, method)["requestBody"].(map[string]any)
	ex := rb["content"].(map[string]any)["application/json"].(map[string]any)["examples"].(map[string]any)
	names := make([]string, 0, len(ex))
	for n := range ex {
		names = append(names, n)
	}
	slices.Sort(names)
	return ex[names[0]].(map[string]any)["value"]
}

// TestOpenAPIExamples: every request example validates against its
// documented schema and, sent to the handler (create first, then path and
// transform on the created lattice), gets the documented status and a body
// that validates against the documented response schema.
func TestOpenAPIExamples(t *testing.T) {
	doc := loadDoc(t)
	c := restServer(t, newSvc(t))
	check := func(path, method string, st int, out map[string]any) {
		t.Helper()
		if !doc.documented(path, method, st) {
			t.Errorf("%s %s: status %d is not documented (%v)", method, path, st, out)
			return
		}
		if s := doc.responseSchema(path, method, st); s != nil {
			if err := validate(t, s, out); err != nil {
				t.Errorf("%s %s: %d response does not match its schema: %v\n%v", method, path, st, err, out)
			}
		}
	}
	examples := func(path string) map[string]any {
		rb := doc.op(path, "POST")["requestBody"].(map[string]any)
		media := rb["content"].(map[string]any)["application/json"].(map[string]any)
		ex := media["examples"].(map[string]any)
		if len(ex) == 0 {
			t.Fatalf("%s has no examples", path)
		}
		for name, e := range ex {
			if err := validate(t, inline(media["schema"]), e.(map[string]any)["value"]); err != nil {
				t.Errorf("%s example %s does not match its schema: %v", path, name, err)
			}
		}
		return ex
	}

	ids := map[string]string{}
	for name, e := range examples("/api/lattices") {
		st, _, out := c.do("POST", "/api/lattices", e.(map[string]any)["value"])
		check("/api/lattices", "POST", st, out)
		if st != 201 {
			t.Fatalf("create example %s: %d %v", name, st, out)
		}
		ids[name] = out["id"].(string)
	}
	cube := ids["cube"]
	if cube == "" {
		t.Fatal("no cube example")
	}
	for _, kind := range []string{"path", "transform"} {
		path := "/api/lattices/{id}/" + kind
		for name, e := range examples(path) {
			st, _, out := c.do("POST", "/api/lattices/"+cube+"/"+kind, e.(map[string]any)["value"])
			check(path, "POST", st, out)
			if st != 200 {
				t.Errorf("%s example %s: %d %v", kind, name, st, out)
			}
		}
	}
	st, _, out := c.do("GET", "/api/lattices", nil)
	check("/api/lattices", "GET", st, out)
	st, _, out = c.do("GET", "/api/lattices/"+cube, nil)
	check("/api/lattices/{id}", "GET", st, out)
	// Error bodies match the Error schema too.
	st, _, out = c.do("POST", "/api/lattices/"+cube+"/path", map[string]any{"from": []int{0, 0, 0}, "to": []int{0, 0, 50}})
	check("/api/lattices/{id}/path", "POST", st, out)
	st, _, out = c.do("GET", "/api/lattices/lat_0123456789abcdef", nil)
	check("/api/lattices/{id}", "GET", st, out)
	// The document is served.
	resp, err := http.Get(c.url + "/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(served, openAPIDoc) {
		t.Errorf("GET /api/openapi.json: %d, %d bytes", resp.StatusCode, len(served))
	}
}
