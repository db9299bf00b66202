package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

func testRevocations(t *testing.T, s store.Store) {
	ctx := t.Context()
	var made []store.Revocation
	for i := range 5 {
		r := &store.Revocation{Kind: "jti", Subject: fmt.Sprintf("token-%d", i), At: at(i), ExpiresAt: at(50)}
		ok(t, s.Revoke(ctx, r), "Revoke")
		if len(made) > 0 && r.Seq <= made[len(made)-1].Seq {
			t.Fatalf("Revoke assigned Seq %d after %d; Seqs must increase", r.Seq, made[len(made)-1].Seq)
		}
		made = append(made, *r)
	}
	noAt := &store.Revocation{Kind: "jti", Subject: "now"}
	ok(t, s.Revoke(ctx, noAt), "Revoke without At")
	if noAt.At.IsZero() {
		t.Error("Revoke did not fill a zero At")
	}
	made = append(made, *noAt)

	all, err := s.RevocationsSince(ctx, 0, 0)
	ok(t, err, "RevocationsSince(0)")
	diff(t, made, all, "RevocationsSince(0)")
	page, err := s.RevocationsSince(ctx, made[1].Seq, 2)
	ok(t, err, "RevocationsSince with a limit")
	diff(t, made[2:4], page, "RevocationsSince(after the 2nd, limit 2)")
	rest, err := s.RevocationsSince(ctx, made[len(made)-1].Seq, 10)
	ok(t, err, "RevocationsSince(last)")
	if len(rest) != 0 {
		t.Errorf("RevocationsSince(last Seq) = %v, want none", rest)
	}

	yes, err := s.IsRevoked(ctx, "jti", "token-3")
	ok(t, err, "IsRevoked")
	no, err := s.IsRevoked(ctx, "key", "token-3")
	ok(t, err, "IsRevoked")
	if !yes || no {
		t.Errorf("IsRevoked(jti, token-3) = %v, IsRevoked(key, token-3) = %v; want true, false", yes, no)
	}

	// Concurrent revocations: distinct Seqs, and a poller that follows
	// RevocationsSince sees all of them in order.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := s.Revoke(ctx, &store.Revocation{Kind: "jti", Subject: fmt.Sprintf("c%d", i)}); err != nil {
				t.Errorf("concurrent Revoke: %v", err)
			}
		})
	}
	wg.Wait()
	all, err = s.RevocationsSince(ctx, 0, 1000)
	ok(t, err, "RevocationsSince")
	if len(all) != 26 {
		t.Fatalf("RevocationsSince = %d revocations, want 26", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("RevocationsSince out of order: Seq %d after %d", all[i].Seq, all[i-1].Seq)
		}
	}
}

func entry(tenant, actor, action string) *store.AuditEntry {
	return &store.AuditEntry{TenantID: tenant, Actor: actor, ActorKind: "key", Action: action, Outcome: "ok", ClientIP: "192.0.2.1"}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.AppendAudit(ctx, nil, Seal), "AppendAudit of nothing")

	var sealed []store.AuditEntry
	spy := func(e *store.AuditEntry) {
		sealed = append(sealed, *e)
		Seal(e)
	}
	first := entry("t1", "k1", "auth.login")
	first.Time = at(1)
	// Detail is kept byte for byte: the hash covers it.
	first.Detail = []byte(`{"z": 1,  "a": [2, 1]}`)
	first.LatencyUS, first.Target = 1234, "everything__echo"
	ok(t, s.AppendAudit(ctx, []*store.AuditEntry{first}, spy), "AppendAudit")
	if first.Seq != 1 || first.PrevHash != nil || len(first.Hash) == 0 {
		t.Fatalf("first entry: Seq=%d PrevHash=%x Hash=%x, want 1, nil, set", first.Seq, first.PrevHash, first.Hash)
	}
	batch := []*store.AuditEntry{entry("t1", "k1", "tool.call"), entry("t2", "u1", "key.create")}
	ok(t, s.AppendAudit(ctx, batch, spy), "AppendAudit of two")
	if batch[0].Time.IsZero() || batch[0].Time.Location() != time.UTC {
		t.Errorf("AppendAudit filled Time = %v, want the current time in UTC", batch[0].Time)
	}
	// seal saw Seq and PrevHash already set.
	if len(sealed) != 3 {
		t.Fatalf("seal called %d times, want 3", len(sealed))
	}
	for i, e := range sealed {
		if e.Seq != int64(i+1) {
			t.Errorf("seal call %d saw Seq %d, want %d", i, e.Seq, i+1)
		}
		if i > 0 && string(e.PrevHash) != string(hashOf(&sealed[i-1])) {
			t.Errorf("seal call %d saw PrevHash %x, want the previous hash", i, e.PrevHash)
		}
	}
	seq, head, err := s.AuditHead(ctx)
	ok(t, err, "AuditHead")
	if seq != 3 || string(head) != string(batch[1].Hash) {
		t.Errorf("AuditHead = %d, %x; want 3, %x", seq, head, batch[1].Hash)
	}
	all, err := s.ListAudit(ctx, store.AuditFilter{})
	ok(t, err, "ListAudit")
	diff(t, []store.AuditEntry{*first, *batch[0], *batch[1]}, all, "ListAudit")
	VerifyChain(t, all)

	// A failing seal (empty hash) appends nothing.
	bad := entry("t1", "k1", "x")
	if err := s.AppendAudit(ctx, []*store.AuditEntry{entry("t1", "k1", "y"), bad}, func(e *store.AuditEntry) {
		if e.Action == "y" {
			Seal(e)
		}
	}); err == nil {
		t.Error("AppendAudit with a seal that set no hash succeeded")
	}
	seq, _, err = s.AuditHead(ctx)
	ok(t, err, "AuditHead")
	if seq != 3 {
		t.Errorf("a failed append moved the head to %d", seq)
	}
}

