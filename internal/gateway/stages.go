package gateway

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/stage/argcheck"
	auditstage "github.com/mcpedge/mcpedge/internal/stage/audit"
	"github.com/mcpedge/mcpedge/internal/stage/authz"
	cachestage "github.com/mcpedge/mcpedge/internal/stage/cache"
	"github.com/mcpedge/mcpedge/internal/stage/deferral"
	"github.com/mcpedge/mcpedge/internal/stage/explain"
	meterstage "github.com/mcpedge/mcpedge/internal/stage/meter"
	routestage "github.com/mcpedge/mcpedge/internal/stage/route"
	"github.com/mcpedge/mcpedge/internal/stage/uricheck"
	"github.com/mcpedge/mcpedge/internal/tracing"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// This file wires the data plane: it builds the pipeline (internal/pipeline,
// order in pipeline/order.go) from the stage packages and from the stages
// that still live in the gateway (dispatch and forward: they need its
// connections, catalog and the SDK server), with routeTargets as the
// gateway's side of the route stage, and runs every call that reaches an
// upstream through it.
//
// A client's call enters in the session's receiving middleware
// (enterPipeline): audit and authorize run there, before the SDK server
// looks the item up, so that a refused item and an unknown one are
// refused alike. The dispatch stage hands the call to the SDK server, and
// the item's handler resumes the chain (resumeCall) with the stages after
// dispatch.

// pipelineHolder keeps the compiled chain; it is rebuilt when the security
// layer or the audit recorder is installed.
type pipelineHolder struct {
	chain   atomic.Pointer[pipeline.Chain]
	callLog auditstage.Recorder // single-user mode's tool-call audit (SetCallAudit)
	meter   meterstage.Counter  // usage metering (SetMeter); nil: off
	// args is the argcheck stage, made once (New): its compiled schemas
	// outlive a rebuild of the chain.
	args *argcheck.Stage
}

// SetCallAudit installs the recorder of tool calls used in single-user
// mode (in multi-tenant mode calls are reported to [Security.Record]). Call
// it before serving.
func (g *Gateway) SetCallAudit(r auditstage.Recorder) {
	g.pipe.callLog = r
	g.buildPipeline()
}

// SetMeter installs usage metering: every tools/call is counted by c
// (internal/metering), in both auth modes. Call it before serving.
func (g *Gateway) SetMeter(c meterstage.Counter) {
	g.pipe.meter = c
	g.buildPipeline()
}

// buildPipeline compiles the chain for the current security layer.
func (g *Gateway) buildPipeline() {
	var stages []pipeline.Stage
	if g.security != nil {
		stages = append(stages, auditstage.New(securityRecorder{g.security}), authz.New(policyOf{g.security}))
	} else if g.pipe.callLog != nil {
		stages = append(stages, auditstage.New(g.pipe.callLog))
	}
	if g.pipe.meter != nil {
		stages = append(stages, meterstage.New(g.pipe.meter, g.listsTool))
	}
	stages = append(stages, uricheck.Stage{}, dispatchStage{}, g.pipe.args,
		explain.Stage{Full: func(c *pipeline.Call) bool { return g.explainsFully(c.Request) }})
	if g.deferrer != nil {
		stages = append(stages, deferral.New(queueOf{g}))
	}
	stages = append(stages, cachestage.New(cacheSource{g}, &cachestage.Options{Noted: func(ctx context.Context, how string) { explain.From(ctx).Cached(how) }}),
		routestage.New[*upstream.Upstream](routeTargets{g}, func(c *pipeline.Call, t *upstream.Upstream) { c.Target = t }))
	stages = append(stages, g.guardStage())
	var opts []pipeline.Option
	if g.trace.on {
		// The stages a slow or refused call is explained by get a span
		// of their own (docs/design/tracing.md).
		opts = append(opts, pipeline.Traced(g.trace.t, "authorize", "defer", "cache", "route", "forward"))
	}
	ch, err := pipeline.Compile(stages, forwardStage{g}, opts...)
	if err != nil {
		// The stages above are fixed at compile time: an error here is a
		// programming error caught by every test.
		panic(err)
	}
	g.pipe.chain.Store(ch)
}

// securityRecorder reports tool calls to the multi-tenant layer.
type securityRecorder struct{ sec Security }

func (s securityRecorder) Record(ctx context.Context, p *principal.Principal, r auditstage.Record) {
	s.sec.Record(ctx, p, r)
}

// policyOf answers the authorize stage from the security layer, with the
// gateway's own items (the queue's tool and resources are every caller's).
type policyOf struct{ sec Security }

func (p policyOf) Allowed(pr *principal.Principal, up, kind, name string) bool {
	switch kind {
	case "tool":
		return toolAllowed(p.sec, pr, up, name)
	case "resource":
		return resourceAllowed(p.sec, pr, up)
	}
	return p.sec.Allowed(pr, up, kind, name)
}

