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
// A caller whose role or scopes forbid a method altogether — a viewer
// calling a tool, a key without mcp:call — learns nothing about items from
// being told so, and the MCP authorization spec asks for HTTP 403
// insufficient_scope then: [Insufficient] says what it lacks, and the HTTP
// edge answers with it before the call reaches the pipeline.
//
// It sees the call's owner (resolved before the chain runs) and principal;
// it changes nothing but Refused. It is only configured in multi-tenant
// mode: in single-user mode there is nobody to refuse.
package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"

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
	// A caller whose role or scopes forbid the method altogether is
	// answered 403 insufficient_scope at the HTTP edge before its call
	// gets here; this refuses it in the words of a missing item for any
	// other way in.
	denied := p == nil || c.Upstream == "" || Insufficient(p, c.Method).Scope != ""
	switch c.Method {
	case pipeline.MethodCallTool:
		if denied || !s.policy.Allowed(p, c.Upstream, "tool", c.Item) {
			return UnknownTool(c.Name)
		}
	case pipeline.MethodGetPrompt:
		if denied || !s.policy.Allowed(p, c.Upstream, "prompt", c.Item) {
			return UnknownPrompt(c.Name)
		}
	case pipeline.MethodReadResource, pipeline.MethodSubscribe, pipeline.MethodUnsubscribe:
		if denied || !s.policy.Allowed(p, c.Upstream, "resource", "") {
			return mcp.ResourceNotFoundError(c.Name)
		}
	case pipeline.MethodComplete:
		kind := c.Kind
		if kind == "" {
			kind = "resource"
		}
		if denied || !s.policy.Allowed(p, c.Upstream, kind, c.Item) {
			return UnknownReference()
		}
	default:
		// A method this stage does not know is refused rather than let
		// through unchecked.
		return &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found"}
	}
	return nil
}

// A Shortfall is what a caller lacks to use a method at all, whatever the
// item: Scope is the scope to name in a 403 insufficient_scope challenge
// (MCP authorization, RFC 6750 §3.1), "" when the caller's role and scopes
// allow the method; Reason says what is missing, for error_description.
type Shortfall struct {
	Scope  string
	Reason string
}

// Insufficient returns what p lacks to use method at all: calling a tool
// needs the member role and, for a scoped credential, mcp:call; getting a
// prompt, reading or subscribing to a resource and completing need the
// viewer role and, for a scoped credential, mcp:list or mcp:call (the
// scope named is mcp:list, the least that grants them). Other methods are
// not judged here (a zero Shortfall). Whether p may use one item is the
// [Policy]'s to say, and is never revealed by this answer, which depends
// on p and the method alone.
func Insufficient(p *principal.Principal, method string) Shortfall {
	switch method {
	case pipeline.MethodCallTool:
		if p.CanCall() {
			return Shortfall{}
		}
		return Shortfall{Scope: principal.ScopeCall, Reason: lacking(p, "calling tools", principal.RoleMember, principal.ScopeCall)}
	case pipeline.MethodGetPrompt, pipeline.MethodReadResource, pipeline.MethodSubscribe, pipeline.MethodUnsubscribe, pipeline.MethodComplete:
		if p.CanRead() {
			return Shortfall{}
		}
		return Shortfall{Scope: principal.ScopeList, Reason: lacking(p, "getting prompts, reading resources and completing", principal.RoleViewer, principal.ScopeList, principal.ScopeCall)}
	}
	return Shortfall{}
}

// lacking words why p may not do what, which needs role and one of the
// scopes grant.
func lacking(p *principal.Principal, what, role string, grant ...string) string {
	var missing []string
	if !p.AtLeast(role) {
		have := "none"
		if p != nil && p.Role != "" {
			have = p.Role
		}
		missing = append(missing, fmt.Sprintf("the %s role or higher (this credential's role: %s)", role, have))
	}
	if p != nil && len(p.Scopes) > 0 && !slices.ContainsFunc(grant, func(s string) bool { return slices.Contains(p.Scopes, s) }) {
		missing = append(missing, fmt.Sprintf("the %s scope (this credential's scopes: %s)", strings.Join(grant, " or "), strings.Join(p.Scopes, " ")))
	}
	if len(missing) == 0 {
		missing = append(missing, "a credential")
	}
	return what + " needs " + strings.Join(missing, " and ")
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
