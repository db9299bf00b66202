package backup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

// sqliteBackup makes a small SQLite store and a backup of it.
func sqliteBackup(t *testing.T, key Key) []byte {
	t.Helper()
	src := t.TempDir()
	st := openStore(t, "", src, key.Bytes)
	fill(t, st, 2)
	st.Close()
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, key, Source{DataDir: src, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// restoreInto restores b into a new data directory and returns the error
// and the directory.
func restoreInto(t *testing.T, b []byte, key Key) (string, error) {
	t.Helper()
	dst := t.TempDir()
	_, err := Restore(context.Background(), bytes.NewReader(b), key, Target{DataDir: dst})
	return dst, err
}

// nothingWritten: a refused restore leaves the target directory empty.
func nothingWritten(t *testing.T, dir, what string) {
	t.Helper()
	left, _ := os.ReadDir(dir)
	if len(left) > 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("%s: the refused restore left %v", what, names)
	}
}

func TestRestoreRefusesBadInput(t *testing.T) {
	key := testKey(t)
	good := sqliteBackup(t, key)

	t.Run("wrong key", func(t *testing.T) {
		dir, err := restoreInto(t, good, testKey(t))
		if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "master key") {
			t.Fatalf("err = %v", err)
		}
		nothingWritten(t, dir, "wrong key")
	})
	t.Run("backup key expected", func(t *testing.T) {
		bk := testKey(t)
		bk.Kind = KeyBackup
		var buf bytes.Buffer
		src := t.TempDir()
		st := openStore(t, "", src, key.Bytes)
		st.Close()
		if _, err := Write(context.Background(), &buf, bk, Source{DataDir: src}); err != nil {
			t.Fatal(err)
		}
		if kind, err := KeyKind(bytes.NewReader(buf.Bytes())); err != nil || kind != KeyBackup {
			t.Fatalf("KeyKind = %q %v", kind, err)
		}
		if _, err := restoreInto(t, buf.Bytes(), key); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "backup key") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		// Cut at many places: in the header, in a chunk, at a chunk's
		// end (the last chunk missing).
		cuts := []int{0, 5, len(Magic) + 1, 40, len(good) / 3, len(good) - 1}
		for off := len(Magic) + 2; off < len(good); {
			hl := int(binary.BigEndian.Uint16(good[len(Magic):]))
			if off == len(Magic)+2 {
				off += hl
			}
			cl := int(binary.BigEndian.Uint32(good[off:]))
			off += 4 + cl
			if off < len(good) {
				cuts = append(cuts, off)
			}
		}
		for _, n := range cuts {
			dir, err := restoreInto(t, good[:n], key)
			if err == nil || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotBackup)) {
				t.Errorf("cut at %d of %d: %v", n, len(good), err)
			}
			nothingWritten(t, dir, "truncated")
		}
	})
	t.Run("tampered", func(t *testing.T) {
		for _, off := range []int{len(Magic) + 10, len(good) / 2, len(good) - 3} {
			b := bytes.Clone(good)
			b[off] ^= 0x40
			dir, err := restoreInto(t, b, key)
			if err == nil {
				t.Fatalf("a byte changed at %d: restored", off)
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
				t.Errorf("a byte changed at %d: %v", off, err)
			}
			nothingWritten(t, dir, "tampered")
		}
		// Appended data.
		if _, err := restoreInto(t, append(bytes.Clone(good), 0), key); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a byte appended: %v", err)
		}
	})
	t.Run("not a backup", func(t *testing.T) {
		if _, err := restoreInto(t, []byte("SQLite format 3\x00 and more"), key); !errors.Is(err, ErrNotBackup) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("newer schema", func(t *testing.T) {
		b := rewrite(t, good, key, func(m *Manifest) { m.SchemaVersion = 9999 })
		dir, err := restoreInto(t, b, key)
		if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999") {
			t.Fatalf("err = %v", err)
		}
		nothingWritten(t, dir, "newer schema")
	})
	t.Run("row counts that do not match", func(t *testing.T) {
		b := rewrite(t, good, key, func(m *Manifest) {
			for i := range m.Tables {
				if m.Tables[i].Name == "tenants" {
					m.Tables[i].Rows++
				}
			}
		})
		dir, err := restoreInto(t, b, key)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "tenants") {
			t.Fatalf("err = %v", err)
		}
		nothingWritten(t, dir, "row counts")
	})
	t.Run("non-empty target", func(t *testing.T) {
		dst := t.TempDir()
		st := openStore(t, "", dst, key.Bytes)
		st.Close()
		before, _ := os.ReadFile(filepath.Join(dst, "mcpedge.db"))
		_, err := Restore(context.Background(), bytes.NewReader(good), key, Target{DataDir: dst})
		if !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("err = %v", err)
		}
		after, _ := os.ReadFile(filepath.Join(dst, "mcpedge.db"))
		if !bytes.Equal(before, after) {
			t.Error("the refused restore changed the target")
		}
	})
}

