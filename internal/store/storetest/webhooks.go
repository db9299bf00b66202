package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// testWebhooks checks webhook endpoints (CRUD, tenant scoping), deliveries
// (enqueue idempotent by endpoint and event, claims leased to one owner at
// a time even under concurrent claimers, a lost lease refused, finishing,
// the attempt log, dead-letter retry, pruning) and cascades.
func testWebhooks(t *testing.T, s store.Store) {
	ctx := t.Context()
	ta, tb := mkTenant(t, s, "a"), mkTenant(t, s, "b")
	ep := &store.WebhookEndpoint{TenantID: ta.ID, URL: "https://hooks.example/a", Description: "ops", Events: []string{"key.created", "*"}, Secrets: []byte{1, 2, 3}}
	ok(t, s.CreateWebhookEndpoint(ctx, ep), "CreateWebhookEndpoint")
	if ep.ID == "" || ep.CreatedAt.IsZero() || ep.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreateWebhookEndpoint did not fill ID and CreatedAt (UTC): %+v", ep)
	}
	is(t, s.CreateWebhookEndpoint(ctx, &store.WebhookEndpoint{TenantID: "nope", URL: "https://x", Secrets: []byte{1}}), store.ErrNotFound, "CreateWebhookEndpoint of a missing tenant")
	if err := s.CreateWebhookEndpoint(ctx, &store.WebhookEndpoint{TenantID: ta.ID, URL: "https://x"}); err == nil {
		t.Error("CreateWebhookEndpoint without secrets succeeded")
	}
	epB := &store.WebhookEndpoint{TenantID: tb.ID, URL: "https://hooks.example/b", Events: []string{"*"}, AllTenants: true, Secrets: []byte{9}}
	ok(t, s.CreateWebhookEndpoint(ctx, epB), "CreateWebhookEndpoint b")

	got, err := s.GetWebhookEndpoint(ctx, ta.ID, ep.ID)
	ok(t, err, "GetWebhookEndpoint")
	diff(t, ep, got, "GetWebhookEndpoint")
	_, err = s.GetWebhookEndpoint(ctx, tb.ID, ep.ID)
	is(t, err, store.ErrNotFound, "GetWebhookEndpoint under another tenant")
	_, err = s.GetWebhookEndpoint(ctx, "", ep.ID)
	ok(t, err, "GetWebhookEndpoint of any tenant")
	all, err := s.ListWebhookEndpoints(ctx, "")
	ok(t, err, "ListWebhookEndpoints")
	if len(all) != 2 || all[0].ID != ep.ID {
		t.Errorf("ListWebhookEndpoints = %d endpoints, want 2 by creation", len(all))
	}
	mine, err := s.ListWebhookEndpoints(ctx, tb.ID)
	ok(t, err, "ListWebhookEndpoints b")
	diff(t, []store.WebhookEndpoint{*epB}, mine, "ListWebhookEndpoints b")

	ep.URL, ep.Disabled, ep.Secrets, ep.Events = "https://hooks.example/a2", true, []byte{4, 5}, []string{"quota.warning"}
	ok(t, s.UpdateWebhookEndpoint(ctx, ep), "UpdateWebhookEndpoint")
	got, _ = s.GetWebhookEndpoint(ctx, ta.ID, ep.ID)
	diff(t, ep, got, "endpoint after UpdateWebhookEndpoint")
	wrong := *ep
	wrong.TenantID = tb.ID
	is(t, s.UpdateWebhookEndpoint(ctx, &wrong), store.ErrNotFound, "UpdateWebhookEndpoint under another tenant")

	// Enqueue: once per (endpoint, event).
	dl := func(endpoint, event string) store.WebhookDelivery {
		return store.WebhookDelivery{EndpointID: endpoint, EventID: event, EventType: "key.created", Payload: []byte(`{"type":"key.created"}`)}
	}
	t0 := at(0)
	stored, err := s.EnqueueWebhookDeliveries(ctx, []store.WebhookDelivery{dl(ep.ID, "evt_1"), dl(epB.ID, "evt_1"), dl(ep.ID, "evt_2")})
	ok(t, err, "EnqueueWebhookDeliveries")
	if len(stored) != 3 || stored[0].TenantID != ta.ID || stored[1].TenantID != tb.ID || stored[0].State != store.DeliveryPending {
		t.Fatalf("EnqueueWebhookDeliveries stored %+v", stored)
	}
	again, err := s.EnqueueWebhookDeliveries(ctx, []store.WebhookDelivery{dl(ep.ID, "evt_1"), dl("gone", "evt_3")})
	ok(t, err, "EnqueueWebhookDeliveries again")
	if len(again) != 0 {
		t.Errorf("a repeated event or a missing endpoint was stored: %+v", again)
	}

	// Concurrent claimers: each delivery goes to exactly one.
	now := time.Now().Add(time.Hour)
	const workers = 6
	var mu sync.Mutex
	owners := map[string]string{}
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			owner := string(rune('A' + i))
			ds, err := s.ClaimWebhookDeliveries(ctx, owner, now, time.Minute, 10)
			if err != nil {
				t.Errorf("concurrent ClaimWebhookDeliveries: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range ds {
				if prev, dup := owners[d.ID]; dup {
					t.Errorf("delivery %s claimed by %s and %s", d.ID, prev, owner)
				}
				owners[d.ID] = owner
				if string(d.Payload) != `{"type":"key.created"}` || d.LeaseOwner != owner {
					t.Errorf("claimed delivery %+v lacks its payload or lease", d)
				}
			}
		})
	}
	wg.Wait()
	if len(owners) != 3 {
		t.Fatalf("claimed %d deliveries, want 3", len(owners))
	}
	none, err := s.ClaimWebhookDeliveries(ctx, "Z", now, time.Minute, 10)
	ok(t, err, "ClaimWebhookDeliveries while leased")
	if len(none) != 0 {
		t.Errorf("leased deliveries claimed again: %d", len(none))
	}
	// After the lease ends another process takes them over.
	later := now.Add(2 * time.Minute)
	taken, err := s.ClaimWebhookDeliveries(ctx, "Z", later, time.Minute, 10)
	ok(t, err, "ClaimWebhookDeliveries after the lease")
	if len(taken) != 3 {
		t.Fatalf("claimed %d deliveries after their leases ended, want 3", len(taken))
	}
	// The old owner's finish is refused; the new owner's is recorded.
	stale := taken[0]
	stale.LeaseOwner = owners[stale.ID]
	stale.State = store.DeliveryDelivered
	is(t, s.FinishWebhookDelivery(ctx, &stale, store.WebhookAttempt{N: 1, At: t0, Status: 200}), store.ErrConflict, "FinishWebhookDelivery with a lost lease")

	for _, x := range taken[1:] {
		x.State, x.DoneAt = store.DeliveryDelivered, t0
		ok(t, s.FinishWebhookDelivery(ctx, &x, store.WebhookAttempt{N: 1, At: t0, Status: 204}), "FinishWebhookDelivery (delivered)")
	}
	d2 := taken[1]
	d := taken[0]
	d.State, d.NextAt = store.DeliveryPending, later.Add(time.Minute)
	ok(t, s.FinishWebhookDelivery(ctx, &d, store.WebhookAttempt{N: 1, At: t0, Status: 503, Error: "503 Service Unavailable", DurationMS: 12}), "FinishWebhookDelivery (retry)")
	if ds, _ := s.ClaimWebhookDeliveries(ctx, "Y", later.Add(30*time.Second), time.Minute, 10); len(ds) != 0 {
		t.Errorf("a delivery was claimed before it was due: %+v", ds)
	}
	ds, err := s.ClaimWebhookDeliveries(ctx, "Y", later.Add(time.Minute), time.Minute, 10)
	ok(t, err, "ClaimWebhookDeliveries when due")
	if len(ds) != 1 || ds[0].ID != d.ID || ds[0].Attempts != 1 || ds[0].LastStatus != 503 {
		t.Fatalf("due delivery claimed as %+v", ds)
	}
	d = ds[0]
	d.State, d.DoneAt = store.DeliveryDead, t0
	ok(t, s.FinishWebhookDelivery(ctx, &d, store.WebhookAttempt{N: 2, At: t0, Error: "connection refused"}), "FinishWebhookDelivery (dead)")
	gd, as, err := s.GetWebhookDelivery(ctx, d.TenantID, d.ID)
	ok(t, err, "GetWebhookDelivery")
	if gd.State != store.DeliveryDead || gd.Attempts != 2 || gd.LastError != "connection refused" || !gd.DoneAt.Equal(t0) || len(gd.Payload) == 0 {
		t.Errorf("dead delivery = %+v", gd)
	}
	diff(t, []store.WebhookAttempt{
		{DeliveryID: d.ID, N: 1, At: t0.UTC(), Status: 503, Error: "503 Service Unavailable", DurationMS: 12},
		{DeliveryID: d.ID, N: 2, At: t0.UTC(), Error: "connection refused"},
	}, as, "attempt log")
	other := ta.ID
	if d.TenantID == ta.ID {
		other = tb.ID
	}
	_, _, err = s.GetWebhookDelivery(ctx, other, d.ID)
	is(t, err, store.ErrNotFound, "GetWebhookDelivery under another tenant")

	// The log: newest first, filtered.
	deadOnes, err := s.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{State: store.DeliveryDead})
	ok(t, err, "ListWebhookDeliveries dead")
	if len(deadOnes) != 1 || deadOnes[0].ID != d.ID || deadOnes[0].Payload != nil {
		t.Errorf("dead deliveries = %+v", deadOnes)
	}
	ofA, err := s.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{TenantID: ta.ID, EndpointID: ep.ID})
	ok(t, err, "ListWebhookDeliveries of an endpoint")
	if len(ofA) != 2 {
		t.Errorf("endpoint a has %d deliveries, want 2", len(ofA))
	}

	// A dead delivery can be retried; others can not.
	is(t, s.RetryWebhookDelivery(ctx, other, d.ID, time.Time{}), store.ErrNotFound, "RetryWebhookDelivery under another tenant")
	ok(t, s.RetryWebhookDelivery(ctx, d.TenantID, d.ID, later), "RetryWebhookDelivery")
	is(t, s.RetryWebhookDelivery(ctx, d.TenantID, d.ID, later), store.ErrConflict, "RetryWebhookDelivery of a pending one")

	// Claiming one by id: whatever it is due, unless leased or finished.
	one, err := s.ClaimWebhookDelivery(ctx, d.ID, "T", later, time.Minute)
	ok(t, err, "ClaimWebhookDelivery")
	if one.LeaseOwner != "T" || len(one.Payload) == 0 {
		t.Errorf("ClaimWebhookDelivery = %+v", one)
	}
	_, err = s.ClaimWebhookDelivery(ctx, d.ID, "U", later, time.Minute)
	is(t, err, store.ErrConflict, "ClaimWebhookDelivery of a leased delivery")
	_, err = s.ClaimWebhookDelivery(ctx, taken[1].ID, "U", later, time.Minute)
	is(t, err, store.ErrConflict, "ClaimWebhookDelivery of a delivered delivery")
	_, err = s.ClaimWebhookDelivery(ctx, "nope", "U", later, time.Minute)
	is(t, err, store.ErrNotFound, "ClaimWebhookDelivery of a missing delivery")

	// Pruning removes finished deliveries only.
	n, err := s.PruneWebhookDeliveries(ctx, t0.Add(time.Second))
	ok(t, err, "PruneWebhookDeliveries")
	if n != 2 {
		t.Errorf("PruneWebhookDeliveries removed %d, want 2", n)
	}
	_, _, err = s.GetWebhookDelivery(ctx, "", d2.ID)
	is(t, err, store.ErrNotFound, "a pruned delivery")

	// Deleting an endpoint removes its deliveries; deleting a tenant its
	// endpoints.
	is(t, s.DeleteWebhookEndpoint(ctx, tb.ID, ep.ID), store.ErrNotFound, "DeleteWebhookEndpoint under another tenant")
	ok(t, s.DeleteWebhookEndpoint(ctx, ta.ID, ep.ID), "DeleteWebhookEndpoint")
	left, _ := s.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{EndpointID: ep.ID})
	if len(left) != 0 {
		t.Errorf("a deleted endpoint kept %d deliveries", len(left))
	}
	ok(t, s.DeleteTenant(ctx, tb.ID), "DeleteTenant")
	if eps, _ := s.ListWebhookEndpoints(ctx, ""); len(eps) != 0 {
		t.Errorf("a deleted tenant kept its endpoints: %+v", eps)
	}
}
