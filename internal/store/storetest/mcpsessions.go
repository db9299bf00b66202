package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// testMCPSessions checks the client-session table: create once, read only
// while live, update only at the version read, touch never shortens,
// delete and purge, and a deleted tenant takes its sessions along.
func testMCPSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := mkTenant(t, s, "sess")
	later := time.Now().Add(time.Hour)
	m := &store.MCPSession{IDHash: "h1", TenantID: tn.ID, Binding: "b1", State: []byte(`{"v":1}`), ExpiresAt: later}
	ok(t, s.CreateMCPSession(ctx, m), "CreateMCPSession")
	if m.Version != 1 || m.CreatedAt.IsZero() || m.UpdatedAt.IsZero() {
		t.Fatalf("CreateMCPSession left %+v", m)
	}
	is(t, s.CreateMCPSession(ctx, &store.MCPSession{IDHash: "h1", Binding: "other", State: []byte(`{}`), ExpiresAt: later}), store.ErrConflict, "CreateMCPSession twice")
	got, err := s.GetMCPSession(ctx, "h1")
	ok(t, err, "GetMCPSession")
	if got.TenantID != tn.ID || got.Binding != "b1" || string(got.State) != `{"v":1}` || got.Version != 1 ||
		!got.ExpiresAt.Equal(m.ExpiresAt) || got.ExpiresAt.Location() != time.UTC {
		t.Fatalf("GetMCPSession = %+v, want %+v", got, m)
	}
	_, err = s.GetMCPSession(ctx, "nope")
	is(t, err, store.ErrNotFound, "GetMCPSession of an unknown session")
	for _, bad := range []*store.MCPSession{
		{IDHash: "", Binding: "b", State: []byte(`{}`), ExpiresAt: later},
		{IDHash: "x", Binding: "", State: []byte(`{}`), ExpiresAt: later},
		{IDHash: "x", Binding: "b", ExpiresAt: later},
		{IDHash: "x", Binding: "b", State: []byte(`{}`)},
	} {
		if err := s.CreateMCPSession(ctx, bad); err == nil {
			t.Errorf("CreateMCPSession accepted %+v", bad)
		}
	}

	// Updates: at the version read, once.
	a, b := *got, *got
	a.State = []byte(`{"v":2}`)
	ok(t, s.UpdateMCPSession(ctx, &a), "UpdateMCPSession")
	if a.Version != 2 {
		t.Errorf("UpdateMCPSession left version %d, want 2", a.Version)
	}
	b.State = []byte(`{"v":"lost"}`)
	is(t, s.UpdateMCPSession(ctx, &b), store.ErrConflict, "UpdateMCPSession at a stale version")
	got, err = s.GetMCPSession(ctx, "h1")
	ok(t, err, "GetMCPSession after update")
	if string(got.State) != `{"v":2}` || got.Version != 2 {
		t.Fatalf("after the updates: %+v", got)
	}
	is(t, s.UpdateMCPSession(ctx, &store.MCPSession{IDHash: "nope", Binding: "b", State: []byte(`{}`), ExpiresAt: later, Version: 1}), store.ErrNotFound, "UpdateMCPSession of an unknown session")

	// Concurrent updates at one version: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := range 4 {
		wg.Go(func() {
			c := *got
			c.State = []byte(`{"w":` + string(rune('0'+i)) + `}`)
			err := s.UpdateMCPSession(ctx, &c)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Errorf("concurrent UpdateMCPSession: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || conflicts != 3 {
		t.Errorf("concurrent updates at one version: %d won, %d conflicted; want 1 and 3", wins, conflicts)
	}

	// Touch extends, never shortens.
	further := later.Add(time.Hour)
	ok(t, s.TouchMCPSession(ctx, "h1", further), "TouchMCPSession")
	ok(t, s.TouchMCPSession(ctx, "h1", later), "TouchMCPSession earlier")
	got, _ = s.GetMCPSession(ctx, "h1")
	if !got.ExpiresAt.Equal(further.UTC().Truncate(time.Microsecond)) {
		t.Errorf("after touches: expires %v, want %v", got.ExpiresAt, further)
	}
	is(t, s.TouchMCPSession(ctx, "nope", further), store.ErrNotFound, "TouchMCPSession of an unknown session")

	// Expired sessions are gone for readers, and purged.
	ok(t, s.CreateMCPSession(ctx, &store.MCPSession{IDHash: "old", Binding: "b", State: []byte(`{}`), ExpiresAt: time.Now().Add(-time.Minute)}), "CreateMCPSession expired")
	_, err = s.GetMCPSession(ctx, "old")
	is(t, err, store.ErrNotFound, "GetMCPSession of an expired session")
	is(t, s.TouchMCPSession(ctx, "old", further), store.ErrNotFound, "TouchMCPSession of an expired session")
	n, err := s.PurgeMCPSessions(ctx, time.Now())
	ok(t, err, "PurgeMCPSessions")
	if n != 1 {
		t.Errorf("PurgeMCPSessions removed %d, want 1 (the expired one)", n)
	}
	_, err = s.GetMCPSession(ctx, "h1")
	ok(t, err, "the live session after a purge")

	// Delete.
	ok(t, s.DeleteMCPSession(ctx, "h1"), "DeleteMCPSession")
	is(t, s.DeleteMCPSession(ctx, "h1"), store.ErrNotFound, "DeleteMCPSession twice")
	_, err = s.GetMCPSession(ctx, "h1")
	is(t, err, store.ErrNotFound, "GetMCPSession after delete")

	// A deleted tenant's sessions go with it; another tenant's stay.
	other := mkTenant(t, s, "sess2")
	ok(t, s.CreateMCPSession(ctx, &store.MCPSession{IDHash: "t1", TenantID: tn.ID, Binding: "b", State: []byte(`{}`), ExpiresAt: later}), "CreateMCPSession t1")
	ok(t, s.CreateMCPSession(ctx, &store.MCPSession{IDHash: "t2", TenantID: other.ID, Binding: "b", State: []byte(`{}`), ExpiresAt: later}), "CreateMCPSession t2")
	ok(t, s.DeleteTenant(ctx, tn.ID), "DeleteTenant")
	_, err = s.GetMCPSession(ctx, "t1")
	is(t, err, store.ErrNotFound, "a deleted tenant's session")
	_, err = s.GetMCPSession(ctx, "t2")
	ok(t, err, "another tenant's session after DeleteTenant")
}
