package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

// testIP is the client address of every test request.
const testIP = "198.51.100.7"

// env is an admin API over a real store, with an operator tenant "ops"
// whose owner key is env.root.
type env struct {
	t     *testing.T
	ctx   context.Context
	st    store.Store
	ops   *Ops
	auth  *auth.Service
	audit *audit.Logger
	h     *handler
	doc   apiDoc
	opsT  *store.Tenant
	root  *principal.Principal
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func sqliteStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newEnv builds the admin API over st (nil: a fresh in-memory SQLite).
func newEnv(t *testing.T, st store.Store) *env {
	t.Helper()
	if st == nil {
		st = sqliteStore(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	log := quietLog()
	lg := audit.NewLogger(st, log, audit.LoggerOptions{})
	t.Cleanup(func() { _ = lg.Close(context.Background()) })
	as, err := auth.New(ctx, auth.Options{Store: st, Audit: lg.Record, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = as.Close() })
	ops := NewOps(OpsOptions{Store: st, Credentials: as, Audit: lg, Plans: config.DefaultPlans(), Log: log})
	e := &env{t: t, ctx: ctx, st: st, ops: ops, auth: as, audit: lg, doc: loadDoc(t)}
	e.h = Handler(Options{
		Ops: ops, Auth: as,
		Lattice: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"lattice": r.Method + " " + r.URL.Path})
		}),
		ClientIP: func(*http.Request) string { return testIP },
		Hub:      hub.New(hub.Options{Store: st, Credentials: as, Audit: lg, Log: log}),
	}).(*handler)
	cli := CLIContext(ctx)
	if e.opsT, err = ops.CreateTenant(cli, TenantSpec{Name: "ops", Operator: true}); err != nil {
		t.Fatal(err)
	}
	e.root = e.key("ops", KeySpec{Name: "root", Role: principal.RoleOwner})
	return e
}

// key creates a key (as the CLI) and returns the principal its secret
// authenticates as.
func (e *env) key(tenant string, s KeySpec) *principal.Principal {
	e.t.Helper()
	nk, err := e.ops.CreateKey(CLIContext(e.ctx), tenant, s)
	if err != nil {
		e.t.Fatalf("creating key %+v in %s: %v", s, tenant, err)
	}
	return e.authn(nk.Secret)
}

func (e *env) authn(secret string) *principal.Principal {
	e.t.Helper()
	p, err := e.auth.Authenticate(e.ctx, secret, testIP)
	if err != nil {
		e.t.Fatalf("authenticating: %v", err)
	}
	return p
}

// tenant creates a tenant (as the CLI) with an owner user "boss" and
// returns it.
func (e *env) tenant(name string) *store.Tenant {
	e.t.Helper()
	cli := CLIContext(e.ctx)
	t, err := e.ops.CreateTenant(cli, TenantSpec{Name: name})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.ops.CreateUser(cli, name, UserSpec{Name: "boss", Role: principal.RoleOwner, Password: "long enough password"}); err != nil {
		e.t.Fatal(err)
	}
	return t
}

// response is one answer of the handler.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r response) code() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// do sends a request as p (nil: no principal) through a tiny middleware
// that puts p in the context, as the gateway's authenticator does. body
// is a JSON-marshalable value or, as a string, the raw body. Every
// answer is checked against the OpenAPI document: its status must be
// documented for the route and its body must match the schema.
func (e *env) do(p *principal.Principal, method, path string, body any) response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				e.t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
	}
	req := httptest.NewRequest(method, path, rd).WithContext(e.ctx)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.send(p, req)
}

func (e *env) send(p *principal.Principal, req *http.Request) response {
	e.t.Helper()
	rec := httptest.NewRecorder()
	withPrincipal(p, e.h).ServeHTTP(rec, req)
	r := response{status: rec.Code, header: rec.Header(), raw: rec.Body.Bytes()}
	if len(r.raw) > 0 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(r.raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: %d with a body that is not a JSON object: %s", req.Method, req.URL.Path, r.status, r.raw)
		}
	}
	e.conforms(req, r)
	return r
}

// withPrincipal is the test's stand-in for the gateway's authenticator.
func withPrincipal(p *principal.Principal, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p != nil {
			r = r.WithContext(principal.With(r.Context(), p))
		}
		h.ServeHTTP(w, r)
	})
}

