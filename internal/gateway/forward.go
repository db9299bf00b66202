package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	routestage "github.com/mcpedge/mcpedge/internal/stage/route"
	"github.com/mcpedge/mcpedge/internal/tracing"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
)

// call is one request the gateway forwards on behalf of a client session.
// It carries what the upstream's server-to-client traffic needs to find its
// way back: the client session and, for progress, the client's own token.
type call struct {
	id        uint64
	ss        *mcp.ServerSession
	up        *upstream.Upstream
	method    string
	start     time.Time
	token     string // gateway progress token sent upstream ("" if none)
	cancel    context.CancelFunc
	released  atomic.Bool
	cont      *continuation   // set when the client is stateless (2026-07-28)
	ctx       context.Context // the upstream call's context: bounds everything done for the call
	clientCtx context.Context // the client request's context: its values route messages to the right stream
	release   string          // per-call upstream connection to close at the end ("" if none)
	hot       *hotStream      // the client's side of a hot-path call (hotstream.go); nil otherwise
	logs      atomic.Int64    // log messages queued for the call's stream (sink.go, logOnSDKCall)
	lastLog   atomic.Int64    // when the last one was queued (unix ns)
	clientID  string          // the per-session connection's key ("" for the shared one)

	// Failure handling (failure.go).
	tool     string               // the upstream's own tool name, for tools/call
	edge     *edge                // the upstream's breaker, retry budget and timeouts
	timeout  time.Duration        // this call's timeout
	perTool  bool                 // timeout comes from tool_timeouts
	admitted func(outcome, error) // reports the current attempt to the breaker; nil once reported
	att      *routestage.Attempt  // the router's view of this attempt (stage/route); nil when not routed
}

// clientSide returns a context for sending to the call's client on behalf
// of the upstream: the client request's values (so the SDK writes to that
// request's stream, not to a GET stream the client may not have) and the
// call's lifetime (so a client that never answers cannot hold the upstream,
// a shutdown or a reload).
func (c *call) clientSide(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	var stop func() bool
	if c.ctx != nil {
		stop = context.AfterFunc(c.ctx, cancel)
	} else {
		t := time.AfterFunc(c.up.Config().Timeout.D(), cancel)
		stop = t.Stop
	}
	var vals context.Context = ctx
	if c.clientCtx != nil {
		vals = c.clientCtx
	}
	return valuesFrom{Context: ctx, vals: vals}, func() { stop(); cancel() }
}

// valuesFrom has one context's lifetime and another's values.
type valuesFrom struct {
	context.Context
	vals context.Context
}

func (v valuesFrom) Value(key any) any { return v.vals.Value(key) }

