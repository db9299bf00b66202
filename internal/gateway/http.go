package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTPOptions configure the HTTP face of the gateway.
type HTTPOptions struct {
	// Token, if non-empty, is the static bearer token every request except
	// /healthz must present. It is compared in constant time.
	Token string
	// AllowedOrigins are browser origins (scheme://host[:port]) accepted in
	// addition to loopback origins.
	AllowedOrigins []string
	// MaxBodyBytes and MaxJSONDepth bound each JSON-RPC message.
	MaxBodyBytes int64
	MaxJSONDepth int
	// BodyReadTimeout bounds how long a client may take to send a body,
	// counted from the end of its headers, on every endpoint (0: 30s).
	BodyReadTimeout time.Duration
	// LoopbackOnly, set when the gateway listens on a loopback address,
	// refuses requests whose Host header does not name this machine (or
	// the host of an allowed origin): a DNS-rebinding page reaches a local
	// gateway under its own host name.
	LoopbackOnly bool
	// AllowedHosts are further host names accepted with LoopbackOnly (a
	// reverse proxy on this machine forwarding under its own name).
	AllowedHosts []string
	// SessionTimeout closes client sessions idle for this long (0: 30 minutes).
	SessionTimeout time.Duration
	// API, if set, serves /api/ (REST) behind the same guards as /mcp:
	// Origin, token, and for bodies the size limit and strict JSON checks.
	API http.Handler
	// Anonymous, in single-user mode (no Security), is the principal
	// attached to every request, so that services scoped by tenant work
	// the same in both modes.
	Anonymous *principal.Principal
	// Console, if set, serves the web console at /ui/ and the redirect
	// from / (internal/console). It signs people in itself (cookie
	// sessions with CSRF tokens), so it is behind the edge's checks but
	// not the bearer-token guard; a form it posts from its own origin is
	// accepted whatever server.allowed_origins says.
	Console http.Handler
}

// publicAPI are the /api paths that need no credential: signing in.
var publicAPI = map[string]bool{
	"/api/auth/login": true, "/api/auth/refresh": true, "/api/openapi.json": true,
	// An edge signs in to its hub with its device key (internal/hub).
	"/api/hub/nonce": true, "/api/hub/enroll": true, "/api/hub/session": true,
	// Stripe's webhooks carry Stripe's signature, which the billing
	// handler verifies (internal/billing).
	"/api/billing/stripe": true,
}

// compressedAPI are the /api paths whose bodies are compressed (an edge's
// telemetry, zstd): their size is bounded here, their JSON is checked by
// their handler after decompression.
var compressedAPI = map[string]bool{"/api/hub/telemetry": true}

// Handler returns the gateway's HTTP handler: /mcp, /mcp/<upstream>,
// /healthz, /readyz and /metrics.
func (g *Gateway) Handler(o HTTPOptions) http.Handler {
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 30 * time.Minute
	}
	if o.BodyReadTimeout == 0 {
		o.BodyReadTimeout = 30 * time.Second
	}
	mux := http.NewServeMux()
	aggServer := func(*http.Request) *mcp.Server { return g.agg }
	perServer := func(r *http.Request) *mcp.Server { return g.PerUpstream(r.PathValue("upstream")) }
	g.clients.timeout.Store(int64(o.SessionTimeout))
	agg := g.requireSession(g.eraSwitch(aggServer, o))
	per := g.requireSession(g.eraSwitch(perServer, o))
	if g.security != nil {
		agg, per = sdkAuth(agg), sdkAuth(per)
		prm := g.security.ProtectedResourceMetadata()
		// RFC 9728 §3.1: the well-known URI, also with the resource's path
		// appended, which is where MCP clients look first.
		mux.Handle("GET /.well-known/oauth-protected-resource", g.cors(o, prm))
		mux.Handle("GET /.well-known/oauth-protected-resource/{path...}", g.cors(o, prm))
	}

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	guardedReady := g.guard(o, http.HandlerFunc(g.readyz))
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// Probes carry no credentials: without one (a bearer token or a
		// verified client certificate) they get the verdict alone;
		// details are for operators.
		if g.security != nil && r.Header.Get("Authorization") == "" && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			g.readyz(w, r)
			return
		}
		guardedReady.ServeHTTP(w, r)
	})
	mux.Handle("GET /metrics", g.guard(o, g.operatorOnly(promhttp.HandlerFor(g.metrics.Registry, promhttp.HandlerOpts{}))))
	mux.Handle("/mcp", g.guard(o, g.checkBody(o, agg)))
	mux.Handle("/mcp/{upstream}", g.guard(o, g.checkBody(o, g.requireUpstream(per))))
	if o.API != nil {
		mux.Handle("/api/", g.guard(o, g.admitREST(g.checkJSONBody(o, o.API))))
	}
	if o.Console != nil {
		mux.Handle("GET /{$}", o.Console)
		mux.Handle("/ui", o.Console)
		mux.Handle("/ui/", o.Console)
	}
	return g.requestID(g.edge(o, mux))
}

