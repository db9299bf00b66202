package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

func testFresh(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.Ping(ctx), "Ping")
	if k := s.Kind(); k != "sqlite" && k != "postgres" {
		t.Errorf("Kind() = %q, want sqlite or postgres", k)
	}
	v, err := s.SchemaVersion(ctx)
	ok(t, err, "SchemaVersion")
	if v < 1 {
		t.Errorf("SchemaVersion = %d on a migrated store, want >= 1", v)
	}
	n, err := s.CountTenants(ctx)
	ok(t, err, "CountTenants")
	if n != 0 {
		t.Errorf("CountTenants = %d on a fresh store, want 0", n)
	}
	seq, hash, err := s.AuditHead(ctx)
	ok(t, err, "AuditHead")
	if seq != 0 || hash != nil {
		t.Errorf("AuditHead = %d, %x on a fresh store, want 0, nil", seq, hash)
	}
	revs, err := s.RevocationsSince(ctx, 0, 0)
	ok(t, err, "RevocationsSince")
	if len(revs) != 0 {
		t.Errorf("RevocationsSince on a fresh store = %v, want none", revs)
	}
}

func testTenants(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := &store.Tenant{Name: "beta", Plan: "pro", Operator: true, IPAllowlist: []string{"10.0.0.0/8", "::1/128"}}
	ok(t, s.CreateTenant(ctx, b), "CreateTenant")
	if b.ID == "" || b.CreatedAt.IsZero() {
		t.Fatalf("CreateTenant did not fill ID and CreatedAt: %+v", b)
	}
	a := mkTenant(t, s, "alpha")
	if a.ID == b.ID {
		t.Fatal("two tenants got the same ID")
	}

	got, err := s.GetTenant(ctx, b.ID)
	ok(t, err, "GetTenant")
	diff(t, b, got, "GetTenant")
	got, err = s.GetTenantByName(ctx, "beta")
	ok(t, err, "GetTenantByName")
	diff(t, b, got, "GetTenantByName")

	_, err = s.GetTenant(ctx, store.NewID())
	is(t, err, store.ErrNotFound, "GetTenant of an unknown id")
	_, err = s.GetTenantByName(ctx, "gamma")
	is(t, err, store.ErrNotFound, "GetTenantByName of an unknown name")

	is(t, s.CreateTenant(ctx, &store.Tenant{Name: "beta"}), store.ErrConflict, "CreateTenant with a taken name")
	for _, bad := range []string{"", "Beta", "-x", "a b", "abcdefghijklmnopqrstuvwxyz0123456"} {
		if err := s.CreateTenant(ctx, &store.Tenant{Name: bad}); err == nil {
			t.Errorf("CreateTenant(%q) succeeded; names must match ^[a-z0-9][a-z0-9_-]{0,31}$", bad)
		}
	}

	list, err := s.ListTenants(ctx)
	ok(t, err, "ListTenants")
	diff(t, []store.Tenant{*a, *b}, list, "ListTenants (by name)")
	n, err := s.CountTenants(ctx)
	ok(t, err, "CountTenants")
	if n != 2 {
		t.Errorf("CountTenants = %d, want 2", n)
	}

	// UpdateTenant replaces Plan, Operator, IPAllowlist and Disabled only.
	upd := *b
	upd.Name, upd.CreatedAt = "renamed", time.Time{}
	upd.Plan, upd.Operator, upd.IPAllowlist, upd.Disabled = "free", false, nil, true
	ok(t, s.UpdateTenant(ctx, &upd), "UpdateTenant")
	got, err = s.GetTenant(ctx, b.ID)
	ok(t, err, "GetTenant after update")
	want := *b
	want.Plan, want.Operator, want.IPAllowlist, want.Disabled = "free", false, []string{}, true
	diff(t, &want, got, "tenant after UpdateTenant")
	is(t, s.UpdateTenant(ctx, &store.Tenant{ID: store.NewID(), Name: "x"}), store.ErrNotFound, "UpdateTenant of an unknown id")
	is(t, s.DeleteTenant(ctx, store.NewID()), store.ErrNotFound, "DeleteTenant of an unknown id")
}

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	ta, tb := mkTenant(t, s, "a"), mkTenant(t, s, "b")
	bob := mkUser(t, s, ta.ID, "bob", "admin")
	if bob.ID == "" || bob.CreatedAt.IsZero() {
		t.Fatalf("CreateUser did not fill ID and CreatedAt: %+v", bob)
	}
	alice := mkUser(t, s, ta.ID, "alice", "owner")
	other := mkUser(t, s, tb.ID, "bob", "viewer") // same name, other tenant: fine

	is(t, s.CreateUser(ctx, &store.User{TenantID: ta.ID, Name: "bob", Role: "viewer"}), store.ErrConflict, "CreateUser with a taken name")
	is(t, s.CreateUser(ctx, &store.User{TenantID: store.NewID(), Name: "x", Role: "viewer"}), store.ErrNotFound, "CreateUser in an unknown tenant")
	if err := s.CreateUser(ctx, &store.User{TenantID: ta.ID, Name: "x", Role: "superuser"}); err == nil {
		t.Error("CreateUser with role \"superuser\" succeeded; roles are viewer, member, admin, owner")
	}

	got, err := s.GetUser(ctx, ta.ID, bob.ID)
	ok(t, err, "GetUser")
	diff(t, bob, got, "GetUser")
	if got.PasswordHash != "$argon2id$x" {
		t.Errorf("PasswordHash = %q, want it stored", got.PasswordHash)
	}
	got, err = s.GetUserByName(ctx, tb.ID, "bob")
	ok(t, err, "GetUserByName")
	diff(t, other, got, "GetUserByName in the other tenant")

	// Another tenant's user is not found, never returned.
	_, err = s.GetUser(ctx, tb.ID, bob.ID)
	is(t, err, store.ErrNotFound, "GetUser across tenants")
	_, err = s.GetUserByName(ctx, tb.ID, "alice")
	is(t, err, store.ErrNotFound, "GetUserByName across tenants")
	is(t, s.UpdateUser(ctx, &store.User{TenantID: tb.ID, ID: bob.ID, Role: "owner"}), store.ErrNotFound, "UpdateUser across tenants")
	is(t, s.DeleteUser(ctx, tb.ID, bob.ID), store.ErrNotFound, "DeleteUser across tenants")

	list, err := s.ListUsers(ctx, ta.ID)
	ok(t, err, "ListUsers")
	diff(t, []store.User{*alice, *bob}, list, "ListUsers (by name)")

	// UpdateUser replaces Role, PasswordHash and Disabled only.
	upd := *bob
	upd.Name, upd.Role, upd.PasswordHash, upd.Disabled, upd.FailedLogins = "robert", "viewer", "", true, 7
	ok(t, s.UpdateUser(ctx, &upd), "UpdateUser")
	got, err = s.GetUser(ctx, ta.ID, bob.ID)
	ok(t, err, "GetUser after update")
	want := *bob
	want.Role, want.PasswordHash, want.Disabled = "viewer", "", true
	diff(t, &want, got, "user after UpdateUser")

	ok(t, s.DeleteUser(ctx, ta.ID, bob.ID), "DeleteUser")
	_, err = s.GetUser(ctx, ta.ID, bob.ID)
	is(t, err, store.ErrNotFound, "GetUser after DeleteUser")
	is(t, s.DeleteUser(ctx, ta.ID, bob.ID), store.ErrNotFound, "DeleteUser twice")
}