// begin resolves the upstream session for a request and registers the call
// so that sampling, elicitation, roots and progress from the upstream reach
// the client that caused them. The returned context carries the call's
// timeout: the tool's own for tools/call of a tool in tool_timeouts (tool is
// the upstream's name for it), else the upstream's. end must be called with
// the outcome.
//
// The upstream's circuit breaker admits the call first: while it is open
// the call fails at once with mcpwire.CodeUpstreamUnavailable, saying why and when
// the breaker probes again. A failure to get a session counts against it.
//
// The client's request id (X-Request-Id, assigned at the HTTP edge) is put
// in the returned context: it is logged with the outcome and sent on to HTTP
// upstreams, so one id follows a call through every hop.
func (g *Gateway) begin(ctx context.Context, u *upstream.Upstream, req mcp.Request, method, tool string, progressToken any, cont *continuation) (context.Context, *mcp.ClientSession, *call, error) {
	clientCtx := ctx
	ctx = withCallerTrace(upstream.Detach(ctx), clientCtx)
	var ss *mcp.ServerSession
	if req != nil {
		ss, _ = req.GetSession().(*mcp.ServerSession)
		if ex := req.GetExtra(); ex != nil && ex.Header != nil {
			if rid := ex.Header.Get("X-Request-Id"); rid != "" {
				ctx = upstream.WithRequestID(ctx, rid)
			}
		}
	}
	if ss != nil {
		// Also covers clients that never send notifications/initialized.
		g.sessionOpened(ss)
	}
	c := &call{id: g.callSeq.Add(1), ss: ss, up: u, method: method, start: time.Now(), cont: cont, clientCtx: clientCtx, tool: tool, edge: g.edgeOf(u)}
	c.hot, _ = clientCtx.Value(hotStreamKey{}).(*hotStream)
	g.metrics.Requests.WithLabelValues(u.Name(), method).Inc()
	clientID := ""
	if ss != nil {
		clientID = ss.ID()
	}
	if clientID == "" && u.Config().Isolation == config.IsolationSession {
		// A stateless client has no session to own a connection: it gets
		// one for this call alone, never one shared with other clients.
		clientID = "call-" + strconv.FormatUint(c.id, 10)
		c.release = clientID
	}
	if u.Config().Isolation == config.IsolationSession {
		c.clientID = clientID
	}
	admitted, err := c.edge.breaker.admit()
	if err != nil {
		g.edgeMetrics.rejections.WithLabelValues(u.Name()).Inc()
		g.metrics.Errors.WithLabelValues(u.Name(), method, "unavailable").Inc()
		msg := c.edge.breaker.rejection(err)
		g.log.Debug("upstream call refused", "request_id", upstream.RequestID(ctx), "upstream", u.Name(), "method", method, "reason", msg)
		return nil, nil, nil, &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: msg}
	}
	c.admitted = admitted
	c.edge.budget.earn() // only calls that reach the upstream earn retries
	cs, err := u.Session(ctx, clientID)
	if err != nil {
		msg := transportDetail(err, u.Config().URL)
		c.settle(failure, errors.New(msg))
		g.metrics.Errors.WithLabelValues(u.Name(), method, "unavailable").Inc()
		return nil, nil, nil, &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: msg}
	}
	if c.att = routestage.AttemptFrom(clientCtx); c.att != nil {
		c.att.Sent.Store(true) // from here on the upstream may run it
	}
	c.timeout, c.perTool = c.edge.timeoutFor(u, tool)
	ctx, c.cancel = context.WithTimeout(ctx, c.timeout)
	c.ctx = ctx
	if progressToken != nil && ss != nil {
		c.token = progressTokenFor(c.id)
		g.progress.put(c.token, ss, progressToken, u, c)
	}
	g.inflight.add(c)
	return ctx, cs, c, nil
}

// progressTokenFor returns an unguessable token, so that one upstream cannot
// inject progress into another upstream's calls.
func progressTokenFor(id uint64) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "mcpedge-" + strconv.FormatUint(id, 10) + "-" + hex.EncodeToString(b[:])
}

