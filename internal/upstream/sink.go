package upstream

import (
	"context"
	"fmt"
	"reflect"

	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A Sink receives what an upstream server sends on its own initiative. The
// gateway implements it to route each message to the client session it
// belongs to.
//
// owner is the gateway client session id a per-session connection belongs to,
// or "" for the shared connection, in which case the sink must work out the
// client from the request in flight. Methods may be called concurrently and
// must not block longer than the request they serve.
type Sink interface {
	StateChanged(u *Upstream, s State)
	CatalogChanged(u *Upstream)
	ResourceUpdated(ctx context.Context, u *Upstream, p *mcp.ResourceUpdatedNotificationParams)
	Log(ctx context.Context, u *Upstream, owner string, p *mcp.LoggingMessageParams)
	Progress(ctx context.Context, u *Upstream, p *mcp.ProgressNotificationParams)
	CreateMessage(ctx context.Context, u *Upstream, owner string, p *mcp.CreateMessageWithToolsParams) (*mcp.CreateMessageWithToolsResult, error)
	Elicit(ctx context.Context, u *Upstream, owner string, p *mcp.ElicitParams) (*mcp.ElicitResult, error)
	ElicitationComplete(ctx context.Context, u *Upstream, owner string, p *mcp.ElicitationCompleteParams)
	ListRoots(ctx context.Context, u *Upstream, owner string, p *mcp.ListRootsParams) (*mcp.ListRootsResult, error)
}

// clientOptions wires the go-sdk client's callbacks to the sink.
//
// Multi-round-trip (2026-07-28 input-required results) is disabled on the
// client: an upstream's input requests travel back to the gateway's own
// client, which either answers them itself (a 2026 client) or has the SDK
// server fulfil them by server-to-client requests (an older client). That is
// what makes an upstream of one protocol era usable from a client of the other.
func (u *Upstream) clientOptions(owner string, c *conn) *mcp.ClientOptions {
	s := u.opts.Sink
	o := &mcp.ClientOptions{
		Logger:         telemetry.SDKLogger(u.log),
		MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true},
		Capabilities: &mcp.ClientCapabilities{
			RootsV2:     &mcp.RootCapabilities{ListChanged: true},
			Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}, URL: &mcp.URLElicitationCapabilities{}},
		},
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			if owner == "" {
				u.Refresh()
				return
			}
			c.toolsChanged()
		},
		PromptListChangedHandler:   func(context.Context, *mcp.PromptListChangedRequest) { u.Refresh() },
		ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) { u.Refresh() },
	}
	if s == nil {
		return o
	}
	o.ResourceUpdatedHandler = func(ctx context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
		s.ResourceUpdated(ctx, u, r.Params)
	}
	o.LoggingMessageHandler = func(ctx context.Context, r *mcp.LoggingMessageRequest) {
		s.Log(ctx, u, owner, r.Params)
	}
	o.ProgressNotificationHandler = func(ctx context.Context, r *mcp.ProgressNotificationClientRequest) {
		s.Progress(ctx, u, r.Params)
	}
	o.CreateMessageWithToolsHandler = func(ctx context.Context, r *mcp.CreateMessageWithToolsRequest) (*mcp.CreateMessageWithToolsResult, error) {
		return s.CreateMessage(ctx, u, owner, r.Params)
	}
	o.ElicitationHandler = func(ctx context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		return s.Elicit(ctx, u, owner, r.Params)
	}
	o.ElicitationCompleteHandler = func(ctx context.Context, r *mcp.ElicitationCompleteNotificationRequest) {
		s.ElicitationComplete(ctx, u, owner, r.Params)
	}
	return o
}

// rootsMiddleware answers roots/list through the sink instead of the SDK
// client's static root list, so the upstream sees the roots of the client
// that is actually calling it.
func (u *Upstream) rootsMiddleware(owner string) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method != "roots/list" || u.opts.Sink == nil {
				return next(ctx, method, req)
			}
			p, _ := req.GetParams().(*mcp.ListRootsParams)
			res, err := u.opts.Sink.ListRoots(ctx, u, owner, p)
			if err != nil {
				return nil, fmt.Errorf("roots/list: %w", err)
			}
			return res, nil
		}
	}
}

// elicitMiddleware relays elicitation/create to the sink as the upstream sent
// it. The SDK client would first check the requested schema against its own
// reading of the spec and refuse some that the spec allows (a titled
// multi-select whose items have type string and anyOf, SEP-1330); the client
// behind the gateway is the one to judge the schema, and to answer.
func (u *Upstream) elicitMiddleware(owner string) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			p, ok := req.GetParams().(*mcp.ElicitParams)
			if method != "elicitation/create" || u.opts.Sink == nil || !ok || p == nil {
				return next(ctx, method, req)
			}
			return u.opts.Sink.Elicit(ctx, u, owner, p)
		}
	}
}

// paramsRequired lists the upstream-to-gateway notifications whose params
// the spec requires and that handlers (the SDK's and the gateway's) read.
var paramsRequired = map[string]bool{
	"notifications/resources/updated":      true,
	"notifications/elicitation/complete":   true,
	"notifications/progress":               true,
	"notifications/message":                true,
	"notifications/cancelled":              false,
	"notifications/tools/list_changed":     false,
	"notifications/prompts/list_changed":   false,
	"notifications/resources/list_changed": false,
}

// guardMiddleware drops notifications that lack params the spec requires:
// a broken or hostile upstream must cost its own message, not the gateway.
// (Some SDK handlers dereference such params unchecked.)
func (u *Upstream) guardMiddleware() mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if paramsRequired[method] && isNil(req.GetParams()) {
				u.log.Warn("dropping notification without params", "method", method)
				return nil, nil
			}
			return next(ctx, method, req)
		}
	}
}

func isNil(p mcp.Params) bool {
	if p == nil {
		return true
	}
	v := reflect.ValueOf(p)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
