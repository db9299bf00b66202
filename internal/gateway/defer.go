package gateway

// Deferred calls: a tools/call whose upstream is unreachable can be put in
// the offline queue instead of failing, when the upstream marks the tool
// deferrable (toml "deferrable") or the client opts in with
// _meta["io.mcpedge/defer"] = true. The queue itself lives outside the
// gateway, behind [Deferrer]; see docs/edge.md, "Wiring the queue".

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// _meta keys of deferred calls.
const (
	// MetaDefer, set to true by a client, lets a call be queued when its
	// upstream is unreachable; false keeps a tool the configuration marks
	// deferrable from being queued.
	MetaDefer = "io.mcpedge/defer"
	// MetaIdempotencyKey is the client's idempotency key of a call that
	// may be queued; on a delivery to the upstream it is the entry's
	// delivery key.
	MetaIdempotencyKey = "io.mcpedge/idempotency_key"
	// MetaQueued, in a result's _meta, says the call was queued:
	// {"id": "<entry id>"}.
	MetaQueued = "io.mcpedge/queued"
)

// mcpwire.CodeQueueFull is the JSON-RPC error of a call that would have been
// queued, but the queue (or the tenant's share of it) is full.

// builtinQueueResult is the aggregated name of the tool that reports a
// queued call's state and result. Reserved like builtinStatus.
const builtinQueueResult = "mcpedge__queue_result"

var (
	// ErrQueueFull is what a Deferrer's error matches when the queue
	// refused the call for a bound; its message is the client's.
	ErrQueueFull = errors.New("queue full")
	// ErrQueuedNotFound is what a Deferrer's Status returns for an id
	// that is not the tenant's (missing, or another tenant's).
	ErrQueuedNotFound = errors.New("no such queued call")
)

// A Deferrer stores calls for later delivery: the offline queue.
type Deferrer interface {
	// Defer stores a call of upstream's tool (the upstream's own name)
	// for tenant ("" in single-user mode) and returns the entry's id.
	// idemKey is the client's idempotency key, "" if none. An error
	// matching ErrQueueFull is backpressure.
	Defer(ctx context.Context, tenant, upstream, tool string, args json.RawMessage, idemKey string) (id string, err error)
	// Status returns the tenant's queued call id; ErrQueuedNotFound when
	// the tenant has no such call.
	Status(ctx context.Context, tenant, id string) (*QueuedCall, error)
}

// QueuedCall is what mcpedge__queue_result tells about a queued call.
type QueuedCall struct {
	ID        string          `json:"id"`
	State     string          `json:"state"` // pending, delivering, done, failed
	Target    string          `json:"target"`
	Tool      string          `json:"tool"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"` // the upstream's CallToolResult, once done
	CreatedAt time.Time       `json:"created_at"`
	DoneAt    time.Time       `json:"done_at,omitzero"`
}

