package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

func testKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	ta, tb := mkTenant(t, s, "a"), mkTenant(t, s, "b")
	u := mkUser(t, s, ta.ID, "bob", "admin")

	k1 := newKey(ta.ID, "mk_aaaa")
	k1.UserID, k1.ExpiresAt = u.ID, at(30)
	ok(t, s.CreateKey(ctx, k1), "CreateKey")
	if k1.ID == "" || k1.CreatedAt.IsZero() {
		t.Fatalf("CreateKey did not fill ID and CreatedAt: %+v", k1)
	}
	time.Sleep(2 * time.Millisecond) // distinct CreatedAt for "newest first"
	k2 := mkKey(t, s, ta.ID, "mk_bbbb")
	kb := mkKey(t, s, tb.ID, "mk_cccc")

	dup := newKey(ta.ID, "mk_aaaa")
	dup.Hash = []byte("another hash")
	is(t, s.CreateKey(ctx, dup), store.ErrConflict, "CreateKey with a taken prefix")
	dup = newKey(tb.ID, "mk_dddd")
	dup.Hash = k1.Hash
	is(t, s.CreateKey(ctx, dup), store.ErrConflict, "CreateKey with a taken hash")
	is(t, s.CreateKey(ctx, newKey(store.NewID(), "mk_eeee")), store.ErrNotFound, "CreateKey in an unknown tenant")
	cross := newKey(tb.ID, "mk_ffff")
	cross.UserID = u.ID
	is(t, s.CreateKey(ctx, cross), store.ErrNotFound, "CreateKey for a user of another tenant")

	want := *k1
	want.ExpiresAt = k1.ExpiresAt.UTC()
	got, err := s.GetKeyByHash(ctx, []byte("hash-of-mk_aaaa"))
	ok(t, err, "GetKeyByHash")
	diff(t, &want, got, "GetKeyByHash")
	_, err = s.GetKeyByHash(ctx, []byte("nope"))
	is(t, err, store.ErrNotFound, "GetKeyByHash of an unknown hash")

	got, err = s.GetKey(ctx, ta.ID, k1.ID)
	ok(t, err, "GetKey")
	diff(t, &want, got, "GetKey")
	got, err = s.GetKey(ctx, "", kb.ID)
	ok(t, err, "GetKey in any tenant")
	diff(t, kb, got, "GetKey in any tenant")
	_, err = s.GetKey(ctx, tb.ID, k1.ID)
	is(t, err, store.ErrNotFound, "GetKey across tenants")

	got, err = s.GetKeyByPrefix(ctx, ta.ID, "mk_bbbb")
	ok(t, err, "GetKeyByPrefix")
	diff(t, k2, got, "GetKeyByPrefix")
	got, err = s.GetKeyByPrefix(ctx, "", "mk_cccc")
	ok(t, err, "GetKeyByPrefix in any tenant")
	diff(t, kb, got, "GetKeyByPrefix in any tenant")
	_, err = s.GetKeyByPrefix(ctx, ta.ID, "mk_cccc")
	is(t, err, store.ErrNotFound, "GetKeyByPrefix across tenants")

	list, err := s.ListKeys(ctx, ta.ID)
	ok(t, err, "ListKeys")
	diff(t, []store.APIKey{*k2, want}, list, "ListKeys (newest first)")

	// A key tied to a user goes with the user.
	ok(t, s.DeleteUser(ctx, ta.ID, u.ID), "DeleteUser")
	_, err = s.GetKey(ctx, ta.ID, k1.ID)
	is(t, err, store.ErrNotFound, "GetKey of a deleted user's key")
}

func testRevokeKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	ta, tb := mkTenant(t, s, "a"), mkTenant(t, s, "b")
	k := mkKey(t, s, ta.ID, "mk_aaaa")

	is(t, s.RevokeKey(ctx, tb.ID, k.ID, at(1)), store.ErrNotFound, "RevokeKey across tenants")
	is(t, s.RevokeKey(ctx, ta.ID, store.NewID(), at(1)), store.ErrNotFound, "RevokeKey of an unknown key")
	revoked, err := s.IsRevoked(ctx, "key", k.ID)
	ok(t, err, "IsRevoked")
	if revoked {
		t.Fatal("IsRevoked before RevokeKey = true")
	}

	ok(t, s.RevokeKey(ctx, ta.ID, k.ID, at(1)), "RevokeKey")
	ok(t, s.RevokeKey(ctx, ta.ID, k.ID, at(2)), "RevokeKey again")
	got, err := s.GetKey(ctx, ta.ID, k.ID)
	ok(t, err, "GetKey")
	if !got.RevokedAt.Equal(at(1)) {
		t.Errorf("RevokedAt = %v after two revocations, want the first time %v", got.RevokedAt, at(1))
	}
	// A revoked key is still found by its hash: the caller decides.
	_, err = s.GetKeyByHash(ctx, k.Hash)
	ok(t, err, "GetKeyByHash of a revoked key")

	revoked, err = s.IsRevoked(ctx, "key", k.ID)
	ok(t, err, "IsRevoked")
	if !revoked {
		t.Error("IsRevoked(key) = false after RevokeKey")
	}
	revs, err := s.RevocationsSince(ctx, 0, 0)
	ok(t, err, "RevocationsSince")
	if len(revs) != 1 || revs[0].Kind != "key" || revs[0].Subject != k.ID || !revs[0].At.Equal(at(1)) {
		t.Errorf("revocations after revoking a key twice = %+v, want one of kind key for %s at %v", revs, k.ID, at(1))
	}
}

func testRotateKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	ta, tb := mkTenant(t, s, "a"), mkTenant(t, s, "b")
	old := newKey(ta.ID, "mk_old1")
	old.ExpiresAt = at(50)
	ok(t, s.CreateKey(ctx, old), "CreateKey")

	next := newKey("", "mk_new1")
	is(t, s.RotateKey(ctx, tb.ID, old.ID, next, at(10)), store.ErrNotFound, "RotateKey across tenants")
	if next.ID != "" {
		t.Errorf("a failed RotateKey left next.ID = %q", next.ID)
	}
	ok(t, s.RotateKey(ctx, ta.ID, old.ID, next, at(10)), "RotateKey")
	if next.ID == "" || next.CreatedAt.IsZero() || next.TenantID != ta.ID {
		t.Fatalf("RotateKey did not fill the new key: %+v", next)
	}
	got, err := s.GetKey(ctx, ta.ID, old.ID)
	ok(t, err, "GetKey old")
	if got.RotatedTo != next.ID || !got.ExpiresAt.Equal(at(10)) {
		t.Errorf("old key after rotation: RotatedTo=%q ExpiresAt=%v, want %q, %v", got.RotatedTo, got.ExpiresAt, next.ID, at(10))
	}
	gotNext, err := s.GetKeyByHash(ctx, next.Hash)
	ok(t, err, "GetKeyByHash of the new key")
	diff(t, next, gotNext, "the new key")

	// old.ExpiresAt = min(old.ExpiresAt, oldExpires): a later grace
	// period does not extend a key.
	k2 := newKey(ta.ID, "mk_old2")
	k2.ExpiresAt = at(5)
	ok(t, s.CreateKey(ctx, k2), "CreateKey")
	ok(t, s.RotateKey(ctx, ta.ID, k2.ID, newKey(ta.ID, "mk_new2"), at(20)), "RotateKey")
	got, err = s.GetKey(ctx, ta.ID, k2.ID)
	ok(t, err, "GetKey")
	if !got.ExpiresAt.Equal(at(5)) {
		t.Errorf("ExpiresAt = %v after rotating with a later grace, want the earlier %v", got.ExpiresAt, at(5))
	}
	// A key that never expired gets the grace period.
	k3 := mkKey(t, s, ta.ID, "mk_old3")
	ok(t, s.RotateKey(ctx, ta.ID, k3.ID, newKey(ta.ID, "mk_new3"), at(20)), "RotateKey")
	got, err = s.GetKey(ctx, ta.ID, k3.ID)
	ok(t, err, "GetKey")
	if !got.ExpiresAt.Equal(at(20)) {
		t.Errorf("ExpiresAt = %v after rotating a key without expiry, want %v", got.ExpiresAt, at(20))
	}

	// Atomic: a successor that can not be stored leaves the old key as it was.
	k4 := mkKey(t, s, ta.ID, "mk_old4")
	is(t, s.RotateKey(ctx, ta.ID, k4.ID, newKey(ta.ID, "mk_new1"), at(20)), store.ErrConflict, "RotateKey to a taken prefix")
	got, err = s.GetKey(ctx, ta.ID, k4.ID)
	ok(t, err, "GetKey")
	if got.RotatedTo != "" || !got.ExpiresAt.IsZero() {
		t.Errorf("a failed rotation changed the old key: %+v", got)
	}
	// Rotating twice would fork the key's successors.
	is(t, s.RotateKey(ctx, ta.ID, old.ID, newKey(ta.ID, "mk_new5"), at(20)), store.ErrConflict, "rotating a rotated key")
}

func testTouchKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := mkTenant(t, s, "a")
	k1, k2 := mkKey(t, s, tn.ID, "mk_aaaa"), mkKey(t, s, tn.ID, "mk_bbbb")
	ok(t, s.TouchKeys(ctx, nil), "TouchKeys(nil)")
	ok(t, s.TouchKeys(ctx, map[string]time.Time{k1.ID: at(10), k2.ID: at(20), store.NewID(): at(30)}), "TouchKeys")
	ok(t, s.TouchKeys(ctx, map[string]time.Time{k1.ID: at(5), k2.ID: at(25)}), "TouchKeys with an older time")
	for id, want := range map[string]time.Time{k1.ID: at(10), k2.ID: at(25)} {
		got, err := s.GetKey(ctx, tn.ID, id)
		ok(t, err, "GetKey")
		if !got.LastUsedAt.Equal(want) {
			t.Errorf("LastUsedAt = %v, want %v (the latest time)", got.LastUsedAt, want)
		}
	}
	// Concurrent batches over the same keys neither fail nor go back.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			m := map[string]time.Time{k1.ID: at(30 + i), k2.ID: at(40 - i)}
			if err := s.TouchKeys(ctx, m); err != nil {
				t.Errorf("concurrent TouchKeys: %v", err)
			}
		})
	}
	wg.Wait()
	for id, want := range map[string]time.Time{k1.ID: at(37), k2.ID: at(40)} {
		got, err := s.GetKey(ctx, tn.ID, id)
		ok(t, err, "GetKey")
		if !got.LastUsedAt.Equal(want) {
			t.Errorf("after concurrent touches LastUsedAt = %v, want %v", got.LastUsedAt, want)
		}
	}
}

func testRefreshTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := mkTenant(t, s, "a")
	u := mkUser(t, s, tn.ID, "bob", "member")
	t1 := &store.RefreshToken{UserID: u.ID, TenantID: tn.ID, Hash: []byte("t1"), ExpiresAt: at(59)}
	ok(t, s.CreateRefreshToken(ctx, t1), "CreateRefreshToken")
	if t1.ID == "" || t1.FamilyID == "" || t1.CreatedAt.IsZero() {
		t.Fatalf("CreateRefreshToken did not fill ID, FamilyID, CreatedAt: %+v", t1)
	}
	is(t, s.CreateRefreshToken(ctx, &store.RefreshToken{UserID: u.ID, TenantID: tn.ID, Hash: []byte("t1")}), store.ErrConflict, "CreateRefreshToken with a taken hash")

	before := *t1
	before.ExpiresAt = before.ExpiresAt.UTC()
	got, err := s.UseRefreshToken(ctx, []byte("t1"), at(2))
	ok(t, err, "UseRefreshToken")
	diff(t, &before, got, "UseRefreshToken returns the token as it was")

	// The rotated successor, same family.
	t2 := &store.RefreshToken{FamilyID: t1.FamilyID, UserID: u.ID, TenantID: tn.ID, Hash: []byte("t2"), ExpiresAt: at(59)}
	ok(t, s.CreateRefreshToken(ctx, t2), "CreateRefreshToken t2")
	other := &store.RefreshToken{UserID: u.ID, TenantID: tn.ID, Hash: []byte("other")}
	ok(t, s.CreateRefreshToken(ctx, other), "CreateRefreshToken of another login")

	// Presenting t1 again: reuse; the whole family is revoked.
	got, err = s.UseRefreshToken(ctx, []byte("t1"), at(3))
	is(t, err, store.ErrReused, "using a token twice")
	if got == nil || got.ID != t1.ID || !got.UsedAt.Equal(at(2)) {
		t.Errorf("UseRefreshToken on reuse returned %+v, want the token, used at %v", got, at(2))
	}
	revoked, err := s.IsRevoked(ctx, "token_family", t1.FamilyID)
	ok(t, err, "IsRevoked")
	if !revoked {
		t.Error("reuse did not record a token_family revocation")
	}
	_, err = s.UseRefreshToken(ctx, []byte("t2"), at(4))
	is(t, err, store.ErrReused, "using an unused token of a revoked family")
	_, err = s.UseRefreshToken(ctx, []byte("other"), at(4))
	ok(t, err, "using a token of another family")

	_, err = s.UseRefreshToken(ctx, []byte("nope"), at(4))
	is(t, err, store.ErrNotFound, "UseRefreshToken of an unknown token")

	// Of many concurrent uses of one token, exactly one succeeds.
	t3 := &store.RefreshToken{UserID: u.ID, TenantID: tn.ID, Hash: []byte("t3")}
	ok(t, s.CreateRefreshToken(ctx, t3), "CreateRefreshToken t3")
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			_, err := s.UseRefreshToken(ctx, []byte("t3"), at(5))
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, store.ErrReused):
				t.Errorf("concurrent UseRefreshToken: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d concurrent uses of one refresh token succeeded, want 1", wins)
	}

	// RevokeFamily.
	t4 := &store.RefreshToken{UserID: u.ID, TenantID: tn.ID, Hash: []byte("t4")}
	ok(t, s.CreateRefreshToken(ctx, t4), "CreateRefreshToken t4")
	ok(t, s.RevokeFamily(ctx, t4.FamilyID, at(6)), "RevokeFamily")
	_, err = s.UseRefreshToken(ctx, []byte("t4"), at(7))
	is(t, err, store.ErrReused, "using a token of a revoked family")
	revoked, err = s.IsRevoked(ctx, "token_family", t4.FamilyID)
	ok(t, err, "IsRevoked")
	if !revoked {
		t.Error("RevokeFamily did not record a token_family revocation")
	}
}

func testRevokeUserSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := mkTenant(t, s, "a")
	u, v := mkUser(t, s, tn.ID, "bob", "member"), mkUser(t, s, tn.ID, "eve", "member")
	for _, h := range []string{"u1", "u2"} {
		ok(t, s.CreateRefreshToken(ctx, &store.RefreshToken{UserID: u.ID, TenantID: tn.ID, Hash: []byte(h)}), "CreateRefreshToken")
	}
	ok(t, s.CreateRefreshToken(ctx, &store.RefreshToken{UserID: v.ID, TenantID: tn.ID, Hash: []byte("v1")}), "CreateRefreshToken")
	ok(t, s.RevokeUserSessions(ctx, u.ID, at(1)), "RevokeUserSessions")
	for _, h := range []string{"u1", "u2"} {
		_, err := s.UseRefreshToken(ctx, []byte(h), at(2))
		is(t, err, store.ErrReused, "using a token of a user whose sessions were revoked")
	}
	_, err := s.UseRefreshToken(ctx, []byte("v1"), at(2))
	ok(t, err, "using another user's token")
	revoked, err := s.IsRevoked(ctx, "user", u.ID)
	ok(t, err, "IsRevoked")
	if !revoked {
		t.Error("RevokeUserSessions did not record a user revocation")
	}
	revoked, err = s.IsRevoked(ctx, "user", v.ID)
	ok(t, err, "IsRevoked")
	if revoked {
		t.Error("RevokeUserSessions revoked another user")
	}
}