// end records the outcome of a call, reports it to the upstream's circuit
// breaker (transport failures count; the upstream's own errors, tool errors
// and client cancellations do not) and translates transport-level failures
// into JSON-RPC errors that tell the client what happened.
func (g *Gateway) end(ctx context.Context, c *call, isToolError bool, err error) (out error) {
	if !c.released.Load() {
		g.awaitLogs(c)
	}
	if !c.released.CompareAndSwap(false, true) {
		return err
	}
	g.inflight.remove(c)
	if c.token != "" {
		g.progress.settle(c.token)
		g.progress.drop(c.token)
	}
	if c.release != "" {
		c.up.ReleaseSession(c.release)
	}
	cause := context.Cause(ctx)
	health := classify(ctx, err)
	defer func() { c.settle(health, out) }() // with the error the client sees
	c.cancel()
	name := c.up.Name()
	took := time.Since(c.start)
	g.metrics.Latency.WithLabelValues(name, c.method).Observe(took.Seconds())
	if health == success {
		avg := c.edge.lat.observe(took)
		g.routeMetrics.latency.WithLabelValues(name).Set(avg.Seconds())
	}
	if g.log.Enabled(ctx, slog.LevelDebug) || err != nil {
		lvl := slog.LevelDebug
		if err != nil && !errors.Is(err, context.Canceled) {
			lvl = slog.LevelWarn
		}
		g.log.Log(ctx, lvl, "upstream call", "request_id", upstream.RequestID(ctx), "upstream", name, "method", c.method, "took", took, "tool_error", isToolError, "err", err)
	}
	if err == nil {
		if isToolError {
			g.metrics.Errors.WithLabelValues(name, c.method, "tool").Inc()
		}
		return nil
	}
	werr, fromUpstream := upstreamError(err)
	if fromUpstream && c.att != nil {
		c.att.Answered.Store(true)
	}
	switch {
	case fromUpstream:
		// The upstream's own protocol error travels unchanged.
		g.metrics.Errors.WithLabelValues(name, c.method, "protocol").Inc()
		return werr
	case errors.Is(cause, context.DeadlineExceeded):
		g.metrics.Errors.WithLabelValues(name, c.method, "timeout").Inc()
		msg := fmt.Sprintf("upstream %s did not answer %s within %s", name, c.method, c.timeout)
		if c.perTool {
			msg = fmt.Sprintf("upstream %s did not answer %s of tool %q within its tool timeout of %s", name, c.method, c.tool, c.timeout)
		}
		return &jsonrpc.Error{Code: mcpwire.CodeUpstreamTimeout, Message: msg}
	case errors.Is(err, context.Canceled):
		g.metrics.Errors.WithLabelValues(name, c.method, "canceled").Inc()
		return err
	default:
		g.metrics.Errors.WithLabelValues(name, c.method, "unavailable").Inc()
		return &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: fmt.Sprintf("upstream %s: %s", name, transportDetail(err, c.up.Config().URL))}
	}
}

// JSON-RPC error codes the gateway itself returns, in the implementation
// defined server-error range (-32000 to -32099).

// hopByHop are the per-request _meta keys of the 2026-07-28 protocol that
// describe one hop (client to gateway, or gateway to upstream): the
// gateway's own client sets them for the upstream hop, so the client's must
// not travel on.
var hopByHop = []string{
	mcp.MetaKeyProtocolVersion, mcp.MetaKeyClientInfo, mcp.MetaKeyClientCapabilities,
	mcp.MetaKeyLogLevel, mcp.MetaKeySubscriptionID, mcp.MetaKeyServerInfo,
	principal.MetaKey,
}

// withProgress returns the _meta to send upstream: the client's, without
// hop-by-hop keys, with the gateway's progress token when there is one,
// and with the W3C trace context of ctx (the upstream-call span, or the
// client's context passed on) in traceparent/tracestate (SEP-414). The
// client's map is never modified.
func withProgress(ctx context.Context, meta mcp.Meta, token string) mcp.Meta {
	return tracing.InjectMeta(ctx, progressMeta(meta, token))
}