func testRecordLogin(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := mkTenant(t, s, "a")
	u := mkUser(t, s, tn.ID, "bob", "member")
	for i := 1; i <= 3; i++ {
		n, err := s.RecordLogin(ctx, u.ID, false, time.Time{})
		ok(t, err, "RecordLogin failure")
		if n != i {
			t.Fatalf("after %d failures RecordLogin returned %d", i, n)
		}
	}
	lock := at(5)
	n, err := s.RecordLogin(ctx, u.ID, false, lock)
	ok(t, err, "RecordLogin failure with lockout")
	if n != 4 {
		t.Errorf("RecordLogin = %d, want 4", n)
	}
	got, err := s.GetUser(ctx, tn.ID, u.ID)
	ok(t, err, "GetUser")
	if got.FailedLogins != 4 || !got.LockedUntil.Equal(lock) {
		t.Errorf("after 4 failures: FailedLogins=%d LockedUntil=%v, want 4, %v", got.FailedLogins, got.LockedUntil, lock)
	}

	// Concurrent failures are counted exactly.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := s.RecordLogin(ctx, u.ID, false, lock); err != nil {
				t.Errorf("concurrent RecordLogin: %v", err)
			}
		})
	}
	wg.Wait()
	got, err = s.GetUser(ctx, tn.ID, u.ID)
	ok(t, err, "GetUser")
	if got.FailedLogins != 14 {
		t.Errorf("after 14 failures (10 concurrent) FailedLogins = %d", got.FailedLogins)
	}

	n, err = s.RecordLogin(ctx, u.ID, true, at(9))
	ok(t, err, "RecordLogin success")
	if n != 0 {
		t.Errorf("RecordLogin success returned %d, want 0", n)
	}
	got, err = s.GetUser(ctx, tn.ID, u.ID)
	ok(t, err, "GetUser")
	if got.FailedLogins != 0 || !got.LockedUntil.IsZero() {
		t.Errorf("after a success: FailedLogins=%d LockedUntil=%v, want 0 and zero", got.FailedLogins, got.LockedUntil)
	}
	_, err = s.RecordLogin(ctx, store.NewID(), false, time.Time{})
	is(t, err, store.ErrNotFound, "RecordLogin of an unknown user")
}