// conforms checks an answer against the document, for routed requests.
func (e *env) conforms(req *http.Request, r response) {
	e.t.Helper()
	_, pattern := e.h.mux.Handler(req)
	if pattern == "" || strings.HasPrefix(pattern, "/api/lattices") {
		return // 404/405 of no route, or the lattice stub
	}
	method, path, _ := strings.Cut(pattern, " ")
	if !e.doc.documented(path, method, r.status) {
		e.t.Errorf("%s %s: status %d is not documented (%s)", method, path, r.status, r.raw)
		return
	}
	s := e.doc.responseSchema(path, method, r.status)
	if ct := r.header.Get("Content-Type"); len(r.raw) > 0 && ct != "" && !strings.HasPrefix(ct, "application/json") {
		// Another documented type (a CSV or ZIP export): checked by its test.
		if !e.doc.documentedType(path, method, r.status, strings.TrimSpace(strings.Split(ct, ";")[0])) {
			e.t.Errorf("%s %s: %d answered %s, which the document does not list", method, path, r.status, ct)
		}
		return
	}
	if s == nil {
		if len(r.raw) > 0 && r.status != http.StatusOK {
			e.t.Errorf("%s %s: %d has a body but the document says none: %s", method, path, r.status, r.raw)
		}
		return
	}
	var inst any
	if err := json.Unmarshal(r.raw, &inst); err != nil {
		e.t.Errorf("%s %s: %d body is not JSON: %s", method, path, r.status, r.raw)
		return
	}
	if err := e.doc.resolved(e.t, s).Validate(inst); err != nil {
		e.t.Errorf("%s %s: %d body does not match its schema: %v\n%s", method, path, r.status, err, r.raw)
	}
}

// want fails unless r has status (and, if given, error code).
func want(t *testing.T, what string, r response, status int, code ...string) {
	t.Helper()
	if r.status != status || (len(code) > 0 && r.code() != code[0]) {
		t.Fatalf("%s: got %d %s, want %d %v", what, r.status, r.raw, status, code)
	}
}

// auditEntries flushes the audit log and returns the entries matching f.
func (e *env) auditEntries(f store.AuditFilter) []store.AuditEntry {
	e.t.Helper()
	if err := e.audit.Flush(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	f.Limit = 10000
	es, err := e.st.ListAudit(e.ctx, f)
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

func detail(e store.AuditEntry) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(e.Detail, &m)
	return m
}

// apiDoc is the parsed merged OpenAPI document.
type apiDoc map[string]any

func loadDoc(t testing.TB) apiDoc {
	var d apiDoc
	if err := json.Unmarshal(OpenAPIDocument(), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// deref follows local $refs (any component kind).
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

// responseSchema returns the inlined schema of a documented response, nil
// for one without a body.
func (d apiDoc) responseSchema(path, method string, status int) any {
	o := d.op(path, method)
	r := d.deref(o["responses"].(map[string]any)[strconv.Itoa(status)]).(map[string]any)
	content, _ := r["content"].(map[string]any)
	if content == nil {
		return nil
	}
	j, _ := content["application/json"].(map[string]any)
	if j == nil {
		return nil
	}
	return d.inline(j["schema"])
}

// documentedType reports whether a documented response lists the content
// type ct.
func (d apiDoc) documentedType(path, method string, status int, ct string) bool {
	o := d.op(path, method)
	r := d.deref(o["responses"].(map[string]any)[strconv.Itoa(status)]).(map[string]any)
	content, _ := r["content"].(map[string]any)
	_, ok := content[ct]
	return ok
}

// inline replaces every schema $ref by the schema (they have no cycles).
func (d apiDoc) inline(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["$ref"].(string); ok && len(x) == 1 {
			return d.inline(d.deref(x))
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = d.inline(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = d.inline(e)
		}
		return out
	}
	return v
}

func (d apiDoc) resolved(t testing.TB, s any) *jsonschema.Resolved {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var js jsonschema.Schema
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatalf("schema %s: %v", b, err)
	}
	rs, err := js.Resolve(nil)
	if err != nil {
		t.Fatalf("resolving schema %s: %v", b, err)
	}
	return rs
}