// eraSwitch serves both protocol eras on one endpoint: a request that
// declares MCP-Protocol-Version 2026-07-28 or later goes to the SDK's
// stateless handler (no session, one POST per request), everything else
// (initialize, session traffic, GET streams, DELETE) to the stateful one.
//
// The idle timeout of sessions is kept by the gateway (clients.go), not by
// the SDK's handler: hot-path calls (hotpath.go) never reach the handler,
// and must keep their session alive like any other POST.
func (g *Gateway) eraSwitch(getServer func(*http.Request) *mcp.Server, o HTTPOptions) http.Handler {
	stateful := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{Logger: telemetry.SDKLogger(g.log), MaxRequestBodyBytes: o.MaxBodyBytes})
	stateless := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{Logger: telemetry.SDKLogger(g.log), Stateless: true, MaxRequestBodyBytes: o.MaxBodyBytes, PropagateRequestCancellation: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid := r.Header.Get("Mcp-Session-Id")
		if r.Method == http.MethodPost && sid == "" && r.Header.Get("Mcp-Protocol-Version") >= statelessVersion {
			stateless.ServeHTTP(w, r)
			return
		}
		// Sessions kept for every replica (sessions.go): a session this
		// replica does not hold is re-created from the store.
		if g.kept.keeper != nil && sid == "" && r.Method == http.MethodPost {
			g.openKept(w, r, getServer(r))
			return
		}
		if c, ok := g.keptSession(w, r, sid, getServer); !ok {
			return
		} else if c != nil {
			g.serveCopy(w, r, c)
			return
		}
		if e := g.clients.get(sid); e != nil && r.Method == http.MethodPost {
			e.begin()
			defer g.clients.end(e)
		} else if e != nil && r.Method == http.MethodDelete {
			// The SDK's handler closes the session before it answers 204;
			// the table forgets it only when the session's watcher sees it
			// end, on another goroutine: forget it now, so that the hot
			// path does not serve the client's next POST on a deleted
			// session.
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			stateful.ServeHTTP(sw, r)
			if sw.status == http.StatusNoContent {
				g.clients.close(e.ss)
				g.endKept(r.Context(), sid)
			}
			return
		}
		stateful.ServeHTTP(w, r)
	})
}

// sessionlessKey marks a POSTed message of the session era sent without
// Mcp-Session-Id; its value is the message's method ("" for a response).
type sessionlessKey struct{}

