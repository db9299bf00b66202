// Package pipeline is the data plane's spine: a call on its way to an
// upstream passes through an ordered list of stages, each a small type
// behind one interface, compiled once into a chain per method.
//
// A [Stage] sees the [Call] and the rest of the chain as next; it may
// answer itself (a cache hit, a refusal), call next once or several times
// (a fallback to another target), change the call before passing it on
// (the chosen target) or look at what next returned (audit). The order of
// the stages, and which methods each applies to, is one list in order.go;
// nothing else decides it.
//
// The package knows no concrete stage and imports nothing of the gateway:
// stages live in their own packages (internal/stage/...) or, while they
// are being moved out, in the gateway, and are handed to [Compile] by the
// code that wires the data plane.
package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// A Call is one client request (or queued delivery) on its way to an
// upstream. Stages read it and may set the fields marked as theirs; the
// chain never copies it, so a stage that calls next several times sees its
// own changes.
type Call struct {
	// Method is the JSON-RPC method: one of [Methods].
	Method string
	// Face is the endpoint the request came in on: "" for the aggregated
	// /mcp, the upstream's name for /mcp/<name>.
	Face string
	// Name is what the client named: the tool or prompt name as listed
	// to it (namespaced on /mcp), or the resource URI, or the completion
	// reference's name or URI.
	Name string
	// Upstream is the configured name of the upstream that owns the item,
	// "" when none does (an unknown name). Set before the chain runs.
	Upstream string
	// Item is the item's own name at its upstream (tool or prompt name);
	// "" for resources and completions of a resource reference.
	Item string
	// Kind is what Item is, in the policy's words: "tool", "prompt" or
	// "resource".
	Kind string
	// Arguments are the tools/call arguments exactly as the client sent
	// them (nil for other methods).
	Arguments json.RawMessage
	// Meta is the _meta a queued delivery sends (a client's call carries
	// its own in Request).
	Meta map[string]any
	// Principal is the authenticated caller; nil in single-user mode.
	Principal *principal.Principal
	// RequestID is the request id assigned at the HTTP edge (X-Request-Id).
	RequestID string
	// Resuming is set when the call continues a multi-round-trip
	// exchange (it carries requestState or inputResponses): its state
	// lives with the upstream, so it is neither cached nor queued.
	Resuming bool
	// Source says where the call comes from: [SourceClient] or
	// [SourceQueue] (a queued call's delivery).
	Source string
	// Request is the SDK's request for a client's call; nil for a queued
	// delivery.
	Request mcp.Request
	// Wire is set when the call travels as bytes on the hot path (a
	// client's tools/call the SDK server never decoded): the terminal
	// sends Wire.Params on and leaves the upstream's result in Wire.
	Wire *Wire

	// Target is the connection chosen for this attempt: set by the route
	// stage before each call of next, read by the stages after it. Its
	// type belongs to the code that wires the chain.
	Target any
	// Answered is set by the terminal stage when the upstream itself
	// answered with a JSON-RPC error (not the gateway's "unavailable").
	Answered bool
	// Refused is the name of the stage that refused the call (authorize,
	// a guardrail), "" when none did. A refusing stage sets it and
	// returns its error without calling next.
	Refused string
	// Redacted is what the guard stage removed from the result, by kind
	// (internal/guard's kinds), for the audit stage; nil when nothing.
	Redacted map[string]int
	// AnsweredBy is the stage whose result the chain returned: the
	// innermost stage that ran (the terminal when the call reached the
	// upstream, else the stage that answered itself).
	AnsweredBy string
}

// A Wire is a call on the hot path: the client's params as bytes going
// out, the upstream's result as bytes coming back, neither decoded unless
// a stage asks.
//
// The terminal sets the result with [Wire.SetResult] and returns Summary
// through the chain: a result whose only field is IsError, which is all
// audit reads. What the client gets is Result's bytes as long as the chain
// returns Summary itself; a stage that returns another result (an answer
// of its own, a changed one) is answered with that result, encoded. A
// stage that needs to look inside the upstream's result decodes it with
// [Wire.Decode] — the cost is paid only where a stage asks.
type Wire struct {
	// Params is the request's params object exactly as the client sent
	// it (validated by jsonguard at the HTTP edge).
	Params []byte
	// Result is the raw JSON of the upstream's result, valid until
	// Release; nil until the terminal sets it.
	Result []byte
	// Summary is the result the terminal returned for Result.
	Summary mcp.Result
	// Client, when set, reaches the client on the call's own stream: an
	// upstream's request during the call (sampling, elicitation, roots)
	// is put to the client there.
	Client Asker

	release func()
}