// rewrite decrypts a backup, changes its manifest with fn and encrypts it
// again with key (a backup made by someone who has the key, so the outer
// layer is valid; the inner checks must catch it).
func rewrite(t *testing.T, b []byte, key Key, fn func(*Manifest)) []byte {
	t.Helper()
	dec, err := newDecReader(bytes.NewReader(b), key)
	if err != nil {
		t.Fatal(err)
	}
	in := newArchiveReader(dec)
	m, err := readManifest(in)
	if err != nil {
		t.Fatal(err)
	}
	fn(m)
	var out bytes.Buffer
	ew, err := newEncWriter(&out, key)
	if err != nil {
		t.Fatal(err)
	}
	a := newArchiveWriter(ew)
	if err := a.entry(entryManifest, func(w io.Writer) error { return jsonTo(w, m) }); err != nil {
		t.Fatal(err)
	}
	for {
		name, body, err := in.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := a.entry(name, func(w io.Writer) error { _, err := io.Copy(w, body); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.finish(); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestPostgresRestoreRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	key := testKey(t)
	srcURL := storetest.PostgresURL(t)
	st := openStore(t, srcURL, "", key.Bytes)
	fill(t, st, 3)
	st.Close()
	var buf bytes.Buffer
	if _, err := Write(ctx, &buf, key, Source{StoreURL: srcURL}); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	empty := func(t *testing.T, u string) {
		t.Helper()
		conn, err := connectPostgres(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := pgEmpty(ctx, conn, "the target"); err != nil {
			t.Errorf("the refused restore left the schema changed: %v", err)
		}
	}
	// A table's rows changed inside a re-encrypted backup: the COPY
	// loads, the count or the checksum refuses, and the transaction
	// leaves the schema empty.
	b := rewrite(t, good, key, func(m *Manifest) {
		for i := range m.Tables {
			if m.Tables[i].Name == "lattices" {
				m.Tables[i].Rows = 1
			}
		}
	})
	dst := storetest.PostgresURL(t)
	if _, err := Restore(ctx, bytes.NewReader(b), key, Target{StoreURL: dst}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v", err)
	}
	empty(t, dst)
	// Cut short in the middle of the tables.
	if _, err := Restore(ctx, bytes.NewReader(good[:len(good)*2/3]), key, Target{StoreURL: dst}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
	empty(t, dst)
	// Newer schema.
	b = rewrite(t, good, key, func(m *Manifest) { m.SchemaVersion = 9999 })
	if _, err := Restore(ctx, bytes.NewReader(b), key, Target{StoreURL: dst}); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("newer schema: %v", err)
	}
	empty(t, dst)
	// And then the good one goes in.
	if _, err := Restore(ctx, bytes.NewReader(good), key, Target{StoreURL: dst}); err != nil {
		t.Fatal(err)
	}
}
