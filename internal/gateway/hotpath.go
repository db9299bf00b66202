package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/rawwire"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The hot path: a client's tools/call, prompts/get or resources/read that
// the SDK server never decodes.
//
// checkBody has validated the message (jsonguard); if the call qualifies,
// hotCall builds the pipeline's call from the validated bytes (reading the
// few members it needs in place), runs the whole chain — audit, authorize
// and every stage after dispatch, exactly as for a call the SDK server
// dispatched — and the forward stage (hotforward.go) posts the params'
// bytes to an HTTP upstream with the tool's name spliced in, and hands the
// upstream's result bytes back, which are written to the client as they
// came. What does not qualify takes the SDK's way, unchanged; nothing is
// written before that decision. docs/design/pipeline.md gives the
// conditions and why each is there.

// statefulVersions are the protocol versions of the session era the hot
// path serves; the SDK's handler answers anything else.
var statefulVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26"}

// hotCall serves the POSTed message body on the hot path when it can, and
// reports whether it did. env is body's envelope.
func (g *Gateway) hotCall(w http.ResponseWriter, r *http.Request, body []byte, env jsonguard.Envelope) bool {
	reason := g.serveHot(w, r, body, env)
	if reason == "" {
		g.edgeMetrics.hot.WithLabelValues(env.Method, "hot", "").Inc()
		return true
	}
	g.edgeMetrics.hot.WithLabelValues(env.Method, "sdk", reason).Inc()
	return false
}

// serveHot is hotCall: it returns "" when it answered the call, else why
// the call does not qualify.
func (g *Gateway) serveHot(w http.ResponseWriter, r *http.Request, body []byte, env jsonguard.Envelope) string {
	if !g.cfg.Load().Server.HotPath {
		return "off"
	}
	if env.ID == nil {
		return "notification"
	}
	if env.JSONRPC != "2.0" {
		return "jsonrpc" // the SDK's handler refuses it (HTTP 400)
	}
	e := g.clients.get(r.Header.Get("Mcp-Session-Id"))
	if e == nil {
		return "session" // unknown, or not of the session era: the SDK's handler answers
	}
	if !slices.Contains(statefulVersions, r.Header.Get("Mcp-Protocol-Version")) {
		return "protocol_version"
	}
	if jsonOK, streamOK := accepts(r.Header.Values("Accept")); !jsonOK || !streamOK {
		return "accept" // the SDK's handler refuses it, in its words
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), "application/json") {
		return "content_type" // likewise (415)
	}
	var ti *auth.TokenInfo
	if g.security != nil {
		if ti = tokenInfoOfRequest(r); ti == nil {
			return "credential"
		}
	}
	if userIDOf(ti) != e.userID {
		return "credential" // another caller's session: the SDK's handler refuses it
	}
	if g.kept.keeper != nil {
		g.keptUse(r) // fresh, and alive for every replica (sessions.go)
	}
	ss := e.ss
	if ss.InitializeParams() == nil {
		return "session"
	}
	nameKey := "name"
	if env.Method == pipeline.MethodReadResource {
		nameKey = "uri"
	}
	params, name, args, meta, ok := hotParams(body, nameKey)
	if !ok {
		return "params"
	}
	if nameKey == "uri" && normalURI(name) != name {
		// Not in the normal form: the SDK's way puts it in the request
		// (enterPipeline), which the hot path relays as the client sent it.
		return "uri"
	}
	only := r.PathValue("upstream")
	extra := &mcp.RequestExtra{TokenInfo: ti, Header: r.Header}
	c := &pipeline.Call{Method: env.Method, Face: only, Name: name, RequestID: r.Header.Get("X-Request-Id"),
		Source: pipeline.SourceClient, Wire: &pipeline.Wire{Params: params}}
	var u *upstream.Upstream
	switch env.Method {
	case pipeline.MethodCallTool:
		u, c.Upstream, c.Item = g.hotItem(g.tools, only, name, func(reg *registration) map[string]*upstream.Upstream { return reg.perTools })
		c.Kind, c.Arguments = "tool", args
		c.Request = &mcp.CallToolRequest{Session: ss, Params: &mcp.CallToolParamsRaw{Meta: meta, Name: name, Arguments: args}, Extra: extra}
	case pipeline.MethodGetPrompt:
		u, c.Upstream, c.Item = g.hotItem(g.prompts, only, name, func(reg *registration) map[string]*upstream.Upstream { return reg.perPrompts })
		var pargs map[string]string
		if args != nil && json.Unmarshal(args, &pargs) != nil {
			return "params" // not an object of strings: the SDK's error
		}
		c.Kind = "prompt"
		c.Request = &mcp.GetPromptRequest{Session: ss, Params: &mcp.GetPromptParams{Meta: meta, Name: name, Arguments: pargs}, Extra: extra}
	case pipeline.MethodReadResource:
		// The owner as the SDK server (and readMiddleware on
		// /mcp/<name>) would find it: on /mcp a listed resource, then
		// the templates in the SDK's order; on /mcp/<name> the upstream
		// itself, listed or not. The URI goes on unchanged.
		c.Kind, c.Upstream, c.Item = "resource", g.uriOwner(only, name), name
		if c.Upstream != "" {
			u = g.ownerOf(only, name)
		}
		c.Request = &mcp.ReadResourceRequest{Session: ss, Params: &mcp.ReadResourceParams{Meta: meta, URI: name}, Extra: extra}
	default:
		return "method"
	}
	if u == nil || groupName(u) != c.Upstream {
		return "item" // unknown, or the gateway's own
	}
	if !hotUpstream(u) {
		return "upstream"
	}
	c.Target, c.Principal = u, principalOf(c.Request)
	if upstreamNewEra(u) && u.Config().Transport == config.TransportHTTP && !g.eraPostable(c) {
		// An attempt of the 2026-07-28 protocol that postWire cannot make
		// would go through the SDK client, whose input_required results
		// only the SDK server turns into questions.
		return "upstream"
	}
	st := &hotStream{g: g, e: e, w: w}
	c.Wire.Client = st
	if (cacheSource{g}).caches(c) {
		return "cache" // the cache stores decoded results
	}
	// The SDK's handler does not cancel a call when its client goes away
	// (the session era: a client cancels with notifications/cancelled);
	// neither does the hot path.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	ctx = context.WithValue(ctx, hotStreamKey{}, st)
	untrack, ok := e.track(idKey(env.ID), cancel)
	if !ok {
		return "duplicate_id"
	}
	defer untrack()
	e.begin()
	defer g.clients.end(e)
	if g.security != nil {
		g.rememberCaller(c.Request, c.Principal)
	}
	res, err := g.pipe.chain.Load().Handle(ctx, c)
	g.traceOutcome(ctx, c, res, err)
	if g.log.Enabled(ctx, slog.LevelDebug) {
		g.log.Debug("pipeline", "request_id", c.RequestID, "method", c.Method, "name", c.Name, "upstream", c.Upstream,
			"answered_by", c.AnsweredBy, "refused_by", c.Refused, "hot", true, "err", err)
	}
	writeHot(st, env.ID, c.Wire, res, err)
	c.Wire.Release()
	return ""
}

