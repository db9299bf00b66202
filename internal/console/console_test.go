package console

import (
	"context"
	cryptotls "crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/latticesvc"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// xss is markup that must come out of every page as text.
const xss = `<script>alert(1)</script><img src=x onerror=alert(2)>`

// env is a console over a real store, real credentials and real Ops; its
// gateway is a real MCP server (go-sdk) with one tool whose description is
// markup, plus a /readyz whose upstream error is markup: the seam where
// the console meets the gateway.
type env struct {
	t      *testing.T
	ctx    context.Context
	st     store.Store
	ops    *admin.Ops
	auth   *auth.Service
	audit  *audit.Logger
	srv    *httptest.Server
	rootK  string // owner key of the operator tenant "ops"
	acmeK  string // admin key of tenant "acme"
	mu     sync.Mutex
	bearer []string // Authorization headers the gateway saw
	// deviceCalls and queueCalls are the changes the gateway was asked for.
	deviceCalls, queueCalls []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lg := audit.NewLogger(st, log, audit.LoggerOptions{})
	t.Cleanup(func() { _ = lg.Close(context.Background()) })
	as, err := auth.New(ctx, auth.Options{Store: st, Audit: lg.Record, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = as.Close() })
	ops := admin.NewOps(admin.OpsOptions{Store: st, Credentials: as, Audit: lg, Plans: config.DefaultPlans(), Log: log})
	e := &env{t: t, ctx: ctx, st: st, ops: ops, auth: as, audit: lg}
	cli := admin.CLIContext(ctx)
	for _, s := range []admin.TenantSpec{{Name: "ops", Operator: true}, {Name: "acme"}} {
		if _, err := ops.CreateTenant(cli, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ops.CreateUser(cli, "acme", admin.UserSpec{Name: "boss", Role: principal.RoleOwner, Password: "long enough password"}); err != nil {
		t.Fatal(err)
	}
	e.rootK = e.key("ops", principal.RoleOwner)
	e.acmeK = e.key("acme", principal.RoleAdmin)

	server := mcp.NewServer(&mcp.Implementation{Name: "fake-gateway", Version: "1"}, nil)
	type echoIn struct {
		Message string `json:"message" jsonschema:"what to say back"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "ev__echo", Description: "Echoes. " + xss}, func(ctx context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo: " + in.Message}}}, nil, nil
	})
	type typedIn struct {
		Count int      `json:"count" jsonschema:"how many"`
		Ratio float64  `json:"ratio,omitempty"`
		Loud  bool     `json:"loud,omitempty"`
		Mode  string   `json:"mode,omitempty"`
		Tags  []string `json:"tags,omitempty"`
	}
	typed := &mcp.Tool{Name: "ev__typed", Description: "Says back what it got, typed.", InputSchema: map[string]any{
		"type": "object", "required": []any{"count"},
		"properties": map[string]any{
			"count": map[string]any{"type": "integer", "description": "how many"},
			"ratio": map[string]any{"type": "number"},
			"loud":  map[string]any{"type": "boolean"},
			"mode":  map[string]any{"type": "string", "enum": []any{"fast", "slow"}},
			"tags":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		},
	}}
	mcp.AddTool(server, typed, func(ctx context.Context, _ *mcp.CallToolRequest, in typedIn) (*mcp.CallToolResult, any, error) {
		b, _ := json.Marshal(in)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "got " + string(b)}}}, nil, nil
	})
	mcpH := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	gw := http.NewServeMux()
	gw.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.bearer = append(e.bearer, r.Header.Get("Authorization"))
		e.mu.Unlock()
		mcpH.ServeHTTP(w, r)
	}))
	gw.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"ready":      true,
			"components": []map[string]any{{"name": "store", "state": "up", "required": true}},
			"upstreams":  []map[string]any{{"name": "ev", "transport": "stdio", "state": "failed", "last_error": "boom " + xss, "tools": 1}},
			"queue":      map[string]any{"open": true, "entries": 12, "max_entries": 100, "bytes": 4096, "waiting": 3, "oldest_waiting_seconds": 42, "near_full": false},
		})
	})
	// The queue and devices APIs, as the seam: they answer the signed-in
	// key only (as the gateway would), with markup in what comes from
	// outside, and record the changes asked for.
	authed := func(w http.ResponseWriter, r *http.Request) *principal.Principal {
		p, err := as.Authenticate(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "127.0.0.1")
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"unauthenticated","message":"no"}}`))
			return nil
		}
		return p
	}
	gw.HandleFunc("GET /api/queue", func(w http.ResponseWriter, r *http.Request) {
		p := authed(w, r)
		if p == nil {
			return
		}
		if r.URL.Query().Get("state") == "bogus" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"code":"invalid_argument","message":"state must be pending, delivering, done or failed <b>"}}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"entries": []map[string]any{{
			"id": "q-" + p.TenantName, "state": "failed", "target": "ev", "tool": "ev__echo", "attempts": 3,
			"last_error": "refused " + xss, "created_at": time.Now(),
		}}, "next_after": "q-" + p.TenantName})
	})
	queueChange := func(w http.ResponseWriter, r *http.Request) {
		p := authed(w, r)
		if p == nil {
			return
		}
		e.mu.Lock()
		e.queueCalls = append(e.queueCalls, r.Method+" "+r.URL.Path)
		e.mu.Unlock()
		switch {
		case r.PathValue("id") != "q-"+p.TenantName:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no queued call"}}`))
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			_, _ = w.Write([]byte(`{"id":"q","state":"pending"}`))
		}
	}
	gw.HandleFunc("POST /api/queue/{id}/retry", queueChange)
	gw.HandleFunc("DELETE /api/queue/{id}", queueChange)
	gw.HandleFunc("GET /api/devices", func(w http.ResponseWriter, r *http.Request) {
		p := authed(w, r)
		if p == nil {
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"devices": []map[string]any{{
			"id": "dev1", "tenant": p.TenantName, "name": "press-7", "kind": "tpm", "attested": true, "labels": []string{},
			"last_contact": time.Now(), "last_addr": "10.0.0.7", "queue_depth": 4, "refusal": "PCR 7 changed " + xss, "refused_at": time.Now(),
		}}})
	})
	device := func(w http.ResponseWriter, r *http.Request) {
		if authed(w, r) == nil {
			return
		}
		e.mu.Lock()
		e.deviceCalls = append(e.deviceCalls, r.Method+" "+r.URL.Path)
		e.mu.Unlock()
		if r.PathValue("id") != "dev1" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"device not found"}}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
	// The lattice API is the real one, with the signed-in principal.
	lat := latticesvc.RESTHandler(latticesvc.New(latticesvc.Options{Store: st, Logger: log}))
	latAuthed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := authed(w, r); p != nil {
			lat.ServeHTTP(w, r.WithContext(principal.With(r.Context(), p)))
		}
	})
	gw.Handle("/api/lattices", latAuthed)
	gw.Handle("/api/lattices/", latAuthed)
	gw.HandleFunc("/api/devices/{id}", device)
	gw.HandleFunc("/api/devices/{id}/{op}", device)
	c, err := New(Options{Ops: ops, Auth: as, Gateway: func() http.Handler { return gw }, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(c)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) key(tenant, role string) string {
	e.t.Helper()
	nk, err := e.ops.CreateKey(admin.CLIContext(e.ctx), tenant, admin.KeySpec{Name: role + "-key", Role: role})
	if err != nil {
		e.t.Fatal(err)
	}
	return nk.Secret
}

// browser is a client with its own cookie jar that does not follow
// redirects, so that tests see them.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) page {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(b.e.ctx, method, b.e.srv.URL+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	if m := csrfRE.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

func (b *browser) get(path string) page { return b.do(http.MethodGet, path, nil, nil) }

// post sends a form with the CSRF token the last page carried.
func (b *browser) post(path string, form url.Values) page {
	form.Set("csrf", b.csrf)
	return b.do(http.MethodPost, path, form, nil)
}

// signIn signs in with an API key and checks the redirect.
func (b *browser) signIn(key string) {
	b.e.t.Helper()
	b.get("/ui/signin")
	if p := b.post("/ui/signin", url.Values{"key": {key}}); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/" {
		b.e.t.Fatalf("sign-in: %d %q %s", p.status, p.header.Get("Location"), p.body)
	}
	b.get("/ui/") // picks up the session's CSRF token
}

func checkHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: CSP %q allows inline code", what, csp)
	}
	for k, want := range map[string]string{"Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", what, k, got, want)
		}
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	root := b.get("/")
	if root.status != http.StatusFound || root.header.Get("Location") != "/ui/" {
		t.Fatalf("/: %d %q", root.status, root.header.Get("Location"))
	}
	checkHeaders(t, "/", root.header)
	if p := b.get("/ui/"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/signin" {
		t.Fatalf("signed out /ui/: %d %q", p.status, p.header.Get("Location"))
	}
	signin := b.get("/ui/signin")
	checkHeaders(t, "sign-in page", signin.header)
	if signin.status != 200 || !strings.Contains(signin.header.Get("Content-Type"), "text/html") {
		t.Fatalf("sign-in page: %d %v", signin.status, signin.header)
	}
	css := b.get("/ui/static/console.css")
	checkHeaders(t, "style sheet", css.header)
	if css.status != 200 || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") || !strings.Contains(css.body, "--accent") {
		t.Fatalf("style sheet: %d %q", css.status, css.header.Get("Content-Type"))
	}
	checkHeaders(t, "not found", b.get("/ui/nothing").header)
	b.signIn(e.rootK)
	for _, path := range []string{"/ui/", "/ui/catalog", "/ui/keys", "/ui/audit"} {
		p := b.get(path)
		if p.status != 200 {
			t.Fatalf("%s: %d %s", path, p.status, p.body)
		}
		checkHeaders(t, path, p.header)
		if cc := p.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", path, cc)
		}
		if strings.Contains(p.body, "<script") {
			t.Errorf("%s carries a script element", path)
		}
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	e := newEnv(t)
	c, err := New(Options{Ops: e.ops, Auth: e.auth, Gateway: func() http.Handler { return http.NotFoundHandler() }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tls := range []bool{false, true} {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ui/signin", nil))
		pre := w.Result().Cookies()[0]
		tok := csrfRE.FindStringSubmatch(w.Body.String())[1]
		r := httptest.NewRequest(http.MethodPost, "/ui/signin", strings.NewReader(url.Values{"csrf": {tok}, "key": {e.rootK}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(pre)
		if tls {
			r.TLS = &cryptotls.ConnectionState{}
		}
		w = httptest.NewRecorder()
		c.ServeHTTP(w, r)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("tls=%v: sign-in %d %s", tls, w.Code, w.Body)
		}
		var sess *http.Cookie
		for _, ck := range w.Result().Cookies() {
			if ck.Name == cookieName {
				sess = ck
			}
		}
		if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure != tls || sess.Path != "/ui/" {
			t.Fatalf("tls=%v: session cookie %+v", tls, sess)
		}
		if strings.Contains(sess.Value, e.rootK) || len(sess.Value) < 40 {
			t.Fatalf("the cookie carries the credential or a short id: %q", sess.Value)
		}
	}
}

func TestSignInNeedsItsFormToken(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.get("/ui/signin")
	for name, tok := range map[string]string{"missing": "", "wrong": "x" + b.csrf} {
		p := b.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {tok}, "key": {e.rootK}}, nil)
		if p.status != http.StatusForbidden {
			t.Fatalf("%s token: %d", name, p.status)
		}
		b.get("/ui/signin")
	}
	if p := b.post("/ui/signin", url.Values{"key": {"mcpe_notakey"}}); p.status != http.StatusUnauthorized || !strings.Contains(p.body, "not valid") {
		t.Fatalf("bad key: %d %s", p.status, p.body)
	}
	b.get("/ui/signin")
	if p := b.do(http.MethodPost, "/ui/signin", url.Values{"csrf": {b.csrf}, "key": {e.rootK}}, map[string]string{"Origin": "http://evil.example"}); p.status != http.StatusForbidden {
		t.Fatalf("cross-origin sign-in: %d", p.status)
	}
}

func TestKeysCSRFCreateOnceAndRevoke(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acmeK)
	count := func() int {
		ks, err := e.ops.ListKeys(admin.CLIContext(e.ctx), "acme")
		if err != nil {
			t.Fatal(err)
		}
		return len(ks)
	}
	before := count()
	good := b.csrf
	refused := []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"missing token", url.Values{"name": {"k1"}}, nil},
		{"wrong token", url.Values{"name": {"k1"}, "csrf": {good[:len(good)-2] + "xx"}}, nil},
		{"token of another session", url.Values{"name": {"k1"}, "csrf": {func() string { o := e.browser(); o.signIn(e.rootK); return o.csrf }()}}, nil},
		{"other origin", url.Values{"name": {"k1"}, "csrf": {good}}, map[string]string{"Origin": "http://evil.example"}},
	}
	for _, r := range refused {
		if p := b.do(http.MethodPost, "/ui/keys", r.form, r.hdr); p.status != http.StatusForbidden {
			t.Fatalf("%s: %d %s", r.name, p.status, p.body)
		}
		checkHeaders(t, r.name, b.do(http.MethodPost, "/ui/keys", r.form, r.hdr).header)
	}
	if n := count(); n != before {
		t.Fatalf("a refused form created a key: %d → %d", before, n)
	}
	b.csrf = good
	if p := b.post("/ui/keys", url.Values{"name": {"laptop"}, "role": {"member"}}); p.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", p.status, p.body)
	}
	shown := b.get("/ui/keys")
	secret := regexp.MustCompile(`id="new-key"[^>]*>(mcpe_[A-Za-z0-9_]+)<`).FindStringSubmatch(shown.body)
	if secret == nil {
		t.Fatalf("the new key is not shown:\n%s", shown.body)
	}
	if _, err := e.auth.Authenticate(e.ctx, secret[1], "127.0.0.1"); err != nil {
		t.Fatalf("the shown key does not work: %v", err)
	}
	if again := b.get("/ui/keys"); strings.Contains(again.body, secret[1]) {
		t.Fatal("the key secret is shown a second time")
	}
	ks, _ := e.ops.ListKeys(admin.CLIContext(e.ctx), "acme")
	var id string
	for _, k := range ks {
		if k.Name == "laptop" {
			id = k.ID
		}
	}
	if p := b.do(http.MethodPost, "/ui/keys/revoke", url.Values{"id": {id}}, nil); p.status != http.StatusForbidden {
		t.Fatalf("revoke without token: %d", p.status)
	}
	if p := b.post("/ui/keys/revoke", url.Values{"id": {id}}); p.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", p.status, p.body)
	}
	if _, err := e.auth.Authenticate(e.ctx, secret[1], "127.0.0.1"); err == nil {
		t.Fatal("the revoked key still works")
	}
	// A bad name is refused by Ops with its message, escaped.
	if p := b.post("/ui/keys", url.Values{"name": {xss}}); p.status != http.StatusBadRequest || strings.Contains(p.body, "<script>alert") {
		t.Fatalf("bad key name: %d %s", p.status, p.body)
	}
}