// progressMeta is withProgress without the trace context.
func progressMeta(meta mcp.Meta, token string) mcp.Meta {
	hop := false
	for _, k := range hopByHop {
		if _, ok := meta[k]; ok {
			hop = true
			break
		}
	}
	if token == "" && !hop {
		return meta
	}
	out := make(mcp.Meta, len(meta)+1)
	for k, v := range meta {
		out[k] = v
	}
	for _, k := range hopByHop {
		delete(out, k)
	}
	if token != "" {
		out["progressToken"] = token
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// dropServerInfo removes the upstream's 2026-07-28 serverInfo annotation
// from a result, so the client sees the server it talks to (the SDK server
// adds its own).
func dropServerInfo(m mcp.Meta) {
	delete(m, mcp.MetaKeyServerInfo)
}

// toolHandler is the SDK handler of a tool of upstream u, where the tool is
// called name: it resumes the pipeline (stages.go) with u as the target.
func (g *Gateway) toolHandler(u *upstream.Upstream, name string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		res, err := g.resumeCall(ctx, pipeline.MethodCallTool, req, u, "", name)
		return typed[*mcp.CallToolResult](res), err
	}
}

// forwardTool sends tools/call to target t. Arguments travel as the raw
// JSON the client sent.
func (g *Gateway) forwardTool(ctx context.Context, c *pipeline.Call, t *upstream.Upstream, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	p, name := req.Params, c.Item
	builtinUp := t.Config().Transport == upstream.TransportBuiltin
	do := func(ctx context.Context, cs *mcp.ClientSession, token string) (*mcp.CallToolResult, bool, error) {
		params := &mcp.CallToolParams{Meta: g.statelessHop(withProgress(ctx, p.Meta, token), p.Meta, req, cs), Name: name, InputResponses: p.InputResponses, RequestState: p.RequestState}
		if builtinUp {
			params.Meta = builtinMeta(params.Meta, principalOf(req))
		}
		if len(p.Arguments) > 0 {
			params.Arguments = p.Arguments
		}
		res, err := cs.CallTool(ctx, params)
		// The upstream's own JSON-RPC error, not the gateway's
		// "unavailable", which a deferrable call is queued on.
		c.Answered = err != nil && isUpstreamError(err)
		if res != nil {
			dropServerInfo(res.Meta)
		}
		return res, err == nil && res != nil && res.IsError, err
	}
	return relay(g, ctx, t, req, pipeline.MethodCallTool, name, p.RequestState, p.InputResponses, p.GetProgressToken(), do,
		func(m mcp.InputRequestMap, state string) *mcp.CallToolResult {
			return &mcp.CallToolResult{InputRequests: m, RequestState: state}
		})
}

// errCode is the JSON-RPC code of err, 0 if it has none.
func errCode(err error) int64 {
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		return werr.Code
	}
	return 0
}

func (g *Gateway) promptHandler(u *upstream.Upstream, name string) mcp.PromptHandler {
	return func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		res, err := g.resumeCall(ctx, pipeline.MethodGetPrompt, req, u, "", name)
		return typed[*mcp.GetPromptResult](res), err
	}
}

// forwardPrompt sends prompts/get to target t.
func (g *Gateway) forwardPrompt(ctx context.Context, c *pipeline.Call, t *upstream.Upstream, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	p, name := req.Params, c.Item
	do := func(ctx context.Context, cs *mcp.ClientSession, token string) (*mcp.GetPromptResult, bool, error) {
		params := *p
		params.Name = name
		params.Meta = g.statelessHop(withProgress(ctx, p.Meta, token), p.Meta, req, cs)
		res, err := cs.GetPrompt(ctx, &params)
		if res != nil {
			dropServerInfo(res.Meta)
		}
		return res, false, err
	}
	return relay(g, ctx, t, req, pipeline.MethodGetPrompt, "", p.RequestState, p.InputResponses, p.GetProgressToken(), do,
		func(m mcp.InputRequestMap, state string) *mcp.GetPromptResult {
			return &mcp.GetPromptResult{InputRequests: m, RequestState: state}
		})
}

func (g *Gateway) resourceHandler(u *upstream.Upstream) mcp.ResourceHandler {
	return func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return g.read(ctx, u, req)
	}
}

// read resumes (or enters) the pipeline for a resources/read of upstream u.
func (g *Gateway) read(ctx context.Context, u *upstream.Upstream, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	res, err := g.resumeCall(ctx, pipeline.MethodReadResource, req, u, "", "")
	return typed[*mcp.ReadResourceResult](res), err
}

// forwardRead sends resources/read to target t.
func (g *Gateway) forwardRead(ctx context.Context, _ *pipeline.Call, t *upstream.Upstream, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	p := req.Params
	do := func(ctx context.Context, cs *mcp.ClientSession, token string) (*mcp.ReadResourceResult, bool, error) {
		params := *p
		params.URI = spelled(t, params.URI)
		params.Meta = g.statelessHop(withProgress(ctx, p.Meta, token), p.Meta, req, cs)
		res, err := cs.ReadResource(ctx, &params)
		if res != nil {
			dropServerInfo(res.Meta)
		}
		return res, false, err
	}
	return relay(g, ctx, t, req, pipeline.MethodReadResource, "", p.RequestState, p.InputResponses, p.GetProgressToken(), do,
		func(m mcp.InputRequestMap, state string) *mcp.ReadResourceResult {
			return &mcp.ReadResourceResult{InputRequests: m, RequestState: state}
		})
}

