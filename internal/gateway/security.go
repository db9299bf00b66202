package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mcpedge/mcpedge/internal/httpedge"
	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	auditstage "github.com/mcpedge/mcpedge/internal/stage/audit"
	"github.com/mcpedge/mcpedge/internal/stage/authz"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Security is what the multi-tenant layer plugs into the request path. The
// gateway calls it at fixed points and never looks inside: the principal
// is attached at the HTTP edge (Authenticate), requests are admitted or
// refused before the SDK sees them (Admit), every list is filtered and
// every call checked (Allowed), and every tool call is reported (Record).
// A nil Security is single-user mode: no principal, everything allowed.
type Security interface {
	// Authenticate returns the caller of r, or an *AuthError.
	Authenticate(r *http.Request) (*principal.Principal, error)
	// Admit applies rate limits and, for tools/call, the monthly quota to
	// one JSON-RPC request (method "api" for a REST request). It may set
	// headers (RateLimit-*) on h; a non-nil Denial refuses the request. p
	// is nil only for the sign-in endpoints, which are limited by IP.
	Admit(r *http.Request, h http.Header, p *principal.Principal, method string) *Denial
	// Allowed reports whether p may see and use an item: kind is "tool",
	// "prompt", "resource" or "upstream"; upstream is the owning
	// upstream's configured name; name is the item's own name at that
	// upstream ("" for kind "upstream" and "resource"). It is called for
	// every listed item, so it must be cheap.
	Allowed(p *principal.Principal, upstream, kind, name string) bool
	// Record reports a finished (or refused) tool call for the audit log.
	Record(ctx context.Context, p *principal.Principal, c CallRecord)
	// ResourceMetadataURL is the URL of this gateway's OAuth protected
	// resource metadata (RFC 9728) as seen by the client of r.
	ResourceMetadataURL(r *http.Request) string
	// ProtectedResourceMetadata serves that document.
	ProtectedResourceMetadata() http.Handler
}

// AuthError is a refused credential (see [httpedge.AuthError]).
type AuthError = httpedge.AuthError

// Denial refuses an admitted request (see [httpedge.Denial]).
type Denial = httpedge.Denial

// CallRecord describes one tool call for the audit log (the audit stage's
// record).
type CallRecord = auditstage.Record

// SetSecurity installs the multi-tenant layer. Call it before serving.
func (g *Gateway) SetSecurity(s Security) {
	g.security = s
	g.buildPipeline()
}

// authenticate is the edge of the request path: it resolves the caller and
// attaches it to the request, both for the gateway (principal.With) and for
// the SDK (as auth.TokenInfo, so that handlers see it in req.Extra and
// sessions are bound to the principal that created them).
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	sec := g.security
	if sec == nil {
		return r, true
	}
	p, err := sec.Authenticate(r)
	if err != nil {
		ae := &AuthError{}
		if !errors.As(err, &ae) {
			ae = &AuthError{Status: http.StatusUnauthorized, Code: "invalid_token", Message: err.Error()}
		}
		g.challenge(w, r, ae)
		return nil, false
	}
	return r.WithContext(principal.With(r.Context(), p)), true
}

// bearerChallenge is the WWW-Authenticate value for ae: the realm, the
// RFC 9728 metadata the MCP authorization spec requires, and for a refused
// credential the error, the scope it lacks (insufficient_scope) and a
// description.
func (g *Gateway) bearerChallenge(r *http.Request, ae *AuthError) string {
	params := []string{`realm="mcpedge"`, fmt.Sprintf("resource_metadata=%q", g.security.ResourceMetadataURL(r))}
	if ae.Code != "" {
		params = append(params, fmt.Sprintf("error=%q", ae.Code))
		if ae.Scope != "" {
			params = append(params, fmt.Sprintf("scope=%q", authParam(ae.Scope)))
		}
		params = append(params, fmt.Sprintf("error_description=%q", authParam(ae.Message)))
	}
	return "Bearer " + strings.Join(params, ", ")
}

