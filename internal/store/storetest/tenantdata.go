package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
)

// sealer is what both implementations add: attaching the master key.
type sealer interface {
	SealSecrets(ctx context.Context, box *sealbox.Box) error
}

type testKey []byte

func (k testKey) MasterKey(context.Context) ([]byte, error) { return bytes.Clone(k), nil }
func (testKey) String() string                              { return "the suite's random key" }

// sealStore attaches a random master key, as package open does, so that
// tenant data keys can be wrapped.
func sealStore(t *testing.T, s store.Store) {
	t.Helper()
	if sealed(t, s) {
		return // opened with its master key already (package open)
	}
	sl, isSealer := s.(sealer)
	if !isSealer {
		t.Fatalf("%T can not attach a master key", s)
	}
	k := make([]byte, sealbox.KeySize)
	rand.Read(k)
	box, err := sealbox.New(t.Context(), testKey(k), nil)
	ok(t, err, "sealbox.New")
	ok(t, sl.SealSecrets(t.Context(), box), "SealSecrets")
}

// sealed reports whether s's secrets have a key ring: it was opened with
// a master key.
func sealed(t *testing.T, s store.Store) bool {
	t.Helper()
	ss, isSealed := s.(store.SealedSecrets)
	if !isSealed {
		return false
	}
	r, err := ss.SecretRing(t.Context())
	ok(t, err, "SecretRing")
	return len(r.Keys) > 0
}

// fillTenant gives a tenant a row in every table the export covers and
// returns a few of its secrets' bytes, which no export may contain.
func fillTenant(t *testing.T, s store.Store, name string) (*store.Tenant, [][]byte) {
	t.Helper()
	ctx := t.Context()
	tn := mkTenant(t, s, name)
	u := mkUser(t, s, tn.ID, name+"-alice", "owner")
	k := mkKey(t, s, tn.ID, name+"pfx")
	ok(t, s.CreateRefreshToken(ctx, &store.RefreshToken{ID: store.NewID(), FamilyID: store.NewID(), UserID: u.ID, TenantID: tn.ID,
		Hash: []byte("refresh-hash-" + name), ExpiresAt: at(50)}), "CreateRefreshToken")
	ok(t, s.CreateVirtualServer(ctx, &store.VirtualServer{TenantID: tn.ID, Name: "vs-" + name, Upstreams: []string{"*"}}), "CreateVirtualServer")
	ok(t, s.CreateRule(ctx, &store.Rule{TenantID: tn.ID, Tool: "x__*", Effect: "deny", Priority: 3}), "CreateRule")
	_, err := s.AddUsage(ctx, tn.ID, "2026-11", 4)
	ok(t, err, "AddUsage")
	ok(t, s.AddUsageRecords(ctx, []store.UsageRecord{{TenantID: tn.ID, Hour: at(0), Actor: k.ID, ActorKind: "key", Upstream: "ev", Tool: "echo", Outcome: "ok", Count: 2}}), "AddUsageRecords")
	ok(t, s.CreateLattice(ctx, &store.Lattice{TenantID: tn.ID, Name: "lat-" + name, Spec: []byte(`{"points":3}`)}), "CreateLattice")
	ok(t, s.CreateMCPSession(ctx, &store.MCPSession{IDHash: "sess-" + name, TenantID: tn.ID, Binding: "b-" + name, State: []byte(`{"secret-state":"` + name + `"}`),
		Version: 1, ExpiresAt: time.Now().Add(time.Hour)}), "CreateMCPSession")
	entries := []*store.AuditEntry{
		{TenantID: tn.ID, Actor: u.ID, ActorKind: "user", Action: "tool.call", Target: "ev__echo", Outcome: "ok", ClientIP: "192.0.2.7", Detail: []byte(`{"who":"` + name + `-alice"}`)},
		{TenantID: tn.ID, Actor: k.ID, ActorKind: "key", Action: "key.create", Target: "key:" + k.ID, Outcome: "ok",
			PIISalt: []byte("salt-" + name), PIIDigest: bytes.Repeat([]byte{9}, 32)},
	}
	ok(t, s.AppendAudit(ctx, entries, Seal), "AppendAudit")
	return tn, [][]byte{[]byte("$argon2id$x"), []byte("hash-of-" + name + "pfx"), []byte("refresh-hash-" + name), []byte("secret-state")}
}

