package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

func testDeleteTenant(t *testing.T, s store.Store) {
	ctx := t.Context()
	gone, kept := mkTenant(t, s, "gone"), mkTenant(t, s, "kept")
	for _, tn := range []*store.Tenant{gone, kept} {
		u := mkUser(t, s, tn.ID, "bob", "owner")
		k := mkKey(t, s, tn.ID, "mk_"+tn.Name)
		ok(t, s.CreateRefreshToken(ctx, &store.RefreshToken{UserID: u.ID, TenantID: tn.ID, Hash: []byte("rt-" + tn.Name)}), "CreateRefreshToken")
		ok(t, s.CreateVirtualServer(ctx, &store.VirtualServer{TenantID: tn.ID, Name: "web"}), "CreateVirtualServer")
		ok(t, s.CreateRule(ctx, &store.Rule{TenantID: tn.ID, Tool: "*", Effect: "allow"}), "CreateRule")
		ok(t, s.CreateLattice(ctx, &store.Lattice{TenantID: tn.ID, Name: "l", Spec: []byte(`{}`)}), "CreateLattice")
		_, err := s.AddUsage(ctx, tn.ID, "2026-11", 7)
		ok(t, err, "AddUsage")
		ok(t, s.AppendAudit(ctx, []*store.AuditEntry{entry(tn.ID, k.ID, "key.create")}, Seal), "AppendAudit")
	}
	goneKey, err := s.GetKeyByPrefix(ctx, gone.ID, "mk_gone")
	ok(t, err, "GetKeyByPrefix")
	goneUser, err := s.GetUserByName(ctx, gone.ID, "bob")
	ok(t, err, "GetUserByName")

	ok(t, s.DeleteTenant(ctx, gone.ID), "DeleteTenant")

	_, err = s.GetTenant(ctx, gone.ID)
	is(t, err, store.ErrNotFound, "GetTenant after delete")
	_, err = s.GetUser(ctx, gone.ID, goneUser.ID)
	is(t, err, store.ErrNotFound, "GetUser of a deleted tenant")
	_, err = s.GetKeyByHash(ctx, goneKey.Hash)
	is(t, err, store.ErrNotFound, "GetKeyByHash of a deleted tenant's key")
	_, err = s.UseRefreshToken(ctx, []byte("rt-gone"), at(1))
	is(t, err, store.ErrNotFound, "UseRefreshToken of a deleted tenant")
	counts := func(tenantID string) [5]int {
		vs, err := s.ListVirtualServers(ctx, tenantID)
		ok(t, err, "ListVirtualServers")
		rules, err := s.ListRules(ctx, tenantID)
		ok(t, err, "ListRules")
		ls, err := s.CountLattices(ctx, tenantID)
		ok(t, err, "CountLattices")
		keys, err := s.ListKeys(ctx, tenantID)
		ok(t, err, "ListKeys")
		n, err := s.GetUsage(ctx, tenantID, "2026-11")
		ok(t, err, "GetUsage")
		return [5]int{len(vs), len(rules), ls, len(keys), int(n)}
	}
	if c := counts(gone.ID); c != [5]int{} {
		t.Errorf("after DeleteTenant: virtual servers, rules, lattices, keys, usage = %v, want all 0", c)
	}
	if c := counts(kept.ID); c != [5]int{1, 1, 1, 1, 7} {
		t.Errorf("another tenant lost data: %v, want [1 1 1 1 7]", c)
	}
	// The credentials' replicas learn that they stopped being valid.
	for kind, id := range map[string]string{"key": goneKey.ID, "user": goneUser.ID} {
		revoked, err := s.IsRevoked(ctx, kind, id)
		ok(t, err, "IsRevoked")
		if !revoked {
			t.Errorf("DeleteTenant did not record a %s revocation", kind)
		}
	}
	// Audit entries are append-only and survive.
	entries, err := s.ListAudit(ctx, store.AuditFilter{TenantID: gone.ID})
	ok(t, err, "ListAudit")
	if len(entries) != 1 {
		t.Errorf("%d audit entries of the deleted tenant, want 1 (kept)", len(entries))
	}
	is(t, s.DeleteTenant(ctx, gone.ID), store.ErrNotFound, "DeleteTenant twice")
	// The name is free again.
	mkTenant(t, s, "gone")
}

// testTimesUTC checks that every time.Time the store returns is in UTC,
// including times the caller passed in another zone.
func testTimesUTC(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := mkTenant(t, s, "a")
	u := mkUser(t, s, tn.ID, "bob", "owner")
	_, err := s.RecordLogin(ctx, u.ID, false, at(1))
	ok(t, err, "RecordLogin")
	k := newKey(tn.ID, "mk_aaaa")
	k.ExpiresAt = at(2)
	ok(t, s.CreateKey(ctx, k), "CreateKey")
	ok(t, s.TouchKeys(ctx, map[string]time.Time{k.ID: at(3)}), "TouchKeys")
	ok(t, s.RevokeKey(ctx, tn.ID, k.ID, at(4)), "RevokeKey")
	ok(t, s.CreateRefreshToken(ctx, &store.RefreshToken{UserID: u.ID, TenantID: tn.ID, Hash: []byte("r"), ExpiresAt: at(5)}), "CreateRefreshToken")
	tok, err := s.UseRefreshToken(ctx, []byte("r"), at(6))
	ok(t, err, "UseRefreshToken")
	ok(t, s.PutPlan(ctx, &store.Plan{Name: "p"}), "PutPlan")
	e := entry(tn.ID, "a", "b")
	e.Time = at(7)
	ok(t, s.AppendAudit(ctx, []*store.AuditEntry{e}, Seal), "AppendAudit")

	gotT, err := s.GetTenant(ctx, tn.ID)
	ok(t, err, "GetTenant")
	gotU, err := s.GetUser(ctx, tn.ID, u.ID)
	ok(t, err, "GetUser")
	gotK, err := s.GetKey(ctx, tn.ID, k.ID)
	ok(t, err, "GetKey")
	plans, err := s.ListPlans(ctx)
	ok(t, err, "ListPlans")
	revs, err := s.RevocationsSince(ctx, 0, 0)
	ok(t, err, "RevocationsSince")
	audit, err := s.ListAudit(ctx, store.AuditFilter{})
	ok(t, err, "ListAudit")

	if !gotU.LockedUntil.Equal(at(1)) || !gotK.ExpiresAt.Equal(at(2)) || !gotK.LastUsedAt.Equal(at(3)) ||
		!gotK.RevokedAt.Equal(at(4)) || !tok.ExpiresAt.Equal(at(5)) || !audit[0].Time.Equal(at(7)) {
		t.Errorf("a time changed on the way through the store (microseconds must survive)")
	}
	for _, v := range []any{gotT, gotU, gotK, tok, plans, revs, audit} {
		checkUTC(t, reflect.ValueOf(v), reflect.TypeOf(v).String())
	}
}

var timeType = reflect.TypeFor[time.Time]()

func checkUTC(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			checkUTC(t, v.Elem(), path)
		}
	case reflect.Slice:
		for i := range v.Len() {
			checkUTC(t, v.Index(i), path)
		}
	case reflect.Struct:
		if v.Type() == timeType {
			tm := v.Interface().(time.Time)
			if !tm.IsZero() && tm.Location() != time.UTC {
				t.Errorf("%s is %v, not in UTC", path, tm)
			}
			return
		}
		for i := range v.NumField() {
			checkUTC(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	}
}
