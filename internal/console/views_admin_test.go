package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/admin"
)

// Every state-changing route of the administration views refuses a form
// without the session's token, and changes nothing.
func TestAdminFormsNeedTheirToken(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.rootK)
	acme := mustTenant(t, e, "acme")
	for path, form := range map[string]url.Values{
		"/ui/tenants":        {"name": {"evil"}},
		"/ui/tenants/update": {"tenant": {acme.ID}, "disabled": {"true"}},
		"/ui/tenants/delete": {"tenant": {acme.ID}, "confirm": {"yes"}},
		"/ui/users":          {"tenant": {acme.ID}, "name": {"mallory"}},
		"/ui/users/update":   {"tenant": {acme.ID}, "id": {"boss"}, "disabled": {"true"}},
		"/ui/users/delete":   {"tenant": {acme.ID}, "id": {"boss"}},
		"/ui/plans":          {"name": {"evil"}},
		"/ui/plans/delete":   {"name": {"free"}},
		"/ui/servers":        {"tenant": {acme.ID}, "name": {"evil"}, "upstreams": {"*"}},
		"/ui/servers/delete": {"tenant": {acme.ID}, "id": {"all"}},
		"/ui/rules":          {"tenant": {acme.ID}, "tool": {"*"}, "effect": {"deny"}},
		"/ui/rules/delete":   {"tenant": {acme.ID}, "id": {"x"}},
		"/ui/audit/verify":   {},
		"/ui/catalog/call":   {"tool": {"ev__echo"}},
		"/ui/pins/approve":   {"upstream": {"ev"}, "kind": {"tool"}, "name": {"x"}},
		"/ui/pins/reject":    {"upstream": {"ev"}, "kind": {"tool"}, "name": {"x"}},
		"/ui/guard/approve":  {"upstream": {"ev"}, "kind": {"tool"}, "name": {"x"}},
		"/ui/guard/reject":   {"upstream": {"ev"}, "kind": {"tool"}, "name": {"x"}},
	} {
		if p := b.do(http.MethodPost, path, form, nil); p.status != http.StatusForbidden || !strings.Contains(p.body, "security token") {
			t.Errorf("%s without a token: %d", path, p.status)
		}
	}
	ts, _ := e.ops.ListTenants(admin.CLIContext(e.ctx))
	if len(ts) != 2 || ts[0].Disabled || ts[1].Disabled {
		t.Fatalf("a refused form changed the tenants: %+v", ts)
	}
	us, _ := e.ops.ListUsers(admin.CLIContext(e.ctx), "acme")
	if len(us) != 1 || us[0].Disabled {
		t.Fatalf("a refused form changed the users: %+v", us)
	}
}

func TestOperatorManagesTenants(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.rootK)
	p := b.get("/ui/tenants")
	if p.status != 200 || !strings.Contains(p.body, `data-tenant="acme"`) || !strings.Contains(p.body, `id="create-tenant"`) {
		t.Fatalf("tenants page: %d\n%s", p.status, p.body)
	}
	if p := b.post("/ui/tenants", url.Values{"name": {"globex"}, "plan": {"free"}, "upstreams": {"ev, other"}}); p.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", p.status, p.body)
	}
	p = b.get("/ui/tenants")
	if !strings.Contains(p.body, `data-tenant="globex"`) || !strings.Contains(p.body, "Tenant globex created.") {
		t.Fatalf("after creating:\n%s", p.body)
	}
	if again := b.get("/ui/tenants"); strings.Contains(again.body, "Tenant globex created.") {
		t.Fatal("the message is shown twice")
	}
	globex := mustTenant(t, e, "globex")
	vs, _ := e.ops.ListVirtualServers(admin.CLIContext(e.ctx), "globex")
	if len(vs) != 1 || strings.Join(vs[0].Upstreams, ",") != "ev,other" {
		t.Fatalf("the new tenant's virtual server: %+v", vs)
	}
	if p := b.post("/ui/tenants/update", url.Values{"tenant": {globex.ID}, "disabled": {"true"}}); p.status != http.StatusSeeOther {
		t.Fatalf("disable: %d %s", p.status, p.body)
	}
	if !mustTenant(t, e, "globex").Disabled {
		t.Fatal("not disabled")
	}
	// The operator can not disable their own tenant: the API's 409.
	ops := mustTenant(t, e, "ops")
	if p := b.post("/ui/tenants/update", url.Values{"tenant": {ops.ID}, "disabled": {"true"}}); p.status != http.StatusConflict || !strings.Contains(p.body, "signed in with") {
		t.Fatalf("disabling one's own tenant: %d %s", p.status, p.body)
	}
	if p := b.post("/ui/tenants/delete", url.Values{"tenant": {globex.ID}}); p.status != http.StatusBadRequest {
		t.Fatalf("delete without confirming: %d", p.status)
	}
	if p := b.post("/ui/tenants/delete", url.Values{"tenant": {globex.ID}, "confirm": {"yes"}}); p.status != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", p.status, p.body)
	}
	if _, err := e.st.GetTenantByName(e.ctx, "globex"); err == nil {
		t.Fatal("the tenant is still there")
	}
	// A bad name comes back as the API's message, escaped.
	if p := b.post("/ui/tenants", url.Values{"name": {xss}}); p.status != http.StatusBadRequest || strings.Contains(p.body, "<script>alert") {
		t.Fatalf("bad name: %d %s", p.status, p.body)
	}
}

