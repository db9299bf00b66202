package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"os"
	osexec "os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

func sampleV2() store.AuditEntry {
	e := sampleEntry()
	e.PIISalt = bytes.Repeat([]byte{0x5a}, PIISaltSize)
	return e
}

// TestSealV2Encoding re-implements the documented v2 encoding.
func TestSealV2Encoding(t *testing.T) {
	e := sampleV2()
	var msg []byte
	field := func(b []byte) []byte {
		msg = binary.BigEndian.AppendUint64(msg, uint64(len(b)))
		msg = append(msg, b...)
		return msg
	}
	i64 := func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
	for _, b := range [][]byte{[]byte("mcpedge-audit-pii-v1"), e.PIISalt, []byte("key-1"), []byte("everything__echo"), []byte("192.0.2.7"), e.Detail} {
		field(b)
	}
	digest := sha256.Sum256(msg)
	msg = nil
	field([]byte("mcpedge-audit-v2"))
	field(i64(7))
	field(i64(e.Time.UnixMicro()))
	for _, s := range []string{"t1", "key", "tool.call", "ok"} {
		field([]byte(s))
	}
	field(i64(1234))
	field(digest[:])
	field(e.PrevHash)
	want := sha256.Sum256(msg)
	Seal(&e)
	if !bytes.Equal(e.PIIDigest, digest[:]) || !bytes.Equal(e.Hash, want[:]) {
		t.Fatalf("Seal v2 = digest %x hash %x, want %x %x (the documented encoding)", e.PIIDigest, e.Hash, digest, want)
	}
}

// TestSealV2EveryField: every field but the outputs and the erased mark
// changes a v2 hash (personal ones through the digest).
func TestSealV2EveryField(t *testing.T) {
	base := sampleV2()
	Seal(&base)
	typ := reflect.TypeFor[store.AuditEntry]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Name == "Hash" || f.Name == "PIIDigest" || f.Name == "Erased" {
			continue
		}
		e := sampleV2()
		switch x := reflect.ValueOf(&e).Elem().Field(i).Addr().Interface().(type) {
		case *string:
			*x += "x"
		case *int64:
			*x++
		case *time.Time:
			*x = x.Add(time.Microsecond)
		case *[]byte:
			*x = append(append([]byte(nil), *x...), 0)
		default:
			t.Fatalf("field %s of type %s: teach Seal (and this test) about it", f.Name, f.Type)
		}
		Seal(&e)
		if bytes.Equal(e.Hash, base.Hash) {
			t.Errorf("changing %s did not change the v2 hash", f.Name)
		}
	}
}

// erase does to e what store.EraseTenant does.
func erase(e *store.AuditEntry) {
	e.Actor, e.Target, e.ClientIP, e.Detail, e.PIISalt, e.Erased = "", "", "", nil, nil, true
}

// sealChain builds a sealed chain of entries.
func sealChain(entries ...store.AuditEntry) []store.AuditEntry {
	var prev []byte
	for i := range entries {
		e := &entries[i]
		e.Seq, e.PrevHash = int64(i+1), prev
		Seal(e)
		prev = e.Hash
	}
	return entries
}