// SetDeferrer gives the gateway an offline queue and registers the
// mcpedge__queue_result tool and the mcpedge://queue/{id} resource
// template on /mcp. Call it before serving.
func (g *Gateway) SetDeferrer(d Deferrer) {
	g.deferrer = d
	g.buildPipeline()
	g.addQueueResource(d)
	g.agg.AddTool(&mcp.Tool{
		Name:        builtinQueueResult,
		Title:       "Queued call result",
		Description: "Reports a call the gateway queued while its upstream was unreachable: its state (pending, delivering, done, failed) and, once done, the upstream's result.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string","description":"the id the queued answer gave"}},"required":["id"]}`),
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(bool)},
	}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var in struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(req.Params.Arguments, &in); err != nil || in.ID == "" {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: `mcpedge__queue_result: want {"id": "<queued call id>"}`}
		}
		qc, err := d.Status(ctx, tenantOf(req), in.ID)
		if errors.Is(err, ErrQueuedNotFound) {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("no queued call %q", in.ID)}
		}
		if err != nil {
			return nil, err
		}
		text, err := json.Marshal(qc)
		if err != nil {
			return nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}, StructuredContent: json.RawMessage(text)}, nil
	})
}

// tenantOf is the tenant of a request's principal, "" in single-user mode.
func tenantOf(req mcp.Request) string {
	if p := principalOf(req); p != nil {
		return p.TenantID
	}
	return ""
}

// deferrable reports whether a tools/call of u's tool may be queued: the
// client's _meta flag when it sent one, else the upstream's configuration.
func (g *Gateway) deferrable(u *upstream.Upstream, tool string, meta mcp.Meta) bool {
	if v, ok := meta[MetaDefer].(bool); ok {
		return v
	}
	// The configured upstream's settings: u may be a target a reload
	// removed, whose handlers a kept catalog still lists.
	if gr := g.routeOf(u); gr != nil {
		return gr.cfg.IsDeferrable(tool)
	}
	return g.edgeOf(u).cfg.IsDeferrable(tool)
}

// deferCall queues a tools/call that failed with unavailable (the
// gateway's own -32010, never the upstream's) and answers the client with
// the entry: a successful result naming it, or mcpwire.CodeQueueFull.
func (g *Gateway) deferCall(ctx context.Context, req *mcp.CallToolRequest, u *upstream.Upstream, tool string, unavailable error) (*mcp.CallToolResult, error) {
	p := req.Params
	key, _ := p.Meta[MetaIdempotencyKey].(string)
	id, err := g.deferrer.Defer(ctx, tenantOf(req), groupName(u), tool, p.Arguments, key)
	if errors.Is(err, ErrQueueFull) {
		g.log.Warn("call not queued: queue full", "upstream", groupName(u), "tool", tool, "err", err)
		return nil, &jsonrpc.Error{Code: mcpwire.CodeQueueFull, Message: err.Error()}
	}
	if err != nil {
		g.log.Warn("call not queued", "upstream", groupName(u), "tool", tool, "err", err)
		var werr *jsonrpc.Error
		if errors.As(unavailable, &werr) {
			return nil, &jsonrpc.Error{Code: werr.Code, Message: werr.Message + "; not queued: " + err.Error()}
		}
		return nil, unavailable
	}
	var why string
	if werr := (*jsonrpc.Error)(nil); errors.As(unavailable, &werr) {
		why = werr.Message
	}
	g.log.Info("call queued: upstream unavailable", "upstream", groupName(u), "tool", tool, "id", id, "reason", why)
	uri := QueueURI(id)
	out := map[string]any{
		"queued": true, "id": id, "target": groupName(u), "uri": uri,
		"note": fmt.Sprintf("upstream %s is unavailable (%s); the call is queued and will be delivered when it is back. Ask mcpedge__queue_result with this id, or read (or subscribe to) the resource %s, for its result.", groupName(u), why, uri),
	}
	text, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return &mcp.CallToolResult{
		Meta:              mcp.Meta{MetaQueued: map[string]any{"id": id, "uri": uri}},
		Content:           []mcp.Content{&mcp.TextContent{Text: string(text)}},
		StructuredContent: out,
	}, nil
}

// upstreamAnswered marks an error the upstream itself answered with (a
// JSON-RPC error of its own), as opposed to one of the gateway's.
type upstreamAnswered struct{ error }

func (e upstreamAnswered) Unwrap() error { return e.error }

// IsUpstreamError reports whether an error of [Gateway.CallUpstream] is
// the upstream's own JSON-RPC error: the upstream answered, so sending the
// call again would get the same answer.
func IsUpstreamError(err error) bool {
	var ua upstreamAnswered
	return errors.As(err, &ua)
}

// IsRoutingRefused reports whether an error of [Gateway.CallUpstream] is
// the routing policy's refusal ([mcpwire.CodeRoutingRefused]): the call may only
// go to a target on the device and the upstream has none. That is
// configuration, not a passing failure, so sending the call again gets
// the same refusal.
func IsRoutingRefused(err error) bool {
	var werr *jsonrpc.Error
	return errors.As(err, &werr) && werr.Code == mcpwire.CodeRoutingRefused && !IsUpstreamError(err)
}

// CallUpstream calls the tool (the upstream's own name) of the named
// upstream on the gateway's behalf — a queued call's delivery — through
// the same machinery as a client's call: its connection, circuit breaker,
// timeouts and retries. meta is sent as the call's _meta. An error is the
// upstream's own JSON-RPC error ([IsUpstreamError]) or a failure to reach
// it (a JSON-RPC error with mcpwire.CodeUpstreamUnavailable or mcpwire.CodeUpstreamTimeout,
// or ctx's error), or the routing policy's refusal ([IsRoutingRefused]); a
// result with isError is a result.
func (g *Gateway) CallUpstream(ctx context.Context, name, tool string, args json.RawMessage, meta map[string]any) (*mcp.CallToolResult, error) {
	u, ok := g.Upstream(name)
	if !ok {
		if g.configured(name) {
			// An upstream with targets, none connected now: as unavailable
			// as an upstream that is down, and said so.
			return nil, &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: fmt.Sprintf("upstream %s: no target is connected", name)}
		}
		return nil, &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: fmt.Sprintf("no upstream %q", name)}
	}
	// A delivery enters the pipeline after the cache stage: it was
	// audited and authorized when the client made the call, and is
	// neither cached nor queued again.
	c := &pipeline.Call{Method: pipeline.MethodCallTool, Source: pipeline.SourceQueue, Name: name + "__" + tool,
		Upstream: name, Item: tool, Kind: "tool", Arguments: args, Meta: meta, Target: u}
	res, err := g.pipe.chain.Load().After(pipeline.MethodCallTool, "cache").Handle(ctx, c)
	if err != nil && c.Answered && isUpstreamError(err) {
		return nil, upstreamAnswered{err}
	}
	return typed[*mcp.CallToolResult](res), err
}

// deliver is the forward stage of a queued call's delivery: the call as
// it was queued, through target t's circuit breaker, timeouts and retries.
func (g *Gateway) deliver(ctx context.Context, c *pipeline.Call, t *upstream.Upstream) (*mcp.CallToolResult, error) {
	do := func(cctx context.Context, cs *mcp.ClientSession, token string) (*mcp.CallToolResult, bool, error) {
		// begin detaches the call from its caller; the delivery loop's
		// end (shutdown) still ends the call.
		cctx, cancel := context.WithCancel(cctx)
		defer cancel()
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		params := &mcp.CallToolParams{Meta: withProgress(cctx, mcp.Meta(c.Meta), token), Name: c.Item}
		if len(c.Arguments) > 0 {
			params.Arguments = c.Arguments
		}
		res, err := cs.CallTool(cctx, params)
		c.Answered = err != nil && isUpstreamError(err)
		if res != nil {
			dropServerInfo(res.Meta)
		}
		return res, err == nil && res != nil && res.IsError, err
	}
	return forward(g, ctx, t, nil, pipeline.MethodCallTool, c.Item, nil, do)
}

// AnnounceQueued tells the tenant's connected clients on /mcp that a
// queued call ended (state "done" or "failed"): a notifications/message
// at level info, logger "mcpedge.queue", data {"id", "state", "target",
// "tool", "uri"}. Only clients that set a log level receive it (the SDK
// filters by level); a client that missed it asks mcpedge__queue_result
// or reads the entry's resource. In single-user mode every session is the
// tenant's. Sessions subscribed to the entry's resource (only the
// tenant's can subscribe) also get notifications/resources/updated.
func (g *Gateway) AnnounceQueued(tenant, id, state, target, tool string) {
	g.queueEnded(id)
	p := &mcp.LoggingMessageParams{
		Level: "info", Logger: "mcpedge.queue",
		Data: map[string]any{"id": id, "state": state, "target": target, "tool": tool, "uri": QueueURI(id)},
	}
	for ss := range g.agg.Sessions() {
		if g.security != nil {
			v, ok := g.callers.Load(ss)
			if !ok {
				continue
			}
			if pr, _ := v.(*principal.Principal); pr == nil || pr.TenantID != tenant {
				continue
			}
		}
		g.post(ss, func(ctx context.Context) { _ = ss.Log(ctx, p) })
	}
}
