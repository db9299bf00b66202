package gateway

// The authorization of the request path with real principals: every role
// (owner, admin, member, viewer, and an unknown one), with and without key
// scopes, against the real policy engine (virtual servers and per-tool
// rules). The review_security tests use a fake whose principals are all
// members without scopes, so a broken role or scope gate would pass them.

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/policy"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// policySource is a fixed policy.Source.
type policySource struct {
	tenants []store.Tenant
	vss     map[string][]store.VirtualServer
	rules   map[string][]store.Rule
}

func (s *policySource) PolicyVersion(context.Context) (int64, error)        { return 1, nil }
func (s *policySource) ListTenants(context.Context) ([]store.Tenant, error) { return s.tenants, nil }
func (s *policySource) ListVirtualServers(_ context.Context, id string) ([]store.VirtualServer, error) {
	return s.vss[id], nil
}
func (s *policySource) ListRules(_ context.Context, id string) ([]store.Rule, error) {
	return s.rules[id], nil
}
func (s *policySource) ListPlans(context.Context) ([]store.Plan, error) { return nil, nil }

// policySec is a Security whose decisions are the policy engine's, as in
// internal/tenancy; credentials are fixed tokens.
type policySec struct {
	engine *policy.Engine
	creds  map[string]*principal.Principal

	mu      sync.Mutex
	records []CallRecord
}

func (s *policySec) Authenticate(r *http.Request) (*principal.Principal, error) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p, ok := s.creds[tok]; ok {
		return p, nil
	}
	return nil, &AuthError{Status: http.StatusUnauthorized, Code: "invalid_token", Message: "unknown credential"}
}

func (s *policySec) Admit(*http.Request, http.Header, *principal.Principal, string) *Denial {
	return nil
}

func (s *policySec) Allowed(p *principal.Principal, up, kind, name string) bool {
	return s.engine.Allowed(p, up, kind, name)
}

func (s *policySec) Record(_ context.Context, _ *principal.Principal, c CallRecord) {
	s.mu.Lock()
	s.records = append(s.records, c)
	s.mu.Unlock()
}

func (s *policySec) ResourceMetadataURL(*http.Request) string {
	return "http://gw.example/.well-known/oauth-protected-resource/mcp"
}

func (s *policySec) ProtectedResourceMetadata() http.Handler { return http.NotFoundHandler() }

// outcomes returns the recorded outcomes of calls to the tool the client
// named name.
func (s *policySec) outcomes(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.records {
		if r.Name == name {
			out = append(out, r.Outcome)
		}
	}
	return out
}

// rolesUpstream offers tools read and write, prompt greet and resource
// mem://<name>/doc; calls counts the tool calls that reached it.
func rolesUpstream(name string, calls *sync.Map) *mcp.Server {
	s := legacyOnly(name, nil)
	for _, tool := range []string{"read", "write"} {
		secTool(s, tool, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			v, _ := calls.LoadOrStore(name+"__"+tool, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " " + tool}}}, nil
		})
	}
	s.AddPrompt(&mcp.Prompt{Name: "greet"}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hello from " + name}}}}, nil
	})
	uri := "mem://" + name + "/doc"
	s.AddResource(&mcp.Resource{URI: uri, Name: "doc"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, Text: "doc of " + name}}}, nil
	})
	return s
}

