package gateway

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/tracing"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing (docs/design/tracing.md). Every client request with a method
// gets a server span, started at the HTTP edge once its body is
// validated (backdated to the request's arrival), with the credential
// check as a child span; the pipeline's stages that matter run in spans
// of their own (pipeline.Traced); each attempt on an upstream is a client
// span, whose context the upstream receives in its traceparent header and
// _meta. With tracing off none of these spans exist, and a client's trace
// context, when it sent one, travels to the upstream as it came.

// tracer is the gateway's tracing state.
type tracer struct {
	t  trace.Tracer // never nil: a no-op tracer when tracing is off
	on bool
	// live are the server spans of requests the SDK's way serves, by span
	// id: its handlers get only the request's headers, where the span's
	// context is (checkBody), and find the span here to end it with the
	// call's outcome.
	live sync.Map // trace.SpanID -> trace.Span
}

func newTracer() *tracer {
	return &tracer{t: noop.NewTracerProvider().Tracer(tracing.InstrumentationName)}
}

// SetTracing makes the gateway record spans with p's tracer (when p is
// enabled). Call it before [Gateway.Start]. Trace context is carried from
// clients to upstreams whether or not it is called.
func (g *Gateway) SetTracing(p *tracing.Provider) {
	g.trace = &tracer{t: p.Tracer(), on: p.Enabled()}
	g.buildPipeline()
}

// edgeTiming is what the HTTP edge measured of a request before its
// server span could start (its parent is in the body): when it arrived,
// and when its credential check ran. Kept only when tracing is on.
type edgeTiming struct {
	start              time.Time
	authStart, authEnd time.Time
}

type edgeTimingKey struct{}

func timingOf(r *http.Request) *edgeTiming {
	t, _ := r.Context().Value(edgeTimingKey{}).(*edgeTiming)
	return t
}

// hasTraceContext reports whether a request may carry a client's trace
// context: a traceparent header, or the word in its body (then its
// params._meta is read). Cheap, for the case where tracing is off.
func hasTraceContext(r *http.Request, body []byte) bool {
	_, ok := r.Header[tracing.HeaderTraceparent]
	return ok || bytes.Contains(body, metaTraceparentKey)
}

var metaTraceparentKey = []byte(`"` + tracing.MetaTraceparent + `"`)

// traceRequest takes a validated POSTed message's trace context and, with
// tracing on, starts its server span. The context goes on in r's context
// (the hot path) and in r's Traceparent/Tracestate headers, which the
// SDK's way hands to its handlers (enterPipeline). end, never nil, ends
// the span.
func (g *Gateway) traceRequest(r *http.Request, body []byte, envelope func() (jsonguard.Envelope, error)) (*http.Request, func(status int)) {
	tr := g.trace
	if !tr.on && !hasTraceContext(r, body) {
		return r, noEnd
	}
	ctx := tracing.Extract(r.Context(), r.Header, jsonguard.Lookup(jsonguard.Lookup(body, "params"), "_meta"))
	end := noEnd
	if tr.on {
		if env, err := envelope(); err == nil && env.Method != "" {
			var span trace.Span
			ctx, span = g.startServerSpan(ctx, r, env)
			id := span.SpanContext().SpanID()
			tr.live.Store(id, span)
			end = func(status int) {
				tr.live.Delete(id)
				if status >= 400 {
					span.SetStatus(codes.Error, http.StatusText(status))
				}
				span.End()
			}
		}
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return r, end
	}
	r = r.WithContext(ctx)
	r.Header[tracing.HeaderTraceparent] = []string{tracing.Traceparent(sc)}
	if ts := tracing.Tracestate(sc); ts != "" {
		r.Header[tracing.HeaderTracestate] = []string{ts}
	} else {
		delete(r.Header, tracing.HeaderTracestate)
	}
	return r, end
}

func noEnd(int) {}

// startServerSpan starts the server span of a client's message, named and
// described after the OpenTelemetry semantic conventions for MCP:
// "{mcp.method.name} {target}", with the method, the tool or prompt name
// (gen_ai.*), the resource URI, the JSON-RPC id, the session and the
// protocol version; and the caller's tenant.
func (g *Gateway) startServerSpan(ctx context.Context, r *http.Request, env jsonguard.Envelope) (context.Context, trace.Span) {
	name := env.Method
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs, attribute.String("mcp.method.name", env.Method),
		attribute.String("network.transport", "tcp"), attribute.String("network.protocol.name", "http"))
	switch env.Method {
	case pipeline.MethodCallTool:
		name += " " + env.ParamsName
		attrs = append(attrs, attribute.String("gen_ai.tool.name", env.ParamsName), attribute.String("gen_ai.operation.name", "execute_tool"))
	case pipeline.MethodGetPrompt:
		name += " " + env.ParamsName
		attrs = append(attrs, attribute.String("gen_ai.prompt.name", env.ParamsName))
	case pipeline.MethodReadResource, pipeline.MethodSubscribe, pipeline.MethodUnsubscribe:
		attrs = append(attrs, attribute.String("mcp.resource.uri", env.ParamsURI))
	}
	if env.ID != nil {
		id := string(env.ID)
		if s, ok := jsonguard.Unquote(env.ID); ok {
			id = s
		}
		attrs = append(attrs, attribute.String("jsonrpc.request.id", id))
	}
	if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
		attrs = append(attrs, attribute.String("mcp.session.id", sid))
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" {
		attrs = append(attrs, attribute.String("mcp.protocol.version", v))
	}
	if p := principal.From(r.Context()); p != nil && p.TenantID != "" {
		attrs = append(attrs, attribute.String("mcpedge.tenant", p.TenantID))
	}
	if rid := RequestID(r.Context()); rid != "" {
		attrs = append(attrs, attribute.String("mcpedge.request_id", rid))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...)}
	t := timingOf(r)
	if t != nil {
		opts = append(opts, trace.WithTimestamp(t.start))
	}
	ctx, span := g.trace.t.Start(ctx, name, opts...)
	if t != nil && !t.authStart.IsZero() {
		_, auth := g.trace.t.Start(ctx, "mcpedge.authenticate", trace.WithTimestamp(t.authStart))
		auth.End(trace.WithTimestamp(t.authEnd))
	}
	return ctx, span
}

