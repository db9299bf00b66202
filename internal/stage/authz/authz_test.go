package authz

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// rules allows only what it lists, as "upstream/kind/name".
type rules map[string]bool

func (r rules) Allowed(p *principal.Principal, up, kind, name string) bool {
	return p != nil && r[up+"/"+kind+"/"+name]
}

// reached is a next that records that the call got through.
type reached struct{ n int }

func (r *reached) Handle(context.Context, *pipeline.Call) (mcp.Result, error) {
	r.n++
	return &mcp.CallToolResult{}, nil
}

func who(role string, scopes ...string) *principal.Principal {
	return &principal.Principal{Kind: principal.KindKey, ID: "k-" + role, TenantID: "t1", Role: role, Scopes: scopes}
}

func TestAuthorizeByRoleScopeAndPolicy(t *testing.T) {
	pol := rules{"up/tool/echo": true, "up/prompt/greet": true, "up/resource/": true}
	type want struct{ call, prompt, read, complete bool }
	for _, tc := range []struct {
		p    *principal.Principal
		want want
	}{
		{nil, want{}},
		{who(principal.RoleViewer), want{prompt: true, read: true, complete: true}},
		{who(principal.RoleMember), want{true, true, true, true}},
		{who(principal.RoleAdmin), want{true, true, true, true}},
		{who(principal.RoleOwner), want{true, true, true, true}},
		{who(principal.RoleOwner, principal.ScopeList), want{prompt: true, read: true, complete: true}},
		{who(principal.RoleMember, principal.ScopeCall), want{true, true, true, true}},
		{who(principal.RoleViewer, principal.ScopeCall), want{prompt: true, read: true, complete: true}},
		{who(principal.RoleOwner, principal.ScopeAdminRead), want{}},
		{who("guest"), want{}},
	} {
		name := "nil"
		if tc.p != nil {
			name = fmt.Sprintf("%s%v", tc.p.Role, tc.p.Scopes)
		}
		t.Run(name, func(t *testing.T) {
			s := New(pol)
			for _, k := range []struct {
				c    pipeline.Call
				want bool
			}{
				{pipeline.Call{Method: pipeline.MethodCallTool, Name: "up__echo", Upstream: "up", Item: "echo"}, tc.want.call},
				{pipeline.Call{Method: pipeline.MethodGetPrompt, Name: "up__greet", Upstream: "up", Item: "greet"}, tc.want.prompt},
				{pipeline.Call{Method: pipeline.MethodReadResource, Name: "file:///a", Upstream: "up"}, tc.want.read},
				{pipeline.Call{Method: pipeline.MethodSubscribe, Name: "file:///a", Upstream: "up"}, tc.want.read},
				{pipeline.Call{Method: pipeline.MethodUnsubscribe, Name: "file:///a", Upstream: "up"}, tc.want.read},
				{pipeline.Call{Method: pipeline.MethodComplete, Name: "file:///{x}", Upstream: "up"}, tc.want.complete},
				{pipeline.Call{Method: pipeline.MethodComplete, Name: "up__greet", Upstream: "up", Item: "greet", Kind: "prompt"}, tc.want.complete},
			} {
				c := k.c
				c.Principal = tc.p
				next := &reached{}
				_, err := s.Handle(context.Background(), &c, next)
				if got := err == nil && next.n == 1; got != k.want {
					t.Errorf("%s %s: allowed=%v (err %v), want %v", c.Method, c.Name, got, err, k.want)
				}
				if err != nil && (c.Refused != "authorize" || next.n != 0) {
					t.Errorf("%s: refused call: Refused=%q, next ran %d times", c.Method, c.Refused, next.n)
				}
			}
		})
	}
}

