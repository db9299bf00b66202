package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// pageData is what every page template gets.
type pageData struct {
	Title string
	Nav   string
	Me    *principal.Principal
	CSRF  string
	Error string
	Flash string
	// Page-specific.
	Ready   *readiness
	Upstrms []upstreamRow
	Tools   []toolView
	Prompts []*mcp.Prompt
	Res     []*mcp.Resource
	Query   string
	Result  *callResult
	Keys    []keyRow
	NewKey  string
	Tenant  string
	// TenantLabel names Tenant for people: the signed-in tenant's name.
	TenantLabel string
	Entries     []auditRow
	Filter      auditFilter
	Verified    *audit.Report
	NextPage    string
	// Recent are the latest refused or failed actions (overview, admins);
	// RecentCut says that more entries were recorded than were read.
	Recent    []store.AuditEntry
	RecentCut bool
}

// Recent errors on the overview: the last recentWindow of the audit log,
// at most recentRead entries read, the last recentShown refused or failed
// ones shown.
const (
	recentWindow = 15 * time.Minute
	recentRead   = 5000
	recentShown  = 10
)

// recentErrors reads the audit log of the last recentWindow as the viewer
// may (their tenant's, or every tenant's for an operator) and keeps the
// latest entries whose outcome is not ok.
func (c *Console) recentErrors(v *viewer) ([]store.AuditEntry, bool) {
	q := admin.AuditQuery{Since: c.o.Now().Add(-recentWindow), Limit: admin.MaxAuditLimit}
	var out []store.AuditEntry
	for read := 0; read < recentRead; {
		es, err := c.o.Ops.ListAudit(v.ctx, q)
		if err != nil {
			return out, false
		}
		for _, e := range es {
			if e.Outcome != "ok" {
				out = append(out, e)
				if len(out) > recentShown {
					out = out[1:]
				}
			}
		}
		read += len(es)
		if len(es) < admin.MaxAuditLimit {
			return out, false
		}
		q.After = es[len(es)-1].Seq
	}
	return out, true
}

// render writes a page with the status; data.Me and data.CSRF come from v.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, v *viewer, data pageData) {
	if v != nil {
		data.Me, data.CSRF = v.p, v.s.csrf
	}
	c.write(w, status, &head{Title: data.Title, Nav: page, Me: data.Me, CSRF: data.CSRF, Error: data.Error}, mainOf(page, &data))
}

// write sends a page: the layout around main.
func (c *Console) write(w http.ResponseWriter, status int, h *head, main func(*markup)) {
	var m markup
	layout(&m, h, main)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(m.String()))
}

// failed renders err on the page: the API's status and message for an
// admin error (403, 404 …), a generic one otherwise (logged).
func (c *Console) failed(w http.ResponseWriter, r *http.Request, v *viewer, page string, data pageData, err error) {
	status := http.StatusBadGateway
	var ae *admin.Error
	if errors.As(err, &ae) {
		status, data.Error = ae.Status(), ae.Message
	} else {
		data.Error = "The gateway could not answer: " + err.Error()
		c.o.Log.Warn("console: a view failed", "page", page, "err", err)
	}
	c.render(w, r, status, page, v, data)
}

// ---- sign-in

// preCookie carries the sign-in form's CSRF token before there is a
// session (double submit: the form's copy must match the cookie's).
const preCookie = "mcpedge_console_signin"

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	if c.lookup(r) != nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.signinForm(w, r, http.StatusOK, "")
}

func (c *Console) signinForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: tok, Path: Prefix + "signin", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	c.render(w, r, status, "signin", nil, pageData{Title: "Sign in", CSRF: tok, Error: msg})
}