// An Asker puts a request to a call's client and waits for its answer.
type Asker interface {
	// Ask sends the JSON-RPC request method with params (raw JSON, nil
	// for none) and returns the client's raw result, or its error.
	Ask(ctx context.Context, method string, params []byte) (result []byte, err error)
}

// SetResult records the upstream's result bytes and the summary returned
// for them; release (may be nil) frees the bytes. A result set earlier
// (an attempt that was retried) is released.
func (w *Wire) SetResult(result []byte, summary mcp.Result, release func()) {
	w.Release()
	w.Result, w.Summary, w.release = result, summary, release
}

// Decode decodes the upstream's result into dst.
func (w *Wire) Decode(dst any) error {
	if w.Result == nil {
		return fmt.Errorf("pipeline: no result on the wire")
	}
	return json.Unmarshal(w.Result, dst)
}

// Release frees the result's bytes.
func (w *Wire) Release() {
	if w.release != nil {
		w.release()
	}
	w.Result, w.Summary, w.release = nil, nil, nil
}

// Sources of a call.
const (
	SourceClient = "client"
	SourceQueue  = "queue"
)

// A Handler handles a call: the rest of a chain, or its terminal.
type Handler interface {
	Handle(ctx context.Context, c *Call) (mcp.Result, error)
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, c *Call) (mcp.Result, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, c *Call) (mcp.Result, error) { return f(ctx, c) }

// A Stage is one step of the data plane. Name must be one of the names in
// [Order]; Handle must call next at most once per attempt it makes and must
// be safe for concurrent use (one stage value serves every call).
type Stage interface {
	Name() string
	Handle(ctx context.Context, c *Call, next Handler) (mcp.Result, error)
}

// A Chain is the compiled pipeline: one handler per method.
type Chain struct {
	byMethod map[string]Handler
	stages   map[string][]string
	// after[method][stage] is the rest of method's chain after stage.
	after map[string]map[string]Handler
}

// Compile builds the chain for every method in [Methods] from stages, in
// the order of [Order], ending in terminal. A stage applies to the methods
// its entry in Order lists. A stage named in Order but absent from stages
// is not configured and is left out; a stage whose name Order does not
// know, or that is given twice, is an error (a typo must not silently drop
// a check).
func Compile(stages []Stage, terminal Stage, opts ...Option) (*Chain, error) {
	return compile(Order(), stages, terminal, opts...)
}

// An Option changes how [Compile] builds the chain.
type Option func(*options)

type options struct {
	tracer trace.Tracer
	traced map[string]bool
}

// Traced puts a span around each of the named stages (for tracing; see
// docs/design/tracing.md), made with tracer and named "mcpedge.<stage>". A
// stage's span covers the stages below it, as its Handle does. Without
// this option the chain makes no span at all, which is how a gateway
// whose tracing is off runs: nothing is added to a call's path.
func Traced(tracer trace.Tracer, stages ...string) Option {
	return func(o *options) {
		o.tracer = tracer
		o.traced = map[string]bool{}
		for _, s := range stages {
			o.traced[s] = true
		}
	}
}

func compile(order []Entry, stages []Stage, terminal Stage, opts ...Option) (*Chain, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if terminal == nil {
		return nil, fmt.Errorf("pipeline: no terminal stage")
	}
	known := map[string]Entry{}
	for _, e := range order {
		known[e.Name] = e
	}
	byName := map[string]Stage{}
	for _, s := range append(stages[:len(stages):len(stages)], terminal) {
		if s == nil {
			return nil, fmt.Errorf("pipeline: nil stage")
		}
		if _, ok := known[s.Name()]; !ok {
			return nil, fmt.Errorf("pipeline: stage %q is not in the order (pipeline/order.go)", s.Name())
		}
		if _, dup := byName[s.Name()]; dup {
			return nil, fmt.Errorf("pipeline: stage %q given twice", s.Name())
		}
		byName[s.Name()] = s
	}
	if last := order[len(order)-1].Name; terminal.Name() != last {
		return nil, fmt.Errorf("pipeline: terminal stage is %q, the order ends with %q", terminal.Name(), last)
	}
	ch := &Chain{byMethod: map[string]Handler{}, stages: map[string][]string{}, after: map[string]map[string]Handler{}}
	for _, m := range Methods() {
		var applied []Stage
		for _, e := range order {
			if s, ok := byName[e.Name]; ok && e.appliesTo(m) {
				applied = append(applied, s)
			}
		}
		var h Handler = unreachable{}
		names := make([]string, len(applied))
		after := map[string]Handler{}
		for i := len(applied) - 1; i >= 0; i-- {
			after[applied[i].Name()] = h
			if o.tracer != nil && o.traced[applied[i].Name()] {
				h = &tracedLink{link: link{stage: applied[i], next: h}, tracer: o.tracer, span: "mcpedge." + applied[i].Name()}
			} else {
				h = &link{stage: applied[i], next: h}
			}
			names[i] = applied[i].Name()
		}
		ch.byMethod[m] = h
		ch.stages[m] = names
		ch.after[m] = after
	}
	return ch, nil
}