// A refusal must read exactly like an item that does not exist.
func TestRefusalLooksLikeUnknownItem(t *testing.T) {
	s := New(rules{})
	member := who(principal.RoleOwner)
	for _, tc := range []struct {
		c    pipeline.Call
		code int64
		msg  string
	}{
		{pipeline.Call{Method: pipeline.MethodCallTool, Name: "up__secret", Upstream: "up", Item: "secret"}, jsonrpc.CodeInvalidParams, `unknown tool "up__secret"`},
		{pipeline.Call{Method: pipeline.MethodCallTool, Name: "nope"}, jsonrpc.CodeInvalidParams, `unknown tool "nope"`},
		{pipeline.Call{Method: pipeline.MethodGetPrompt, Name: "up__p", Upstream: "up", Item: "p"}, jsonrpc.CodeInvalidParams, `unknown prompt "up__p"`},
		{pipeline.Call{Method: pipeline.MethodReadResource, Name: "file:///x", Upstream: "up"}, mcp.CodeResourceNotFound, "Resource not found"},
		{pipeline.Call{Method: pipeline.MethodComplete, Name: "x"}, jsonrpc.CodeInvalidParams, "unknown completion reference"},
		{pipeline.Call{Method: "tools/list"}, jsonrpc.CodeMethodNotFound, "method not found"},
	} {
		c := tc.c
		c.Principal = member
		_, err := s.Handle(context.Background(), &c, &reached{})
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) || werr.Code != tc.code || werr.Message != tc.msg {
			t.Errorf("%s %q: err = %v, want code %d %q", c.Method, c.Name, err, tc.code, tc.msg)
		}
	}
}

// Insufficient names the scope a 403 challenge asks for, and why, for
// callers whose role or scopes forbid a method whatever the item; nothing
// for those who may use it and for methods it does not judge.
func TestInsufficient(t *testing.T) {
	reads := []string{pipeline.MethodGetPrompt, pipeline.MethodReadResource, pipeline.MethodSubscribe, pipeline.MethodUnsubscribe, pipeline.MethodComplete}
	for _, tc := range []struct {
		name             string
		p                *principal.Principal
		call, read       string // scope named, "" when allowed
		callWhy, readWhy string
	}{
		{name: "owner", p: who(principal.RoleOwner)},
		{name: "member", p: who(principal.RoleMember)},
		{name: "member mcp:call", p: who(principal.RoleMember, principal.ScopeCall)},
		{name: "viewer", p: who(principal.RoleViewer), call: "mcp:call",
			callWhy: "calling tools needs the member role or higher (this credential's role: viewer)"},
		{name: "viewer mcp:call", p: who(principal.RoleViewer, principal.ScopeCall), call: "mcp:call",
			callWhy: "calling tools needs the member role or higher (this credential's role: viewer)"},
		{name: "owner mcp:list", p: who(principal.RoleOwner, principal.ScopeList), call: "mcp:call",
			callWhy: "calling tools needs the mcp:call scope (this credential's scopes: mcp:list)"},
		{name: "viewer mcp:list", p: who(principal.RoleViewer, principal.ScopeList), call: "mcp:call",
			callWhy: "calling tools needs the member role or higher (this credential's role: viewer) and the mcp:call scope (this credential's scopes: mcp:list)"},
		{name: "admin admin:read", p: who(principal.RoleAdmin, principal.ScopeAdminRead), call: "mcp:call", read: "mcp:list",
			callWhy: "calling tools needs the mcp:call scope (this credential's scopes: admin:read)",
			readWhy: "getting prompts, reading resources and completing needs the mcp:list or mcp:call scope (this credential's scopes: admin:read)"},
		{name: "unknown role", p: who("guest"), call: "mcp:call", read: "mcp:list",
			callWhy: "calling tools needs the member role or higher (this credential's role: guest)",
			readWhy: "getting prompts, reading resources and completing needs the viewer role or higher (this credential's role: guest)"},
		{name: "nobody", p: nil, call: "mcp:call", read: "mcp:list",
			callWhy: "calling tools needs the member role or higher (this credential's role: none)",
			readWhy: "getting prompts, reading resources and completing needs the viewer role or higher (this credential's role: none)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := Insufficient(tc.p, pipeline.MethodCallTool), (Shortfall{tc.call, tc.callWhy}); got != want {
				t.Errorf("tools/call: %+v, want %+v", got, want)
			}
			for _, m := range reads {
				if got, want := Insufficient(tc.p, m), (Shortfall{tc.read, tc.readWhy}); got != want {
					t.Errorf("%s: %+v, want %+v", m, got, want)
				}
			}
			for _, m := range []string{"tools/list", "initialize", "ping", "subscriptions/listen"} {
				if got := Insufficient(tc.p, m); got != (Shortfall{}) {
					t.Errorf("%s judged: %+v", m, got)
				}
			}
		})
	}
}
