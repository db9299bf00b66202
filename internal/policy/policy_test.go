package policy

import (
	"context"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// fakeSource is a unit-test seam; the gateway's end-to-end tests use the
// real stores.
type fakeSource struct {
	version int64
	tenants []store.Tenant
	vss     map[string][]store.VirtualServer
	rules   map[string][]store.Rule
	plans   []store.Plan
}

func (f *fakeSource) PolicyVersion(context.Context) (int64, error)        { return f.version, nil }
func (f *fakeSource) ListTenants(context.Context) ([]store.Tenant, error) { return f.tenants, nil }
func (f *fakeSource) ListVirtualServers(_ context.Context, id string) ([]store.VirtualServer, error) {
	return f.vss[id], nil
}
func (f *fakeSource) ListRules(_ context.Context, id string) ([]store.Rule, error) {
	return f.rules[id], nil
}
func (f *fakeSource) ListPlans(context.Context) ([]store.Plan, error) { return f.plans, nil }

func TestAllowed(t *testing.T) {
	src := &fakeSource{
		version: 1,
		tenants: []store.Tenant{{ID: "a", Name: "a"}, {ID: "b", Name: "b"}, {ID: "off", Name: "off", Disabled: true}},
		vss: map[string][]store.VirtualServer{
			"a":   {{Upstreams: []string{"everything"}, Tools: []string{"everything__echo", "everything__get*"}}, {Upstreams: []string{"lattice"}}},
			"b":   {{Upstreams: []string{"*"}}},
			"off": {{Upstreams: []string{"*"}}},
		},
		rules: map[string][]store.Rule{
			"b": {
				{Tool: "everything__add", Effect: "deny", Roles: []string{"viewer", "member"}, Priority: 10},
				{Tool: "everything__add", Effect: "allow", Roles: []string{"admin", "owner"}},
				{Tool: "lattice__*", Effect: "allow", Scopes: []string{"lattice"}},
			},
		},
		plans: []store.Plan{{Name: "free", MonthlyQuota: 7}},
	}
	e := New(src, config.DefaultPlans(), nil)
	if err := e.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	pa := &principal.Principal{Kind: principal.KindKey, ID: "k1", TenantID: "a", Role: "member"}
	pb := &principal.Principal{Kind: principal.KindKey, ID: "k2", TenantID: "b", Role: "member"}
	pbAdmin := &principal.Principal{Kind: principal.KindKey, ID: "k3", TenantID: "b", Role: "admin"}
	pbLattice := &principal.Principal{Kind: principal.KindKey, ID: "k4", TenantID: "b", Role: "member", Scopes: []string{"mcp:call", "lattice"}}
	pOff := &principal.Principal{Kind: principal.KindKey, ID: "k5", TenantID: "off", Role: "owner"}
	pGone := &principal.Principal{Kind: principal.KindKey, ID: "k6", TenantID: "deleted", Role: "owner"}
	cases := []struct {
		p              *principal.Principal
		up, kind, name string
		want           bool
	}{
		{pa, "everything", "upstream", "", true},
		{pa, "everything", "tool", "echo", true},
		{pa, "everything", "tool", "getTinyImage", true},
		{pa, "everything", "tool", "add", false},
		{pa, "other", "upstream", "", false},
		{pa, "other", "tool", "x", false},
		{pa, "lattice", "tool", "lattice_path", true},
		{pa, "everything", "resource", "", true},
		{pb, "everything", "tool", "add", false},
		{pbAdmin, "everything", "tool", "add", true},
		{pb, "everything", "tool", "echo", true},
		{pb, "lattice", "tool", "lattice_path", false},
		{pbLattice, "lattice", "tool", "lattice_path", true},
		{pb, "mcpedge", "tool", "status", false},
		{&principal.Principal{Kind: principal.KindKey, TenantID: "b", Role: "owner", Operator: true}, "mcpedge", "tool", "status", true},
		{pOff, "everything", "tool", "echo", false},
		{pGone, "everything", "upstream", "", false},
		{nil, "everything", "upstream", "", false},
	}
	for _, c := range cases {
		if got := e.Allowed(c.p, c.up, c.kind, c.name); got != c.want {
			id := "<nil>"
			if c.p != nil {
				id = c.p.ID
			}
			t.Errorf("Allowed(%s, %s, %s, %s) = %v, want %v", id, c.up, c.kind, c.name, got, c.want)
		}
	}
	if q := e.Plan("free").MonthlyQuota; q != 7 {
		t.Errorf("store override not applied: quota %d", q)
	}
	if e.Plan("nonesuch").Name != "free" {
		t.Errorf("unknown plan should fall back to free")
	}

	// A change is picked up only when the version changes.
	src.vss["a"] = nil
	_ = e.Load(context.Background())
	if !e.Allowed(pa, "everything", "tool", "echo") {
		t.Fatal("reloaded without a version change")
	}
	src.version++
	_ = e.Load(context.Background())
	if e.Allowed(pa, "everything", "tool", "echo") {
		t.Fatal("version change not picked up")
	}
}
