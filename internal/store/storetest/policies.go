package storetest

import (
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
)

func testPlans(t *testing.T, s store.Store) {
	ctx := t.Context()
	pro := &store.Plan{Name: "pro", KeyPerMinute: 600, KeyBurst: 60, TenantPerMinute: 6000, TenantBurst: 600,
		IPPerMinute: 100, IPBurst: 10, MonthlyQuota: 1_000_000, LatticeMaxPoints: 1 << 20, LatticeTimeoutMS: 5000}
	ok(t, s.PutPlan(ctx, pro), "PutPlan")
	if pro.UpdatedAt.IsZero() {
		t.Error("PutPlan did not fill UpdatedAt")
	}
	free := &store.Plan{Name: "free", KeyPerMinute: 60}
	ok(t, s.PutPlan(ctx, free), "PutPlan")
	list, err := s.ListPlans(ctx)
	ok(t, err, "ListPlans")
	diff(t, []store.Plan{*free, *pro}, list, "ListPlans (by name)")

	pro2 := &store.Plan{Name: "pro", KeyPerMinute: 1}
	ok(t, s.PutPlan(ctx, pro2), "PutPlan replacing")
	list, err = s.ListPlans(ctx)
	ok(t, err, "ListPlans")
	diff(t, []store.Plan{*free, *pro2}, list, "ListPlans after replacing pro")

	ok(t, s.DeletePlan(ctx, "pro"), "DeletePlan")
	is(t, s.DeletePlan(ctx, "pro"), store.ErrNotFound, "DeletePlan twice")
	list, err = s.ListPlans(ctx)
	ok(t, err, "ListPlans")
	diff(t, []store.Plan{*free}, list, "ListPlans after delete")
}

func testVirtualServers(t *testing.T, s store.Store) {
	ctx := t.Context()
	ta, tb := mkTenant(t, s, "a"), mkTenant(t, s, "b")
	web := &store.VirtualServer{TenantID: ta.ID, Name: "web", Upstreams: []string{"*"}}
	ok(t, s.CreateVirtualServer(ctx, web), "CreateVirtualServer")
	if web.ID == "" || web.CreatedAt.IsZero() {
		t.Fatalf("CreateVirtualServer did not fill ID, CreatedAt: %+v", web)
	}
	api := &store.VirtualServer{TenantID: ta.ID, Name: "api", Upstreams: []string{"everything", "fs"}, Tools: []string{"everything__get*"}}
	ok(t, s.CreateVirtualServer(ctx, api), "CreateVirtualServer")
	ok(t, s.CreateVirtualServer(ctx, &store.VirtualServer{TenantID: tb.ID, Name: "web"}), "same name, other tenant")
	is(t, s.CreateVirtualServer(ctx, &store.VirtualServer{TenantID: ta.ID, Name: "web"}), store.ErrConflict, "CreateVirtualServer with a taken name")
	is(t, s.CreateVirtualServer(ctx, &store.VirtualServer{TenantID: store.NewID(), Name: "x"}), store.ErrNotFound, "CreateVirtualServer in an unknown tenant")

	list, err := s.ListVirtualServers(ctx, ta.ID)
	ok(t, err, "ListVirtualServers")
	webWant := *web
	webWant.Tools = []string{}
	diff(t, []store.VirtualServer{*api, webWant}, list, "ListVirtualServers (by name)")

	upd := *web
	upd.Name, upd.Upstreams, upd.Tools = "renamed", []string{"fs"}, []string{"fs__read"}
	ok(t, s.UpdateVirtualServer(ctx, &upd), "UpdateVirtualServer")
	cross := upd
	cross.TenantID = tb.ID
	is(t, s.UpdateVirtualServer(ctx, &cross), store.ErrNotFound, "UpdateVirtualServer across tenants")
	list, err = s.ListVirtualServers(ctx, ta.ID)
	ok(t, err, "ListVirtualServers")
	webWant.Upstreams, webWant.Tools = []string{"fs"}, []string{"fs__read"}
	diff(t, []store.VirtualServer{*api, webWant}, list, "ListVirtualServers after update (Name unchanged)")

	is(t, s.DeleteVirtualServer(ctx, tb.ID, web.ID), store.ErrNotFound, "DeleteVirtualServer across tenants")
	ok(t, s.DeleteVirtualServer(ctx, ta.ID, web.ID), "DeleteVirtualServer")
	is(t, s.DeleteVirtualServer(ctx, ta.ID, web.ID), store.ErrNotFound, "DeleteVirtualServer twice")
}

