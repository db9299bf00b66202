package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// DefaultMaxBodyBytes bounds a request body when Options.MaxBodyBytes is
// zero. Admin requests are small; the gateway's own bound applies first.
const DefaultMaxBodyBytes = 1 << 20

// AuthRoutes serves the session endpoints (/api/auth/login, refresh,
// logout); *auth.Service implements it.
type AuthRoutes interface {
	Routes(mux *http.ServeMux, clientIP func(*http.Request) string)
}

// Options configure [Handler].
type Options struct {
	// Ops does the work. Required.
	Ops *Ops
	// Auth, if set, serves /api/auth/…, which needs no principal.
	Auth AuthRoutes
	// Lattice, if set, serves /api/lattices… (latticesvc.RESTHandler).
	Lattice http.Handler
	// Hub, if set, serves the hub endpoints /api/hub/… and
	// /api/devices… (internal/hub), which check their callers themselves:
	// edges sign in there without a principal.
	Hub http.Handler
	// ClientIP returns the caller's address for audit entries and the
	// allowlist self-check; nil means the host of r.RemoteAddr.
	ClientIP func(*http.Request) string
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// LatticeAllowed, if set, is the tenant policy (policy.Engine.Allowed):
	// each lattice endpoint is allowed only when the lattice tool it does
	// the work of (LatticeUpstream, "tool", "lattice_create"…) is, so that
	// virtual servers and per-tool rules hold over REST as over MCP.
	LatticeAllowed func(p *principal.Principal, upstream, kind, name string) bool
	// Queue, if set, is the offline queue that GET /api/queue… reads
	// (queue.go); nil: those endpoints answer 503.
	Queue QueueReader
}

// LatticeUpstream is the name of the built-in lattice server, whose tools
// the lattice REST API stands for.
const LatticeUpstream = "lattice"

// route is one admin endpoint. routes (below) are exactly the admin
// endpoints documented in openapi.json; a test checks both ways.
type route struct {
	method, pattern string
	handle          func(h *handler, w http.ResponseWriter, r *http.Request) error
	// public routes need no principal.
	public bool
}