// testAuditConcurrent appends from several goroutines at once: the chain
// must stay gapless and linked.
func testAuditConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const workers, appends = 8, 15
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range appends {
				batch := []*store.AuditEntry{entry("t", fmt.Sprintf("w%d", w), "tool.call")}
				if i%3 == 0 {
					batch = append(batch, entry("t", fmt.Sprintf("w%d", w), "tool.result"))
				}
				if err := s.AppendAudit(ctx, batch, Seal); err != nil {
					t.Errorf("concurrent AppendAudit: %v", err)
					return
				}
				for j := 1; j < len(batch); j++ {
					if batch[j].Seq != batch[j-1].Seq+1 {
						t.Errorf("one batch got Seqs %d, %d: a batch must be contiguous", batch[j-1].Seq, batch[j].Seq)
					}
				}
			}
		})
	}
	wg.Wait()
	all, err := s.ListAudit(ctx, store.AuditFilter{Limit: 10000})
	ok(t, err, "ListAudit")
	want := workers * (appends + (appends+2)/3)
	if len(all) != want {
		t.Fatalf("%d entries after concurrent appends, want %d", len(all), want)
	}
	VerifyChain(t, all)
}

func testListAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	in := []*store.AuditEntry{
		entry("t1", "k1", "auth.login"),
		entry("t1", "k2", "auth.denied"),
		entry("t2", "k1", "tool.call"),
		entry("t2", "u1", "authz.check"), // not "auth."
		entry("", "system", "auth"),      // not "auth."
		entry("t1", "k1", "tool.call"),
	}
	for i, e := range in {
		e.Time = at(i)
	}
	ok(t, s.AppendAudit(ctx, in, Seal), "AppendAudit")
	seqs := func(f store.AuditFilter) []int64 {
		t.Helper()
		got, err := s.ListAudit(ctx, f)
		ok(t, err, "ListAudit")
		out := []int64{}
		for _, e := range got {
			out = append(out, e.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    store.AuditFilter
		want []int64
	}{
		{"all", store.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6}},
		{"tenant", store.AuditFilter{TenantID: "t1"}, []int64{1, 2, 6}},
		{"actor", store.AuditFilter{Actor: "k1"}, []int64{1, 3, 6}},
		{"action exact", store.AuditFilter{Action: "tool.call"}, []int64{3, 6}},
		{"action prefix", store.AuditFilter{Action: "auth."}, []int64{1, 2}},
		{"exact is not a prefix", store.AuditFilter{Action: "auth"}, []int64{5}},
		{"since (inclusive)", store.AuditFilter{Since: at(3)}, []int64{4, 5, 6}},
		{"until (exclusive)", store.AuditFilter{Until: at(2)}, []int64{1, 2}},
		{"since and until", store.AuditFilter{Since: at(1), Until: at(3)}, []int64{2, 3}},
		{"after seq", store.AuditFilter{AfterSeq: 4}, []int64{5, 6}},
		{"limit", store.AuditFilter{Limit: 2, AfterSeq: 1}, []int64{2, 3}},
		{"combined", store.AuditFilter{TenantID: "t1", Actor: "k1", Action: "tool."}, []int64{6}},
		{"nothing", store.AuditFilter{TenantID: "t3"}, []int64{}},
	} {
		diff(t, tc.want, seqs(tc.f), "ListAudit "+tc.name)
	}
}

