package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

// testDevices checks the hub's device registry: create and update by id,
// a key change refused, lookup by credential, telemetry's compare-and-set
// of the audit sequence, tenant scoping and deletion with the tenant.
func testDevices(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := mkTenant(t, s, "dev-a"), mkTenant(t, s, "dev-b")
	d := &store.Device{ID: "d1", TenantID: a.ID, Name: "pi-1", Kind: "file", PublicKey: []byte("pub-1"), Labels: []string{"site=x"}}
	ok(t, s.PutDevice(ctx, d), "PutDevice")
	if d.EnrolledAt.IsZero() {
		t.Fatal("EnrolledAt not filled")
	}
	first := d.EnrolledAt
	got, err := s.GetDevice(ctx, "d1")
	ok(t, err, "GetDevice")
	if got.Name != "pi-1" || got.Kind != "file" || string(got.PublicKey) != "pub-1" || got.AK != nil || got.Attested || got.AuditSeq != 0 || len(got.Labels) != 1 || !got.EnrolledAt.Equal(first) {
		t.Fatalf("GetDevice: %+v", got)
	}
	// Update: same key, new name and AK; EnrolledAt stays.
	d2 := &store.Device{ID: "d1", TenantID: a.ID, Name: "pi-one", Kind: "tpm", PublicKey: []byte("pub-1"), AK: []byte("ak"), Attested: true}
	ok(t, s.PutDevice(ctx, d2), "PutDevice again")
	if !d2.EnrolledAt.Equal(first) {
		t.Errorf("EnrolledAt changed on update: %v, was %v", d2.EnrolledAt, first)
	}
	got, _ = s.GetDevice(ctx, "d1")
	if got.Name != "pi-one" || got.Kind != "tpm" || string(got.AK) != "ak" || !got.Attested || got.PCRs != nil || got.PCRPolicy != "" || got.Reapprove || got.Refusal != "" || !got.RefusedAt.IsZero() {
		t.Fatalf("after update: %+v", got)
	}
	// PCR policy state: recorded values, policy, re-approval, refusal.
	got.PCRs = map[int][]byte{0: make([]byte, 32), 23: {1, 2, 3}}
	got.PCRPolicy, got.Reapprove, got.Refusal, got.RefusedAt = "off", true, "PCR 23 changed", at(1)
	ok(t, s.PutDevice(ctx, got), "PutDevice with PCRs")
	got2, _ := s.GetDevice(ctx, "d1")
	if len(got2.PCRs) != 2 || len(got2.PCRs[0]) != 32 || string(got2.PCRs[23]) != "\x01\x02\x03" || got2.PCRPolicy != "off" || !got2.Reapprove || got2.Refusal != "PCR 23 changed" || !got2.RefusedAt.Equal(at(1)) {
		t.Fatalf("PCR state after PutDevice: %+v", got2)
	}
	got2.PCRPolicy, got2.Reapprove, got2.Refusal, got2.RefusedAt = "", false, "", time.Time{}
	ok(t, s.PutDevice(ctx, got2), "PutDevice clearing")
	got2, _ = s.GetDevice(ctx, "d1")
	if len(got2.PCRs) != 2 || got2.PCRPolicy != "" || got2.Reapprove || got2.Refusal != "" || !got2.RefusedAt.IsZero() {
		t.Fatalf("PCR state after clearing: %+v", got2)
	}
	if err := s.PutDevice(ctx, &store.Device{ID: "d7", TenantID: a.ID, Kind: "tpm", PublicKey: []byte("p"), PCRPolicy: "sometimes"}); err == nil {
		t.Error("PutDevice accepted PCR policy \"sometimes\"")
	}
	is(t, s.PutDevice(ctx, &store.Device{ID: "d1", TenantID: a.ID, Kind: "file", PublicKey: []byte("other")}), store.ErrConflict, "PutDevice with another key")
	is(t, s.PutDevice(ctx, &store.Device{ID: "d9", TenantID: "nope", Kind: "file", PublicKey: []byte("p")}), store.ErrNotFound, "PutDevice unknown tenant")
	if err := s.PutDevice(ctx, &store.Device{ID: "d8", TenantID: a.ID, Kind: "usb", PublicKey: []byte("p")}); err == nil {
		t.Error("PutDevice accepted kind usb")
	}
	_, err = s.GetDevice(ctx, "nope")
	is(t, err, store.ErrNotFound, "GetDevice unknown")

	// Credentials and contact.
	prev, err := s.SetDeviceCredential(ctx, "d1", "key-1", at(1), "127.0.0.1")
	ok(t, err, "SetDeviceCredential")
	if prev != "" {
		t.Errorf("prev = %q", prev)
	}
	prev, err = s.SetDeviceCredential(ctx, "d1", "key-2", at(2), "127.0.0.2")
	ok(t, err, "SetDeviceCredential 2")
	if prev != "key-1" {
		t.Errorf("prev = %q, want key-1", prev)
	}
	_, err = s.GetDeviceByCredential(ctx, "key-1")
	is(t, err, store.ErrNotFound, "old credential")
	got, err = s.GetDeviceByCredential(ctx, "key-2")
	ok(t, err, "GetDeviceByCredential")
	if got.ID != "d1" || !got.LastContact.Equal(at(2)) || got.LastAddr != "127.0.0.2" {
		t.Errorf("by credential: %+v", got)
	}
	_, err = s.SetDeviceCredential(ctx, "nope", "k", at(2), "")
	is(t, err, store.ErrNotFound, "SetDeviceCredential unknown")

	// Telemetry: compare-and-set of the audit sequence.
	ok(t, s.RecordDeviceTelemetry(ctx, "d1", 0, 5, []byte(`{"m":1}`), at(3), "127.0.0.3"), "telemetry 0..5")
	is(t, s.RecordDeviceTelemetry(ctx, "d1", 0, 7, []byte(`{"m":2}`), at(4), ""), store.ErrConflict, "telemetry from a stale sequence")
	ok(t, s.RecordDeviceTelemetry(ctx, "d1", 5, 5, nil, at(5), "127.0.0.5"), "telemetry without metrics")
	got, _ = s.GetDevice(ctx, "d1")
	if got.AuditSeq != 5 || string(got.Metrics) != `{"m":1}` || !got.MetricsAt.Equal(at(3)) || !got.LastContact.Equal(at(5)) || got.LastAddr != "127.0.0.5" {
		t.Errorf("after telemetry: seq %d metrics %s at %v contact %v %q", got.AuditSeq, got.Metrics, got.MetricsAt, got.LastContact, got.LastAddr)
	}
	is(t, s.RecordDeviceTelemetry(ctx, "nope", 0, 1, nil, at(5), ""), store.ErrNotFound, "telemetry of an unknown device")
	// Concurrent senders of the same batch: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if s.RecordDeviceTelemetry(ctx, "d1", 5, 9, nil, at(6), "") == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d concurrent telemetry batches from the same sequence succeeded, want 1", wins.Load())
	}

	// Listing and scoping.
	ok(t, s.PutDevice(ctx, &store.Device{ID: "d0", TenantID: b.ID, Kind: "file", PublicKey: []byte("pub-0")}), "PutDevice b")
	all, err := s.ListDevices(ctx, "")
	ok(t, err, "ListDevices all")
	if len(all) != 2 || all[0].ID != "d0" || all[1].ID != "d1" {
		t.Errorf("ListDevices all: %v", all)
	}
	onlyA, _ := s.ListDevices(ctx, a.ID)
	if len(onlyA) != 1 || onlyA[0].ID != "d1" {
		t.Errorf("ListDevices a: %v", onlyA)
	}
	is(t, s.DeleteDevice(ctx, a.ID, "d0"), store.ErrNotFound, "DeleteDevice of another tenant")
	ok(t, s.DeleteDevice(ctx, b.ID, "d0"), "DeleteDevice")
	ok(t, s.DeleteTenant(ctx, a.ID), "DeleteTenant")
	_, err = s.GetDevice(ctx, "d1")
	is(t, err, store.ErrNotFound, "a device outliving its tenant")
}