var routes = []route{
	{method: "GET", pattern: "/api/me", handle: (*handler).me},
	{method: "GET", pattern: "/api/tenants", handle: (*handler).listTenants},
	{method: "POST", pattern: "/api/tenants", handle: (*handler).createTenant},
	{method: "GET", pattern: "/api/tenants/{tenant}", handle: (*handler).getTenant},
	{method: "PATCH", pattern: "/api/tenants/{tenant}", handle: (*handler).updateTenant},
	{method: "DELETE", pattern: "/api/tenants/{tenant}", handle: (*handler).deleteTenant},
	{method: "GET", pattern: "/api/tenants/{tenant}/export", handle: (*handler).exportTenant},
	{method: "GET", pattern: "/api/tenants/{tenant}/users", handle: (*handler).listUsers},
	{method: "POST", pattern: "/api/tenants/{tenant}/users", handle: (*handler).createUser},
	{method: "PATCH", pattern: "/api/tenants/{tenant}/users/{id}", handle: (*handler).updateUser},
	{method: "DELETE", pattern: "/api/tenants/{tenant}/users/{id}", handle: (*handler).deleteUser},
	{method: "GET", pattern: "/api/tenants/{tenant}/keys", handle: (*handler).listKeys},
	{method: "POST", pattern: "/api/tenants/{tenant}/keys", handle: (*handler).createKey},
	{method: "DELETE", pattern: "/api/tenants/{tenant}/keys/{id}", handle: (*handler).revokeKey},
	{method: "POST", pattern: "/api/tenants/{tenant}/keys/{id}/rotate", handle: (*handler).rotateKey},
	{method: "GET", pattern: "/api/plans", handle: (*handler).listPlans},
	{method: "PUT", pattern: "/api/plans/{name}", handle: (*handler).putPlan},
	{method: "DELETE", pattern: "/api/plans/{name}", handle: (*handler).deletePlan},
	{method: "GET", pattern: "/api/tenants/{tenant}/virtual-servers", handle: (*handler).listVirtualServers},
	{method: "POST", pattern: "/api/tenants/{tenant}/virtual-servers", handle: (*handler).createVirtualServer},
	{method: "PUT", pattern: "/api/tenants/{tenant}/virtual-servers/{id}", handle: (*handler).updateVirtualServer},
	{method: "DELETE", pattern: "/api/tenants/{tenant}/virtual-servers/{id}", handle: (*handler).deleteVirtualServer},
	{method: "GET", pattern: "/api/tenants/{tenant}/rules", handle: (*handler).listRules},
	{method: "POST", pattern: "/api/tenants/{tenant}/rules", handle: (*handler).createRule},
	{method: "DELETE", pattern: "/api/tenants/{tenant}/rules/{id}", handle: (*handler).deleteRule},
	{method: "GET", pattern: "/api/pins", handle: (*handler).listPins},
	{method: "GET", pattern: "/api/pins/{upstream}/{kind}/{name}", handle: (*handler).getPin},
	{method: "POST", pattern: "/api/pins/approve", handle: (*handler).approvePin},
	{method: "POST", pattern: "/api/pins/reject", handle: (*handler).rejectPin},
	{method: "GET", pattern: "/api/guard/quarantine", handle: (*handler).listQuarantine},
	{method: "GET", pattern: "/api/guard/quarantine/{upstream}/{kind}/{name}", handle: (*handler).getQuarantined},
	{method: "POST", pattern: "/api/guard/approve", handle: (*handler).approveQuarantined},
	{method: "POST", pattern: "/api/guard/reject", handle: (*handler).rejectQuarantined},
	{method: "GET", pattern: "/api/audit", handle: (*handler).listAudit},
	{method: "GET", pattern: "/api/usage", handle: (*handler).usage},
	{method: "GET", pattern: "/api/queue", handle: (*handler).listQueued},
	{method: "GET", pattern: "/api/queue/{id}", handle: (*handler).getQueued},
	{method: "DELETE", pattern: "/api/queue/{id}", handle: (*handler).purgeQueued},
	{method: "POST", pattern: "/api/queue/{id}/retry", handle: (*handler).retryQueued},
	{method: "GET", pattern: "/api/tenants/{tenant}/webhooks", handle: (*handler).listWebhooks},
	{method: "POST", pattern: "/api/tenants/{tenant}/webhooks", handle: (*handler).createWebhook},
	{method: "PATCH", pattern: "/api/tenants/{tenant}/webhooks/{id}", handle: (*handler).updateWebhook},
	{method: "DELETE", pattern: "/api/tenants/{tenant}/webhooks/{id}", handle: (*handler).deleteWebhook},
	{method: "POST", pattern: "/api/tenants/{tenant}/webhooks/{id}/rotate", handle: (*handler).rotateWebhook},
	{method: "POST", pattern: "/api/tenants/{tenant}/webhooks/{id}/test", handle: (*handler).testWebhook},
	{method: "GET", pattern: "/api/tenants/{tenant}/webhooks/{id}/deliveries", handle: (*handler).listWebhookDeliveries},
	{method: "GET", pattern: "/api/tenants/{tenant}/webhook-deliveries/{id}", handle: (*handler).getWebhookDelivery},
	{method: "POST", pattern: "/api/tenants/{tenant}/webhook-deliveries/{id}/retry", handle: (*handler).retryWebhookDelivery},
	{method: "GET", pattern: "/api/openapi.json", handle: (*handler).openAPI, public: true},
}

// hubPatterns are the paths forwarded to Options.Hub.
var hubPatterns = []string{"/api/hub/", "/api/devices", "/api/devices/"}

// lattice paths forwarded to Options.Lattice.
const (
	latticeRoot    = "/api/lattices"
	latticeSubtree = "/api/lattices/"
)

type handler struct {
	ops      *Ops
	mux      *http.ServeMux
	clientIP func(*http.Request) string
	maxBody  int64
	allowed  func(p *principal.Principal, upstream, kind, name string) bool
	queue    QueueReader
}