// hotCancel delivers a client's notifications/cancelled to the hot-path
// call it names, if one is in flight (the SDK's handler gets the
// notification either way; it ignores ids it does not know).
func (g *Gateway) hotCancel(r *http.Request, body []byte) {
	e := g.clients.get(r.Header.Get("Mcp-Session-Id"))
	if e == nil {
		return
	}
	if id := jsonguard.Lookup(jsonguard.Lookup(body, "params"), "requestId"); id != nil {
		e.cancel(idKey(id))
	}
}

// idKey is a JSON-RPC id's identity: a string's text, an integer's digits.
func idKey(raw []byte) string {
	if s, ok := jsonguard.Unquote(raw); ok {
		return "s" + s
	}
	return "n" + string(raw)
}

// hotUpstream reports whether an upstream's calls may take the hot path:
// any transport but the gateway's own (a target the forward stage cannot
// post or pipe to is sent the call through the SDK client), of the
// session era like the client, or a Streamable HTTP or stdio server of
// the 2026-07-28 era, whose rounds of input the hot path does itself
// (hotRounds). Another transport of that era (WASM) takes the SDK's way:
// only the SDK server's era translation would turn its input_required
// results into questions to the client.
func hotUpstream(u *upstream.Upstream) bool {
	switch u.Config().Transport {
	case upstream.TransportBuiltin:
		return false
	case config.TransportStdio, config.TransportHTTP:
		return true
	}
	return !upstreamNewEra(u)
}

// hotParams reads a tools/call's, prompts/get's or resources/read's params
// in place: the object itself, the name (nameKey: "name", or "uri" for a
// read), the arguments and _meta. It refuses (ok false) what only the
// SDK's way handles: a name that is not a string, a routing explanation
// (attached to a decoded result), the 2026-07-28 protocol's per-request
// keys and multi-round-trip members, and the gateway's own keys.
func hotParams(body []byte, nameKey string) (params []byte, name string, args json.RawMessage, meta mcp.Meta, ok bool) {
	params = jsonguard.Lookup(body, "params")
	if len(params) == 0 || params[0] != '{' {
		return nil, "", nil, nil, false
	}
	ok = true
	var rawMeta []byte
	err := jsonguard.Members(params, func(m jsonguard.Member) bool {
		switch string(m.Key) {
		case nameKey:
			name, ok = jsonguard.Unquote(m.Value)
		case "arguments":
			if string(m.Value) != "null" {
				args = json.RawMessage(m.Value)
			}
		case "_meta":
			rawMeta = m.Value
		case "inputResponses", "requestState":
			ok = false
		}
		return ok
	})
	if err != nil || !ok || name == "" {
		return nil, "", nil, nil, false
	}
	if rawMeta != nil && string(rawMeta) != "null" {
		if rawMeta[0] != '{' {
			return nil, "", nil, nil, false
		}
		_ = jsonguard.Members(rawMeta, func(m jsonguard.Member) bool {
			k := string(m.Key)
			if k == MetaExplain || slices.Contains(hopByHop, k) || strings.HasPrefix(k, "io.modelcontextprotocol/") {
				ok = false
			}
			return ok
		})
		if !ok || json.Unmarshal(rawMeta, &meta) != nil {
			return nil, "", nil, nil, false
		}
	}
	return params, name, args, meta, true
}