func TestTenantAdminCannotOpenOperatorViews(t *testing.T) {
	e := newEnv(t)
	// Another tenant's audit entry, which acme must never see.
	e.audit.Record(e.ctx, &store.AuditEntry{TenantID: mustTenant(t, e, "ops").ID, Actor: "secret-actor", ActorKind: "key", Action: "key.create", Outcome: "ok"})
	b := e.browser()
	b.signIn(e.acmeK)
	if p := b.get("/ui/keys?tenant=ops"); p.status != http.StatusNotFound || strings.Contains(p.body, "owner-key") {
		t.Fatalf("acme opens ops' keys: %d %s", p.status, p.body)
	}
	if p := b.post("/ui/audit/verify", url.Values{}); p.status != http.StatusForbidden {
		t.Fatalf("acme verifies the whole chain: %d %s", p.status, p.body)
	}
	if p := b.get("/ui/audit?tenant=ops&since="); p.status != http.StatusNotFound || strings.Contains(p.body, "secret-actor") {
		t.Fatalf("acme reads ops' audit log: %d", p.status)
	}
	p := b.get("/ui/audit?since=")
	if p.status != 200 || strings.Contains(p.body, "secret-actor") || strings.Contains(p.body, "Verify the chain") {
		t.Fatalf("acme's audit page: %d shows another tenant or the operator's verify", p.status)
	}
	if p := b.post("/ui/keys", url.Values{"name": {"x"}, "tenant": {"ops"}}); p.status != http.StatusNotFound {
		t.Fatalf("acme creates a key in ops: %d", p.status)
	}
	// The operator may.
	op := e.browser()
	op.signIn(e.rootK)
	if p := op.get("/ui/audit?since="); p.status != 200 || !strings.Contains(p.body, "secret-actor") {
		t.Fatalf("operator's audit page: %d", p.status)
	}
	if p := op.post("/ui/audit/verify", url.Values{}); p.status != 200 || !strings.Contains(p.body, "The chain is intact") {
		t.Fatalf("operator verify: %d %s", p.status, p.body)
	}
	if p := op.get("/ui/audit?since=&outcome=denied"); p.status != 200 || strings.Contains(p.body, "secret-actor") || !strings.Contains(p.body, "authz.denied") {
		t.Fatalf("the outcome filter: %d\n%s", p.status, p.body)
	}
}