// authParam keeps to the characters RFC 6750 §3 allows in error_description
// and scope (printable ASCII but '"' and backslash): a double quote becomes a
// single one, anything else outside them '?'.
func authParam(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c == '"':
			return '\''
		case c == '\\' || c < 0x20 || c > 0x7e:
			return '?'
		}
		return c
	}, s)
}

// challenge answers 401/403 with the WWW-Authenticate parameters the MCP
// authorization spec requires (resource_metadata, and error for a bad
// token), and a JSON-RPC error body for MCP clients.
func (g *Gateway) challenge(w http.ResponseWriter, r *http.Request, ae *AuthError) {
	rest := strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/readyz" || r.URL.Path == "/metrics"
	if ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusServiceUnavailable {
		// Not a verdict on the credential: too many failures from this
		// address, or the store cannot be asked right now.
		setRetryAfter(w.Header(), ae.RetryAfter)
		reason, code := "auth_throttled", mcpwire.CodeRateLimited
		if ae.Status == http.StatusServiceUnavailable {
			reason, code = "auth_unavailable", mcpwire.CodeUpstreamUnavailable
		}
		if rest {
			g.rejectREST(w, r, ae.Status, reason, ae.Message)
		} else {
			g.reject(w, r, ae.Status, reason, code, ae.Message)
		}
		return
	}
	w.Header().Set("WWW-Authenticate", g.bearerChallenge(r, ae))
	status := ae.Status
	if status != http.StatusForbidden {
		status = http.StatusUnauthorized
	}
	reason := "unauthenticated"
	if status == http.StatusForbidden {
		reason = "forbidden"
	}
	if rest {
		g.rejectREST(w, r, status, reason, ae.Message)
		return
	}
	g.reject(w, r, status, reason, mcpwire.CodeInvalidRequest, ae.Message)
}

// sdkAuth passes the principal attached by authenticate on to the SDK as
// TokenInfo. The SDK binds a session to TokenInfo.UserID, so a session id
// leaked to another credential is useless to it. The tenant is part of it:
// an identity provider's subject ("oidc:<sub>") is the same whatever
// tenant its token names.
func sdkAuth(next http.Handler) http.Handler {
	verify := func(ctx context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		p := principal.From(r.Context())
		if p == nil {
			return nil, fmt.Errorf("%w: no principal", auth.ErrInvalidToken)
		}
		return &auth.TokenInfo{UserID: p.Kind + ":" + p.TenantID + ":" + p.ID, Scopes: p.Scopes, Expiration: p.ExpiresAt, Extra: map[string]any{"principal": p}}, nil
	}
	h := auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A caller authenticated by its client certificate (mTLS) sends
		// no bearer token, which the SDK's middleware insists on: it is
		// given a placeholder, never looked at (verify reads the
		// principal the gateway attached), never forwarded.
		if r.Header.Get("Authorization") == "" {
			if p := principal.From(r.Context()); p != nil && p.Kind == principal.KindCertificate {
				r = r.Clone(r.Context())
				r.Header.Set("Authorization", "Bearer client-certificate")
			}
		}
		h.ServeHTTP(w, r)
	})
}

// principalOf returns the caller of an MCP request, or nil.
func principalOf(req mcp.Request) *principal.Principal {
	if req == nil {
		return nil
	}
	ex := req.GetExtra()
	if ex == nil || ex.TokenInfo == nil {
		return nil
	}
	p, _ := ex.TokenInfo.Extra["principal"].(*principal.Principal)
	return p
}