// TestAuthzRolesAndScopes: what each role and scope combination lists, and
// whether it may call tools, get prompts and read resources. Tenant "ta"
// has one virtual server with upstream "ua"; "ub" is another tenant's. A
// rule restricts ua__write to admins and owners, and to keys with the
// scope "ua:write".
func TestAuthzRolesAndScopes(t *testing.T) {
	var calls sync.Map
	ua := startHTTPUpstream(t, rolesUpstream("ua", &calls))
	ub := startHTTPUpstream(t, rolesUpstream("ub", &calls))
	engine := rolesEngine(t)
	key := func(id, role string, scopes ...string) *principal.Principal {
		return &principal.Principal{Kind: principal.KindKey, ID: id, KeyID: id, TenantID: "ta", TenantName: "a", Role: role, Scopes: scopes}
	}
	type want struct {
		list  bool // sees ua's tools, prompt and resource in lists
		rule  bool // the rule on ua__write applies (by role or scope)
		call  bool // may call ua__read
		write bool // may call ua__write
		read  bool // may get ua__greet and read mem://ua/doc
	}
	cases := []struct {
		name string
		p    *principal.Principal
		want want
	}{
		{"owner", key("k-owner", principal.RoleOwner), want{list: true, rule: true, call: true, write: true, read: true}},
		{"admin", key("k-admin", principal.RoleAdmin), want{list: true, rule: true, call: true, write: true, read: true}},
		{"member", key("k-member", principal.RoleMember), want{list: true, call: true, read: true}},
		{"viewer", key("k-viewer", principal.RoleViewer), want{list: true, read: true}},
		{"user session member", &principal.Principal{Kind: principal.KindUser, ID: "u1", UserID: "u1", TenantID: "ta", TenantName: "a", Role: principal.RoleMember}, want{list: true, call: true, read: true}},
		{"unknown role", key("k-unknown", "superuser"), want{}},
		{"owner mcp:list", key("k-owner-list", principal.RoleOwner, principal.ScopeList), want{list: true, rule: true, read: true}},
		{"owner mcp:call", key("k-owner-call", principal.RoleOwner, principal.ScopeCall), want{list: true, rule: true, call: true, write: true, read: true}},
		{"admin admin:read admin:write", key("k-admin-adm", principal.RoleAdmin, principal.ScopeAdminRead, principal.ScopeAdminWrite), want{}},
		{"member mcp:list", key("k-member-list", principal.RoleMember, principal.ScopeList), want{list: true, read: true}},
		{"member mcp:call", key("k-member-call", principal.RoleMember, principal.ScopeCall), want{list: true, call: true, read: true}},
		{"member mcp:call ua:write", key("k-member-write", principal.RoleMember, principal.ScopeCall, "ua:write"), want{list: true, rule: true, call: true, write: true, read: true}},
		{"member ua:write only", key("k-member-uaw", principal.RoleMember, "ua:write"), want{}},
		{"viewer mcp:call", key("k-viewer-call", principal.RoleViewer, principal.ScopeCall), want{list: true, read: true}},
		{"viewer mcp:call ua:write", key("k-viewer-write", principal.RoleViewer, principal.ScopeCall, "ua:write"), want{list: true, rule: true, read: true}},
	}
	sec := &policySec{engine: engine, creds: map[string]*principal.Principal{}}
	for _, c := range cases {
		sec.creds["tok-"+c.p.ID] = c.p
	}
	_, url := secGateway(t, "[server]\n"+upstreamBlock("ua", ua)+upstreamBlock("ub", ub), sec, nil)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cs := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken("tok-"+c.p.ID))

			var tools, prompts, resources []string
			for tool, err := range cs.Tools(ctx, nil) {
				if err != nil {
					t.Fatal(err)
				}
				tools = append(tools, tool.Name)
			}
			for pr, err := range cs.Prompts(ctx, nil) {
				if err != nil {
					t.Fatal(err)
				}
				prompts = append(prompts, pr.Name)
			}
			for r, err := range cs.Resources(ctx, nil) {
				if err != nil {
					t.Fatal(err)
				}
				resources = append(resources, r.URI)
			}
			slices.Sort(tools)
			var wantTools, wantPrompts, wantResources []string
			if c.want.list {
				wantTools = append(wantTools, "ua__read")
				if c.want.rule {
					wantTools = append(wantTools, "ua__write")
				}
				wantPrompts, wantResources = []string{"ua__greet"}, []string{"mem://ua/doc"}
			}
			if !slices.Equal(tools, wantTools) {
				t.Errorf("tools/list = %v, want %v", tools, wantTools)
			}
			if !slices.Equal(prompts, wantPrompts) {
				t.Errorf("prompts/list = %v, want %v", prompts, wantPrompts)
			}
			if !slices.Equal(resources, wantResources) {
				t.Errorf("resources/list = %v, want %v", resources, wantResources)
			}

			// tools/call: allowed calls reach the upstream and are recorded
			// "ok"; refused ones never reach the upstream and are recorded
			// "denied". A caller who may call tools looks refused ones up
			// as unknown tools; one whose role or scopes allow no tool call
			// at all is answered 403 insufficient_scope, whatever the name
			// (issue 12; TestScopeChallenge checks the HTTP answer).
			for _, tc := range []struct {
				name string
				ok   bool
			}{{"ua__read", c.want.call}, {"ua__write", c.want.write}, {"ub__read", false}} {
				before := callCount(&calls, tc.name)
				seen := len(sec.outcomes(tc.name))
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tc.name, Arguments: map[string]any{}})
				reached := callCount(&calls, tc.name) > before
				outcomes := sec.outcomes(tc.name)[seen:]
				if tc.ok {
					if err != nil || res.IsError || !reached {
						t.Errorf("tools/call %s: %v %+v (reached the upstream: %v), want it allowed", tc.name, err, res, reached)
					}
					if !slices.Equal(outcomes, []string{"ok"}) {
						t.Errorf("tools/call %s recorded %v, want [ok]", tc.name, outcomes)
					}
					continue
				}
				if !c.want.call {
					if err == nil || !strings.Contains(err.Error(), "insufficient scope: calling tools needs") || !strings.Contains(err.Error(), "Forbidden") || reached {
						t.Errorf("tools/call %s: %v %+v (reached the upstream: %v), want 403 insufficient_scope", tc.name, err, res, reached)
					}
				} else if err == nil || !strings.Contains(err.Error(), `unknown tool "`+tc.name+`"`) || reached {
					t.Errorf("tools/call %s: %v %+v (reached the upstream: %v), want refused as an unknown tool", tc.name, err, res, reached)
				}
				if !slices.Equal(outcomes, []string{"denied"}) {
					t.Errorf("tools/call %s recorded %v, want [denied]", tc.name, outcomes)
				}
			}

			// prompts/get and resources/read: a caller whose role or scopes
			// allow no reading at all is answered 403 insufficient_scope
			// (issue 12); any other refusal looks like a missing item.
			pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "ua__greet"})
			if got := err == nil && len(pr.Messages) == 1; got != c.want.read {
				t.Errorf("prompts/get ua__greet: %+v %v, want allowed=%v", pr, err, c.want.read)
			}
			if err != nil && (!strings.Contains(err.Error(), "insufficient scope: getting prompts") || !strings.Contains(err.Error(), "Forbidden")) {
				t.Errorf("prompts/get by a caller who may read nothing: %v, want 403 insufficient_scope", err)
			}
			rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "mem://ua/doc"})
			if got := err == nil && len(rr.Contents) == 1 && rr.Contents[0].Text == "doc of ua"; got != c.want.read {
				t.Errorf("resources/read mem://ua/doc: %+v %v, want allowed=%v", rr, err, c.want.read)
			}
			if err != nil {
				_, errNone := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "mem://ua/nonesuch"})
				if errNone == nil || strings.ReplaceAll(err.Error(), "mem://ua/doc", "X") != strings.ReplaceAll(errNone.Error(), "mem://ua/nonesuch", "X") {
					t.Errorf("resources/read refusal %v does not look like a missing resource (%v)", err, errNone)
				}
			}
			// Another tenant's prompt and resource are never reachable; to a
			// caller who may read, they look like missing ones.
			_, err = cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "ub__greet"})
			if err == nil {
				t.Error("prompts/get ub__greet (another tenant's) allowed")
			} else if c.want.read && !strings.Contains(err.Error(), `unknown prompt "ub__greet"`) {
				t.Errorf("prompts/get ub__greet does not look like a missing prompt: %v", err)
			}
			_, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "mem://ub/doc"})
			if err == nil {
				t.Error("resources/read mem://ub/doc (another tenant's) allowed")
			} else if c.want.read {
				_, errNone := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "mem://ub/nonesuch"})
				if errNone == nil || strings.ReplaceAll(err.Error(), "mem://ub/doc", "X") != strings.ReplaceAll(errNone.Error(), "mem://ub/nonesuch", "X") {
					t.Errorf("resources/read of another tenant's resource %v does not look like a missing one (%v)", err, errNone)
				}
			}
		})
	}
}

// rolesEngine is the policy of the roles tests: tenant "ta" has one
// virtual server with upstream "ua", tenant "tb" one with "ub"; a rule
// restricts ua__write to admins and owners, and to keys with the scope
// "ua:write".
func rolesEngine(t *testing.T) *policy.Engine {
	t.Helper()
	src := &policySource{
		tenants: []store.Tenant{{ID: "ta", Name: "a"}, {ID: "tb", Name: "b"}},
		vss: map[string][]store.VirtualServer{
			"ta": {{Name: "main", Upstreams: []string{"ua"}}},
			"tb": {{Name: "main", Upstreams: []string{"ub"}}},
		},
		rules: map[string][]store.Rule{
			"ta": {
				{Tool: "ua__write", Effect: "allow", Roles: []string{principal.RoleAdmin, principal.RoleOwner}},
				{Tool: "ua__write", Effect: "allow", Scopes: []string{"ua:write"}},
			},
		},
	}
	engine := policy.New(src, config.DefaultPlans(), nil)
	if err := engine.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return engine
}

func callCount(calls *sync.Map, name string) int {
	v, ok := calls.Load(name)
	if !ok {
		return 0
	}
	return int(v.(*atomic.Int32).Load())
}
