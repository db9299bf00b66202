package admin

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/tenantexport"
)

func TestTenantExportREST(t *testing.T) {
	e := newEnv(t, nil)
	acme, bravo := e.tenant("acme"), e.tenant("bravo")
	adminA := e.key("acme", KeySpec{Name: "a", Role: principal.RoleAdmin})
	memberA := e.key("acme", KeySpec{Name: "m", Role: principal.RoleMember})
	readerA := e.key("acme", KeySpec{Name: "r", Role: principal.RoleOwner, Scopes: []string{principal.ScopeCall}})

	check := func(r response) *tenantexport.Manifest {
		t.Helper()
		m, err := tenantexport.Check(bytes.NewReader(r.raw), int64(len(r.raw)))
		if err != nil {
			t.Fatalf("the archive fails its check: %v", err)
		}
		return m
	}
	// A tenant admin exports its own tenant, by name or id.
	for _, ref := range []string{"acme", acme.ID} {
		r := e.do(adminA, "GET", "/api/tenants/"+ref+"/export", nil)
		want(t, "own export", r, 200)
		if r.header.Get("Content-Type") != "application/zip" || !strings.Contains(r.header.Get("Content-Disposition"), "mcpedge-export-acme-") {
			t.Errorf("headers %v", r.header)
		}
		if m := check(r); m.Tenant.ID != acme.ID {
			t.Errorf("manifest tenant %+v", m.Tenant)
		}
		if bytes.Contains(r.raw, []byte(bravo.ID)) {
			t.Error("acme's export holds bravo's id")
		}
	}
	// Another tenant, existing or not: 403, the same answer.
	for _, ref := range []string{"bravo", bravo.ID, "ops", "nope"} {
		want(t, "export "+ref, e.do(adminA, "GET", "/api/tenants/"+ref+"/export", nil), 403, CodeForbidden)
	}
	want(t, "member", e.do(memberA, "GET", "/api/tenants/acme/export", nil), 403, CodeForbidden)
	want(t, "no admin scope", e.do(readerA, "GET", "/api/tenants/acme/export", nil), 403, CodeForbidden)
	want(t, "anonymous", e.do(nil, "GET", "/api/tenants/acme/export", nil), 401, CodeUnauthenticated)
	// An operator exports anyone; unknown: 404.
	if m := check(e.do(e.root, "GET", "/api/tenants/bravo/export", nil)); m.Tenant.Name != "bravo" {
		t.Errorf("operator export of bravo: %+v", m.Tenant)
	}
	want(t, "unknown", e.do(e.root, "GET", "/api/tenants/nope/export", nil), 404, CodeNotFound)
	// Audited: the exports and the refusals.
	if err := e.audit.Flush(e.ctx); err != nil {
		t.Fatal(err)
	}
	got, err := e.st.ListAudit(e.ctx, store.AuditFilter{Action: ActionTenantExport, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, a := range got {
		outcomes[a.Outcome]++
	}
	if outcomes["ok"] != 3 || outcomes["denied"] != 6 {
		t.Errorf("tenant.export audit outcomes %v, want 3 ok and 6 denied", outcomes)
	}
}

func TestTenantEraseREST(t *testing.T) {
	e := newEnv(t, nil)
	acme := e.tenant("acme")
	e.tenant("bravo")
	adminA := e.key("acme", KeySpec{Name: "a", Role: principal.RoleOwner})
	adminB := e.key("bravo", KeySpec{Name: "b", Role: principal.RoleOwner})
	// Something of acme's in the audit log.
	want(t, "a call", e.do(adminA, "GET", "/api/tenants/acme/users", nil), 200)
	e.do(adminA, "GET", "/api/tenants/bravo/users", nil) // audited authz.denied in acme's log

	want(t, "bad erase", e.do(e.root, "DELETE", "/api/tenants/acme?erase=maybe", nil), 400, CodeInvalidArgument)
	want(t, "tenant admin", e.do(adminB, "DELETE", "/api/tenants/acme?erase=true", nil), 404, CodeNotFound)
	want(t, "own tenant", e.do(adminA, "DELETE", "/api/tenants/acme?erase=true", nil), 403, CodeForbidden)
	want(t, "operator's own", e.do(e.root, "DELETE", "/api/tenants/ops?erase=true", nil), 409, CodeConflict)

	r := e.do(e.root, "DELETE", "/api/tenants/acme?erase=true", nil)
	want(t, "erase", r, 200)
	if r.body["tenant_id"] != acme.ID || r.body["name"] != "acme" || r.body["audit_entries"].(float64) < 1 {
		t.Errorf("erasure = %v", r.body)
	}
	// Twice: 404 saying it was erased.
	r = e.do(e.root, "DELETE", "/api/tenants/acme?erase=true", nil)
	want(t, "erase twice", r, 404, CodeNotFound)
	if msg := r.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "was erased at") {
		t.Errorf("second erase says %q", msg)
	}
	want(t, "unknown", e.do(e.root, "DELETE", "/api/tenants/nope?erase=true", nil), 404, CodeNotFound)
	// The chain verifies; acme's entries are erased; bravo still works.
	if err := e.audit.Flush(e.ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(e.ctx, e.st)
	if err != nil || !rep.OK {
		t.Fatalf("audit verify after erase: %+v, %v", rep, err)
	}
	all, _ := e.st.ListAudit(e.ctx, store.AuditFilter{TenantID: acme.ID, Limit: 1000})
	erasedN, last := 0, all[len(all)-1]
	for _, a := range all {
		if a.Erased {
			erasedN++
			if a.Actor != "" || a.ClientIP != "" || a.Detail != nil {
				t.Errorf("erased entry %d keeps personal fields: %+v", a.Seq, a)
			}
		}
	}
	if erasedN != len(all)-1 || last.Action != ActionTenantErase || last.Erased || last.Actor != e.root.ID {
		t.Errorf("%d of %d entries erased, last %+v", erasedN, len(all), last)
	}
	want(t, "bravo", e.do(adminB, "GET", "/api/tenants/bravo/users", nil), 200)
	// Without erase, delete works as before (204, audit entries stay).
	want(t, "plain delete", e.do(e.root, "DELETE", "/api/tenants/bravo?erase=false", nil), 204)
}