func testRules(t *testing.T, s store.Store) {
	ctx := t.Context()
	ta, tb := mkTenant(t, s, "a"), mkTenant(t, s, "b")
	mk := func(tenantID, tool, effect string, prio int) *store.Rule {
		r := &store.Rule{TenantID: tenantID, Tool: tool, Effect: effect, Priority: prio, Roles: []string{"member"}}
		ok(t, s.CreateRule(ctx, r), "CreateRule")
		if r.ID == "" || r.CreatedAt.IsZero() {
			t.Fatalf("CreateRule did not fill ID, CreatedAt: %+v", r)
		}
		return r
	}
	low := mk(ta.ID, "*", "allow", 0)
	hiAllow := mk(ta.ID, "fs__*", "allow", 10)
	hiDeny := mk(ta.ID, "fs__write", "deny", 10)
	mid1 := mk(ta.ID, "a", "allow", 5)
	mid2 := mk(ta.ID, "b", "allow", 5)
	mk(tb.ID, "*", "deny", 100)
	if err := s.CreateRule(ctx, &store.Rule{TenantID: ta.ID, Tool: "x", Effect: "maybe"}); err == nil {
		t.Error("CreateRule with effect \"maybe\" succeeded")
	}
	is(t, s.CreateRule(ctx, &store.Rule{TenantID: store.NewID(), Tool: "x", Effect: "deny"}), store.ErrNotFound, "CreateRule in an unknown tenant")

	mids := []store.Rule{*mid1, *mid2}
	if mid2.ID < mid1.ID {
		mids = []store.Rule{*mid2, *mid1}
	}
	list, err := s.ListRules(ctx, ta.ID)
	ok(t, err, "ListRules")
	diff(t, []store.Rule{*hiDeny, *hiAllow, mids[0], mids[1], *low}, list, "ListRules (priority desc, deny first, then id)")

	is(t, s.DeleteRule(ctx, tb.ID, low.ID), store.ErrNotFound, "DeleteRule across tenants")
	ok(t, s.DeleteRule(ctx, ta.ID, low.ID), "DeleteRule")
	is(t, s.DeleteRule(ctx, ta.ID, low.ID), store.ErrNotFound, "DeleteRule twice")
}

func testPolicyVersion(t *testing.T, s store.Store) {
	ctx := t.Context()
	last, err := s.PolicyVersion(ctx)
	ok(t, err, "PolicyVersion")
	changed := func(what string) {
		t.Helper()
		v, err := s.PolicyVersion(ctx)
		ok(t, err, "PolicyVersion")
		if v == last {
			t.Errorf("PolicyVersion did not change after %s (still %d)", what, v)
		}
		last = v
	}
	tn := mkTenant(t, s, "a")
	changed("CreateTenant")
	tn.Plan = "pro"
	ok(t, s.UpdateTenant(ctx, tn), "UpdateTenant")
	changed("UpdateTenant")
	u := mkUser(t, s, tn.ID, "bob", "owner")
	changed("CreateUser")
	mkUser(t, s, tn.ID, "eve", "owner")
	changed("CreateUser")
	u.Role = "admin"
	ok(t, s.UpdateUser(ctx, u), "UpdateUser")
	changed("UpdateUser")
	ok(t, s.DeleteUser(ctx, tn.ID, u.ID), "DeleteUser")
	changed("DeleteUser")
	ok(t, s.PutPlan(ctx, &store.Plan{Name: "pro"}), "PutPlan")
	changed("PutPlan")
	ok(t, s.DeletePlan(ctx, "pro"), "DeletePlan")
	changed("DeletePlan")
	vs := &store.VirtualServer{TenantID: tn.ID, Name: "web"}
	ok(t, s.CreateVirtualServer(ctx, vs), "CreateVirtualServer")
	changed("CreateVirtualServer")
	vs.Upstreams = []string{"x"}
	ok(t, s.UpdateVirtualServer(ctx, vs), "UpdateVirtualServer")
	changed("UpdateVirtualServer")
	ok(t, s.DeleteVirtualServer(ctx, tn.ID, vs.ID), "DeleteVirtualServer")
	changed("DeleteVirtualServer")
	r := &store.Rule{TenantID: tn.ID, Tool: "*", Effect: "deny"}
	ok(t, s.CreateRule(ctx, r), "CreateRule")
	changed("CreateRule")
	ok(t, s.DeleteRule(ctx, tn.ID, r.ID), "DeleteRule")
	changed("DeleteRule")
	ok(t, s.DeleteTenant(ctx, tn.ID), "DeleteTenant")
	changed("DeleteTenant")

	// A failed change is not a change.
	is(t, s.DeleteRule(ctx, tn.ID, r.ID), store.ErrNotFound, "DeleteRule of a deleted rule")
	v, err := s.PolicyVersion(ctx)
	ok(t, err, "PolicyVersion")
	if v != last {
		t.Errorf("PolicyVersion changed from %d to %d after a failed change", last, v)
	}
}