func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.signinForm(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	ck, err := r.Cookie(preCookie)
	if err != nil || !sameOrigin(r) || !tokenEqual(r.PostForm.Get("csrf"), ck.Value) {
		c.signinForm(w, r, http.StatusForbidden, "The form's security token is missing or wrong; try again.")
		return
	}
	ip := c.o.ClientIP(r)
	s := &session{}
	if key := strings.TrimSpace(r.PostForm.Get("key")); key != "" {
		if _, err := c.o.Auth.Authenticate(r.Context(), key, ip); err != nil {
			c.signinForm(w, r, http.StatusUnauthorized, "That key is not valid here.")
			return
		}
		s.token = key
	} else {
		tenant, user, pw := r.PostForm.Get("tenant"), r.PostForm.Get("user"), r.PostForm.Get("password")
		if tenant == "" || user == "" || pw == "" {
			c.signinForm(w, r, http.StatusBadRequest, "Give an API key, or a tenant, user and password.")
			return
		}
		t, err := c.o.Auth.Login(r.Context(), tenant, user, pw, ip)
		if err != nil {
			c.signinForm(w, r, http.StatusUnauthorized, "Invalid tenant, user or password.")
			return
		}
		s.token, s.refresh = t.AccessToken, t.RefreshToken
		s.expires = c.o.Now().Add(time.Duration(t.ExpiresIn) * time.Second)
	}
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: "", Path: Prefix + "signin", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.start(w, r, s)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request, v *viewer) {
	if v.s.refresh != "" {
		if err := c.o.Auth.Logout(v.ctx, v.p); err != nil {
			c.o.Log.Warn("console: ending a password session", "err", err)
		}
	}
	c.drop(v.s.id)
	clearCookie(w, r)
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

// ---- overview

type upstreamRow struct {
	Name      string    `json:"name"`
	Transport string    `json:"transport"`
	State     string    `json:"state"`
	LastError string    `json:"last_error"`
	Tools     int       `json:"tools"`
	Breaker   string    `json:"breaker"`
	LatencyMs float64   `json:"latency_ms"`
	Since     time.Time `json:"since"`
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, v *viewer) {
	data := pageData{Title: "Overview"}
	rd, err := c.readyz(r, v)
	if err != nil {
		c.failed(w, r, v, "overview", data, err)
		return
	}
	data.Ready = rd
	if v.p.AtLeast(principal.RoleAdmin) {
		data.Recent, data.RecentCut = c.recentErrors(v)
	}
	for _, u := range rd.Upstreams {
		b, _ := json.Marshal(u)
		var row upstreamRow
		if json.Unmarshal(b, &row) == nil {
			data.Upstrms = append(data.Upstrms, row)
		}
	}
	c.render(w, r, http.StatusOK, "overview", v, data)
}

// ---- catalog

type toolView struct {
	Name        string
	Title       string
	Description string
	Params      []param
	Schema      string
	Example     string
}

type param struct {
	Name, Type, Description string
	Required                bool
	// Kind is the try-it form's input for it (see fieldKind); Enum its
	// choices when the schema lists strings.
	Kind string
	Enum []string
}

func viewTool(t *mcp.Tool) toolView {
	tv := toolView{Name: t.Name, Title: t.Title, Description: t.Description, Example: "{}"}
	b, err := json.MarshalIndent(t.InputSchema, "", "  ")
	if err == nil {
		tv.Schema = string(b)
	}
	var s struct {
		Properties map[string]struct {
			Type        any    `json:"type"`
			Description string `json:"description"`
			Enum        []any  `json:"enum"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if json.Unmarshal(b, &s) == nil {
		example := map[string]any{}
		for name, p := range s.Properties {
			typ := fmt.Sprint(p.Type)
			if p.Type == nil {
				typ = "any"
			}
			req := slices.Contains(s.Required, name)
			kind, enum := fieldKind(p.Type, p.Enum)
			tv.Params = append(tv.Params, param{Name: name, Type: typ, Description: p.Description, Required: req, Kind: kind, Enum: enum})
			if req {
				example[name] = zeroOf(typ)
			}
		}
		slices.SortFunc(tv.Params, func(a, b param) int { return strings.Compare(a.Name, b.Name) })
		if e, err := json.MarshalIndent(example, "", "  "); err == nil {
			tv.Example = string(e)
		}
	}
	return tv
}

func zeroOf(typ string) any {
	switch typ {
	case "string":
		return ""
	case "number", "integer":
		return 0
	case "boolean":
		return false
	case "array":
		return []any{}
	case "object":
		return map[string]any{}
	}
	return nil
}

// maxCatalog bounds how many items of each kind a catalog page lists.
const maxCatalog = 2000

func (c *Console) loadCatalog(ctx context.Context, r *http.Request, v *viewer, data *pageData) error {
	cs, err := c.mcpSession(ctx, r, v)
	if err != nil {
		return err
	}
	defer cs.Close()
	q := strings.ToLower(data.Query)
	match := func(name, desc string) bool {
		return q == "" || strings.Contains(strings.ToLower(name), q) || strings.Contains(strings.ToLower(desc), q)
	}
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return err
		}
		if match(t.Name, t.Description) && len(data.Tools) < maxCatalog {
			data.Tools = append(data.Tools, viewTool(t))
		}
	}
	caps := cs.InitializeResult().Capabilities
	if caps != nil && caps.Prompts != nil {
		for p, err := range cs.Prompts(ctx, nil) {
			if err != nil {
				return err
			}
			if match(p.Name, p.Description) && len(data.Prompts) < maxCatalog {
				data.Prompts = append(data.Prompts, p)
			}
		}
	}
	if caps != nil && caps.Resources != nil {
		for res, err := range cs.Resources(ctx, nil) {
			if err != nil {
				return err
			}
			if match(res.Name+" "+res.URI, res.Description) && len(data.Res) < maxCatalog {
				data.Res = append(data.Res, res)
			}
		}
	}
	return nil
}

func (c *Console) catalog(w http.ResponseWriter, r *http.Request, v *viewer) {
	data := pageData{Title: "Catalog", Query: r.URL.Query().Get("q")}
	ctx, cancel := context.WithTimeout(r.Context(), gatewayTimeout)
	defer cancel()
	if err := c.loadCatalog(ctx, r, v, &data); err != nil {
		c.failed(w, r, v, "catalog", data, err)
		return
	}
	c.render(w, r, http.StatusOK, "catalog", v, data)
}

// callResult is a tool call's outcome as shown.
type callResult struct {
	Tool       string
	Arguments  string
	IsError    bool
	Problem    string
	Texts      []string
	Images     []string
	Structured string
}

func (c *Console) callTool(w http.ResponseWriter, r *http.Request, v *viewer) {
	name, args := r.PostForm.Get("tool"), r.PostForm.Get("arguments")
	data := pageData{Title: "Catalog", Query: name}
	res := &callResult{Tool: name, Arguments: args}
	data.Result = res
	ctx, cancel := context.WithTimeout(r.Context(), gatewayTimeout)
	defer cancel()
	var in map[string]any
	if strings.TrimSpace(args) == "" {
		args = "{}"
	}
	if err := json.Unmarshal([]byte(args), &in); err != nil {
		res.Problem = "The arguments are not a JSON object: " + err.Error()
	} else if in == nil {
		res.Problem = "The arguments are not a JSON object."
	} else if problem := fromFields(r.PostForm, in); problem != "" {
		res.Problem = problem
	} else if name == "" {
		res.Problem = "No tool was named."
	} else if cs, err := c.mcpSession(ctx, r, v); err != nil {
		res.Problem = "The gateway could not be reached: " + err.Error()
	} else {
		if b, err := json.Marshal(in); err == nil {
			res.Arguments = string(b)
		}
		out, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: in})
		_ = cs.Close()
		if err != nil {
			res.Problem = err.Error()
		} else {
			fill(res, out)
		}
	}
	if err := c.loadCatalog(ctx, r, v, &data); err != nil {
		c.failed(w, r, v, "catalog", data, err)
		return
	}
	c.render(w, r, http.StatusOK, "catalog", v, data)
}

func fill(res *callResult, out *mcp.CallToolResult) {
	res.IsError = out.IsError
	for _, ct := range out.Content {
		switch ct := ct.(type) {
		case *mcp.TextContent:
			res.Texts = append(res.Texts, ct.Text)
		case *mcp.ImageContent:
			if safeImage(ct.MIMEType) {
				res.Images = append(res.Images, "data:"+ct.MIMEType+";base64,"+base64.StdEncoding.EncodeToString(ct.Data))
			} else {
				res.Texts = append(res.Texts, "[an image of type "+ct.MIMEType+", not shown]")
			}
		default:
			b, _ := json.MarshalIndent(ct, "", "  ")
			res.Texts = append(res.Texts, string(b))
		}
	}
	if out.StructuredContent != nil {
		b, _ := json.MarshalIndent(out.StructuredContent, "", "  ")
		res.Structured = string(b)
	}
}

// safeImage: raster types only (an SVG can carry script).
func safeImage(mime string) bool {
	switch mime {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return true
	}
	return false
}

// ---- keys

type keyRow struct {
	store.APIKey
	State string
}

func (c *Console) keys(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := r.URL.Query().Get("tenant")
	if tenant == "" {
		tenant = v.p.TenantID
	}
	data := pageData{Title: "API keys", Tenant: tenant, TenantLabel: tenant}
	if tenant == v.p.TenantID {
		data.TenantLabel = v.p.TenantName
	}
	c.mu.Lock()
	data.NewKey, v.s.newKey = v.s.newKey, ""
	c.mu.Unlock()
	ks, err := c.o.Ops.ListKeys(v.ctx, tenant)
	if err != nil {
		c.failed(w, r, v, "keys", data, err)
		return
	}
	now := c.o.Now()
	for _, k := range ks {
		data.Keys = append(data.Keys, keyRow{APIKey: k, State: admin.KeyState(&k, now)})
	}
	c.render(w, r, http.StatusOK, "keys", v, data)
}

func (c *Console) keysURL(tenant string, v *viewer) string {
	if tenant == "" || tenant == v.p.TenantID {
		return Prefix + "keys"
	}
	return Prefix + "keys?tenant=" + urlQueryEscape(tenant)
}

func (c *Console) createKey(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := r.PostForm.Get("tenant")
	if tenant == "" {
		tenant = v.p.TenantID
	}
	spec := admin.KeySpec{Name: r.PostForm.Get("name"), Role: r.PostForm.Get("role"), Scopes: splitList(r.PostForm.Get("scopes")), ExpiresIn: r.PostForm.Get("expires_in")}
	nk, err := c.o.Ops.CreateKey(v.ctx, tenant, spec)
	if err != nil {
		c.failed(w, r, v, "keys", pageData{Title: "API keys", Tenant: tenant}, err)
		return
	}
	c.mu.Lock()
	v.s.newKey = nk.Secret
	c.mu.Unlock()
	http.Redirect(w, r, c.keysURL(tenant, v), http.StatusSeeOther)
}

func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := r.PostForm.Get("tenant")
	if tenant == "" {
		tenant = v.p.TenantID
	}
	if _, err := c.o.Ops.RevokeKey(v.ctx, tenant, r.PostForm.Get("id")); err != nil {
		c.failed(w, r, v, "keys", pageData{Title: "API keys", Tenant: tenant}, err)
		return
	}
	http.Redirect(w, r, c.keysURL(tenant, v), http.StatusSeeOther)
}

func (c *Console) rotateKey(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := r.PostForm.Get("tenant")
	if tenant == "" {
		tenant = v.p.TenantID
	}
	nk, err := c.o.Ops.RotateKey(v.ctx, tenant, r.PostForm.Get("id"))
	if err != nil {
		c.failed(w, r, v, "keys", pageData{Title: "API keys", Tenant: tenant}, err)
		return
	}
	c.mu.Lock()
	v.s.newKey = nk.Secret
	c.mu.Unlock()
	http.Redirect(w, r, c.keysURL(tenant, v), http.StatusSeeOther)
}

// ---- audit

// auditFilter is the audit view's query. Since is "2006-01-02T15:04" (UTC,
// a datetime-local input); After pages on from a sequence number.
type auditFilter struct {
	Action, Actor, Outcome, Tenant, Since, Until string
	After                                        int64
}

// query is the filter as the API's query, or a message for a bad time.
func (f auditFilter) query(limit int) (admin.AuditQuery, string) {
	aq := admin.AuditQuery{Tenant: f.Tenant, Actor: f.Actor, Action: f.Action, After: f.After, Limit: limit}
	if f.Since != "" {
		t, err := time.Parse(sinceLayout, f.Since)
		if err != nil {
			return aq, "Since is not a date and time (YYYY-MM-DDTHH:MM, UTC)."
		}
		aq.Since = t
	}
	if f.Until != "" {
		t, err := time.Parse(sinceLayout, f.Until)
		if err != nil {
			return aq, "Until is not a date and time (YYYY-MM-DDTHH:MM, UTC)."
		}
		aq.Until = t
	}
	return aq, ""
}

// values is the filter as URL query parameters (Since always, so that an
// empty one means "from the start", not the page's default).
func (f auditFilter) values() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"action": f.Action, "actor": f.Actor, "outcome": f.Outcome, "tenant": f.Tenant, "until": f.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("since", f.Since)
	if f.After > 0 {
		q.Set("after", strconv.FormatInt(f.After, 10))
	}
	return q
}

func auditExportURL(f auditFilter, format string) string {
	q := f.values()
	q.Set("format", format)
	return Prefix + "audit/export?" + q.Encode()
}

func filterFrom(q url.Values, now time.Time) auditFilter {
	f := auditFilter{Action: q.Get("action"), Actor: q.Get("actor"), Outcome: q.Get("outcome"), Tenant: q.Get("tenant"), Since: q.Get("since"), Until: q.Get("until")}
	if a, err := strconv.ParseInt(q.Get("after"), 10, 64); err == nil && a > 0 {
		f.After = a
	}
	if !q.Has("since") {
		f.Since = now.Add(-24 * time.Hour).UTC().Format(sinceLayout)
	}
	return f
}

type auditRow struct {
	store.AuditEntry
	DetailText string
}

// auditPage is how many entries one audit page reads (in chain order).
const auditPage = 200

// sinceLayout is the datetime-local input's format.
const sinceLayout = "2006-01-02T15:04"

func (c *Console) audit(w http.ResponseWriter, r *http.Request, v *viewer) {
	c.showAudit(w, r, v, pageData{Title: "Audit log", Filter: filterFrom(r.URL.Query(), c.o.Now())})
}

func (c *Console) showAudit(w http.ResponseWriter, r *http.Request, v *viewer, data pageData) {
	f := data.Filter
	aq, bad := f.query(auditPage)
	if bad != "" {
		data.Error = bad
		c.render(w, r, http.StatusBadRequest, "audit", v, data)
		return
	}
	es, err := c.o.Ops.ListAudit(v.ctx, aq)
	if err != nil {
		c.failed(w, r, v, "audit", data, err)
		return
	}
	for _, e := range es {
		if f.Outcome != "" && e.Outcome != f.Outcome {
			continue
		}
		data.Entries = append(data.Entries, auditRow{AuditEntry: e, DetailText: string(e.Detail)})
	}
	if len(es) == auditPage {
		next := f
		next.After = es[len(es)-1].Seq
		data.NextPage = Prefix + "audit?" + next.values().Encode()
	}
	c.render(w, r, http.StatusOK, "audit", v, data)
}

func (c *Console) verifyAudit(w http.ResponseWriter, r *http.Request, v *viewer) {
	data := pageData{Title: "Audit log", Filter: auditFilter{Since: c.o.Now().Add(-24 * time.Hour).UTC().Format(sinceLayout)}}
	rep, err := c.o.Ops.VerifyAudit(v.ctx)
	if err != nil {
		c.failed(w, r, v, "audit", data, err)
		return
	}
	data.Verified = &rep
	c.showAudit(w, r, v, data)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
