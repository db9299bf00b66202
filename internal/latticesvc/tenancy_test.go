package latticesvc

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// auditLog collects what the service reports through Options.Audit.
type auditLog struct {
	mu      sync.Mutex
	entries []store.AuditEntry
}

func (a *auditLog) record(ctx context.Context, e *store.AuditEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, *e)
}

func (a *auditLog) take() []store.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.entries
	a.entries = nil
	return out
}

// twoTenants is a service with tenants acme and globex, no default tenant
// and an audit log.
func twoTenants(t *testing.T) (svc *Service, acme, globex string, log *auditLog) {
	st := newStore(t)
	acme, globex = addTenant(t, st, "acme"), addTenant(t, st, "globex")
	log = &auditLog{}
	svc = New(Options{Store: st, Audit: log.record, PlanLimits: testPlans, CatalyticRegionBytes: 2 << 20})
	return svc, acme, globex, log
}

// meta is the _meta the gateway adds to a call it forwards for a tenant.
func meta(tenant, plan string) mcp.Meta {
	return mcp.Meta{"io.mcpedge/principal": principal.Meta{TenantID: tenant, Tenant: tenant, Plan: plan, ID: "user-" + tenant, Role: principal.RoleMember}}
}

// callAs calls a tool with m as the call's _meta.
func callAs(t testing.TB, cs *mcp.ClientSession, m mcp.Meta, name string, args any) (*mcp.CallToolResult, string, map[string]any) {
	t.Helper()
	res, err := cs.CallTool(ctxT(t, 10*time.Second), &mcp.CallToolParams{Meta: m, Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", name, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	var sc map[string]any
	if res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		_ = json.Unmarshal(b, &sc)
	}
	return res, text.String(), sc
}

const missingID = "lat_00000000000000ff"

// checkNotFoundAudited checks that the log holds exactly one not-found
// record per id, in order, for operation op by actor of tenant.
func checkNotFoundAudited(t *testing.T, log *auditLog, tenant, actor, actorKind, via, op string, ids ...string) {
	t.Helper()
	got := log.take()
	if len(got) != len(ids) {
		t.Fatalf("%d audit entries, want %d: %+v", len(got), len(ids), got)
	}
	for i, e := range got {
		var d map[string]string
		_ = json.Unmarshal(e.Detail, &d)
		if e.Action != "lattice.not_found" || e.Outcome != "denied" || e.TenantID != tenant || e.Actor != actor || e.ActorKind != actorKind ||
			e.Target != ids[i] || e.Time.IsZero() || d["operation"] != op || d["via"] != via {
			t.Errorf("audit entry %d: %+v (detail %s), want %s by %s/%s of %s about %s via %s", i, e, e.Detail, op, actor, actorKind, tenant, ids[i], via)
		}
	}
}

func TestToolsTenantIsolation(t *testing.T) {
	svc, acme, globex, log := twoTenants(t)
	cs := client(t, svc)
	ma, mg := meta(acme, "pro"), meta(globex, "pro")
	create := func(m mcp.Meta, name string) string {
		res, text, sc := callAs(t, cs, m, "lattice_create", map[string]any{"name": name, "dims": []int{10, 10}})
		if res.IsError {
			t.Fatal(text)
		}
		return sc["id"].(string)
	}
	a, g := create(ma, "a"), create(mg, "g")

	for _, c := range []struct {
		m    mcp.Meta
		want string
	}{{ma, a}, {mg, g}} {
		_, _, list := callAs(t, cs, c.m, "lattice_list", map[string]any{})
		if ls := list["lattices"].([]any); len(ls) != 1 || ls[0].(map[string]any)["id"] != c.want {
			t.Errorf("list shows %v, want only %s", list, c.want)
		}
	}

	// Every operation on globex's id, by acme, answers exactly as on an id
	// that exists nowhere.
	ops := []struct {
		tool, op string
		args     func(id string) map[string]any
	}{
		{"lattice_get", "get", func(id string) map[string]any { return map[string]any{"lattice_id": id} }},
		{"lattice_path", "path", func(id string) map[string]any {
			return map[string]any{"lattice_id": id, "from": []int{0, 0}, "to": []int{1, 1}}
		}},
		{"lattice_transform", "transform", func(id string) map[string]any {
			return map[string]any{"lattice_id": id, "points": [][]int{{0, 0}}, "transform": map[string]any{"kind": "reflect", "axis": 0}}
		}},
		{"lattice_delete", "delete", func(id string) map[string]any { return map[string]any{"lattice_id": id} }},
	}
	for _, o := range ops {
		res, foreign, sc := callAs(t, cs, ma, o.tool, o.args(g))
		_, missing, _ := callAs(t, cs, ma, o.tool, o.args(missingID))
		if !res.IsError || sc != nil || !strings.HasPrefix(foreign, "not_found: ") || foreign != strings.ReplaceAll(missing, missingID, g) {
			t.Errorf("%s of another tenant's id: %q; of a missing id: %q", o.tool, foreign, missing)
		}
		checkNotFoundAudited(t, log, acme, "user-"+acme, "", "mcp", o.op, g, missingID)
	}
	// globex's lattice survived acme's delete.
	if res, text, _ := callAs(t, cs, mg, "lattice_get", map[string]any{"lattice_id": g}); res.IsError {
		t.Errorf("globex's lattice after acme's delete: %s", text)
	}
	// Without _meta (and no default tenant) stored lattices are refused.
	if res, text, _ := callAs(t, cs, nil, "lattice_list", map[string]any{}); !res.IsError || !strings.HasPrefix(text, "tenant_required: ") {
		t.Errorf("list without a principal: %s", text)
	}
	// The plan in _meta selects the limits.
	if res, text, _ := callAs(t, cs, meta(acme, "free"), "lattice_create", map[string]any{"dims": []int{100, 100}}); !res.IsError ||
		!strings.HasPrefix(text, "too_many_points: ") || !strings.Contains(text, `plan "free"`) {
		t.Errorf("create over the free plan: %s", text)
	}
	if res, text, _ := callAs(t, cs, ma, "lattice_create", map[string]any{"dims": []int{100, 100}}); res.IsError {
		t.Errorf("create on the pro plan: %s", text)
	}
	if got := log.take(); len(got) != 0 {
		t.Errorf("unexpected audit entries: %+v", got)
	}
}

func TestRESTTenantIsolation(t *testing.T) {
	svc, acme, globex, log := twoTenants(t)
	pa := &principal.Principal{Kind: principal.KindKey, ID: "key-a", TenantID: acme, Plan: "pro", Role: principal.RoleMember}
	pg := &principal.Principal{Kind: principal.KindUser, ID: "user-g", TenantID: globex, Plan: "pro", Role: principal.RoleMember}
	ca, cg := restServerAs(t, svc, pa), restServerAs(t, svc, pg)
	create := func(c *restClient) string {
		st, _, in := c.do("POST", "/api/lattices", map[string]any{"dims": []int{10, 10}})
		if st != 201 {
			t.Fatalf("create: %d %v", st, in)
		}
		return in["id"].(string)
	}
	a, g := create(ca), create(cg)
	for _, c := range []struct {
		c    *restClient
		want string
	}{{ca, a}, {cg, g}} {
		st, _, list := c.c.do("GET", "/api/lattices", nil)
		if ls, _ := list["lattices"].([]any); st != 200 || len(ls) != 1 || ls[0].(map[string]any)["id"] != c.want {
			t.Errorf("list shows %d %v, want only %s", st, list, c.want)
		}
	}
	reqs := []struct {
		method, suffix, op string
		body               any
	}{
		{"GET", "", "get", nil},
		{"POST", "/path", "path", map[string]any{"from": []int{0, 0}, "to": []int{1, 1}}},
		{"POST", "/transform", "transform", map[string]any{"points": [][]int{{0, 0}}, "transform": map[string]any{"kind": "reflect", "axis": 0}}},
		{"DELETE", "", "delete", nil},
	}
	for _, r := range reqs {
		st, h, foreign := ca.do(r.method, "/api/lattices/"+g+r.suffix, r.body)
		st2, h2, missing := ca.do(r.method, "/api/lattices/"+missingID+r.suffix, r.body)
		fb, mb := string(must(json.Marshal(foreign))), strings.ReplaceAll(string(must(json.Marshal(missing))), missingID, g)
		if st != 404 || st2 != 404 || errCode(foreign) != "not_found" || fb != mb || len(h) != len(h2) {
			t.Errorf("%s %s of another tenant's id: %d %s; of a missing id: %d %s", r.method, r.suffix, st, fb, st2, mb)
		}
		checkNotFoundAudited(t, log, acme, "key-a", principal.KindKey, "rest", r.op, g, missingID)
	}
	if st, _, out := cg.do("GET", "/api/lattices/"+g, nil); st != 200 {
		t.Errorf("globex's lattice after acme's delete: %d %v", st, out)
	}
	if st, _, out := restServer(t, svc).do("GET", "/api/lattices", nil); st != 403 || errCode(out) != "tenant_required" {
		t.Errorf("list without a principal: %d %v", st, out)
	}
	free := *pa
	free.Plan = "free"
	if st, _, out := restServerAs(t, svc, &free).do("POST", "/api/lattices", map[string]any{"dims": []int{100, 100}}); st != 422 || !strings.Contains(errMsg(out), `plan "free"`) {
		t.Errorf("create over the free plan: %d %v", st, out)
	}
}

// TestDefaultTenantAudit: without a principal the default tenant is used,
// and a not-found lookup is recorded as anonymous.
func TestDefaultTenantAudit(t *testing.T) {
	log := &auditLog{}
	var tenant string
	svc := newSvc(t, func(o *Options) { o.Audit = log.record; tenant = o.DefaultTenant })
	if _, err := svc.Get(bg, missingID); code(err) != CodeNotFound {
		t.Fatal(err)
	}
	checkNotFoundAudited(t, log, tenant, "", principal.KindAnonymous, "", "get", missingID)
	// Malformed ids are bad input, not lookups.
	if _, err := svc.Get(bg, "lat_x"); code(err) != CodeInvalidID {
		t.Fatal(err)
	}
	if got := log.take(); len(got) != 0 {
		t.Errorf("audit entries for a malformed id: %+v", got)
	}
}