// readMiddleware lets /mcp/<name> read URIs the upstream serves without
// listing them (servers may): when the SDK server finds no listed resource
// or template for a URI, the read goes to the upstream as is. A not-found
// error for a URI the gateway did route came from the upstream itself and is
// returned unchanged; on /mcp routing is by listed resources and templates
// only, so nothing is re-sent there.
func (g *Gateway) readMiddleware(only string) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if method != "resources/read" || err == nil || only == "" {
				return res, err
			}
			var werr *jsonrpc.Error
			if !errors.As(err, &werr) || werr.Code != mcp.CodeResourceNotFound {
				return res, err
			}
			rr, ok := req.(*mcp.ReadResourceRequest)
			if !ok {
				return res, err
			}
			u, ok := g.Upstream(only)
			if !ok || listed(u.Catalog(), rr.Params.URI) {
				return res, err
			}
			return g.read(ctx, u, rr)
		}
	}
}

// listed reports whether a catalog lists uri or a template matching it.
func listed(cat *upstream.Catalog, uri string) bool {
	_, ok := listedMIME(cat, uri)
	return ok
}

// ownerOf finds the upstream that serves uri: on a per-upstream endpoint
// that upstream; on /mcp the owner of the exact URI, else of the first
// template that matches it in the order the SDK server tries them (sorted
// by template string). It must agree with the SDK's dispatch of
// resources/read exactly: authorization asks the same lookup (uriOwner),
// and a different answer would check one upstream and read from another.
func (g *Gateway) ownerOf(only, uri string) *upstream.Upstream {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.lookupLocked(g.ownerNameLocked(only, uri))
}

// ownerNameLocked is ownerOf's answer as the configured upstream's name,
// also while no connection serves it (an upstream with targets, none
// connected, whose catalog is kept). g.mu must be held.
func (g *Gateway) ownerNameLocked(only, uri string) string {
	if only != "" {
		return only
	}
	if name, ok := g.resources[uri]; ok {
		return name
	}
	for _, t := range g.templateOrder {
		if t.re.MatchString(uri) {
			return t.up
		}
	}
	return ""
}

// ownedTemplate is a registered URI template compiled, and its upstream.
type ownedTemplate struct {
	re *regexp.Regexp
	up string
}

// indexTemplatesLocked compiles the registered URI templates in the order
// the SDK server tries them (sorted by template string) for
// ownerNameLocked, so that a read does not sort and compile them again.
// Registrations call it; g.mu must be held.
func (g *Gateway) indexTemplatesLocked() {
	order := make([]ownedTemplate, 0, len(g.templates))
	for _, t := range slices.Sorted(maps.Keys(g.templates)) {
		if tmpl, err := uritemplate.New(t); err == nil {
			order = append(order, ownedTemplate{re: tmpl.Regexp(), up: g.templates[t]})
		}
	}
	g.templateOrder = order
}

func checkTemplate(t string) error {
	_, err := uritemplate.New(t)
	return err
}

// toolSchema returns a tool's inputSchema as JSON, and rejects tools the
// SDK server would refuse (it panics on them): an upstream's bad tool must
// cost that tool, not the gateway.
func toolSchema(t *mcp.Tool) (json.RawMessage, error) {
	if t.Name == "" {
		return nil, errors.New("empty name")
	}
	var m map[string]any
	b, err := json.Marshal(t.InputSchema)
	if err != nil || json.Unmarshal(b, &m) != nil {
		return nil, errors.New("inputSchema is not a JSON object")
	}
	if m["type"] != "object" {
		return nil, fmt.Errorf(`inputSchema type is %v, want "object"`, m["type"])
	}
	if t.OutputSchema != nil {
		if _, err := json.Marshal(t.OutputSchema); err != nil {
			return nil, fmt.Errorf("outputSchema: %v", err)
		}
	}
	return b, nil
}