func testLastOwner(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := mkTenant(t, s, "a")
	own := mkUser(t, s, tn.ID, "own", "owner")
	adm := mkUser(t, s, tn.ID, "adm", "admin")

	demote := *own
	demote.Role = "admin"
	is(t, s.UpdateUser(ctx, &demote), store.ErrLastOwner, "demoting the last owner")
	disable := *own
	disable.Disabled = true
	is(t, s.UpdateUser(ctx, &disable), store.ErrLastOwner, "disabling the last owner")
	is(t, s.DeleteUser(ctx, tn.ID, own.ID), store.ErrLastOwner, "deleting the last owner")
	// A disabled owner does not keep the tenant owned.
	mkUser(t, s, tn.ID, "sleeper", "owner")
	sl, err := s.GetUserByName(ctx, tn.ID, "sleeper")
	ok(t, err, "GetUserByName")
	sl.Disabled = true
	ok(t, s.UpdateUser(ctx, sl), "disabling one of two owners")
	is(t, s.DeleteUser(ctx, tn.ID, own.ID), store.ErrLastOwner, "deleting the last enabled owner")

	// Other users and other changes are not affected.
	ok(t, s.UpdateUser(ctx, own), "updating the last owner without demoting")
	ok(t, s.DeleteUser(ctx, tn.ID, adm.ID), "deleting a non-owner")

	// With a second owner, the first may go.
	mkUser(t, s, tn.ID, "own2", "owner")
	ok(t, s.UpdateUser(ctx, &demote), "demoting one of two owners")
	own2, err := s.GetUserByName(ctx, tn.ID, "own2")
	ok(t, err, "GetUserByName")
	is(t, s.DeleteUser(ctx, tn.ID, own2.ID), store.ErrLastOwner, "deleting the now last owner")
}

// testLastOwnerConcurrent removes the last two owners of a tenant at once
// (one demotion, one deletion), many times: exactly one may succeed.
func testLastOwnerConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	for round := range 10 {
		tn := mkTenant(t, s, fmt.Sprintf("round%d", round))
		a, b := mkUser(t, s, tn.ID, "a", "owner"), mkUser(t, s, tn.ID, "b", "owner")
		start := make(chan struct{})
		var wg sync.WaitGroup
		var errs [2]error
		wg.Go(func() {
			<-start
			u := *a
			u.Role = "member"
			errs[0] = s.UpdateUser(ctx, &u)
		})
		wg.Go(func() {
			<-start
			errs[1] = s.DeleteUser(ctx, tn.ID, b.ID)
		})
		close(start)
		wg.Wait()
		succeeded := 0
		for _, err := range errs {
			switch {
			case err == nil:
				succeeded++
			case !errors.Is(err, store.ErrLastOwner):
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if succeeded != 1 {
			t.Fatalf("round %d: %d of two concurrent removals of the last two owners succeeded (errors %v), want exactly 1", round, succeeded, errs)
		}
		users, err := s.ListUsers(ctx, tn.ID)
		ok(t, err, "ListUsers")
		owners := 0
		for _, u := range users {
			if u.Role == "owner" && !u.Disabled {
				owners++
			}
		}
		if owners != 1 {
			t.Fatalf("round %d: %d enabled owners left, want 1", round, owners)
		}
	}
}