// sdkNextKey carries the SDK server's next handler from the receiving
// middleware to the dispatch stage.
type sdkNextKey struct{}

// enterPipeline runs a client's call of a pipeline method: it resolves the
// item's owner as the endpoint (only) names it, and runs the chain, whose
// dispatch stage calls next.
func (g *Gateway) enterPipeline(ctx context.Context, only, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	c := &pipeline.Call{Method: method, Face: only, Kind: "resource", Principal: principalOf(req), Source: pipeline.SourceClient, Request: req}
	if ex := req.GetExtra(); ex != nil && ex.Header != nil {
		c.RequestID = ex.Header.Get("X-Request-Id")
		// The trace context checkBody put in the headers: the request's
		// server span, or the client's context passed on.
		ctx = tracing.Extract(ctx, ex.Header, nil)
	}
	// A request without params (typed nil) names nothing: no owner, and
	// authorize and the SDK refuse it as an unknown item.
	switch x := req.GetParams().(type) {
	case *mcp.CallToolParamsRaw:
		c.Kind = "tool"
		if x != nil {
			c.Name, c.Arguments = x.Name, x.Arguments
			c.Upstream, c.Item = g.toolOwner(only, x.Name)
		}
	case *mcp.GetPromptParams:
		c.Kind = "prompt"
		if x != nil {
			c.Name = x.Name
			c.Upstream, c.Item = g.promptOwner(only, x.Name)
		}
	// A resource URI is put in the normal form here, in the request
	// itself, so that every stage, the SDK server's lookup and the
	// upstream see one spelling (uri.go).
	case *mcp.ReadResourceParams:
		if x != nil {
			x.URI = normalURI(x.URI)
			g.resourceCall(c, only, x.URI)
		}
	case *mcp.SubscribeParams:
		if x != nil {
			x.URI = normalURI(x.URI)
			g.resourceCall(c, only, x.URI)
		}
	case *mcp.UnsubscribeParams:
		if x != nil {
			x.URI = normalURI(x.URI)
			g.resourceCall(c, only, x.URI)
		}
	case *mcp.CompleteParams:
		if x != nil && x.Ref != nil {
			switch x.Ref.Type {
			case "ref/prompt":
				c.Kind, c.Name = "prompt", x.Ref.Name
				c.Upstream, c.Item = g.promptOwner(only, x.Ref.Name)
			default:
				c.Name = x.Ref.URI
				c.Upstream = g.refOwner(only, x.Ref.URI) // where complete() sends it
			}
		}
	}
	res, err := g.pipe.chain.Load().Handle(context.WithValue(ctx, sdkNextKey{}, next), c)
	g.traceOutcome(ctx, c, res, err)
	if g.log.Enabled(ctx, slog.LevelDebug) {
		g.log.Debug("pipeline", "request_id", c.RequestID, "method", c.Method, "name", c.Name, "upstream", c.Upstream,
			"answered_by", c.AnsweredBy, "refused_by", c.Refused, "err", err)
	}
	return res, err
}

// resourceCall names the resource uri in c and its owner as the
// endpoint (only) resolves it.
func (g *Gateway) resourceCall(c *pipeline.Call, only, uri string) {
	c.Name = uri
	c.Upstream = g.uriOwner(only, uri)
}

// resumeCall continues a call in its item's handler: the chain after
// dispatch, with u (the upstream whose handler this is) as the target. A
// handler reached without the pipeline's front (the SDK server calling a
// subscribe handler for subscriptions/listen; readMiddleware's second
// attempt) enters after dispatch with a call of its own.
func (g *Gateway) resumeCall(ctx context.Context, method string, req mcp.Request, u *upstream.Upstream, face, item string) (mcp.Result, error) {
	c, next, ok := pipeline.Resume(ctx, method)
	if !ok {
		c = &pipeline.Call{Method: method, Face: face, Principal: principalOf(req), Source: pipeline.SourceClient, Request: req}
		switch p := req.GetParams().(type) {
		case *mcp.CallToolParamsRaw:
			if p != nil {
				c.Name, c.Arguments = p.Name, p.Arguments
			}
		case *mcp.GetPromptParams:
			if p != nil {
				c.Name = p.Name
			}
		case *mcp.ReadResourceParams:
			if p != nil {
				c.Name = p.URI
			}
		}
		next = g.pipe.chain.Load().After(method, "dispatch")
	}
	if u != nil {
		c.Target = u
		c.Upstream = groupName(u)
		c.Item = item
	}
	c.Request = req
	switch p := req.GetParams().(type) {
	case *mcp.CallToolParamsRaw:
		c.Resuming = p != nil && (p.RequestState != "" || len(p.InputResponses) > 0)
	case *mcp.GetPromptParams:
		c.Resuming = p != nil && (p.RequestState != "" || len(p.InputResponses) > 0)
	case *mcp.ReadResourceParams:
		c.Resuming = p != nil && (p.RequestState != "" || len(p.InputResponses) > 0)
	}
	return next.Handle(ctx, c)
}