// complete routes completion/complete: prompt references by aggregated
// prompt name, resource references by the template's owner.
func (g *Gateway) complete(ctx context.Context, only string, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	res, err := g.resumeCall(ctx, pipeline.MethodComplete, req, nil, only, "")
	return typed[*mcp.CompleteResult](res), err
}

// completeNow is complete's forward stage.
func (g *Gateway) completeNow(ctx context.Context, only string, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	p := *req.Params
	if p.Ref == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "completion/complete: missing ref"}
	}
	ref := *p.Ref
	var u *upstream.Upstream
	switch ref.Type {
	case "ref/prompt":
		if only != "" {
			u, _ = g.Upstream(only)
		} else {
			g.mu.RLock()
			r, ok := g.prompts[ref.Name]
			if ok {
				u = g.lookupLocked(r.up)
				ref.Name = r.name
			}
			g.mu.RUnlock()
		}
	case "ref/resource":
		if name := g.refOwner(only, ref.URI); name != "" {
			u, _ = g.Upstream(name)
		}
	default:
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("completion/complete: unknown ref type %q", ref.Type)}
	}
	if u == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("completion/complete: no prompt or resource template %q", ref.Name+ref.URI)}
	}
	p.Ref = &ref
	p.Meta = withProgress(ctx, p.Meta, "")
	// Routed like a read: what the user is typing is the call's data, so
	// local-only rules hold for it.
	rc := &pipeline.Call{Method: pipeline.MethodComplete, Request: req, Target: u}
	res, err := routestage.Run(ctx, routeTargets{g}, rc, func(ctx context.Context, u *upstream.Upstream) (mcp.Result, error) {
		ctx, cs, c, err := g.begin(ctx, u, req, "completion/complete", "", nil, nil)
		if err != nil {
			return nil, err
		}
		res, _, err := attempt(g, ctx, c, cs, func(ctx context.Context, cs *mcp.ClientSession, _ string) (*mcp.CompleteResult, bool, error) {
			res, err := cs.Complete(ctx, &p)
			return res, false, err
		}, nil)
		return res, g.end(ctx, c, false, err)
	})
	return typed[*mcp.CompleteResult](res), err
}