func TestTenantAdminSeesOnlyItsTenant(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acmeK)
	p := b.get("/ui/tenants")
	if p.status != 200 || !strings.Contains(p.body, `data-tenant="acme"`) || strings.Contains(p.body, `data-tenant="ops"`) ||
		strings.Contains(p.body, `id="create-tenant"`) || strings.Contains(p.body, "tenant-pick") {
		t.Fatalf("acme's tenants page: %d\n%s", p.status, p.body)
	}
	if p := b.post("/ui/tenants", url.Values{"name": {"sneaky"}}); p.status != http.StatusForbidden {
		t.Fatalf("acme creates a tenant: %d", p.status)
	}
	ops := mustTenant(t, e, "ops")
	for _, path := range []string{"/ui/users?tenant=ops", "/ui/servers?tenant=" + ops.ID, "/ui/rules?tenant=ops", "/ui/keys?tenant=ops"} {
		if p := b.get(path); p.status != http.StatusNotFound || strings.Contains(p.body, "owner-key") {
			t.Errorf("%s: %d", path, p.status)
		}
	}
	if p := b.post("/ui/users", url.Values{"tenant": {"ops"}, "name": {"mole"}}); p.status != http.StatusNotFound {
		t.Fatalf("acme adds a user to ops: %d", p.status)
	}
	if p := b.post("/ui/plans", url.Values{"name": {"cheap"}}); p.status != http.StatusForbidden {
		t.Fatalf("acme writes a plan: %d", p.status)
	}
	// The operators' views are not in its navigation and refuse it.
	if strings.Contains(p.body, `href="/ui/pins"`) {
		t.Error("acme's navigation links the pins")
	}
	for _, path := range []string{"/ui/pins", "/ui/pins/view?upstream=ev&kind=tool&name=echo", "/ui/guard/view?upstream=ev&kind=tool&name=echo"} {
		if p := b.get(path); p.status != http.StatusForbidden {
			t.Errorf("acme opens %s: %d", path, p.status)
		}
	}
	if p := b.post("/ui/pins/approve", url.Values{"upstream": {"ev"}, "kind": {"tool"}, "name": {"echo"}}); p.status != http.StatusForbidden {
		t.Errorf("acme approves a pin: %d", p.status)
	}
}