func testUsage(t *testing.T, s store.Store) {
	ctx := t.Context()
	ta, tb := mkTenant(t, s, "a"), mkTenant(t, s, "b")
	n, err := s.GetUsage(ctx, ta.ID, "2026-11")
	ok(t, err, "GetUsage")
	if n != 0 {
		t.Errorf("GetUsage of an unused period = %d, want 0", n)
	}
	const workers, adds = 10, 20
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range adds {
				if _, err := s.AddUsage(ctx, ta.ID, "2026-11", 3); err != nil {
					t.Errorf("concurrent AddUsage: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	n, err = s.GetUsage(ctx, ta.ID, "2026-11")
	ok(t, err, "GetUsage")
	if n != workers*adds*3 {
		t.Errorf("after %d concurrent adds of 3 the total is %d, want %d", workers*adds, n, workers*adds*3)
	}
	total, err := s.AddUsage(ctx, ta.ID, "2026-11", 1)
	ok(t, err, "AddUsage")
	if total != n+1 {
		t.Errorf("AddUsage returned %d, want the new total %d", total, n+1)
	}
	total, err = s.AddUsage(ctx, ta.ID, "2026-12", 5)
	ok(t, err, "AddUsage")
	if total != 5 {
		t.Errorf("AddUsage in a new period returned %d, want 5", total)
	}
	n, err = s.GetUsage(ctx, tb.ID, "2026-11")
	ok(t, err, "GetUsage")
	if n != 0 {
		t.Errorf("another tenant's usage = %d, want 0", n)
	}
}

func testLattices(t *testing.T, s store.Store) {
	ctx := t.Context()
	ta, tb := mkTenant(t, s, "a"), mkTenant(t, s, "b")
	var made []store.Lattice
	for i := range 4 {
		l := &store.Lattice{TenantID: ta.ID, Name: fmt.Sprintf("z%d", 9-i), Spec: []byte(fmt.Sprintf(`{"n": %d}`, i))}
		ok(t, s.CreateLattice(ctx, l), "CreateLattice")
		if l.ID == "" || l.CreatedAt.IsZero() {
			t.Fatalf("CreateLattice did not fill ID, CreatedAt: %+v", l)
		}
		made = append(made, *l)
	}
	mine := &store.Lattice{ID: "my-lattice", TenantID: tb.ID, Name: "mine", Spec: []byte(`{}`)}
	ok(t, s.CreateLattice(ctx, mine), "CreateLattice with an ID")
	if mine.ID != "my-lattice" {
		t.Errorf("CreateLattice replaced the caller's ID with %q", mine.ID)
	}
	is(t, s.CreateLattice(ctx, &store.Lattice{ID: "my-lattice", TenantID: tb.ID, Spec: []byte(`{}`)}), store.ErrConflict, "CreateLattice with a taken ID")
	is(t, s.CreateLattice(ctx, &store.Lattice{TenantID: store.NewID(), Spec: []byte(`{}`)}), store.ErrNotFound, "CreateLattice in an unknown tenant")

	got, err := s.GetLattice(ctx, ta.ID, made[2].ID)
	ok(t, err, "GetLattice")
	diff(t, &made[2], got, "GetLattice")
	_, err = s.GetLattice(ctx, ta.ID, mine.ID)
	is(t, err, store.ErrNotFound, "GetLattice across tenants")

	list, err := s.ListLattices(ctx, ta.ID)
	ok(t, err, "ListLattices")
	diff(t, made, list, "ListLattices (by creation)")
	count := func(tenantID string, want int) {
		t.Helper()
		n, err := s.CountLattices(ctx, tenantID)
		ok(t, err, "CountLattices")
		if n != want {
			t.Errorf("CountLattices = %d, want %d", n, want)
		}
	}
	count(ta.ID, 4)
	count(tb.ID, 1)

	is(t, s.DeleteLattice(ctx, tb.ID, made[0].ID), store.ErrNotFound, "DeleteLattice across tenants")
	ok(t, s.DeleteLattice(ctx, ta.ID, made[0].ID), "DeleteLattice")
	is(t, s.DeleteLattice(ctx, ta.ID, made[0].ID), store.ErrNotFound, "DeleteLattice twice")
	count(ta.ID, 3)
}

func testSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	const workers = 16
	got := make([][]byte, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			v, err := s.GetOrCreateSecret(ctx, "hmac", func() ([]byte, error) {
				return []byte(fmt.Sprintf("candidate-%d", i)), nil
			})
			if err != nil {
				t.Errorf("concurrent GetOrCreateSecret: %v", err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for i := range got {
		if len(got[i]) == 0 || string(got[i]) != string(got[0]) {
			t.Fatalf("concurrent GetOrCreateSecret returned different values: %q and %q", got[0], got[i])
		}
	}
	v, err := s.GetOrCreateSecret(ctx, "hmac", func() ([]byte, error) {
		t.Error("gen called for an existing secret")
		return nil, nil
	})
	ok(t, err, "GetOrCreateSecret")
	if string(v) != string(got[0]) {
		t.Errorf("GetOrCreateSecret later = %q, want %q", v, got[0])
	}
	boom := fmt.Errorf("no entropy")
	_, err = s.GetOrCreateSecret(ctx, "jwt", func() ([]byte, error) { return nil, boom })
	is(t, err, boom, "GetOrCreateSecret with a failing generator")
	v, err = s.GetOrCreateSecret(ctx, "jwt", func() ([]byte, error) { return []byte("j"), nil })
	ok(t, err, "GetOrCreateSecret after a failure")
	if string(v) != "j" {
		t.Errorf("GetOrCreateSecret(jwt) = %q, want \"j\"", v)
	}
}