// admit applies Security.Admit to a validated JSON-RPC body, whose
// envelope checkBody parses at most once per request. Responses and
// notifications are never limited: refusing a client's answer to an
// elicitation would break a call that was already admitted.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, envelope func() (jsonguard.Envelope, error)) bool {
	sec := g.security
	if sec == nil {
		return true
	}
	env, err := envelope()
	if err != nil || env.Method == "" || env.ID == nil {
		return true
	}
	d := sec.Admit(r, w.Header(), principal.From(r.Context()), env.Method)
	if d == nil {
		return true
	}
	setRetryAfter(w.Header(), d.RetryAfter)
	status := d.HTTPStatus()
	g.metrics.Rejections.WithLabelValues(d.Reason).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0", "id": json.RawMessage(env.ID),
		"error": map[string]any{"code": mcpwire.CodeRateLimited, "message": d.Message,
			"data": map[string]any{"reason": d.Reason, "retryAfterMs": d.RetryAfter.Milliseconds()}},
	})
	return false
}

// requireScope answers HTTP 403 with WWW-Authenticate: Bearer
// error="insufficient_scope", scope="…" (the MCP authorization spec's scope
// challenge) to a JSON-RPC request whose method the caller's role and
// scopes forbid whatever it names: a tools/call by a viewer or by a key
// without mcp:call, a prompts/get or resources/read by a key with neither
// mcp:list nor mcp:call (authz.Insufficient). It runs in checkBody, before
// admission (a refused call spends no rate or quota) and before the body
// reaches the SDK or the hot path, so that the status can be set on both
// ways in. Whether the caller may use the item it names is not asked: that
// refusal stays the answer of a missing item (the authorize stage), and
// this one depends on the caller and the method alone, so it tells nothing
// about what exists. A refused tools/call is audited as denied, as
// authorize would have. The body is a JSON-RPC error with the request's
// id, which an SDK client reports for that call without dropping its
// session.
func (g *Gateway) requireScope(w http.ResponseWriter, r *http.Request, body []byte, envelope func() (jsonguard.Envelope, error)) bool {
	sec := g.security
	if sec == nil {
		return true
	}
	env, err := envelope()
	if err != nil || env.Method == "" || env.ID == nil {
		return true
	}
	p := principal.From(r.Context())
	short := authz.Insufficient(p, env.Method)
	if short.Scope == "" {
		return true
	}
	if env.Method == pipeline.MethodCallTool {
		c := CallRecord{Name: env.ParamsName, Arguments: toolArguments(body), Outcome: auditstage.OutcomeDenied, RequestID: r.Header.Get("X-Request-Id")}
		c.Upstream, c.Tool = g.toolOwner(r.PathValue("upstream"), env.ParamsName)
		sec.Record(r.Context(), p, c)
	}
	ae := &AuthError{Status: http.StatusForbidden, Code: "insufficient_scope", Scope: short.Scope, Message: short.Reason}
	g.metrics.Rejections.WithLabelValues("insufficient_scope").Inc()
	g.log.Info("request rejected", "request_id", RequestID(r.Context()), "reason", "insufficient_scope", "status", http.StatusForbidden,
		"path", r.URL.Path, "method", env.Method, "remote", r.RemoteAddr, "detail", short.Reason)
	w.Header().Set("WWW-Authenticate", g.bearerChallenge(r, ae))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0", "id": json.RawMessage(env.ID),
		"error": map[string]any{"code": mcpwire.CodeInvalidRequest, "message": "insufficient scope: " + short.Reason,
			"data": map[string]any{"reason": "insufficient_scope", "scope": short.Scope}},
	})
	return false
}

// toolArguments returns the arguments of a tools/call message as sent
// (nil when absent), for the audit record of a call refused at the edge.
func toolArguments(body []byte) json.RawMessage {
	return jsonguard.Lookup(jsonguard.Lookup(body, "params"), "arguments")
}