// Handler serves the whole of /api: the admin endpoints, /api/auth/… (from
// o.Auth), /api/lattices… (from o.Lattice) and /api/openapi.json, one
// OpenAPI 3.1 document describing all of them. Mount it at /api/.
//
// The caller's principal must already be in the request context (the
// gateway's authenticator puts it there); only /api/auth/… and
// /api/openapi.json answer without one. The tenant is only ever taken
// from the principal and the path, never from a header.
//
// Errors are JSON objects {"error": {"code", "message"}}; see the Code
// constants for the codes and their statuses.
func Handler(o Options) http.Handler {
	h := &handler{ops: o.Ops, mux: http.NewServeMux(), clientIP: o.ClientIP, maxBody: o.MaxBodyBytes, allowed: o.LatticeAllowed, queue: o.Queue}
	if h.clientIP == nil {
		h.clientIP = remoteHost
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	for _, rt := range routes {
		h.mux.Handle(rt.method+" "+rt.pattern, h.serve(rt))
	}
	if o.Hub != nil {
		for _, p := range hubPatterns {
			h.mux.Handle(p, o.Hub)
		}
	}
	if o.Lattice != nil {
		lat := h.needPrincipal(o.Lattice)
		h.mux.Handle(latticeRoot, lat)
		h.mux.Handle(latticeSubtree, lat)
	}
	if o.Auth != nil {
		o.Auth.Routes(h.mux, h.clientIP)
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern == "" {
		h.noRoute(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// noRoute answers 405 (with Allow) when another method is served on the
// path, else 404, both in the API's JSON error form.
func (h *handler) noRoute(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := h.mux.Handler(probe); p != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, errorf(CodeMethodNotAllowed, "%s is not supported on %s (allowed: %s)", r.Method, clip(r.URL.Path), strings.Join(allowed, ", ")))
		return
	}
	writeError(w, errorf(CodeNotFound, "no endpoint %s %s; the API is described at /api/openapi.json", r.Method, clip(r.URL.Path)))
}

func (h *handler) serve(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(WithClientIP(r.Context(), h.clientIP(r)))
		if !rt.public && principal.From(r.Context()) == nil {
			unauthenticated(w)
			return
		}
		if err := rt.handle(h, w, r); err != nil {
			writeError(w, err)
		}
	})
}

// needPrincipal guards the lattice REST API, the REST face of the lattice
// tools: reading (GET) needs the rights of listing tools (viewers and up,
// mcp:list or mcp:call), anything else (create, delete, searches) those of
// calling them (members and up, mcp:call). Each request that stands for a
// tool is audited as the tool call would be over MCP ("tool.call" on
// lattice__<tool>, with "via": "rest"), refused ones as "denied".
func (h *handler) needPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principal.From(r.Context())
		if p == nil {
			unauthenticated(w)
			return
		}
		tool := latticeTool(r.Method, r.URL.Path)
		deny := func(format string, args ...any) {
			h.auditLattice(r, p, tool, OutcomeDenied, http.StatusForbidden, 0, "")
			writeError(w, errorf(CodeForbidden, format, args...))
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			if !p.CanList() {
				deny("reading lattices needs the viewer role or stronger and, for a credential limited to scopes, %s or %s", principal.ScopeList, principal.ScopeCall)
				return
			}
		} else if !p.CanCall() {
			deny("changing or searching lattices needs the member role or stronger and, for a credential limited to scopes, %s", principal.ScopeCall)
			return
		}
		if h.allowed != nil && tool != "" && !h.allowed(p, LatticeUpstream, "tool", tool) {
			deny("this credential may not use the lattice tool %s (the tenant's virtual servers or rules)", tool)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(sw, r)
		outcome := OutcomeOK
		if sw.status >= 400 {
			outcome = OutcomeError
		}
		h.auditLattice(r, p, tool, outcome, sw.status, time.Since(start), sw.Header().Get("Location"))
	})
}