// refOwner is the upstream a completion/complete resource reference goes
// to: on /mcp the owner of the template (or resource) with exactly that
// URI, which is not ownerOf's answer (a reference names a template, not a
// URI matching one). Authorization asks this same function.
func (g *Gateway) refOwner(only, uri string) string {
	if only != "" {
		return only
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if name, ok := g.templates[uri]; ok {
		return name
	}
	return g.resources[uri]
}

// subscriptions reference-counts resource subscriptions per upstream and URI:
// a shared upstream connection is subscribed once however many clients
// subscribe, and unsubscribed when the last one leaves.
type subscriptions struct {
	mu    sync.Mutex
	count map[string]map[*mcp.ServerSession]bool // upstream + "\x00" + uri -> sessions
}

func (g *Gateway) subscribe(ctx context.Context, only string, req *mcp.SubscribeRequest) error {
	_, err := g.resumeCall(ctx, pipeline.MethodSubscribe, req, nil, only, "")
	return err
}

// subscribeNow is subscribe's forward stage.
func (g *Gateway) subscribeNow(ctx context.Context, only string, req *mcp.SubscribeRequest) error {
	uri, ss := req.Params.URI, req.Session
	if handled, err := g.queueSubscription(ctx, only, req, uri, true); handled {
		return err
	}
	u := g.ownerOf(only, uri)
	if u == nil {
		return mcp.ResourceNotFoundError(uri)
	}
	u, err := g.subscriptionTarget(ctx, u, req)
	if err != nil {
		return err
	}
	key := u.Name() + "\x00" + uri
	g.subs.mu.Lock()
	if g.subs.count == nil {
		g.subs.count = map[string]map[*mcp.ServerSession]bool{}
	}
	set := g.subs.count[key]
	first := len(set) == 0
	if set == nil {
		set = map[*mcp.ServerSession]bool{}
		g.subs.count[key] = set
	}
	set[ss] = true
	g.subs.mu.Unlock()
	if !first && u.Config().Isolation != "session" {
		return nil
	}
	forget := func() {
		g.subs.mu.Lock()
		if set := g.subs.count[key]; set != nil {
			delete(set, ss)
			if len(set) == 0 {
				delete(g.subs.count, key)
			}
		}
		g.subs.mu.Unlock()
	}
	ctx, cs, c, err := g.begin(ctx, u, req, "resources/subscribe", "", nil, nil)
	if err != nil {
		forget()
		return err
	}
	err = cs.Subscribe(ctx, &mcp.SubscribeParams{URI: spelled(u, uri)})
	if err = g.end(ctx, c, false, err); err != nil {
		forget() // a failed first subscription must not count as one
	}
	return err
}

func (g *Gateway) unsubscribe(ctx context.Context, only string, req *mcp.UnsubscribeRequest) error {
	_, err := g.resumeCall(ctx, pipeline.MethodUnsubscribe, req, nil, only, "")
	return err
}

// unsubscribeNow is unsubscribe's forward stage.
func (g *Gateway) unsubscribeNow(ctx context.Context, only string, req *mcp.UnsubscribeRequest) error {
	uri, ss := req.Params.URI, req.Session
	if handled, err := g.queueSubscription(ctx, only, req, uri, false); handled {
		return err
	}
	u := g.ownerOf(only, uri)
	if u == nil {
		return mcp.ResourceNotFoundError(uri)
	}
	// The SDK unsubscribes a 2026-07-28 subscriptions/listen stream when
	// the stream ends, with the stream's context, which is canceled by
	// then; and a client may give up on its resources/unsubscribe. Either
	// way the session is counted out below, so the upstream must still be
	// told: on a context of its own (the request's values, not its
	// lifetime), bounded by the upstream's timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.Config().Timeout.D())
	defer cancel()
	u, err := g.subscriptionTarget(ctx, u, req)
	if err != nil {
		return err
	}
	key := u.Name() + "\x00" + uri
	g.subs.mu.Lock()
	set := g.subs.count[key]
	delete(set, ss)
	last := len(set) == 0
	if last {
		delete(g.subs.count, key)
	}
	g.subs.mu.Unlock()
	if !last && u.Config().Isolation != "session" {
		return nil
	}
	ctx, cs, c, err := g.begin(ctx, u, req, "resources/unsubscribe", "", nil, nil)
	if err != nil {
		return err
	}
	err = cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: spelled(u, uri)})
	return g.end(ctx, c, false, err)
}

// dropSession forgets a closed client session's subscriptions, unsubscribing
// upstream where it was the last subscriber.
func (s *subscriptions) dropSession(ss *mcp.ServerSession, g *Gateway) {
	s.mu.Lock()
	var gone []string
	for key, set := range s.count {
		if set[ss] {
			delete(set, ss)
			if len(set) == 0 {
				delete(s.count, key)
				gone = append(gone, key)
			}
		}
	}
	s.mu.Unlock()
	for _, key := range gone {
		for i := 0; i < len(key); i++ {
			if key[i] == 0 {
				// A session-isolated upstream's connection closes with the
				// session, taking its subscriptions with it.
				if u, ok := g.Upstream(key[:i]); ok && u.Config().Isolation != config.IsolationSession {
					if cs, err := u.Session(context.Background(), ""); err == nil {
						ctx, cancel := context.WithTimeout(context.Background(), u.Config().Timeout.D())
						_ = cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: key[i+1:]})
						cancel()
					}
				}
				break
			}
		}
	}
}

// inflightTable tracks forwarded calls per upstream, newest last.
type inflightTable struct {
	mu    sync.Mutex
	calls map[*upstream.Upstream][]*call
}