// authzMiddleware filters what a caller sees and refuses what it may not
// use, on /mcp (only == "") and on /mcp/<only>. A refused item looks
// exactly like one that does not exist: the same error, and absent from
// lists.
func (g *Gateway) authzMiddleware(only string) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			sec := g.security
			p := principalOf(req)
			if sec != nil {
				g.rememberCaller(req, p)
			}
			switch method {
			case pipeline.MethodCallTool, pipeline.MethodGetPrompt, pipeline.MethodReadResource,
				pipeline.MethodSubscribe, pipeline.MethodUnsubscribe, pipeline.MethodComplete:
				// Calls that reach an upstream go through the pipeline
				// (stages.go), whose authorize and audit stages run before
				// the SDK server looks the item up.
				return g.enterPipeline(ctx, only, method, req, next)
			}
			if sec == nil {
				return next(ctx, method, req)
			}
			switch method {
			case "initialize", "ping", "notifications/initialized", "logging/setLevel", "server/discover":
				return next(ctx, method, req)
			case "tools/list":
				if p == nil || !p.CanList() {
					return &mcp.ListToolsResult{Tools: []*mcp.Tool{}}, nil
				}
				res, err := next(ctx, method, req)
				if r, ok := res.(*mcp.ListToolsResult); ok && err == nil {
					kept := r.Tools[:0:0]
					for _, t := range r.Tools {
						if up, name := g.toolOwner(only, t.Name); up != "" && toolAllowed(sec, p, up, name) {
							kept = append(kept, t)
						}
					}
					r.Tools = kept
				}
				return res, err
			case "prompts/list":
				if p == nil || !p.CanList() {
					return &mcp.ListPromptsResult{Prompts: []*mcp.Prompt{}}, nil
				}
				res, err := next(ctx, method, req)
				if r, ok := res.(*mcp.ListPromptsResult); ok && err == nil {
					kept := r.Prompts[:0:0]
					for _, pr := range r.Prompts {
						if up, name := g.promptOwner(only, pr.Name); up != "" && sec.Allowed(p, up, "prompt", name) {
							kept = append(kept, pr)
						}
					}
					r.Prompts = kept
				}
				return res, err
			case "resources/list":
				if p == nil || !p.CanList() {
					return &mcp.ListResourcesResult{Resources: []*mcp.Resource{}}, nil
				}
				res, err := next(ctx, method, req)
				if r, ok := res.(*mcp.ListResourcesResult); ok && err == nil {
					kept := r.Resources[:0:0]
					for _, x := range r.Resources {
						if up := g.resourceOwner(only, x.URI); up != "" && resourceAllowed(sec, p, up) {
							kept = append(kept, x)
						}
					}
					r.Resources = kept
				}
				return res, err
			case "resources/templates/list":
				if p == nil || !p.CanList() {
					return &mcp.ListResourceTemplatesResult{ResourceTemplates: []*mcp.ResourceTemplate{}}, nil
				}
				res, err := next(ctx, method, req)
				if r, ok := res.(*mcp.ListResourceTemplatesResult); ok && err == nil {
					kept := r.ResourceTemplates[:0:0]
					for _, x := range r.ResourceTemplates {
						if up := g.templateOwner(only, x.URITemplate); up != "" && resourceAllowed(sec, p, up) {
							kept = append(kept, x)
						}
					}
					r.ResourceTemplates = kept
				}
				return res, err
			case "subscriptions/listen":
				// The 2026-07-28 replacement of resources/subscribe: the SDK
				// server subscribes each listed URI by calling the
				// SubscribeHandler itself, past this middleware, so each URI
				// is checked here as resources/subscribe would be.
				if p == nil || !p.CanList() {
					return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found"}
				}
				if x, ok := req.GetParams().(*mcp.SubscriptionsListenParams); ok && x != nil && x.Notifications != nil {
					for _, uri := range x.Notifications.ResourceSubscriptions {
						if up := g.uriOwner(only, uri); up == "" || !p.CanRead() || !resourceAllowed(sec, p, up) {
							return nil, mcp.ResourceNotFoundError(uri)
						}
					}
				}
				return next(ctx, method, req)
			}
			// Anything else (a method added to the protocol later) is
			// refused rather than let through unchecked.
			if p == nil || !p.CanList() {
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found"}
			}
			return next(ctx, method, req)
		}
	}
}