func verifyEntries(t *testing.T, entries []store.AuditEntry) Report {
	t.Helper()
	var buf bytes.Buffer
	for i := range entries {
		b, err := entries[i].MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(append(b, '\n'))
	}
	r, err := VerifyLines(&buf, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mk(tenant, actor, action string, v2 bool) store.AuditEntry {
	e := store.AuditEntry{Time: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC), TenantID: tenant, Actor: actor, ActorKind: "user",
		Action: action, Target: "t", Outcome: "ok", ClientIP: "192.0.2.1", Detail: []byte(`{"x":1}`)}
	if v2 {
		e.PIISalt = NewPIISalt()
	}
	return e
}

func TestErasure(t *testing.T) {
	// v2 entries erased: the chain verifies.
	c := sealChain(mk("a", "u1", "tool.call", true), mk("b", "u2", "tool.call", true), mk("a", "u1", "key.create", true))
	erase(&c[0])
	erase(&c[2])
	if r := verifyEntries(t, c); !r.OK || r.Entries != 3 {
		t.Fatalf("erased v2 chain: %+v", r)
	}
	// ... but not with a field edited, or a field left behind, or the
	// mark set with the salt gone and fields kept.
	for name, edit := range map[string]func(e *store.AuditEntry){
		"action":         func(e *store.AuditEntry) { e.Action = "tool.list" },
		"field left":     func(e *store.AuditEntry) { e.Actor = "u9" },
		"digest":         func(e *store.AuditEntry) { e.PIIDigest = bytes.Repeat([]byte{1}, 32) },
		"unmarked":       func(e *store.AuditEntry) { e.Erased = false },
		"salt back":      func(e *store.AuditEntry) { e.PIISalt = []byte("s") },
		"tenant changed": func(e *store.AuditEntry) { e.TenantID = "b" },
	} {
		d := append([]store.AuditEntry(nil), c...)
		edit(&d[0])
		if r := verifyEntries(t, d); r.OK || r.Kind != ProblemHash || r.FirstBad != 1 {
			t.Errorf("%s: %+v, want a hash problem at 1", name, r)
		}
	}
	// A live v2 entry whose personal field was changed.
	d := append([]store.AuditEntry(nil), c...)
	d[1].ClientIP = "198.51.100.1"
	if r := verifyEntries(t, d); r.OK || r.FirstBad != 2 || !strings.Contains(r.Problem, "personal fields") {
		t.Errorf("edited personal field: %+v", r)
	}

	// v1 entries (written before migration 11) erased: accepted only
	// with the tenant's erasure recorded after them.
	old := sealChain(mk("a", "u1", "tool.call", false), mk("b", "u2", "tool.call", false), mk("a", "u1", "key.create", false),
		store.AuditEntry{TenantID: "a", Actor: "cli", ActorKind: "cli", Action: ActionTenantErase, Outcome: "ok", PIISalt: NewPIISalt()})
	if r := verifyEntries(t, old); !r.OK {
		t.Fatalf("v1 chain: %+v", r)
	}
	e1 := append([]store.AuditEntry(nil), old...)
	erase(&e1[0])
	erase(&e1[2])
	if r := verifyEntries(t, e1); !r.OK || r.Entries != 4 {
		t.Fatalf("erased v1 entries with the erasure recorded: %+v", r)
	}
	// Without the record (cut off, or another tenant's entry erased).
	if r := verifyEntries(t, e1[:3]); r.OK || r.FirstBad != 1 || r.Entries != 0 || !strings.Contains(r.Problem, "no erasure") {
		t.Errorf("erased v1 entries without the record: %+v", r)
	}
	e2 := append([]store.AuditEntry(nil), old...)
	erase(&e2[1]) // tenant b was not erased
	if r := verifyEntries(t, e2); r.OK || r.FirstBad != 2 || r.Entries != 1 || r.Head.Seq != 1 {
		t.Errorf("erased v1 entry of a tenant not erased: %+v", r)
	}
}

// TestLoggerSalts: the Logger makes every entry erasable, and Verify on a
// store passes before and after an erasure-like edit of v2 entries.
func TestLoggerSalts(t *testing.T) {
	st := &memAudit{}
	l := NewLogger(st, nil, LoggerOptions{})
	ctx := context.Background()
	for range 3 {
		l.Record(ctx, &store.AuditEntry{TenantID: "a", Actor: "u", ActorKind: "user", Action: "tool.call", Outcome: "ok", ClientIP: "192.0.2.1"})
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := st.ListAudit(ctx, store.AuditFilter{})
	if len(got) != 3 {
		t.Fatalf("%d entries", len(got))
	}
	for _, e := range got {
		if len(e.PIISalt) != PIISaltSize || len(e.PIIDigest) != sha256.Size {
			t.Fatalf("entry %d: salt %x digest %x, want both", e.Seq, e.PIISalt, e.PIIDigest)
		}
	}
	if bytes.Equal(got[0].PIISalt, got[1].PIISalt) {
		t.Error("two entries share a salt")
	}
	if r, err := Verify(ctx, st); err != nil || !r.OK {
		t.Fatalf("Verify = %+v, %v", r, err)
	}
}

// TestEraseOnStores: a chain written partly before migration 11 (v1
// entries, no salt) and partly by the Logger (v2) still verifies on real
// stores after a tenant's erasure, which empties both kinds; a tampered
// erased entry does not.
func TestEraseOnStores(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		st := b.st.(store.Store)
		ta := &store.Tenant{Name: "acme"}
		tb := &store.Tenant{Name: "bravo"}
		for _, tn := range []*store.Tenant{ta, tb} {
			if err := st.CreateTenant(ctx, tn); err != nil {
				t.Fatal(err)
			}
		}
		// "Old" entries: appended without a salt, as mcpedge did before.
		var old []*store.AuditEntry
		for _, tn := range []string{ta.ID, tb.ID, ta.ID} {
			e := mk(tn, "u-"+tn, "tool.call", false)
			old = append(old, &e)
		}
		if err := st.AppendAudit(ctx, old, Seal); err != nil {
			t.Fatal(err)
		}
		l := NewLogger(st, nil, LoggerOptions{})
		for _, tn := range []string{ta.ID, tb.ID, ta.ID} {
			l.Record(ctx, &store.AuditEntry{TenantID: tn, Actor: "u-" + tn, ActorKind: "user", Action: "tool.call", Outcome: "ok", ClientIP: "192.0.2.9", Detail: []byte(`{"n":1}`)})
		}
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if r, err := Verify(ctx, st); err != nil || !r.OK || r.Entries != 6 {
			t.Fatalf("before: %+v, %v", r, err)
		}
		rec := &store.AuditEntry{Time: time.Now(), TenantID: ta.ID, Actor: "cli", ActorKind: "cli", Action: ActionTenantErase, Target: "tenant:" + ta.ID, Outcome: "ok", PIISalt: NewPIISalt()}
		er, err := st.EraseTenant(ctx, ta.ID, rec, Seal)
		if err != nil {
			t.Fatal(err)
		}
		if er.AuditEntries != 4 {
			t.Errorf("erased %d entries, want 4", er.AuditEntries)
		}
		r, err := Verify(ctx, st)
		if err != nil || !r.OK || r.Entries != 7 {
			t.Fatalf("after the erasure: %+v, %v", r, err)
		}
		all, _ := st.ListAudit(ctx, store.AuditFilter{})
		for _, e := range all[:6] {
			if e.TenantID == ta.ID && (!e.Erased || e.Actor != "" || e.ClientIP != "") {
				t.Errorf("entry %d not erased: %+v", e.Seq, e)
			}
			if e.TenantID == tb.ID && (e.Erased || e.Actor == "") {
				t.Errorf("bravo's entry %d touched: %+v", e.Seq, e)
			}
		}
		// An intruder "erases" bravo's old entry to hide an edit.
		b.exec(t, `UPDATE audit SET actor = '', target = '', client_ip = '', detail = NULL, erased = ?, action = 'x' WHERE seq = 2`, true)
		if r, err := Verify(ctx, st); err != nil || r.OK || r.FirstBad != 2 {
			t.Errorf("tampered erased v1 entry: %+v, %v", r, err)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestChainFromBeforeMigration11: a SQLite store written by an mcpedge
// before erasure existed (schema version 8, v1 entries inserted as that
// version did) is migrated by this one; its chain verifies, keeps
// verifying as v2 entries are appended, and after its tenant's erasure.
func TestChainFromBeforeMigration11(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP) STRICT`)
	files, _ := filepath.Glob("../store/sqlite/migrations/000[1-8]_*.sql")
	if len(files) != 8 {
		t.Fatalf("migrations 1-8: %v", files)
	}
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		exec(string(b))
		exec(`INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, i+1, filepath.Base(f))
	}
	now := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for _, tn := range []string{"acme", "bravo"} {
		exec(`INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`, "id-"+tn, tn, now.UnixMicro())
	}
	var prev []byte
	for i, tn := range []string{"acme", "bravo", "acme"} {
		e := store.AuditEntry{Seq: int64(i + 1), Time: now.Add(time.Duration(i) * time.Second), TenantID: "id-" + tn, Actor: "user-" + tn,
			ActorKind: "user", Action: "tool.call", Target: "ev__echo", Outcome: "ok", ClientIP: "192.0.2.4", Detail: []byte(`{"n":1}`), PrevHash: prev}
		Seal(&e)
		exec(`INSERT INTO audit (seq, at, tenant_id, actor, actor_kind, action, target, outcome, latency_us, client_ip, detail, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Seq, e.Time.UnixMicro(), e.TenantID, e.Actor, e.ActorKind, e.Action, e.Target, e.Outcome,
			e.LatencyUS, e.ClientIP, e.Detail, e.PrevHash, e.Hash)
		exec(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, e.Seq, e.Hash)
		prev = e.Hash
	}

	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, _ := st.SchemaVersion(ctx); v != sqlite.LatestVersion() || v < 11 {
		t.Fatalf("schema version %d", v)
	}
	if r, err := Verify(ctx, st); err != nil || !r.OK || r.Entries != 3 {
		t.Fatalf("the old chain after the migration: %+v, %v", r, err)
	}
	l := NewLogger(st, nil, LoggerOptions{})
	l.Record(ctx, &store.AuditEntry{TenantID: "id-acme", Actor: "user-acme", ActorKind: "user", Action: "tool.call", Outcome: "ok"})
	l.Record(ctx, &store.AuditEntry{TenantID: "id-bravo", Actor: "user-bravo", ActorKind: "user", Action: "tool.call", Outcome: "ok"})
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := Verify(ctx, st); err != nil || !r.OK || r.Entries != 5 {
		t.Fatalf("old and new entries: %+v, %v", r, err)
	}
	rec := &store.AuditEntry{TenantID: "id-acme", Actor: "cli", ActorKind: "cli", Action: ActionTenantErase, Outcome: "ok", PIISalt: NewPIISalt()}
	if _, err := st.EraseTenant(ctx, "id-acme", rec, Seal); err != nil {
		t.Fatal(err)
	}
	if r, err := Verify(ctx, st); err != nil || !r.OK || r.Entries != 6 {
		t.Fatalf("after the erasure: %+v, %v", r, err)
	}
	all, _ := st.ListAudit(ctx, store.AuditFilter{TenantID: "id-acme"})
	for _, e := range all[:len(all)-1] {
		if !e.Erased || e.Actor != "" {
			t.Errorf("acme's entry %d: %+v", e.Seq, e)
		}
	}
	// The export verifies offline, with VerifyLines and with the script
	// docs/operations.md gives.
	var buf bytes.Buffer
	if _, err := Export(ctx, st, store.AuditFilter{}, &buf); err != nil {
		t.Fatal(err)
	}
	if r, err := VerifyLines(bytes.NewReader(buf.Bytes()), VerifyOptions{}); err != nil || !r.OK || r.Entries != 6 {
		t.Fatalf("VerifyLines of the export: %+v, %v", r, err)
	}
	py, err := osexec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 to run the documented verifier with")
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, script, _ := strings.Cut(string(doc), "```python\n")
	script, _, _ = strings.Cut(script, "```")
	run := func(input []byte) (string, error) {
		cmd := osexec.Command(py, "-c", script)
		cmd.Stdin = bytes.NewReader(input)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(buf.Bytes()); err != nil || !strings.HasPrefix(out, "ok: 6 entries") {
		t.Errorf("the documented verifier: %v %s", err, out)
	}
	// Without the erasure's record (cut off), the erased v1 entries fail.
	lines := bytes.SplitAfter(buf.Bytes(), []byte("\n"))
	if out, err := run(bytes.Join(lines[:5], nil)); err == nil || !strings.Contains(out, "no erasure") {
		t.Errorf("the documented verifier without the erasure's record: %v %s", err, out)
	}
}
