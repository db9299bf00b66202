package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"reflect"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

func sampleEntry() store.AuditEntry {
	return store.AuditEntry{
		Seq:       7,
		Time:      time.Date(2026, 11, 3, 10, 15, 0, 123456000, time.UTC),
		TenantID:  "t1",
		Actor:     "key-1",
		ActorKind: "key",
		Action:    "tool.call",
		Target:    "everything__echo",
		Outcome:   "ok",
		LatencyUS: 1234,
		ClientIP:  "192.0.2.7",
		Detail:    []byte(`{"args_bytes":2}`),
		PrevHash:  bytes.Repeat([]byte{0xab}, 32),
	}
}

// TestSealEncoding re-implements the documented encoding independently and
// pins one hash (also computed by a separate Python script from the
// documentation), so the encoding can not change by accident.
func TestSealEncoding(t *testing.T) {
	e := sampleEntry()
	var msg []byte
	field := func(b []byte) {
		msg = binary.BigEndian.AppendUint64(msg, uint64(len(b)))
		msg = append(msg, b...)
	}
	i64 := func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
	field([]byte("mcpedge-audit-v1"))
	field(i64(7))
	field(i64(e.Time.Unix()*1e6 + int64(e.Time.Nanosecond()/1e3)))
	for _, s := range []string{"t1", "key-1", "key", "tool.call", "everything__echo", "ok"} {
		field([]byte(s))
	}
	field(i64(1234))
	field([]byte("192.0.2.7"))
	field(e.Detail)
	field(e.PrevHash)
	want := sha256.Sum256(msg)

	Seal(&e)
	if !bytes.Equal(e.Hash, want[:]) {
		t.Fatalf("Seal = %x, want %x (the documented encoding)", e.Hash, want)
	}
	const golden = "b47c8bc0830524091515d295f6edf4452d61f49dd075fb45b032b99f76191be4"
	if got := hex.EncodeToString(e.Hash); got != golden {
		t.Errorf("Seal = %s, want the pinned %s", got, golden)
	}
}

func TestSealDeterministic(t *testing.T) {
	a, b := sampleEntry(), sampleEntry()
	b.Time = b.Time.In(time.FixedZone("x", 3600)) // same instant, other zone
	b.Hash = []byte("ignored")                    // Hash is not an input
	Seal(&a)
	Seal(&b)
	if !bytes.Equal(a.Hash, b.Hash) {
		t.Fatalf("same entry sealed twice: %x != %x", a.Hash, b.Hash)
	}
	Seal(&a)
	if !bytes.Equal(a.Hash, b.Hash) {
		t.Fatalf("sealing again changed the hash")
	}
	if len(a.Hash) != sha256.Size {
		t.Fatalf("hash is %d bytes", len(a.Hash))
	}
}

// TestSealEveryField changes each field of AuditEntry in turn (found by
// reflection, so a field added later without teaching Seal fails here).
func TestSealEveryField(t *testing.T) {
	base := sampleEntry()
	Seal(&base)
	typ := reflect.TypeFor[store.AuditEntry]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		// Hash and PIIDigest are outputs; Erased is state that erasure
		// changes without changing the hash (see TestErasure).
		if f.Name == "Hash" || f.Name == "PIIDigest" || f.Name == "Erased" {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			e := sampleEntry()
			v := reflect.ValueOf(&e).Elem().Field(i)
			switch x := v.Addr().Interface().(type) {
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
				t.Fatalf("changing %s did not change the hash", f.Name)
			}
		})
	}
}

// TestSealUnambiguous moves bytes between neighbouring fields.
func TestSealUnambiguous(t *testing.T) {
	a, b := sampleEntry(), sampleEntry()
	a.Actor, a.ActorKind = "ab", "c"
	b.Actor, b.ActorKind = "a", "bc"
	Seal(&a)
	Seal(&b)
	if bytes.Equal(a.Hash, b.Hash) {
		t.Fatal("moving a byte from Actor to ActorKind kept the hash")
	}
	c, d := sampleEntry(), sampleEntry()
	c.ClientIP, c.Detail = "1", []byte("{}")
	d.ClientIP, d.Detail = "1{", []byte("}")
	Seal(&c)
	Seal(&d)
	if bytes.Equal(c.Hash, d.Hash) {
		t.Fatal("moving a byte from Detail to ClientIP kept the hash")
	}
}

// TestSealDocumentedEquivalences pins what the encoding deliberately does
// not distinguish.
func TestSealDocumentedEquivalences(t *testing.T) {
	a, b := sampleEntry(), sampleEntry()
	a.Detail, b.Detail = nil, []byte{}
	a.Time = a.Time.Add(999 * time.Nanosecond)
	Seal(&a)
	Seal(&b)
	if !bytes.Equal(a.Hash, b.Hash) {
		t.Fatal("nil and empty Detail, or times within one microsecond, hash differently")
	}
}