// Handle runs c through the chain of its method. A method the pipeline
// does not carry is a programming error, returned as such.
func (ch *Chain) Handle(ctx context.Context, c *Call) (mcp.Result, error) {
	h, ok := ch.byMethod[c.Method]
	if !ok {
		return nil, fmt.Errorf("pipeline: method %q does not go through the pipeline", c.Method)
	}
	return h.Handle(ctx, c)
}

// After returns the rest of method's chain after the named stage, for a
// call that enters the pipeline part way (see [Resume]); nil when the
// stage does not apply to method.
func (ch *Chain) After(method, stage string) Handler {
	return ch.after[method][stage]
}

// Stages lists the names of the stages a method's calls pass through, in
// order (for logs, /api and tests).
func (ch *Chain) Stages(method string) []string {
	return append([]string(nil), ch.stages[method]...)
}

// link is one stage of a compiled chain with the rest of it.
type link struct {
	stage Stage
	next  Handler
}

func (l *link) Handle(ctx context.Context, c *Call) (mcp.Result, error) {
	res, err := l.stage.Handle(ctx, c, l.next)
	if c.AnsweredBy == "" {
		// The first stage to return is the innermost that ran.
		c.AnsweredBy = l.stage.Name()
	}
	return res, err
}

// tracedLink is a link whose stage runs in a span of its own.
type tracedLink struct {
	link
	tracer trace.Tracer
	span   string
}

func (l *tracedLink) Handle(ctx context.Context, c *Call) (mcp.Result, error) {
	ctx, span := l.tracer.Start(ctx, l.span, trace.WithAttributes(attribute.String("mcpedge.stage", l.stage.Name())))
	res, err := l.link.Handle(ctx, c)
	switch {
	case c.Refused == l.stage.Name():
		span.SetAttributes(attribute.String("mcpedge.refused_by", c.Refused))
		span.SetStatus(codes.Error, "refused")
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	}
	if c.AnsweredBy == l.stage.Name() {
		span.SetAttributes(attribute.Bool("mcpedge.answered", true))
	}
	span.End()
	return res, err
}

// unreachable is what the terminal's next would be: a terminal never
// calls it.
type unreachable struct{}

func (unreachable) Handle(context.Context, *Call) (mcp.Result, error) {
	return nil, fmt.Errorf("pipeline: the terminal stage called next")
}

// A stage that hands the call to code outside the pipeline (the SDK
// server's dispatch to the item's registered handler) suspends the chain
// in the context it passes on; that code resumes it with [Resume].

type resumeKey struct{}

type resumePoint struct {
	c     *Call
	next  Handler
	taken atomic.Bool
}

// Suspend returns ctx carrying c and the rest of its chain, next.
func Suspend(ctx context.Context, c *Call, next Handler) context.Context {
	return context.WithValue(ctx, resumeKey{}, &resumePoint{c: c, next: next})
}

// Resume returns the call of method suspended in ctx and the rest of its
// chain. Each suspended call is resumed at most once: a second Resume (a
// handler that runs again for the same request) gets ok false and must
// enter the chain afresh.
func Resume(ctx context.Context, method string) (c *Call, next Handler, ok bool) {
	rp, _ := ctx.Value(resumeKey{}).(*resumePoint)
	if rp == nil || rp.c.Method != method || !rp.taken.CompareAndSwap(false, true) {
		return nil, nil, false
	}
	return rp.c, rp.next, true
}

// Outcomes of a tools/call, in the words of the audit log and of usage
// metering.
const (
	OutcomeOK     = "ok"
	OutcomeError  = "error"  // a tool error (isError) or a protocol error
	OutcomeDenied = "denied" // a stage refused it
)

// ToolOutcome is the outcome of a tools/call the chain answered with res
// and err: denied when a stage refused it, error for a protocol error or a
// tool error (isError), else ok. The audit and meter stages both use it,
// so they never disagree on a call.
func ToolOutcome(c *Call, res mcp.Result, err error) string {
	switch {
	case c.Refused != "":
		return OutcomeDenied
	case err != nil:
		return OutcomeError
	}
	if tr, ok := res.(*mcp.CallToolResult); ok && tr != nil && tr.IsError {
		return OutcomeError
	}
	return OutcomeOK
}
