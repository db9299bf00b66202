package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

func testKey(t testing.TB) Key {
	k := make([]byte, KeySize)
	rand.Read(k)
	return Key{Bytes: k, Kind: KeyStore, Source: "the test's key"}
}

type envKey []byte

func (k envKey) MasterKey(context.Context) ([]byte, error) { return bytes.Clone(k), nil }
func (envKey) String() string                              { return "the test's key" }

// fill writes some of everything the tests check to st: tenants (one with
// a lattice), and returns the tenants' names.
func fill(t *testing.T, st store.Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for i := range n {
		tn := &store.Tenant{ID: fmt.Sprintf("t%04d", i), Name: fmt.Sprintf("tenant-%d", i), Plan: "free", CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
		if err := st.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateLattice(ctx, &store.Lattice{ID: fmt.Sprintf("l%04d", i), TenantID: tn.ID, Name: "grid", Spec: []byte(`{"axes":[3]}`), CreatedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		names = append(names, tn.Name)
	}
	return names
}

func openStore(t *testing.T, rawURL, dataDir string, key []byte) store.Store {
	t.Helper()
	st, err := open.OpenWithKey(context.Background(), rawURL, dataDir, envKey(key))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func checkRestored(t *testing.T, st store.Store, names []string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range names {
		tn, err := st.GetTenantByName(ctx, n)
		if err != nil {
			t.Fatalf("tenant %s: %v", n, err)
		}
		ls, err := st.ListLattices(ctx, tn.ID)
		if err != nil || len(ls) != 1 || string(ls[0].Spec) != `{"axes":[3]}` {
			t.Fatalf("lattices of %s: %v %v", n, ls, err)
		}
	}
	// New rows still get fresh ids and orders after a restore (the
	// sequences were restored too).
	tn, _ := st.GetTenantByName(ctx, names[0])
	if err := st.CreateLattice(ctx, &store.Lattice{ID: "after", TenantID: tn.ID, Name: "after", Spec: []byte(`{}`), CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatalf("a lattice after the restore: %v", err)
	}
	ls, _ := st.ListLattices(ctx, tn.ID)
	if len(ls) != 2 || ls[1].ID != "after" {
		t.Fatalf("lattices after the restore: %+v", ls)
	}
}

func TestSQLiteRoundTrip(t *testing.T) {
	ctx := context.Background()
	key := testKey(t)
	src := t.TempDir()
	st := openStore(t, "", src, key.Bytes)
	names := fill(t, st, 5)
	defer st.Close()
	// A queue file beside it, as `mcpedge serve` keeps one.
	qdb := filepath.Join(src, "queue.db")
	if err := vacuumInto(ctx, filepath.Join(src, open.DefaultFile), qdb); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	m, err := Write(ctx, &buf, key, Source{DataDir: src, QueuePath: qdb, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Engine != EngineSQLite || m.SchemaVersion < 8 || m.Queue == nil {
		t.Fatalf("manifest %+v", m)
	}
	if tb, ok := m.table("tenants"); !ok || tb.Rows != 5 {
		t.Fatalf("tenants in the manifest: %+v", tb)
	}
	vm, err := Verify(ctx, bytes.NewReader(buf.Bytes()), key)
	if err != nil || vm.SchemaVersion != m.SchemaVersion {
		t.Fatalf("Verify: %v", err)
	}

	dst := t.TempDir()
	checked := false
	_, err = Restore(ctx, bytes.NewReader(buf.Bytes()), key, Target{DataDir: dst, QueuePath: filepath.Join(dst, "queue.db"),
		CheckStore: func(ctx context.Context, path string) error {
			s, err := open.OpenWithKey(ctx, "sqlite://"+path, "", envKey(key.Bytes))
			if err != nil {
				return err
			}
			checked = true
			return s.Close()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Error("CheckStore was not called")
	}
	if _, err := os.Stat(filepath.Join(dst, "queue.db")); err != nil {
		t.Errorf("the queue was not restored: %v", err)
	}
	got := openStore(t, "", dst, key.Bytes)
	defer got.Close()
	checkRestored(t, got, names)

	// A second restore into the same, now non-empty, place is refused.
	if _, err := Restore(ctx, bytes.NewReader(buf.Bytes()), key, Target{DataDir: dst}); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("restore into a used store: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dst, ".*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestPostgresRoundTrip(t *testing.T) {
	ctx := context.Background()
	key := testKey(t)
	srcURL := storetest.PostgresURL(t)
	st := openStore(t, srcURL, "", key.Bytes)
	names := fill(t, st, 5)
	defer st.Close()

	var buf bytes.Buffer
	m, err := Write(ctx, &buf, key, Source{StoreURL: srcURL, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Engine != EnginePostgres || len(m.Sequences) == 0 {
		t.Fatalf("manifest %+v", m)
	}
	dstURL := storetest.PostgresURL(t)
	if _, err := Restore(ctx, bytes.NewReader(buf.Bytes()), key, Target{StoreURL: dstURL}); err != nil {
		t.Fatal(err)
	}
	got := openStore(t, dstURL, "", key.Bytes)
	defer got.Close()
	checkRestored(t, got, names)
	if _, err := Restore(ctx, bytes.NewReader(buf.Bytes()), key, Target{StoreURL: dstURL}); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("restore into a used schema: %v", err)
	}
	// A SQLite target is refused: no cross-engine restore.
	if _, err := Restore(ctx, bytes.NewReader(buf.Bytes()), key, Target{DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "engine") {
		t.Errorf("restore of a PostgreSQL backup into SQLite: %v", err)
	}
}

var _ sealbox.KeySource = envKey(nil)

// TestRestoreIntoEmptyFile: a store file of no bytes, or an SQLite
// database without tables, is empty and is replaced.
func TestRestoreIntoEmptyFile(t *testing.T) {
	ctx := context.Background()
	key := testKey(t)
	src := t.TempDir()
	st := openStore(t, "", src, key.Bytes)
	names := fill(t, st, 1)
	st.Close()
	var buf bytes.Buffer
	if _, err := Write(ctx, &buf, key, Source{DataDir: src}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(path string) error
	}{
		{"no bytes", func(p string) error { return os.WriteFile(p, nil, 0o600) }},
		{"no tables", func(p string) error {
			db, err := openSQLite(filepath.Join(src, open.DefaultFile))
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = db.ExecContext(ctx, `VACUUM INTO ?`, p)
			if err != nil {
				return err
			}
			// Drop every table of the copy.
			c, err := openSQLite(p)
			if err != nil {
				return err
			}
			defer c.Close()
			ts, err := sqliteTables(ctx, c)
			if err != nil {
				return err
			}
			for _, tb := range ts {
				if _, err := c.ExecContext(ctx, `PRAGMA foreign_keys = OFF; DROP TABLE "`+tb.Name+`"`); err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			if err := tc.make(filepath.Join(dst, open.DefaultFile)); err != nil {
				t.Fatal(err)
			}
			if _, err := Restore(ctx, bytes.NewReader(buf.Bytes()), key, Target{DataDir: dst}); err != nil {
				t.Fatal(err)
			}
			got := openStore(t, "", dst, key.Bytes)
			defer got.Close()
			checkRestored(t, got, names)
		})
	}
}