// dispatchStage hands the call to the SDK server, which finds the item and
// calls its handler; the handler resumes the chain.
type dispatchStage struct{}

func (dispatchStage) Name() string { return "dispatch" }

func (dispatchStage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	sdkNext, _ := ctx.Value(sdkNextKey{}).(mcp.MethodHandler)
	if sdkNext == nil {
		// Entered without a client session (not reachable: calls without
		// one enter after dispatch).
		return next.Handle(ctx, c)
	}
	return sdkNext(pipeline.Suspend(ctx, c, next), c.Method, c.Request)
}

// typed returns r as the result type R (nil when r is nil or another type).
func typed[R mcp.Result](r mcp.Result) R {
	x, _ := r.(R)
	return x
}

// nextAs runs the rest of the chain and returns its result as R.
func nextAs[R mcp.Result](ctx context.Context, c *pipeline.Call, next pipeline.Handler) (R, error) {
	r, err := next.Handle(ctx, c)
	return typed[R](r), err
}

// target is the call's current connection.
func target(c *pipeline.Call) *upstream.Upstream {
	u, _ := c.Target.(*upstream.Upstream)
	return u
}

// listsTool tells the meter stage whether the call's upstream lists the
// tool it names (its registration on /mcp/<upstream>).
func (g *Gateway) listsTool(c *pipeline.Call) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	reg := g.regs[c.Upstream]
	return reg != nil && reg.perTools[c.Item] != nil
}

// argSchemas gives the argcheck stage the inputSchema of the called tool
// as its upstream's registration lists it — the definition the caller was
// shown, whichever target the call is then routed to — and whether the
// upstream checks arguments (check_arguments, live at a reload).
type argSchemas struct{ g *Gateway }

func (s argSchemas) InputSchema(c *pipeline.Call) ([]byte, bool) {
	u := target(c)
	if u == nil {
		return nil, false
	}
	name := groupName(u)
	g := s.g
	g.mu.RLock()
	defer g.mu.RUnlock()
	if gr := g.groups[name]; gr != nil && !gr.cfg.ChecksArguments() {
		return nil, false
	}
	reg := g.regs[name]
	if reg == nil {
		return nil, false
	}
	schema := reg.schemas[c.Item]
	return schema, schema != nil
}

// queueOf is the defer stage's queue (stage/deferral): the gateway's
// Deferrer, with the upstream's configuration saying which tools may be
// deferred (defer.go).
type queueOf struct{ g *Gateway }

func (q queueOf) Deferrable(c *pipeline.Call) bool {
	u := target(c)
	req, ok := c.Request.(*mcp.CallToolRequest)
	if !ok || u == nil || u.Config().Transport == upstream.TransportBuiltin {
		return false
	}
	return q.g.deferrable(u, c.Item, req.Params.Meta)
}

func (q queueOf) Defer(ctx context.Context, c *pipeline.Call, unavailable error) (mcp.Result, error) {
	return q.g.deferCall(ctx, c.Request.(*mcp.CallToolRequest), target(c), c.Item, unavailable)
}

// forwardStage is the terminal: it sends the call to its target through
// the target's circuit breaker, timeouts and retries, translating between
// protocol eras (era.go, failure.go). Completions and subscriptions pick
// their target here, from the item they refer to.
type forwardStage struct{ g *Gateway }

func (forwardStage) Name() string { return "forward" }

func (s forwardStage) Handle(ctx context.Context, c *pipeline.Call, _ pipeline.Handler) (mcp.Result, error) {
	g, t := s.g, target(c)
	switch req := c.Request.(type) {
	case nil:
		if c.Source == pipeline.SourceQueue && c.Method == pipeline.MethodCallTool {
			return g.deliver(ctx, c, t)
		}
	case *mcp.CallToolRequest:
		if c.Wire != nil {
			return g.forwardToolWire(ctx, c, t, req)
		}
		return g.forwardTool(ctx, c, t, req)
	case *mcp.GetPromptRequest:
		if c.Wire != nil {
			return g.forwardPromptWire(ctx, c, t, req)
		}
		return g.forwardPrompt(ctx, c, t, req)
	case *mcp.ReadResourceRequest:
		if c.Wire != nil {
			return g.forwardReadWire(ctx, c, t, req)
		}
		return g.forwardRead(ctx, c, t, req)
	case *mcp.CompleteRequest:
		return g.completeNow(ctx, c.Face, req)
	case *mcp.SubscribeRequest:
		return nil, g.subscribeNow(ctx, c.Face, req)
	case *mcp.UnsubscribeRequest:
		return nil, g.unsubscribeNow(ctx, c.Face, req)
	}
	return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "forward: no handler for " + c.Method}
}
