package admin

import (
	"net/http"
	"testing"

	"github.com/mcpedge/mcpedge/internal/principal"
)

// TestReviewLatticeRESTNeedsTheRightsOfTheTools: /api/lattices is the REST
// face of the lattice tools, and docs/lattice.md says "every principal
// allowed to call the tools (members and up) may create and delete in its
// tenant". The handler only asked for some principal: a viewer, or a key
// limited to admin:read, could create, delete and run searches on stored
// lattices. Reading (GET) needs what listing tools needs; everything else
// what calling them needs.
func TestReviewLatticeRESTNeedsTheRightsOfTheTools(t *testing.T) {
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