type exported struct {
	rows  map[string][]json.RawMessage
	audit []store.AuditEntry
	order []string
}

func export(t *testing.T, s store.Store, tenantID string) *exported {
	t.Helper()
	x := &exported{rows: map[string][]json.RawMessage{}}
	err := s.ExportTenant(t.Context(), tenantID, func(table string, row any) error {
		if n := len(x.order); n == 0 || x.order[n-1] != table {
			x.order = append(x.order, table)
		}
		if table == "audit" {
			e, isEntry := row.(*store.AuditEntry)
			if !isEntry {
				return fmt.Errorf("audit row is %T", row)
			}
			x.audit = append(x.audit, *e)
		}
		b, err := json.Marshal(row)
		if err != nil {
			return err
		}
		x.rows[table] = append(x.rows[table], b)
		return nil
	})
	ok(t, err, "ExportTenant")
	return x
}

func testTenantExport(t *testing.T, s store.Store) {
	a, secretsA := fillTenant(t, s, "acme")
	b, _ := fillTenant(t, s, "bravo")
	// More hourly records than one page of the export holds.
	var many []store.UsageRecord
	for h := range 1500 {
		many = append(many, store.UsageRecord{TenantID: a.ID, Hour: at(0).Add(time.Duration(h+1) * time.Hour), Actor: "k", ActorKind: "key", Upstream: "ev", Tool: "echo", Outcome: "ok", Count: 1})
	}
	ok(t, s.AddUsageRecords(t.Context(), many), "AddUsageRecords")
	x := export(t, s, a.ID)
	// Every table has the tenant's rows, in ExportTables order.
	var want []string
	for _, table := range store.ExportTables() {
		if table != "devices" && table != "enroll_tokens" {
			want = append(want, table)
		}
	}
	diff(t, want, x.order, "exported tables in order")
	for table, n := range map[string]int{"tenant": 1, "users": 1, "api_keys": 1, "refresh_tokens": 1, "mcp_sessions": 1, "virtual_servers": 1,
		"rules": 1, "usage": 1, "usage_hourly": 1501, "lattices": 1, "audit": 2} {
		if len(x.rows[table]) != n {
			t.Errorf("%s: %d rows, want %d", table, len(x.rows[table]), n)
		}
	}
	all := bytes.Join(func() [][]byte {
		var out [][]byte
		for _, rows := range x.rows {
			for _, r := range rows {
				out = append(out, r)
			}
		}
		return out
	}(), []byte("\n"))
	for _, secret := range secretsA {
		if bytes.Contains(all, secret) {
			t.Errorf("the export contains the secret %q", secret)
		}
	}
	if bytes.Contains(all, []byte(b.ID)) || bytes.Contains(all, []byte("bravo")) {
		t.Error("the export of acme contains bravo's data")
	}
	// In order, each once, across pages.
	var prev time.Time
	for i, r := range x.rows["usage_hourly"] {
		var rec struct{ Hour time.Time }
		ok(t, json.Unmarshal(r, &rec), "usage_hourly row")
		if i > 0 && !rec.Hour.After(prev) {
			t.Fatalf("usage_hourly row %d: hour %v after %v", i, rec.Hour, prev)
		}
		prev = rec.Hour
	}
	var tenant map[string]any
	ok(t, json.Unmarshal(x.rows["tenant"][0], &tenant), "tenant row")
	if tenant["id"] != a.ID || tenant["name"] != "acme" {
		t.Errorf("tenant row = %v", tenant)
	}
	var lattice map[string]any
	ok(t, json.Unmarshal(x.rows["lattices"][0], &lattice), "lattice row")
	if spec, isObj := lattice["spec"].(map[string]any); !isObj || spec["points"] != float64(3) {
		t.Errorf("lattice spec not embedded as JSON: %s", x.rows["lattices"][0])
	}
	// Audit entries come whole, the new columns included.
	if e := x.audit[1]; string(e.PIISalt) != "salt-acme" || len(e.PIIDigest) != 32 || e.Erased {
		t.Errorf("audit entry 2 = %+v, want its salt and digest", e)
	}
	// An unknown tenant, and an error of emit, which comes back as is.
	is(t, s.ExportTenant(t.Context(), "nope", func(string, any) error { return nil }), store.ErrNotFound, "ExportTenant unknown")
	stop := errors.New("stop")
	if err := s.ExportTenant(t.Context(), a.ID, func(string, any) error { return stop }); err != stop {
		t.Errorf("ExportTenant with a failing emit = %v, want the emit's error as is", err)
	}
}