func TestUsersServersAndRulesOfATenant(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acmeK)
	if p := b.post("/ui/users", url.Values{"name": {"carol"}, "role": {"viewer"}, "password": {"a long password 1"}}); p.status != http.StatusSeeOther {
		t.Fatalf("add user: %d %s", p.status, p.body)
	}
	p := b.get("/ui/users")
	if !strings.Contains(p.body, `data-user="carol"`) || !strings.Contains(p.body, `data-user="boss"`) {
		t.Fatalf("users:\n%s", p.body)
	}
	carol, err := e.ops.GetUser(admin.CLIContext(e.ctx), "acme", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if p := b.post("/ui/users/update", url.Values{"id": {carol.ID}, "role": {"member"}}); p.status != http.StatusSeeOther {
		t.Fatalf("set role: %d %s", p.status, p.body)
	}
	if p := b.post("/ui/users/update", url.Values{"id": {carol.ID}, "disabled": {"true"}}); p.status != http.StatusSeeOther {
		t.Fatalf("disable: %d %s", p.status, p.body)
	}
	if u, _ := e.ops.GetUser(admin.CLIContext(e.ctx), "acme", "carol"); u.Role != "member" || !u.Disabled {
		t.Fatalf("carol after the changes: %+v", u)
	}
	// An admin may not make an owner: the API's refusal.
	if p := b.post("/ui/users/update", url.Values{"id": {carol.ID}, "role": {"owner"}}); p.status != http.StatusForbidden {
		t.Fatalf("admin makes an owner: %d %s", p.status, p.body)
	}
	if p := b.post("/ui/users/delete", url.Values{"id": {carol.ID}}); p.status != http.StatusSeeOther {
		t.Fatalf("delete user: %d %s", p.status, p.body)
	}
	if _, err := e.ops.GetUser(admin.CLIContext(e.ctx), "acme", "carol"); err == nil {
		t.Fatal("carol is still there")
	}

	// Adding a virtual server widens what the tenant sees: operators only.
	if p := b.get("/ui/servers"); strings.Contains(p.body, `id="create-server"`) {
		t.Fatal("a tenant admin is offered to add a virtual server")
	}
	if p := b.post("/ui/servers", url.Values{"name": {"narrow"}, "upstreams": {"ev"}}); p.status != http.StatusForbidden {
		t.Fatalf("a tenant admin adds a server: %d", p.status)
	}
	op := e.browser()
	op.signIn(e.rootK)
	acme := mustTenant(t, e, "acme")
	if p := op.post("/ui/servers", url.Values{"tenant": {acme.ID}, "name": {"narrow"}, "upstreams": {"ev"}, "tools": {"ev__get*, ev__echo"}}); p.status != http.StatusSeeOther {
		t.Fatalf("add server: %d %s", p.status, p.body)
	}
	if p := b.get("/ui/servers"); !strings.Contains(p.body, `data-server="narrow"`) || !strings.Contains(p.body, "ev__get*, ev__echo") {
		t.Fatalf("servers:\n%s", p.body)
	}
	vs, _ := e.ops.ListVirtualServers(admin.CLIContext(e.ctx), "acme")
	var id string
	for _, s := range vs {
		if s.Name == "narrow" {
			id = s.ID
		}
	}
	if p := b.post("/ui/servers/delete", url.Values{"id": {id}}); p.status != http.StatusSeeOther {
		t.Fatalf("delete server: %d %s", p.status, p.body)
	}
	if vs, _ := e.ops.ListVirtualServers(admin.CLIContext(e.ctx), "acme"); len(vs) != 1 {
		t.Fatalf("servers after deleting: %+v", vs)
	}

	if p := b.post("/ui/rules", url.Values{"tool": {"ev__echo"}, "effect": {"deny"}, "roles": {"viewer"}, "priority": {"5"}}); p.status != http.StatusSeeOther {
		t.Fatalf("add rule: %d %s", p.status, p.body)
	}
	if p := b.get("/ui/rules"); !strings.Contains(p.body, `data-rule="ev__echo"`) || !strings.Contains(p.body, "viewer") {
		t.Fatalf("rules:\n%s", p.body)
	}
	if p := b.post("/ui/rules", url.Values{"tool": {"x"}, "effect": {"maybe"}}); p.status != http.StatusBadRequest {
		t.Fatalf("bad effect: %d", p.status)
	}
	if p := b.post("/ui/rules", url.Values{"tool": {"x"}, "effect": {"deny"}, "priority": {"high"}}); p.status != http.StatusBadRequest {
		t.Fatalf("bad priority: %d", p.status)
	}
	rs, _ := e.ops.ListRules(admin.CLIContext(e.ctx), "acme")
	if len(rs) != 1 {
		t.Fatalf("rules: %+v", rs)
	}
	if p := b.post("/ui/rules/delete", url.Values{"id": {rs[0].ID}}); p.status != http.StatusSeeOther {
		t.Fatalf("delete rule: %d %s", p.status, p.body)
	}
	if rs, _ := e.ops.ListRules(admin.CLIContext(e.ctx), "acme"); len(rs) != 0 {
		t.Fatalf("rules after deleting: %+v", rs)
	}
}

func TestOperatorChoosesTheTenantAndManagesPlans(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.rootK)
	acme := mustTenant(t, e, "acme")
	p := b.get("/ui/users?tenant=" + acme.ID)
	if p.status != 200 || !strings.Contains(p.body, `data-user="boss"`) || !strings.Contains(p.body, `id="tenant-pick"`) {
		t.Fatalf("operator's view of acme's users: %d\n%s", p.status, p.body)
	}
	if p := b.post("/ui/users", url.Values{"tenant": {acme.ID}, "name": {"dave"}}); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/users?tenant="+acme.ID {
		t.Fatalf("add a user to acme: %d %q", p.status, p.header.Get("Location"))
	}
	if _, err := e.ops.GetUser(admin.CLIContext(e.ctx), "acme", "dave"); err != nil {
		t.Fatal(err)
	}
	if p := b.post("/ui/plans", url.Values{"name": {"gold"}, "key_per_minute": {"600"}, "monthly_quota": {"100000"}}); p.status != http.StatusSeeOther {
		t.Fatalf("put plan: %d %s", p.status, p.body)
	}
	p = b.get("/ui/plans")
	if !strings.Contains(p.body, `data-plan="gold"`) || !strings.Contains(p.body, "<td>600</td>") || !strings.Contains(p.body, "<td>100000</td>") {
		t.Fatalf("plans:\n%s", p.body)
	}
	if p := b.post("/ui/plans", url.Values{"name": {"gold"}, "key_burst": {"lots"}}); p.status != http.StatusBadRequest {
		t.Fatalf("bad limit: %d", p.status)
	}
	if p := b.post("/ui/plans/delete", url.Values{"name": {"gold"}}); p.status != http.StatusSeeOther {
		t.Fatalf("delete plan: %d %s", p.status, p.body)
	}
	if p := b.get("/ui/plans"); strings.Contains(p.body, `data-plan="gold"`) {
		t.Fatal("the plan is still listed")
	}
}