// requireSession refuses, in the session era, a message other than
// initialize sent without Mcp-Session-Id: HTTP 400 with a JSON-RPC error.
// The SDK would open a session for it and answer HTTP 200 with an error of
// code 0 ("method ... is invalid during session initialization"), or 202
// for a notification, which a client cannot tell from a server's answer.
func (g *Gateway) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m, ok := r.Context().Value(sessionlessKey{}).(string); ok && m != "initialize" && m != "server/discover" {
			what := "a response"
			if m != "" {
				what = fmt.Sprintf("%q", m)
			}
			g.reject(w, r, http.StatusBadRequest, "session_required", mcpwire.CodeInvalidRequest,
				"missing Mcp-Session-Id header: "+what+" must be sent in the session that initialize opened (or declare MCP-Protocol-Version "+statelessVersion+" or later for stateless requests)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Readiness is the body of /readyz.
type Readiness struct {
	Ready bool `json:"ready"`
	// Components are the store, Redis (when configured) and the offline
	// queue, each with its state; a required one that is down makes the
	// replica unready. Their errors are details (for operators only).
	Components []ComponentStatus `json:"components"`
	Upstreams  []UpstreamStatus  `json:"upstreams"`
	// Queue is the offline queue's health, a detail like Upstreams (left
	// out for callers who may not see details); it never affects Ready.
	Queue *QueueHealth `json:"queue,omitempty"`
}

// readyz answers 200 when the store and Redis (when configured) answer
// and every upstream has finished its first connection attempt, whatever
// its outcome: a replica with one broken upstream still serves the
// others, so it must stay in rotation, but a replica that cannot reach
// its store can authenticate, limit and audit nothing and must leave it
// (503). The body shows each component's and each upstream's state;
// "ready" is false while any upstream is still making its first attempt.
// Without operator credentials only the verdict and the store's and
// Redis's states are shown, not errors, upstreams or the queue.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	st := g.Statuses()
	ready := true
	for _, s := range st {
		if !s.Attempted {
			ready = false
		}
	}
	if st == nil {
		st = []UpstreamStatus{}
	}
	comps := slices.Clone(g.components(r.Context()))
	for _, c := range comps {
		if c.Required && c.State != "up" {
			ready = false
		}
	}
	details := true
	if g.security != nil {
		if p := principal.From(r.Context()); p == nil || !p.Operator || !p.Can(principal.RoleAdmin, principal.ScopeAdminRead) {
			details = false
		}
	}
	var qh *QueueHealth
	if details {
		// The queue's health is a detail: a probe does not read it.
		if qh = g.queueHealthNow(); qh != nil {
			comps = append(comps, queueComponent(qh))
		}
	} else {
		st = []UpstreamStatus{}
		for i := range comps {
			comps[i].Error = ""
		}
	}
	if comps == nil {
		comps = []ComponentStatus{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(Readiness{Ready: ready, Components: comps, Upstreams: st, Queue: qh})
}

func (g *Gateway) requireUpstream(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("upstream")
		// A configured upstream, whether or not a connection serves it now
		// (an upstream with targets has none while no target is
		// connected); never a target's connection name.
		ok := g.configured(name)
		if ok && g.security != nil && !g.security.Allowed(principal.From(r.Context()), name, "upstream", "") {
			ok = false // another tenant's upstream does not exist for this caller
		}
		if !ok {
			g.reject(w, r, http.StatusNotFound, "unknown_upstream", mcpwire.CodeInvalidRequest, fmt.Sprintf("no upstream named %q is configured", name))
			return
		}
		if g.PerUpstream(name) == nil {
			msg := fmt.Sprintf("upstream %q is not ready yet: none of its targets is connected", name)
			if u, ok := g.Upstream(name); ok {
				st := u.Status()
				msg = fmt.Sprintf("upstream %q is not ready yet (state %s): %s", name, st.State, st.LastError)
			}
			w.Header().Set("Retry-After", "1")
			g.reject(w, r, http.StatusServiceUnavailable, "upstream_not_ready", mcpwire.CodeUpstreamUnavailable, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guard applies the checks every request to /mcp and /api must pass before
// it is looked at: CORS for allowed origins (edge has already refused the
// others, on every endpoint), credentials, and no credentials in the URL.
func (g *Gateway) guard(o HTTPOptions, next http.Handler) http.Handler {
	want := []byte("Bearer " + o.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" && corsHeaders(w, r) {
			return // a preflight: answered without credentials, as browsers send it
		}
		q := r.URL.Query()
		for _, k := range []string{"access_token", "token", "api_key", "apikey", "key"} {
			if q.Has(k) {
				g.reject(w, r, http.StatusBadRequest, "token_in_query", mcpwire.CodeInvalidRequest, "credentials are never accepted in the URL; send Authorization: Bearer <token>")
				return
			}
		}
		if g.security != nil {
			if !publicAPI[r.URL.Path] {
				t := timingOf(r)
				if t != nil {
					t.authStart = time.Now()
				}
				var ok bool
				if r, ok = g.authenticate(w, r); !ok {
					return
				}
				if t != nil {
					t.authEnd = time.Now()
				}
			}
		} else if o.Anonymous != nil {
			r = r.WithContext(principal.With(r.Context(), o.Anonymous))
		}
		if g.security == nil && o.Token != "" {
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mcpedge"`)
				g.reject(w, r, http.StatusUnauthorized, "unauthorized", mcpwire.CodeInvalidRequest, "missing or invalid bearer token")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// originAllowed accepts loopback origins (a page served from this machine)
// and configured ones. An origin that merely equals the Host header is not
// enough: that is exactly what a DNS-rebinding page presents.
// consoleSameOrigin reports whether r is a request to the console (when
// one is served) from a page of the console's own origin: the origin's
// host and port are the request's Host.
func consoleSameOrigin(o HTTPOptions, r *http.Request, origin string) bool {
	if o.Console == nil || (r.URL.Path != "/ui" && !strings.HasPrefix(r.URL.Path, "/ui/")) {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

func originAllowed(origin string, allowed map[string]bool) bool {
	o := strings.TrimRight(strings.ToLower(origin), "/")
	if allowed[o] {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkBody reads and validates a POSTed JSON-RPC message before the SDK
// sees it: size, UTF-8, syntax, duplicate keys, depth, no batches, and the
// 2026-07-28 Mcp-Method / Mcp-Name headers against the body. The SDK then
// parses exactly the bytes that were validated.
func (g *Gateway) checkBody(o HTTPOptions, next http.Handler) http.Handler {
	lim := jsonguard.Limits{MaxDepth: o.MaxJSONDepth}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, status, reason, err := readBody(w, r, o)
		if err != nil {
			code := mcpwire.CodeParseError
			if status == http.StatusRequestEntityTooLarge {
				code = mcpwire.CodeInvalidRequest
			}
			g.reject(w, r, status, reason, code, err.Error())
			return
		}
		if err := jsonguard.Check(body, lim); err != nil {
			code, reason := mcpwire.CodeParseError, "invalid_json"
			switch jsonguard.KindOf(err) {
			case jsonguard.ErrBatch:
				code, reason = mcpwire.CodeInvalidRequest, "batch"
			case jsonguard.ErrNotObject:
				code, reason = mcpwire.CodeInvalidRequest, "not_object"
			case jsonguard.ErrDuplicateKey:
				code, reason = mcpwire.CodeInvalidRequest, "duplicate_key"
			case jsonguard.ErrDepth:
				code, reason = mcpwire.CodeInvalidRequest, "too_deep"
			}
			g.reject(w, r, http.StatusBadRequest, reason, code, err.Error())
			return
		}
		// Ids that a float64 decoder would round and keys that a
		// case-insensitive decoder would read as protocol members: the
		// bytes are forwarded as they are, so the upstream must read
		// them as the gateway did (jsonguard.CheckMessage).
		if err := jsonguard.CheckMessage(body); err != nil {
			reason := "invalid_id"
			if jsonguard.KindOf(err) == jsonguard.ErrKeyCase {
				reason = "key_case"
			}
			g.reject(w, r, http.StatusBadRequest, reason, mcpwire.CodeInvalidRequest, err.Error())
			return
		}
		// The envelope is parsed at most once, and only when something
		// below needs it.
		var (
			env    jsonguard.Envelope
			envErr error
			parsed bool
		)
		envelope := func() (jsonguard.Envelope, error) {
			if !parsed {
				env, envErr = jsonguard.ParseEnvelope(body)
				parsed = true
			}
			return env, envErr
		}
		// The client's trace context, and with tracing on the request's
		// server span (tracing.go), for everything below.
		r, endSpan := g.traceRequest(r, body, envelope)
		if g.trace.on {
			st := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			w = st
			defer func() { endSpan(st.status) }()
		}
		if g.draining.Load() && r.Header.Get("Mcp-Session-Id") == "" {
			// While draining, calls in flight may still need their clients
			// (answers to elicitation, input-required retries), but nothing
			// new starts.
			if env, err := envelope(); err == nil && (env.Method == "initialize" || env.Method == "server/discover") {
				w.Header().Set("Retry-After", "1")
				g.reject(w, r, http.StatusServiceUnavailable, "draining", mcpwire.CodeUpstreamUnavailable, "the gateway is shutting down; connect to another replica")
				return
			}
		}
		if r.Header.Get("Mcp-Session-Id") == "" && r.Header.Get("Mcp-Protocol-Version") < statelessVersion {
			// For requireSession, which runs once the endpoint is known.
			if env, err := envelope(); err == nil {
				r = r.WithContext(context.WithValue(r.Context(), sessionlessKey{}, env.Method))
			}
		}
		if hm, hn := r.Header.Get("Mcp-Method"), r.Header.Get("Mcp-Name"); hm != "" || hn != "" {
			env, err := envelope()
			if err != nil {
				g.reject(w, r, http.StatusBadRequest, "envelope", mcpwire.CodeInvalidRequest, err.Error())
				return
			}
			if hm != "" && hm != env.Method {
				g.reject(w, r, http.StatusBadRequest, "header_mismatch", mcpwire.CodeInvalidRequest, fmt.Sprintf("Mcp-Method header %q does not match the body's method %q", hm, env.Method))
				return
			}
			if name, ok := env.Name(); hn != "" && (!ok || hn != name) {
				g.reject(w, r, http.StatusBadRequest, "header_mismatch", mcpwire.CodeInvalidRequest, fmt.Sprintf("Mcp-Name header %q does not match the body's name %q", hn, name))
				return
			}
		}
		if !g.requireScope(w, r, body, envelope) || !g.admit(w, r, envelope) {
			return
		}
		if r.Header.Get("Mcp-Session-Id") != "" {
			// The hot path (hotpath.go): a session's tools/call that
			// qualifies is answered here, without the SDK.
			if env, err := envelope(); err == nil {
				switch env.Method {
				case pipeline.MethodCallTool, pipeline.MethodGetPrompt, pipeline.MethodReadResource:
					if g.hotCall(w, r, body, env) {
						return
					}
				case "notifications/cancelled":
					g.hotCancel(r, body)
				case "":
					// A response: to a question a hot-path call put to
					// the client (hotstream.go), or else to the SDK.
					if g.hotAnswer(r, body, env) {
						w.WriteHeader(http.StatusAccepted)
						return
					}
				}
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// checkJSONBody bounds and validates a REST request body: size, UTF-8,
// syntax, duplicate keys and depth; REST bodies, like MCP messages, are
// single JSON objects.
func (g *Gateway) checkJSONBody(o HTTPOptions, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		body, status, reason, err := readBody(w, r, o)
		if err != nil {
			g.rejectREST(w, r, status, reason, err.Error())
			return
		}
		if len(bytes.TrimSpace(body)) > 0 && !compressedAPI[r.URL.Path] {
			if err := jsonguard.Check(body, jsonguard.Limits{MaxDepth: o.MaxJSONDepth}); err != nil {
				g.rejectREST(w, r, http.StatusBadRequest, "invalid_json", "request body must be one JSON object: "+err.Error())
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// readBody reads a request body within the size limit and the body read
// deadline; on failure it returns the HTTP status and reason to refuse with.
func readBody(w http.ResponseWriter, r *http.Request, o HTTPOptions) ([]byte, int, string, error) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(o.BodyReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, o.MaxBodyBytes))
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Errorf("request body exceeds %d bytes", o.MaxBodyBytes)
		}
		return nil, http.StatusBadRequest, "body_read", fmt.Errorf("reading request body: %w", err)
	}
	return body, 0, "", nil
}

// rejectREST answers a REST request with a JSON problem object.
func (g *Gateway) rejectREST(w http.ResponseWriter, r *http.Request, status int, reason, msg string) {
	g.metrics.Rejections.WithLabelValues(reason).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": reason, "message": msg}})
}

// reject answers with a JSON-RPC error object (id null: the request was not
// understood well enough to echo its id) and counts the reason.
func (g *Gateway) reject(w http.ResponseWriter, r *http.Request, status int, reason string, code int, msg string) {
	g.metrics.Rejections.WithLabelValues(reason).Inc()
	g.log.Info("request rejected", "request_id", RequestID(r.Context()), "reason", reason, "status", status, "path", r.URL.Path, "remote", r.RemoteAddr, "detail", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": code, "message": msg},
	})
}

type requestIDKey struct{}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// requestID gives every request an id (the client's X-Request-Id when it is
// sane, else a random one), echoes it, and logs the request when it ends.
func (g *Gateway) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 || strings.ContainsFunc(id, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		r.Header.Set("X-Request-Id", id) // the SDK hands request headers to handlers
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		if g.trace.on {
			// For the server span, which starts once the body is read.
			ctx = context.WithValue(ctx, edgeTimingKey{}, &edgeTiming{start: start})
		}
		next.ServeHTTP(sw, r.WithContext(ctx))
		if g.log.Enabled(r.Context(), slog.LevelDebug) {
			g.log.Debug("http request", "request_id", id, "method", r.Method, "path", r.URL.Path,
				"mcp_method", r.Header.Get("Mcp-Method"), "session", r.Header.Get("Mcp-Session-Id"),
				"status", sw.status, "duration", time.Since(start))
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// operatorOnly admits, in multi-tenant mode, only admins of an operator
// tenant: what it guards (metrics) describes every tenant's traffic.
func (g *Gateway) operatorOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.security != nil {
			if p := principal.From(r.Context()); p == nil || !p.Operator || !p.Can(principal.RoleAdmin, principal.ScopeAdminRead) {
				g.rejectREST(w, r, http.StatusForbidden, "forbidden", "only administrators of an operator tenant may read this")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// cors checks Origin and adds CORS headers for a handler that needs no
// credentials (the OAuth metadata).
func (g *Gateway) cors(o HTTPOptions, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, a := range o.AllowedOrigins {
		allowed[strings.TrimRight(strings.ToLower(a), "/")] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && originAllowed(origin, allowed) {
			if corsHeaders(w, r) {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// corsHeaders lets a browser page from an allowed origin (server.allowed_origins
// or loopback; the caller has checked) call the gateway and read what an MCP
// client needs. It answers a preflight itself and reports whether it did.
func corsHeaders(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, X-Request-Id")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-Id, X-Request-Id")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// admitREST applies the rate limits to the REST API: per key, tenant and
// IP for signed-in callers, per IP for sign-in itself.
func (g *Gateway) admitREST(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.security == nil {
			next.ServeHTTP(w, r)
			return
		}
		if d := g.security.Admit(r, w.Header(), principal.From(r.Context()), "api"); d != nil {
			setRetryAfter(w.Header(), d.RetryAfter)
			g.rejectREST(w, r, d.HTTPStatus(), d.Reason, d.Message)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// setRetryAfter sets Retry-After to d in whole seconds, rounded up; it
// sets nothing for d <= 0.
func setRetryAfter(h http.Header, d time.Duration) {
	if d > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
}