// testEnrollTokens checks uses, expiry and that concurrent enrollments
// never take more uses than a token has.
func testEnrollTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := mkTenant(t, s, "enroll")
	now := time.Now()
	tok := &store.EnrollToken{TenantID: tn.ID, Name: "line 1", Hash: []byte("h1"), Uses: 3, ExpiresAt: now.Add(time.Hour)}
	ok(t, s.CreateEnrollToken(ctx, tok), "CreateEnrollToken")
	if tok.ID == "" || tok.CreatedAt.IsZero() {
		t.Fatalf("not filled: %+v", tok)
	}
	is(t, s.CreateEnrollToken(ctx, &store.EnrollToken{TenantID: tn.ID, Hash: []byte("h1"), Uses: 1, ExpiresAt: now.Add(time.Hour)}), store.ErrConflict, "same hash")
	is(t, s.CreateEnrollToken(ctx, &store.EnrollToken{TenantID: "nope", Hash: []byte("h2"), Uses: 1, ExpiresAt: now.Add(time.Hour)}), store.ErrNotFound, "unknown tenant")
	if err := s.CreateEnrollToken(ctx, &store.EnrollToken{TenantID: tn.ID, Hash: []byte("h3"), Uses: 0, ExpiresAt: now.Add(time.Hour)}); err == nil {
		t.Error("a token with 0 uses was accepted")
	}
	var got, refused atomic.Int32
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			u, err := s.UseEnrollToken(ctx, []byte("h1"), now)
			switch {
			case err == nil && u.TenantID == tn.ID:
				got.Add(1)
			case err != nil && isNotFound(err):
				refused.Add(1)
			default:
				t.Errorf("UseEnrollToken: %v %v", u, err)
			}
		})
	}
	wg.Wait()
	if got.Load() != 3 || refused.Load() != 3 {
		t.Errorf("6 uses of a 3-use token: %d granted, %d refused", got.Load(), refused.Load())
	}
	ok(t, s.CreateEnrollToken(ctx, &store.EnrollToken{TenantID: tn.ID, Hash: []byte("h4"), Uses: 1, ExpiresAt: now.Add(time.Minute)}), "short token")
	_, err := s.UseEnrollToken(ctx, []byte("h4"), now.Add(2*time.Minute))
	is(t, err, store.ErrNotFound, "expired token")
	_, err = s.UseEnrollToken(ctx, []byte("unknown"), now)
	is(t, err, store.ErrNotFound, "unknown token")
	l, err := s.ListEnrollTokens(ctx, tn.ID)
	ok(t, err, "ListEnrollTokens")
	if len(l) != 2 {
		t.Errorf("ListEnrollTokens: %d tokens", len(l))
	}
}

// testNonces checks that a nonce is good exactly once and not after it
// expired.
func testNonces(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now()
	ok(t, s.PutNonce(ctx, []byte("n1"), now.Add(time.Minute)), "PutNonce")
	is(t, s.PutNonce(ctx, []byte("n1"), now.Add(time.Minute)), store.ErrConflict, "PutNonce twice")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if s.UseNonce(ctx, []byte("n1"), now) == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("a nonce was used %d times", wins.Load())
	}
	ok(t, s.PutNonce(ctx, []byte("n2"), now.Add(time.Second)), "PutNonce n2")
	is(t, s.UseNonce(ctx, []byte("n2"), now.Add(2*time.Second)), store.ErrNotFound, "expired nonce")
	is(t, s.UseNonce(ctx, []byte("n2"), now), store.ErrNotFound, "a nonce after a failed use")
	is(t, s.UseNonce(ctx, []byte("n3"), now), store.ErrNotFound, "unknown nonce")
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