// auditLattice records one lattice REST request that stands for a tool.
func (h *handler) auditLattice(r *http.Request, p *principal.Principal, tool, outcome string, status int, took time.Duration, location string) {
	if tool == "" || h.ops.audit == nil {
		return
	}
	detail := map[string]any{"name": LatticeUpstream + "__" + tool, "via": "rest", "status": status}
	if id := strings.TrimPrefix(location, latticeSubtree); location != "" {
		detail["id"] = id
	} else if parts := strings.Split(strings.TrimPrefix(r.URL.Path, latticeSubtree), "/"); strings.HasPrefix(r.URL.Path, latticeSubtree) && parts[0] != "" {
		detail["id"] = clip(parts[0])
	}
	if rid := r.Header.Get("X-Request-Id"); rid != "" {
		detail["request_id"] = clip(rid)
	}
	e := &store.AuditEntry{
		Time: h.ops.now().UTC(), TenantID: p.TenantID, Actor: p.ID, ActorKind: p.Kind,
		Action: "tool.call", Target: LatticeUpstream + "__" + tool, Outcome: outcome,
		LatencyUS: took.Microseconds(), ClientIP: h.clientIP(r),
	}
	if e.ActorKind == "" {
		e.ActorKind = principal.KindAnonymous
	}
	e.Detail, _ = json.Marshal(detail)
	h.ops.audit.Record(context.WithoutCancel(r.Context()), e)
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// latticeTool names the lattice tool a lattice REST request does the work
// of ("" for a path that is none: the lattice handler answers 404/405).
func latticeTool(method, path string) string {
	rest, ok := strings.CutPrefix(path, latticeRoot)
	if !ok || (rest != "" && rest[0] != '/') {
		return ""
	}
	parts := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case rest == "" && method == http.MethodGet:
		return "lattice_list"
	case rest == "" && method == http.MethodPost:
		return "lattice_create"
	case len(parts) == 1 && parts[0] != "" && method == http.MethodGet:
		return "lattice_get"
	case len(parts) == 1 && parts[0] != "" && method == http.MethodDelete:
		return "lattice_delete"
	case len(parts) == 2 && parts[1] == "path" && method == http.MethodPost:
		return "lattice_path"
	case len(parts) == 2 && parts[1] == "transform" && method == http.MethodPost:
		return "lattice_transform"
	}
	return ""
}