func TestAllowlistAndVirtualServerEdits(t *testing.T) {
	e := newEnv(t)
	acme := mustTenant(t, e, "acme")
	// A tenant admin sets its own tenant's allowlist (the test client is
	// on loopback, so it must stay in), but may not lock itself out.
	b := e.browser()
	b.signIn(e.acmeK)
	if p := b.post("/ui/tenants/update", url.Values{"tenant": {acme.ID}, "ip_allowlist": {"10.0.0.0/8"}}); p.status != http.StatusConflict || !strings.Contains(p.body, "lock yourself out") {
		t.Fatalf("an allowlist without one's own address: %d %s", p.status, p.body)
	}
	if p := b.post("/ui/tenants/update", url.Values{"tenant": {acme.ID}, "ip_allowlist": {"127.0.0.0/8, 10.0.0.0/8"}}); p.status != http.StatusSeeOther {
		t.Fatalf("set allowlist: %d %s", p.status, p.body)
	}
	if got := mustTenant(t, e, "acme").IPAllowlist; strings.Join(got, ",") != "127.0.0.0/8,10.0.0.0/8" {
		t.Fatalf("allowlist: %q", got)
	}
	if p := b.get("/ui/tenants"); !strings.Contains(p.body, `value="127.0.0.0/8, 10.0.0.0/8"`) {
		t.Fatalf("the allowlist is not shown:\n%s", p.body)
	}
	if p := b.post("/ui/tenants/update", url.Values{"tenant": {acme.ID}, "ip_allowlist": {""}}); p.status != http.StatusSeeOther {
		t.Fatalf("clear allowlist: %d %s", p.status, p.body)
	}
	if got := mustTenant(t, e, "acme").IPAllowlist; len(got) != 0 {
		t.Fatalf("allowlist after clearing: %q", got)
	}
	// A tenant admin can not widen its virtual servers; an operator can.
	vs, _ := e.ops.ListVirtualServers(admin.CLIContext(e.ctx), "acme")
	if p := b.get("/ui/servers"); strings.Contains(p.body, "/ui/servers/update") {
		t.Fatal("a tenant admin is offered to edit a virtual server")
	}
	if p := b.post("/ui/servers/update", url.Values{"id": {vs[0].ID}, "upstreams": {"*"}}); p.status != http.StatusForbidden {
		t.Fatalf("a tenant admin edits a server: %d", p.status)
	}
	op := e.browser()
	op.signIn(e.rootK)
	if p := op.post("/ui/servers/update", url.Values{"tenant": {acme.ID}, "id": {vs[0].ID}, "upstreams": {"ev"}, "tools": {"ev__echo"}}); p.status != http.StatusSeeOther {
		t.Fatalf("operator edits a server: %d %s", p.status, p.body)
	}
	vs, _ = e.ops.ListVirtualServers(admin.CLIContext(e.ctx), "acme")
	if strings.Join(vs[0].Upstreams, ",") != "ev" || strings.Join(vs[0].Tools, ",") != "ev__echo" {
		t.Fatalf("after the edit: %+v", vs[0])
	}
	if p := op.post("/ui/servers/update", url.Values{"tenant": {acme.ID}, "id": {vs[0].ID}, "upstreams": {"ev"}, "tools": {""}}); p.status != http.StatusSeeOther {
		t.Fatalf("clear tools: %d %s", p.status, p.body)
	}
	if vs, _ = e.ops.ListVirtualServers(admin.CLIContext(e.ctx), "acme"); len(vs[0].Tools) != 0 {
		t.Fatalf("tools after clearing: %q", vs[0].Tools)
	}
}

func TestKeyWithScopes(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acmeK)
	if p := b.post("/ui/keys", url.Values{"name": {"reader"}, "role": {"admin"}, "scopes": {"admin:read, mcp:list"}}); p.status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", p.status, p.body)
	}
	if p := b.get("/ui/keys"); !strings.Contains(p.body, "<td>admin:read, mcp:list</td>") {
		t.Fatalf("the scopes are not shown:\n%s", p.body)
	}
	if p := b.post("/ui/keys", url.Values{"name": {"odd"}, "scopes": {"root:all"}}); p.status != http.StatusBadRequest {
		t.Fatalf("an unknown scope: %d", p.status)
	}
}
