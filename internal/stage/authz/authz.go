// Package authz is the pipeline stage that refuses a call its caller may
// not make: by role and scope (calling a tool needs member and mcp:call,
// reading a prompt, resource or completion needs viewer and mcp:read),
// and by the tenant's virtual servers and per-tool rules ([Policy]).
//
// A refusal looks exactly like an item that does not exist: the same
// JSON-RPC error the client would get for a name no upstream offers, so
// that a caller cannot learn what other tenants can use. The stage sets
// [pipeline.Call.Refused] so that the audit stage records the call as
// denied.
//
// It sees the call's owner (resolved before the chain runs) and principal;
// it changes nothing but Refused. It is only configured in multi-tenant
// mode: in single-user mode there is nobody to refuse.
package authz

import (
	"context"
	"fmt"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A Policy says whether a principal may see and use an item: kind is
// "tool", "prompt" or "resource"; upstream is the owning upstream's
// configured name; name is the item's own name there ("" for resources).
// It is called on every call, so it must be cheap.
type Policy interface {
	Allowed(p *principal.Principal, upstream, kind, name string) bool
}

// Stage is the authorize stage.
type Stage struct{ policy Policy }

var _ pipeline.Stage = (*Stage)(nil)

// New returns the stage asking policy.
func New(policy Policy) *Stage { return &Stage{policy: policy} }

// Name implements [pipeline.Stage].
func (*Stage) Name() string { return "authorize" }

// Handle implements [pipeline.Stage].
func (s *Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	if err := s.check(c); err != nil {
		c.Refused = s.Name()
		return nil, err
	}
	return next.Handle(ctx, c)
}

// check returns the error a refused call gets, nil when it may go on.
func (s *Stage) check(c *pipeline.Call) error {
	p := c.Principal
	switch c.Method {
	case pipeline.MethodCallTool:
		if p == nil || c.Upstream == "" || !p.CanCall() || !s.policy.Allowed(p, c.Upstream, "tool", c.Item) {
			return UnknownTool(c.Name)
		}
	case pipeline.MethodGetPrompt:
		if p == nil || c.Upstream == "" || !p.CanRead() || !s.policy.Allowed(p, c.Upstream, "prompt", c.Item) {
			return UnknownPrompt(c.Name)
		}
	case pipeline.MethodReadResource, pipeline.MethodSubscribe, pipeline.MethodUnsubscribe:
		if p == nil || c.Upstream == "" || !p.CanRead() || !s.policy.Allowed(p, c.Upstream, "resource", "") {
			return mcp.ResourceNotFoundError(c.Name)
		}
	case pipeline.MethodComplete:
		kind := c.Kind
		if kind == "" {
			kind = "resource"
		}
		if p == nil || c.Upstream == "" || !p.CanRead() || !s.policy.Allowed(p, c.Upstream, kind, c.Item) {
			return UnknownReference()
		}
	default:
		// A method this stage does not know is refused rather than let
		// through unchecked.
		return &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found"}
	}
	return nil
}

// UnknownTool is the error of a call of a tool that does not exist (or
// that the caller may not see), worded as the MCP SDK words it.
func UnknownTool(name string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown tool %q", name)}
}

// UnknownPrompt is the error of a prompts/get of a prompt that does not
// exist (or that the caller may not see).
func UnknownPrompt(name string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown prompt %q", name)}
}

// UnknownReference is the error of a completion whose reference does not
// exist (or that the caller may not see).
func UnknownReference() error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "unknown completion reference"}
}