// hotItem finds the upstream whose handler the SDK server would call for
// the tool or prompt the client named on the endpoint (only: "" for
// /mcp), with the upstream's name for the item: agg are the aggregated
// names (g.tools, g.prompts), per a registration's items on /mcp/<name>.
func (g *Gateway) hotItem(agg map[string]route, only, name string, per func(*registration) map[string]*upstream.Upstream) (u *upstream.Upstream, up, item string) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if only == "" {
		rt, ok := agg[name]
		if !ok {
			return nil, "", ""
		}
		return rt.u, rt.up, rt.name
	}
	reg := g.regs[only]
	if reg == nil {
		return nil, "", ""
	}
	return per(reg)[name], only, name
}

// tokenInfoOfRequest is the SDK's view of the request's caller, nil when
// there is none or its credential has expired (the SDK's handler refuses
// it then).
func tokenInfoOfRequest(r *http.Request) *auth.TokenInfo {
	p := principal.From(r.Context())
	if p == nil || (!p.ExpiresAt.IsZero() && time.Now().After(p.ExpiresAt)) {
		return nil
	}
	return tokenInfoOf(p)
}

// tokenInfoOf is the SDK's view of a principal (sdkAuth).
func tokenInfoOf(p *principal.Principal) *auth.TokenInfo {
	return &auth.TokenInfo{UserID: p.Kind + ":" + p.TenantID + ":" + p.ID, Scopes: p.Scopes, Expiration: p.ExpiresAt, Extra: map[string]any{"principal": p}}
}

func userIDOf(ti *auth.TokenInfo) string {
	if ti == nil {
		return ""
	}
	return ti.UserID
}

// accepts reports whether an Accept header admits JSON and an event
// stream, read as the SDK's handler reads it.
func accepts(values []string) (jsonOK, streamOK bool) {
	for _, v := range values {
		for _, raw := range strings.Split(v, ",") {
			base, _, _ := strings.Cut(strings.TrimSpace(raw), ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "application/json", "application/*":
				jsonOK = true
			case "text/event-stream", "text/*":
				streamOK = true
			case "*/*":
				jsonOK, streamOK = true, true
			}
		}
	}
	return jsonOK, streamOK
}

// hdrJSONType is shared by every hot answer's header (net/http never
// modifies a header's values).
var hdrJSONType = []string{"application/json"}

// writeHot writes the answer to a hot-path call: the upstream's result
// bytes when the chain returned them, else the chain's own result or
// error, encoded. It is one JSON body, or the last event of the call's
// event stream when the call asked the client something.
func writeHot(st *hotStream, id []byte, wire *pipeline.Wire, res mcp.Result, err error) {
	var head, result, tail []byte
	switch {
	case err != nil:
		code, data := int64(mcpwire.CodeInternalError), []byte(nil)
		var werr *jsonrpc.Error
		if errors.As(err, &werr) {
			code, data = werr.Code, werr.Data
		}
		head = rawwire.AppendError(nil, id, code, err.Error(), data)
	case res == wire.Summary && wire.Result != nil:
		head, result, tail = rawwire.AppendResult(make([]byte, 0, 64), id), wire.Result, []byte(rawwire.ResultTail)
	default:
		if tr, ok := res.(*mcp.CallToolResult); ok && tr != nil && tr.Content == nil {
			cp := *tr
			cp.Content = []mcp.Content{} // never "content": null, as the SDK server
			res = &cp
		}
		b, merr := json.Marshal(res)
		if res == nil || merr != nil {
			msg := "the gateway could not encode the result"
			if merr != nil {
				msg += ": " + merr.Error()
			}
			head = rawwire.AppendError(nil, id, mcpwire.CodeInternalError, msg, nil)
			break
		}
		head, result, tail = rawwire.AppendResult(make([]byte, 0, 64), id), b, []byte(rawwire.ResultTail)
	}
	st.mu.Lock()
	sse := st.sse
	if !sse {
		st.done = true
	}
	st.mu.Unlock()
	if sse {
		msg := append(append(head, result...), tail...)
		_ = st.write(msg, true)
		return
	}
	h := st.w.Header()
	h["Content-Type"] = hdrJSONType
	h["Content-Length"] = []string{strconv.Itoa(len(head) + len(result) + len(tail))}
	_, _ = st.w.Write(head)
	if result != nil {
		_, _ = st.w.Write(result)
		_, _ = st.w.Write(tail)
	}
}
