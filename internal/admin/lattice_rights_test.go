package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// TestLatticeRESTNeedsTheRightsOfTheTools: /api/lattices is the REST
// face of the lattice tools, and docs/lattice.md says "every principal
// allowed to call the tools (members and up) may create and delete in its
// tenant". The handler only asked for some principal: a viewer, or a key
// limited to admin:read, could create, delete and run searches on stored
// lattices. Reading (GET) needs what listing tools needs; everything else
// what calling them needs.
func TestLatticeRESTNeedsTheRightsOfTheTools(t *testing.T) {
	e := newEnv(t, nil)
	e.tenant("acme")
	viewer := e.key("acme", KeySpec{Name: "viewer", Role: principal.RoleViewer})
	adminRead := e.key("acme", KeySpec{Name: "auditor", Role: principal.RoleAdmin, Scopes: []string{principal.ScopeAdminRead}})
	lister := e.key("acme", KeySpec{Name: "lister", Role: principal.RoleMember, Scopes: []string{principal.ScopeList}})
	member := e.key("acme", KeySpec{Name: "member", Role: principal.RoleMember})

	writes := []struct{ method, path string }{
		{"POST", "/api/lattices"},
		{"DELETE", "/api/lattices/abc"},
		{"POST", "/api/lattices/abc/path"},
		{"POST", "/api/lattices/abc/transform"},
	}
	for _, p := range []*principal.Principal{viewer, adminRead, lister} {
		for _, w := range writes {
			r := e.do(p, w.method, w.path, map[string]any{})
			if r.status != http.StatusForbidden {
				t.Errorf("%s (%s %v): %s %s answered %d, want 403", p.ID, p.Role, p.Scopes, w.method, w.path, r.status)
			}
		}
	}
	// Reading needs the list right: the viewer and the lister may, the
	// admin:read-only key may not (it has no mcp scope).
	want(t, "viewer lists", e.do(viewer, "GET", "/api/lattices", nil), 200)
	want(t, "lister gets", e.do(lister, "GET", "/api/lattices/abc", nil), 200)
	want(t, "admin:read lists", e.do(adminRead, "GET", "/api/lattices", nil), 403, CodeForbidden)
	// Members keep every right.
	for _, w := range writes {
		want(t, "member "+w.method+" "+w.path, e.do(member, w.method, w.path, map[string]any{}), 200)
	}
}

// TestScopedCallerMintsNoUnscopedCredential: a key limited to
// admin:write may only hand out keys limited to a subset of its scopes
// (mayGrant). But it could create a user with a password (or set one on an
// existing user), sign in as that user and get an access token that is not
// limited to scopes at all — including mcp:call, which the key lacks.
func TestScopedCallerMintsNoUnscopedCredential(t *testing.T) {
	e := newEnv(t, nil)
	e.tenant("acme")
	scoped := e.key("acme", KeySpec{Name: "provisioner", Role: principal.RoleAdmin, Scopes: []string{principal.ScopeAdminRead, principal.ScopeAdminWrite}})
	if scoped.CanCall() {
		t.Fatal("precondition: the key can call tools")
	}
	// Control: it may not create an unscoped key.
	want(t, "unscoped key", e.do(scoped, "POST", "/api/tenants/acme/keys", map[string]any{"name": "k", "role": "member"}), 403, CodeForbidden)

	r := e.do(scoped, "POST", "/api/tenants/acme/users", map[string]any{"name": "sock", "role": "admin", "password": "long enough password"})
	if r.status/100 == 2 {
		tok, err := e.auth.Login(e.ctx, "acme", "sock", "long enough password", testIP)
		if err == nil {
			p := e.authn(tok.AccessToken)
			t.Fatalf("a key limited to %v created a signed-in user with scopes %v (can call tools: %v)", scoped.Scopes, p.Scopes, p.CanCall())
		}
	}
	want(t, "user with a password", r, 403, CodeForbidden)
	// Setting the password of an existing user is the same.
	if _, err := e.ops.CreateUser(CLIContext(e.ctx), "acme", UserSpec{Name: "carol", Role: principal.RoleMember}); err != nil {
		t.Fatal(err)
	}
	want(t, "a key limited to scopes sets a password", e.do(scoped, "PATCH", "/api/tenants/acme/users/carol", map[string]any{"password": "another long password"}), 403, CodeForbidden)
	// Users without passwords (for keys tied to them, or OIDC) are fine.
	want(t, "user without password", e.do(scoped, "POST", "/api/tenants/acme/users", map[string]any{"name": "nopw", "role": "member"}), 201)
}

// TestLatticeToolOfRequest: every lattice endpoint stands for the
// tool whose policy applies to it.
func TestLatticeToolOfRequest(t *testing.T) {
	for _, c := range []struct{ method, path, tool string }{
		{"GET", "/api/lattices", "lattice_list"},
		{"POST", "/api/lattices", "lattice_create"},
		{"GET", "/api/lattices/lat_1", "lattice_get"},
		{"DELETE", "/api/lattices/lat_1", "lattice_delete"},
		{"POST", "/api/lattices/lat_1/path", "lattice_path"},
		{"POST", "/api/lattices/lat_1/transform", "lattice_transform"},
		{"PUT", "/api/lattices/lat_1", ""},
		{"GET", "/api/lattices/", ""},
		{"GET", "/api/latticesx", ""},
	} {
		if got := latticeTool(c.method, c.path); got != c.tool {
			t.Errorf("%s %s: %q, want %q", c.method, c.path, got, c.tool)
		}
	}
}

// TestLatticeRESTIsAudited: over MCP every lattice tool call is a
// tool.call audit entry; the REST face wrote none, so creating or deleting
// stored lattices over REST left no trace. It is audited like the tool
// call, refusals included.
func TestLatticeRESTIsAudited(t *testing.T) {
	e := newEnv(t, nil)
	acme := e.tenant("acme")
	viewer := e.key("acme", KeySpec{Name: "viewer", Role: principal.RoleViewer})
	member := e.key("acme", KeySpec{Name: "member", Role: principal.RoleMember})
	want(t, "member deletes", e.do(member, "DELETE", "/api/lattices/lat_1", nil), 200)
	want(t, "viewer creates", e.do(viewer, "POST", "/api/lattices", map[string]any{}), 403, CodeForbidden)
	var got []string
	for _, x := range e.auditEntries(store.AuditFilter{TenantID: acme.ID}) {
		if x.Action == "tool.call" {
			got = append(got, x.Actor+" "+x.Target+" "+x.Outcome+" "+string(x.Detail))
		}
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], member.ID+" lattice__lattice_delete ok ") || !strings.Contains(got[0], `"id":"lat_1"`) ||
		!strings.Contains(got[0], `"via":"rest"`) || !strings.HasPrefix(got[1], viewer.ID+" lattice__lattice_create denied ") {
		t.Fatalf("audit entries of lattice REST calls: %q", got)
	}
}