func mustTenant(t *testing.T, e *env, name string) *store.Tenant {
	t.Helper()
	tn, err := e.st.GetTenantByName(e.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func TestMarkupIsRenderedInert(t *testing.T) {
	e := newEnv(t)
	// Tenant, user and key names can not hold markup (the store refuses
	// them too); what can is tool descriptions, upstream errors, error
	// messages and audit entries, whose actor, target and detail come from
	// outside.
	acme := mustTenant(t, e, "acme")
	e.audit.Record(e.ctx, &store.AuditEntry{TenantID: acme.ID, Actor: xss, ActorKind: "key", Action: "tool.call", Target: "tenant:" + xss, Outcome: "ok", Detail: []byte(`{"x":"` + strings.ReplaceAll(xss, `"`, `\"`) + `"}`)})
	secret := e.acmeK
	b := e.browser()
	b.signIn(secret)
	for _, path := range []string{"/ui/", "/ui/catalog", "/ui/keys", "/ui/audit?since="} {
		p := b.get(path)
		if p.status != 200 {
			t.Fatalf("%s: %d %s", path, p.status, p.body)
		}
		if strings.Contains(p.body, "<script>alert") || strings.Contains(p.body, "<img src=x") {
			t.Fatalf("%s renders markup:\n%s", path, p.body)
		}
		if path != "/ui/keys" && !strings.Contains(p.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Fatalf("%s does not show the markup as text:\n%s", path, p.body)
		}
	}
}

func TestCatalogCallsToolsAsTheSignedInPerson(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acmeK)
	cat := b.get("/ui/catalog")
	for _, want := range []string{"ev__echo", "<code>message</code>", "what to say back", `name="arguments"`} {
		if !strings.Contains(cat.body, want) {
			t.Fatalf("catalog lacks %q:\n%s", want, cat.body)
		}
	}
	if p := b.get("/ui/catalog?q=nomatch"); strings.Contains(p.body, "ev__echo") {
		t.Fatal("search does not filter")
	}
	if p := b.do(http.MethodPost, "/ui/catalog/call", url.Values{"tool": {"ev__echo"}, "arguments": {`{"message":"hi"}`}}, nil); p.status != http.StatusForbidden {
		t.Fatalf("call without token: %d", p.status)
	}
	res := b.post("/ui/catalog/call", url.Values{"tool": {"ev__echo"}, "arguments": {`{"message":"hi <b>there</b>"}`}})
	if res.status != 200 || !strings.Contains(res.body, "echo: hi &lt;b&gt;there&lt;/b&gt;") {
		t.Fatalf("call: %d\n%s", res.status, res.body)
	}
	bad := b.post("/ui/catalog/call", url.Values{"tool": {"ev__echo"}, "arguments": {`[1,`}})
	if !strings.Contains(bad.body, "not a JSON object") {
		t.Fatalf("bad arguments:\n%s", bad.body)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.bearer) == 0 {
		t.Fatal("the gateway was not asked")
	}
	for _, h := range e.bearer {
		if h != "Bearer "+e.acmeK {
			t.Fatalf("the gateway was asked with %q, not the signed-in key", h)
		}
	}
}

func TestOverviewShowsReadiness(t *testing.T) {
	e := newEnv(t)
	acme, ops := mustTenant(t, e, "acme"), mustTenant(t, e, "ops")
	e.audit.Record(e.ctx, &store.AuditEntry{TenantID: acme.ID, Actor: "k1", ActorKind: "key", Action: "tool.call", Target: "ev__echo", Outcome: "denied", Detail: []byte(`{"why":"` + strings.ReplaceAll(xss, `"`, `\"`) + `"}`)})
	e.audit.Record(e.ctx, &store.AuditEntry{TenantID: ops.ID, Actor: "k2", ActorKind: "key", Action: "tool.call", Target: "ops-secret-tool", Outcome: "error"})
	b := e.browser()
	b.signIn(e.rootK)
	p := b.get("/ui/")
	for _, want := range []string{`id="ready"`, "store", "ev", "failed", "boom &lt;script&gt;", "3 calls waiting (the oldest for 42 s); 12 of 100 entries, 4096 B", `id="recent"`, "ops-secret-tool", "ev__echo"} {
		if !strings.Contains(p.body, want) {
			t.Fatalf("overview lacks %q:\n%s", want, p.body)
		}
	}
	if strings.Contains(p.body, "<script>alert") {
		t.Fatal("the overview renders markup")
	}
	// A tenant admin sees its own tenant's errors only.
	a := e.browser()
	a.signIn(e.acmeK)
	p = a.get("/ui/")
	if !strings.Contains(p.body, "ev__echo") || strings.Contains(p.body, "ops-secret-tool") {
		t.Fatalf("acme's recent errors:\n%s", p.body)
	}
	// A member may not read the audit log: no recent errors at all.
	m := e.browser()
	m.signIn(e.key("acme", principal.RoleMember))
	if p := m.get("/ui/"); p.status != 200 || strings.Contains(p.body, `id="recent"`) {
		t.Fatalf("a member's overview: %d", p.status)
	}
}

func TestPasswordSignInAndSignOut(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.get("/ui/signin")
	if p := b.post("/ui/signin", url.Values{"tenant": {"acme"}, "user": {"boss"}, "password": {"wrong password!"}}); p.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", p.status)
	}
	b.get("/ui/signin")
	if p := b.post("/ui/signin", url.Values{"tenant": {"acme"}, "user": {"boss"}, "password": {"long enough password"}}); p.status != http.StatusSeeOther {
		t.Fatalf("password sign-in: %d %s", p.status, p.body)
	}
	home := b.get("/ui/")
	if home.status != 200 || !strings.Contains(home.body, "acme · owner") {
		t.Fatalf("signed in: %d %s", home.status, home.body)
	}
	if p := b.do(http.MethodPost, "/ui/signout", url.Values{}, nil); p.status != http.StatusForbidden {
		t.Fatalf("sign-out without token: %d", p.status)
	}
	if p := b.post("/ui/signout", url.Values{}); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/signin" {
		t.Fatalf("sign-out: %d", p.status)
	}
	if p := b.get("/ui/"); p.status != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d", p.status)
	}
}