// serverSpan returns the server span of the request a call belongs to:
// ctx's own on the hot path, the one checkBody registered on the SDK's
// way; nil when tracing is off or there is none.
func (g *Gateway) serverSpan(ctx context.Context) trace.Span {
	if !g.trace.on {
		return nil
	}
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		return span
	}
	if s, ok := g.trace.live.Load(span.SpanContext().SpanID()); ok {
		return s.(trace.Span)
	}
	return nil
}

// traceOutcome records the outcome of a pipeline call on its server span:
// the upstream, the stage that answered or refused it, and the error (a
// JSON-RPC error's code as error.type and rpc.response.status_code, a
// tool's error result as tool_error).
func (g *Gateway) traceOutcome(ctx context.Context, c *pipeline.Call, res mcp.Result, err error) {
	span := g.serverSpan(ctx)
	if span == nil {
		return
	}
	attrs := []attribute.KeyValue{attribute.String("mcpedge.answered_by", c.AnsweredBy)}
	if c.Upstream != "" {
		attrs = append(attrs, attribute.String("mcpedge.upstream", c.Upstream))
	}
	if c.Refused != "" {
		attrs = append(attrs, attribute.String("mcpedge.refused_by", c.Refused))
	}
	if c.Principal != nil && c.Principal.TenantID != "" {
		attrs = append(attrs, attribute.String("mcpedge.tenant", c.Principal.TenantID))
	}
	span.SetAttributes(attrs...)
	if err != nil {
		code := errCode(err)
		if code == 0 {
			code = mcpwire.CodeInternalError
		}
		span.SetAttributes(attribute.String("error.type", strconv.FormatInt(code, 10)), attribute.String("rpc.response.status_code", strconv.FormatInt(code, 10)))
		span.SetStatus(codes.Error, err.Error())
		return
	}
	if tr, ok := res.(*mcp.CallToolResult); ok && tr != nil && tr.IsError {
		span.SetAttributes(attribute.String("error.type", "tool_error"))
		span.SetStatus(codes.Error, "the tool answered with an error")
	}
}

// startUpstreamSpan starts the client span of one attempt of call c on
// its upstream, whose context the upstream receives (traceparent header
// and _meta); a no-op span when tracing is off.
func (g *Gateway) startUpstreamSpan(ctx context.Context, c *call, cs *mcp.ClientSession) (context.Context, trace.Span) {
	if !g.trace.on {
		return ctx, nil
	}
	name := c.method
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs, attribute.String("mcp.method.name", c.method), attribute.String("mcpedge.upstream", c.up.Name()))
	if c.tool != "" {
		switch c.method {
		case pipeline.MethodCallTool:
			name += " " + c.tool
			attrs = append(attrs, attribute.String("gen_ai.tool.name", c.tool), attribute.String("gen_ai.operation.name", "execute_tool"))
		case pipeline.MethodGetPrompt:
			name += " " + c.tool
			attrs = append(attrs, attribute.String("gen_ai.prompt.name", c.tool))
		}
	}
	if cs != nil {
		if sid := cs.ID(); sid != "" {
			attrs = append(attrs, attribute.String("mcp.session.id", sid))
		}
		if ir := cs.InitializeResult(); ir != nil {
			attrs = append(attrs, attribute.String("mcp.protocol.version", ir.ProtocolVersion))
		}
	}
	cfg := c.up.Config()
	attrs = append(attrs, attribute.String("mcpedge.upstream.transport", cfg.Transport))
	if u, err := url.Parse(cfg.URL); err == nil && u.Host != "" {
		attrs = append(attrs, attribute.String("server.address", u.Hostname()))
		if p, err := strconv.Atoi(u.Port()); err == nil {
			attrs = append(attrs, attribute.Int("server.port", p))
		}
	}
	return g.trace.t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endUpstreamSpan ends an attempt's span with its outcome.
func endUpstreamSpan(span trace.Span, isErr bool, err error) {
	if span == nil {
		return
	}
	switch {
	case err != nil:
		if code := errCode(err); code != 0 {
			span.SetAttributes(attribute.String("rpc.response.status_code", strconv.FormatInt(code, 10)))
		}
		span.SetStatus(codes.Error, err.Error())
	case isErr:
		span.SetAttributes(attribute.String("error.type", "tool_error"))
		span.SetStatus(codes.Error, "the tool answered with an error")
	}
	span.End()
}

// withCallerTrace returns ctx (an upstream call's context, detached from
// the client's) carrying the span of the client's context clientCtx, so
// that the attempts' spans are its children and the upstream gets the
// trace context even with tracing off. ctx is returned as it is when the
// client's context has none.
func withCallerTrace(ctx, clientCtx context.Context) context.Context {
	span := trace.SpanFromContext(clientCtx)
	if !span.SpanContext().IsValid() {
		return ctx
	}
	return trace.ContextWithSpan(ctx, span)
}
