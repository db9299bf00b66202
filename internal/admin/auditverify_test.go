package admin

import (
	"testing"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// VerifyAudit walks the whole chain, which spans every tenant: operator
// admins only, as on the command line; a refusal is audited.
func TestVerifyAuditIsForOperators(t *testing.T) {
	e := newEnv(t, nil)
	acme := e.tenant("acme")
	admin := e.key("acme", KeySpec{Name: "adm", Role: principal.RoleAdmin})
	rep, err := e.ops.VerifyAudit(principal.With(e.ctx, e.root))
	if err != nil || !rep.OK || rep.Entries == 0 {
		t.Fatalf("operator: %+v %v", rep, err)
	}
	if _, err := e.ops.VerifyAudit(principal.With(e.ctx, admin)); !IsCode(err, CodeForbidden) {
		t.Fatalf("tenant admin: %v", err)
	}
	if _, err := e.ops.VerifyAudit(e.ctx); !IsCode(err, CodeUnauthenticated) {
		t.Fatalf("no caller: %v", err)
	}
	denied := e.auditEntries(store.AuditFilter{TenantID: acme.ID, Action: "audit.verify"})
	if len(denied) != 1 || denied[0].Outcome != OutcomeDenied {
		t.Fatalf("the refusal's audit entries: %+v", denied)
	}
}