func testTenantErase(t *testing.T, s store.Store) {
	ctx := t.Context()
	sealStore(t, s)
	a, _ := fillTenant(t, s, "acme")
	b, _ := fillTenant(t, s, "bravo")
	sealedA, err := s.SealTenantData(ctx, a.ID, "q1/call", []byte("acme's arguments"))
	ok(t, err, "SealTenantData acme")
	sealedB, err := s.SealTenantData(ctx, b.ID, "q2/call", []byte("bravo's arguments"))
	ok(t, err, "SealTenantData bravo")
	if bytes.Contains(sealedA, []byte("arguments")) {
		t.Fatal("sealed data holds the plaintext")
	}
	pt, err := s.OpenTenantData(ctx, a.ID, "q1/call", sealedA)
	if err != nil || string(pt) != "acme's arguments" {
		t.Fatalf("OpenTenantData = %q, %v", pt, err)
	}
	if _, err := s.OpenTenantData(ctx, b.ID, "q1/call", sealedA); err == nil {
		t.Error("acme's ciphertext opened as bravo's")
	}
	_, err = s.SealTenantData(ctx, "nope", "r", []byte("x"))
	is(t, err, store.ErrNotFound, "SealTenantData of an unknown tenant")

	before, err := s.ListAudit(ctx, store.AuditFilter{})
	ok(t, err, "ListAudit")
	_, headHash, err := s.AuditHead(ctx)
	ok(t, err, "AuditHead")
	rec := &store.AuditEntry{TenantID: a.ID, Actor: "cli", ActorKind: "cli", Action: "tenant.erase", Target: "tenant:" + a.ID, Outcome: "ok"}
	er, err := s.EraseTenant(ctx, a.ID, rec, Seal)
	ok(t, err, "EraseTenant")
	if er.Name != "acme" || er.AuditEntries != 2 || er.Rows["users"] != 1 || er.Rows["api_keys"] != 1 || er.Rows["tenant_keys"] != 1 || er.Rows["mcp_sessions"] != 1 {
		t.Errorf("Erasure = %+v", er)
	}
	if rec.Seq != int64(len(before)+1) || !bytes.Equal(rec.PrevHash, headHash) {
		t.Errorf("the erasure's audit entry is %d after %x, want %d after the old head", rec.Seq, rec.PrevHash, len(before)+1)
	}
	// Gone from every table.
	_, err = s.GetTenant(ctx, a.ID)
	is(t, err, store.ErrNotFound, "GetTenant after erase")
	_, err = s.GetKeyByHash(ctx, []byte("hash-of-acmepfx"))
	is(t, err, store.ErrNotFound, "GetKeyByHash after erase")
	_, err = s.GetMCPSession(ctx, "sess-acme")
	is(t, err, store.ErrNotFound, "GetMCPSession after erase")
	if n, _ := s.GetUsage(ctx, a.ID, "2026-11"); n != 0 {
		t.Errorf("usage after erase = %d", n)
	}
	recs, err := s.ListUsage(ctx, store.UsageFilter{TenantID: a.ID})
	ok(t, err, "ListUsage")
	if len(recs) != 0 {
		t.Errorf("usage records after erase: %v", recs)
	}
	// Revoked on every replica.
	for _, kind := range []string{"key", "user"} {
		revs, err := s.RevocationsSince(ctx, 0, 100)
		ok(t, err, "RevocationsSince")
		found := false
		for _, r := range revs {
			found = found || r.Kind == kind
		}
		if !found {
			t.Errorf("no %s revocation recorded", kind)
		}
	}
	// The key is destroyed: acme's sealed data is unreadable; bravo's is
	// not.
	_, err = s.OpenTenantData(ctx, a.ID, "q1/call", sealedA)
	is(t, err, store.ErrKeyDestroyed, "OpenTenantData after erase")
	pt, err = s.OpenTenantData(ctx, b.ID, "q2/call", sealedB)
	if err != nil || string(pt) != "bravo's arguments" {
		t.Errorf("bravo's data after acme's erasure = %q, %v", pt, err)
	}
	// Audit: acme's personal fields are gone; hashes, links, digests and
	// everyone else's entries are as they were.
	after, err := s.ListAudit(ctx, store.AuditFilter{})
	ok(t, err, "ListAudit")
	if len(after) != len(before)+1 {
		t.Fatalf("%d entries after, %d before", len(after), len(before))
	}
	for i, e := range before {
		g := after[i]
		if !bytes.Equal(g.Hash, e.Hash) || !bytes.Equal(g.PrevHash, e.PrevHash) || !bytes.Equal(g.PIIDigest, e.PIIDigest) ||
			g.Action != e.Action || g.ActorKind != e.ActorKind || g.Outcome != e.Outcome || !g.Time.Equal(e.Time) || g.TenantID != e.TenantID {
			t.Errorf("entry %d changed beyond its personal fields: %+v -> %+v", e.Seq, e, g)
		}
		if e.TenantID == a.ID {
			if !g.Erased || g.Actor != "" || g.Target != "" || g.ClientIP != "" || g.Detail != nil || g.PIISalt != nil {
				t.Errorf("acme's entry %d not erased: %+v", e.Seq, g)
			}
		} else if g.Erased || g.Actor != e.Actor || !bytes.Equal(g.Detail, e.Detail) || !bytes.Equal(g.PIISalt, e.PIISalt) {
			t.Errorf("bravo's entry %d changed: %+v -> %+v", e.Seq, e, g)
		}
	}
	if last := after[len(after)-1]; last.Action != "tenant.erase" || last.Erased || last.Actor != "cli" {
		t.Errorf("last entry = %+v, want the erasure's own record", last)
	}
	// Erase twice; the record.
	_, err = s.EraseTenant(ctx, a.ID, nil, nil)
	is(t, err, store.ErrErased, "EraseTenant twice")
	is(t, err, store.ErrNotFound, "EraseTenant twice")
	_, err = s.EraseTenant(ctx, "nope", nil, nil)
	is(t, err, store.ErrNotFound, "EraseTenant unknown")
	if errors.Is(err, store.ErrErased) {
		t.Error("an unknown tenant is reported as erased")
	}
	for _, ref := range []string{a.ID, "acme"} {
		got, err := s.GetErasure(ctx, ref)
		ok(t, err, "GetErasure "+ref)
		if got.TenantID != a.ID || got.AuditEntries != 2 || got.ErasedAt.IsZero() {
			t.Errorf("GetErasure(%s) = %+v", ref, got)
		}
	}
	_, err = s.GetErasure(ctx, "bravo")
	is(t, err, store.ErrNotFound, "GetErasure of a tenant not erased")
	// bravo is whole.
	x := export(t, s, b.ID)
	if len(x.rows["users"]) != 1 || len(x.rows["api_keys"]) != 1 || len(x.audit) != 2 {
		t.Errorf("bravo after acme's erasure: %d users, %d keys, %d audit entries", len(x.rows["users"]), len(x.rows["api_keys"]), len(x.audit))
	}
	// DeleteTenant destroys the key too.
	ok(t, s.DeleteTenant(ctx, b.ID), "DeleteTenant")
	_, err = s.OpenTenantData(ctx, b.ID, "q2/call", sealedB)
	is(t, err, store.ErrKeyDestroyed, "OpenTenantData after DeleteTenant")
}