func TestRevokedKeyEndsTheSession(t *testing.T) {
	e := newEnv(t)
	k := e.key("acme", principal.RoleAdmin)
	b := e.browser()
	b.signIn(k)
	ks, _ := e.ops.ListKeys(admin.CLIContext(e.ctx), "acme")
	for _, kk := range ks {
		if strings.HasPrefix(k, kk.Prefix) {
			if _, err := e.ops.RevokeKey(admin.CLIContext(e.ctx), "acme", kk.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p := b.get("/ui/keys"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/signin" {
		t.Fatalf("a revoked key's session: %d", p.status)
	}
}

func TestRotateKeyShowsTheSuccessorOnce(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acmeK)
	old := e.key("acme", principal.RoleMember)
	ks, _ := e.ops.ListKeys(admin.CLIContext(e.ctx), "acme")
	var id string
	for _, k := range ks {
		if strings.HasPrefix(old, k.Prefix) {
			id = k.ID
		}
	}
	if p := b.do(http.MethodPost, "/ui/keys/rotate", url.Values{"id": {id}}, nil); p.status != http.StatusForbidden {
		t.Fatalf("rotate without token: %d", p.status)
	}
	if p := b.post("/ui/keys/rotate", url.Values{"id": {id}}); p.status != http.StatusSeeOther {
		t.Fatalf("rotate: %d %s", p.status, p.body)
	}
	shown := b.get("/ui/keys")
	secret := regexp.MustCompile(`id="new-key"[^>]*>(mcpe_[A-Za-z0-9_]+)<`).FindStringSubmatch(shown.body)
	if secret == nil || secret[1] == old || !strings.Contains(shown.body, "rotated") {
		t.Fatalf("after rotating:\n%s", shown.body)
	}
	if _, err := e.auth.Authenticate(e.ctx, secret[1], "127.0.0.1"); err != nil {
		t.Fatalf("the successor does not work: %v", err)
	}
	if again := b.get("/ui/keys"); strings.Contains(again.body, secret[1]) {
		t.Fatal("the successor's secret is shown a second time")
	}
}