func (t *inflightTable) add(c *call) {
	t.mu.Lock()
	if t.calls == nil {
		t.calls = map[*upstream.Upstream][]*call{}
	}
	t.calls[c.up] = append(t.calls[c.up], c)
	t.mu.Unlock()
}

func (t *inflightTable) remove(c *call) {
	t.mu.Lock()
	list := t.calls[c.up]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(t.calls, c.up)
	} else {
		t.calls[c.up] = list
	}
	t.mu.Unlock()
}

func (t *inflightTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, l := range t.calls {
		n += len(l)
	}
	return n
}

// latest returns the newest call in flight on u that has a client session.
func (t *inflightTable) latest(u *upstream.Upstream) *call {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.calls[u]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].ss != nil {
			return list[i]
		}
	}
	return nil
}

// upstreamNewEra reports whether the upstream negotiated the stateless
// protocol; such an upstream returns input requests itself and never sends
// server-to-client requests.
func upstreamNewEra(u *upstream.Upstream) bool {
	init := u.Catalog().Init
	return init != nil && init.ProtocolVersion >= statelessVersion
}

// progressTable maps the progress tokens the gateway sends upstream to the
// client session and the client's own token. Rewriting tokens keeps two
// clients that picked the same token apart on a shared upstream connection.
type progressTable struct {
	m sync.Map // string -> progressTarget
}

type progressTarget struct {
	ss    *mcp.ServerSession
	token any
	up    *upstream.Upstream
	call  *call
	last  *atomic.Int64 // unix nanos of the last notification relayed
	queue *atomic.Int64 // notifications queued for the client, not yet sent
}

func (t *progressTable) put(tok string, ss *mcp.ServerSession, orig any, u *upstream.Upstream, c *call) {
	t.m.Store(tok, progressTarget{ss: ss, token: orig, up: u, call: c, last: new(atomic.Int64), queue: new(atomic.Int64)})
}

// settle gives progress notifications that the upstream sent just before
// its result a moment to be relayed, so the client sees them before the
// result. The SDK client hands notifications to a goroutine while the
// response goes straight to the caller, so the two can swap places. Only
// calls that asked for progress pay this: 5 ms, more on a loaded machine,
// at most 50 ms.
func (t *progressTable) settle(tok string) {
	v, ok := t.m.Load(tok)
	if !ok {
		return
	}
	pt := v.(progressTarget)
	if pt.call != nil && pt.call.hot != nil && pt.call.hot.posted.Load() {
		// Read in order from the call's own POST (postWire) and relayed
		// on the client's stream at once, never queued. (An attempt
		// through the SDK client — stdio, SSE, a session the upstream
		// forgot — hands its notifications to another goroutine than its
		// answer, like any other call.)
		return
	}
	// Notifications the upstream sent before its result are already queued
	// in the SDK client when the result arrives, and its handler goroutine
	// runs them in order within moments; on a loaded machine that can take a
	// few milliseconds, even for the first one. So wait at least minWait,
	// then until none has been relayed for quietFor, at most maxWait.
	// When the machine is loaded, goroutines wake late — ours and the SDK's
	// alike — so the wait stretches with the lateness this loop observes.
	const step, quietFor, maxWait = 500 * time.Microsecond, 2 * time.Millisecond, 50 * time.Millisecond
	minWait := 5 * time.Millisecond
	start := time.Now()
	for time.Since(start) < maxWait {
		quiet := time.Since(time.Unix(0, pt.last.Load()))
		if pt.queue.Load() == 0 && time.Since(start) >= minWait && quiet >= quietFor {
			return
		}
		before := time.Now()
		time.Sleep(step)
		if late := time.Since(before) - step; 10*late > minWait {
			minWait = min(10*late, maxWait)
		}
	}
}

func (t *progressTable) drop(tok string) { t.m.Delete(tok) }

func (t *progressTable) get(tok any) (progressTarget, bool) {
	s, ok := tok.(string)
	if !ok {
		return progressTarget{}, false
	}
	v, ok := t.m.Load(s)
	if !ok {
		return progressTarget{}, false
	}
	return v.(progressTarget), true
}