// testTenantKeyConcurrent: the first seals of a tenant, at once, agree on
// one key.
func testTenantKeyConcurrent(t *testing.T, s store.Store) {
	sealStore(t, s)
	tn := mkTenant(t, s, "acme")
	var wg sync.WaitGroup
	cts := make([][]byte, 8)
	for i := range cts {
		wg.Go(func() {
			ct, err := s.SealTenantData(t.Context(), tn.ID, "r", []byte("x"))
			if err != nil {
				t.Errorf("SealTenantData: %v", err)
			}
			cts[i] = ct
		})
	}
	wg.Wait()
	for i, ct := range cts {
		if pt, err := s.OpenTenantData(t.Context(), tn.ID, "r", ct); err != nil || string(pt) != "x" {
			t.Errorf("ciphertext %d: %q, %v", i, pt, err)
		}
	}
}

// testTenantKeyUnsealed: without a master key there are no tenant keys.
func testTenantKeyUnsealed(t *testing.T, s store.Store) {
	if sealed(t, s) {
		t.Skip("the store was opened with its master key")
	}
	tn := mkTenant(t, s, "acme")
	if _, err := s.SealTenantData(t.Context(), tn.ID, "r", []byte("x")); err == nil {
		t.Error("SealTenantData worked on a store without a master key")
	}
}