// rememberCaller records the principal behind req's client session (see
// Gateway.callers) and forgets it when the session ends.
func (g *Gateway) rememberCaller(req mcp.Request, p *principal.Principal) {
	if p == nil || req == nil {
		return
	}
	ss, ok := req.GetSession().(*mcp.ServerSession)
	if !ok || ss == nil {
		return
	}
	if _, loaded := g.callers.Swap(ss, p); !loaded {
		go func() {
			_ = ss.Wait()
			g.callers.Delete(ss)
		}()
	}
}

// mayReceive reports whether client session ss may be sent what upstream
// u sends on its own: always in single-user mode, else only when the
// session's principal may use u.
func (g *Gateway) mayReceive(ss *mcp.ServerSession, u string) bool {
	sec := g.security
	if sec == nil {
		return true
	}
	v, ok := g.callers.Load(ss)
	if !ok {
		return false
	}
	return sec.Allowed(v.(*principal.Principal), u, "upstream", "")
}

// toolOwner returns the upstream that owns a tool as the client names it
// on /mcp (only == "") or /mcp/<only>, and the tool's name there.
func (g *Gateway) toolOwner(only, name string) (string, string) {
	if only != "" {
		return only, name
	}
	if name == builtinStatus {
		return "mcpedge", "status"
	}
	if name == builtinQueueResult {
		return "mcpedge", "queue_result"
	}
	g.mu.RLock()
	r, ok := g.tools[name]
	g.mu.RUnlock()
	if !ok {
		return "", ""
	}
	return r.up, r.name
}

// toolAllowed asks the security layer whether p may see and use a tool;
// the queue's result tool is every caller's (it answers only about the
// caller's own tenant), unlike the gateway's other tools.
func toolAllowed(sec Security, p *principal.Principal, up, tool string) bool {
	if up == "mcpedge" && tool == "queue_result" {
		return p != nil
	}
	return sec.Allowed(p, up, "tool", tool)
}

// resourceAllowed asks the security layer whether p may use up's
// resources; the queue's resources are every caller's (each answers only
// about the caller's own tenant), like mcpedge__queue_result.
func resourceAllowed(sec Security, p *principal.Principal, up string) bool {
	if up == "mcpedge" {
		return p != nil
	}
	return sec.Allowed(p, up, "resource", "")
}

func (g *Gateway) promptOwner(only, name string) (string, string) {
	if only != "" {
		return only, name
	}
	g.mu.RLock()
	r, ok := g.prompts[name]
	g.mu.RUnlock()
	if !ok {
		return "", ""
	}
	return r.up, r.name
}

func (g *Gateway) resourceOwner(only, uri string) string {
	if only != "" {
		return only
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.resources[uri]
}

func (g *Gateway) templateOwner(only, tmpl string) string {
	if only != "" {
		return only
	}
	if tmpl == queueTemplate && g.deferrer != nil {
		return "mcpedge"
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.templates[tmpl]
}

// uriOwner resolves a concrete URI (listed, or matching a template).
//
// A queued call's URI on /mcp is the gateway's ("mcpedge"): upstreams
// cannot offer URIs of the reserved scheme there, so the SDK dispatches
// it to the queue's template too.
func (g *Gateway) uriOwner(only, uri string) string {
	if only == "" && g.deferrer != nil && strings.HasPrefix(uri, QueueURIPrefix) {
		return "mcpedge"
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.ownerNameLocked(only, uri)
}

// builtinMeta returns the _meta for a call to a built-in server: the
// client's (already stripped of hop-by-hop keys) plus who is calling.
func builtinMeta(meta mcp.Meta, p *principal.Principal) mcp.Meta {
	if p == nil {
		return meta
	}
	out := make(mcp.Meta, len(meta)+1)
	for k, v := range meta {
		out[k] = v
	}
	out[principal.MetaKey] = principal.Meta{TenantID: p.TenantID, Tenant: p.TenantName, Plan: p.Plan, Operator: p.Operator, ID: p.ID, Kind: p.Kind, Role: p.Role}
	return out
}