func unauthenticated(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="mcpedge"`)
	writeError(w, errUnauthenticated)
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	// Admin answers are per caller and some carry secrets: never cache.
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	e := AsError(err)
	msg := e.Message
	if e.Code == CodeInternal && msg == "internal error" {
		msg = "internal error; the gateway's log has the details"
	}
	writeJSON(w, e.Status(), map[string]any{"error": map[string]string{"code": e.Code, "message": msg}})
}

// decode reads a JSON object body into v: application/json only, bounded,
// unknown fields and trailing data refused.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return errorf(CodeUnsupportedMedia, "send the request body as JSON with Content-Type: application/json (got %q)", clip(ct))
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, h.maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeErr(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := decodeErr(err); e.Code == CodeBodyTooLarge {
				return e
			}
		}
		return errorf(CodeInvalidJSON, "the request body must be one JSON object, without anything after it")
	}
	return nil
}

func decodeErr(err error) *Error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return errorf(CodeBodyTooLarge, "the request body exceeds %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return errorf(CodeInvalidJSON, "a JSON object is required as the request body")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(CodeInvalidJSON, "the request body is truncated JSON")
	case errors.As(err, &se):
		return errorf(CodeInvalidJSON, "the request body is not valid JSON: %v (at byte %d)", se, se.Offset)
	case errors.As(err, &te):
		if te.Field == "" {
			return errorf(CodeInvalidJSON, "the request body must be a JSON object, not %s", te.Value)
		}
		return errorf(CodeInvalidJSON, "field %q must be %s, not %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errorf(CodeInvalidJSON, "unknown field %s in the request body", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return errorf(CodeInvalidJSON, "the request body can not be read: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	case "ptr":
		return "a value"
	}
	return "a number"
}

func (h *handler) me(w http.ResponseWriter, r *http.Request) error {
	me, err := h.ops.Me(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, me)
	return nil
}

func (h *handler) listTenants(w http.ResponseWriter, r *http.Request) error {
	ts, err := h.ops.ListTenants(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenants": nonNil(ts)})
	return nil
}

func (h *handler) createTenant(w http.ResponseWriter, r *http.Request) error {
	var s TenantSpec
	if err := h.decode(w, r, &s); err != nil {
		return err
	}
	t, warnings, err := h.ops.CreateTenantWarn(r.Context(), s)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/tenants/"+t.ID)
	writeJSON(w, http.StatusCreated, CreatedTenant{Tenant: t, Warnings: warnings})
	return nil
}

func (h *handler) getTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := h.ops.GetTenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (h *handler) updateTenant(w http.ResponseWriter, r *http.Request) error {
	var p TenantPatch
	if err := h.decode(w, r, &p); err != nil {
		return err
	}
	t, err := h.ops.UpdateTenant(r.Context(), r.PathValue("tenant"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (h *handler) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	if v := r.URL.Query()["erase"]; len(v) > 0 {
		erase, err := strconv.ParseBool(v[0])
		if err != nil || len(v) > 1 {
			return invalid("erase must be true or false, once")
		}
		if erase {
			er, err := h.ops.EraseTenant(r.Context(), r.PathValue("tenant"))
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, er)
			return nil
		}
	}
	if err := h.ops.DeleteTenant(r.Context(), r.PathValue("tenant")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := h.ops.ListUsers(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": nonNil(us)})
	return nil
}

func (h *handler) createUser(w http.ResponseWriter, r *http.Request) error {
	var s UserSpec
	if err := h.decode(w, r, &s); err != nil {
		return err
	}
	u, err := h.ops.CreateUser(r.Context(), r.PathValue("tenant"), s)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/tenants/"+url.PathEscape(r.PathValue("tenant"))+"/users/"+u.ID)
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (h *handler) updateUser(w http.ResponseWriter, r *http.Request) error {
	var p UserPatch
	if err := h.decode(w, r, &p); err != nil {
		return err
	}
	u, err := h.ops.UpdateUser(r.Context(), r.PathValue("tenant"), r.PathValue("id"), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (h *handler) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if err := h.ops.DeleteUser(r.Context(), r.PathValue("tenant"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listKeys(w http.ResponseWriter, r *http.Request) error {
	ks, err := h.ops.ListKeys(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": nonNil(ks)})
	return nil
}

func (h *handler) createKey(w http.ResponseWriter, r *http.Request) error {
	var s KeySpec
	if err := h.decode(w, r, &s); err != nil {
		return err
	}
	nk, err := h.ops.CreateKey(r.Context(), r.PathValue("tenant"), s)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/tenants/"+url.PathEscape(r.PathValue("tenant"))+"/keys/"+nk.Key.ID)
	writeJSON(w, http.StatusCreated, nk)
	return nil
}

func (h *handler) revokeKey(w http.ResponseWriter, r *http.Request) error {
	if _, err := h.ops.RevokeKey(r.Context(), r.PathValue("tenant"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) rotateKey(w http.ResponseWriter, r *http.Request) error {
	nk, err := h.ops.RotateKey(r.Context(), r.PathValue("tenant"), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nk)
	return nil
}

func (h *handler) listPlans(w http.ResponseWriter, r *http.Request) error {
	ps, err := h.ops.ListPlans(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"plans": nonNil(ps)})
	return nil
}

func (h *handler) putPlan(w http.ResponseWriter, r *http.Request) error {
	var l PlanLimits
	if err := h.decode(w, r, &l); err != nil {
		return err
	}
	p, err := h.ops.PutPlan(r.Context(), r.PathValue("name"), l)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (h *handler) deletePlan(w http.ResponseWriter, r *http.Request) error {
	if err := h.ops.DeletePlan(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listVirtualServers(w http.ResponseWriter, r *http.Request) error {
	vs, err := h.ops.ListVirtualServers(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"virtual_servers": nonNil(vs)})
	return nil
}

func (h *handler) createVirtualServer(w http.ResponseWriter, r *http.Request) error {
	var s VirtualServerSpec
	if err := h.decode(w, r, &s); err != nil {
		return err
	}
	v, err := h.ops.CreateVirtualServer(r.Context(), r.PathValue("tenant"), s)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/tenants/"+url.PathEscape(r.PathValue("tenant"))+"/virtual-servers/"+v.ID)
	writeJSON(w, http.StatusCreated, SavedVirtualServer{VirtualServer: v, Warnings: h.ops.upstreamWarnings(s.Upstreams)})
	return nil
}

func (h *handler) updateVirtualServer(w http.ResponseWriter, r *http.Request) error {
	var s VirtualServerSpec
	if err := h.decode(w, r, &s); err != nil {
		return err
	}
	v, err := h.ops.UpdateVirtualServer(r.Context(), r.PathValue("tenant"), r.PathValue("id"), s)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, SavedVirtualServer{VirtualServer: v, Warnings: h.ops.upstreamWarnings(s.Upstreams)})
	return nil
}

func (h *handler) deleteVirtualServer(w http.ResponseWriter, r *http.Request) error {
	if err := h.ops.DeleteVirtualServer(r.Context(), r.PathValue("tenant"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listRules(w http.ResponseWriter, r *http.Request) error {
	rs, err := h.ops.ListRules(r.Context(), r.PathValue("tenant"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": nonNil(rs)})
	return nil
}

func (h *handler) createRule(w http.ResponseWriter, r *http.Request) error {
	var s RuleSpec
	if err := h.decode(w, r, &s); err != nil {
		return err
	}
	rule, err := h.ops.CreateRule(r.Context(), r.PathValue("tenant"), s)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/tenants/"+url.PathEscape(r.PathValue("tenant"))+"/rules/"+rule.ID)
	writeJSON(w, http.StatusCreated, rule)
	return nil
}

func (h *handler) deleteRule(w http.ResponseWriter, r *http.Request) error {
	if err := h.ops.DeleteRule(r.Context(), r.PathValue("tenant"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// auditQueryParams are the query parameters GET /api/audit accepts.
var auditQueryParams = []string{"tenant", "actor", "action", "since", "until", "after", "limit"}

func (h *handler) listAudit(w http.ResponseWriter, r *http.Request) error {
	qv := r.URL.Query()
	for k := range qv {
		if !slices.Contains(auditQueryParams, k) {
			return invalid("unknown query parameter %q; use %s", clip(k), strings.Join(auditQueryParams, ", "))
		}
	}
	q := AuditQuery{Tenant: qv.Get("tenant"), Actor: qv.Get("actor"), Action: qv.Get("action")}
	var err error
	if q.Since, err = queryTime(qv, "since"); err != nil {
		return err
	}
	if q.Until, err = queryTime(qv, "until"); err != nil {
		return err
	}
	if q.After, err = queryInt(qv, "after"); err != nil {
		return err
	}
	limit, err := queryInt(qv, "limit")
	if err != nil {
		return err
	}
	q.Limit = int(min(limit, MaxAuditLimit))
	es, err := h.ops.ListAudit(r.Context(), q)
	if err != nil {
		return err
	}
	next := q.After
	if len(es) > 0 {
		next = es[len(es)-1].Seq
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": es, "next_after": next})
	return nil
}

// usageQueryParams are the query parameters GET /api/usage accepts.
var usageQueryParams = []string{"tenant", "from", "to", "upstream", "tool", "granularity", "format"}

func (h *handler) usage(w http.ResponseWriter, r *http.Request) error {
	qv := r.URL.Query()
	for k := range qv {
		if !slices.Contains(usageQueryParams, k) {
			return invalid("unknown query parameter %q; use %s", clip(k), strings.Join(usageQueryParams, ", "))
		}
	}
	asCSV, err := wantsCSV(qv.Get("format"), r.Header.Get("Accept"))
	if err != nil {
		return err
	}
	q := UsageQuery{Tenant: qv.Get("tenant"), Upstream: qv.Get("upstream"), Tool: qv.Get("tool"), Granularity: qv.Get("granularity")}
	if q.From, err = queryTime(qv, "from"); err != nil {
		return err
	}
	if q.To, err = queryTime(qv, "to"); err != nil {
		return err
	}
	rep, err := h.ops.Usage(r.Context(), q)
	if err != nil {
		return err
	}
	if !asCSV {
		writeJSON(w, http.StatusOK, rep)
		return nil
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="usage.csv"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = WriteUsageCSV(w, rep) // an error here is the client gone: the status is sent
	return nil
}

// wantsCSV decides a usage report's format: ?format wins; else an Accept
// header naming text/csv and not application/json.
func wantsCSV(format, accept string) (bool, error) {
	switch format {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, invalid("format must be json or csv, got %q", clip(format))
	}
	return strings.Contains(accept, "text/csv") && !strings.Contains(accept, "application/json"), nil
}

func queryTime(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid("%s=%q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", name, clip(s))
	}
	return t, nil
}

func queryInt(q url.Values, name string) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("%s=%q is not a non-negative integer", name, clip(s))
	}
	return n, nil
}

func (h *handler) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(OpenAPIDocument())
	return nil
}
