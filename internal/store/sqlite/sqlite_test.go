package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

func openFile(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := tryOpen(t, path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tryOpen(t *testing.T, path string) (*sqlite.Store, error) {
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Close() })
	return s, nil
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openFile(t, filepath.Join(t.TempDir(), "mcpedge.db"))
	})
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFile(t, ":memory:") })
}

// TestTwoProcesses opens the same file twice, as the CLI and a running
// gateway do, and writes through both at once.
func TestTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	storetest.RunShared(t, openFile(t, path), openFile(t, path))
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	storetest.RunMigrations(t, sqlite.LatestVersion(),
		func(t *testing.T) (storetest.Migrator, error) { return tryOpen(t, path) },
		func(t *testing.T, stmt string) {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.ExecContext(t.Context(), stmt); err != nil {
				t.Fatal(err)
			}
		})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "missing", "x.db"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open in a missing directory = %v, want an error naming the directory", err)
	}
	if _, err := sqlite.Open(ctx, ""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	notDB := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(ctx, notDB); err == nil || !strings.Contains(err.Error(), notDB) {
		t.Errorf("Open of a file that is not a database = %v, want an error naming it", err)
	}
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.db")
	openFile(t, path)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("database file mode = %v, want 0600 (it holds the gateway's secrets)", m)
	}
}

func TestPathWithSpecialCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?#%", "my db.sqlite")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s := openFile(t, path)
	if err := s.CreateTenant(t.Context(), &store.Tenant{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at the path given: %v", err)
	}
}

// TestRealProcesses runs writers in child processes (this test binary,
// re-executed) and in this one at once, all on one file: the audit chain
// stays gapless and linked, and no write fails with "database is locked".
func TestRealProcesses(t *testing.T) {
	const appends = 40
	if path := os.Getenv("MCPEDGE_SQLITE_CHILD_DB"); path != "" {
		write(t, path, appends)
		return
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := filepath.Join(t.TempDir(), "procs.db")
	s := openFile(t, path)
	const children = 2
	cmds := make([]*exec.Cmd, children)
	outs := make([]bytes.Buffer, children)
	for i := range cmds {
		cmds[i] = exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestRealProcesses$", "-test.count=1")
		cmds[i].Env = append(os.Environ(), "MCPEDGE_SQLITE_CHILD_DB="+path)
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	write(t, path, appends)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer process %d: %v\n%s", i, err, outs[i].String())
		}
	}
	entries, err := s.ListAudit(t.Context(), store.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if want := (children + 1) * appends; len(entries) != want {
		t.Fatalf("%d audit entries from %d processes, want %d", len(entries), children+1, want)
	}
	storetest.VerifyChain(t, entries)
	tn, err := s.GetTenantByName(t.Context(), "procs")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s.GetUsage(t.Context(), tn.ID, "p"); n != (children+1)*appends {
		t.Errorf("usage = %d, want %d", n, (children+1)*appends)
	}
}

// write appends audit entries and usage through its own store on path.
func write(t *testing.T, path string, n int) {
	ctx := t.Context()
	s := openFile(t, path)
	tn := &store.Tenant{Name: "procs"}
	if err := s.CreateTenant(ctx, tn); errors.Is(err, store.ErrConflict) {
		tn, err = s.GetTenantByName(ctx, "procs")
		if err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := &store.AuditEntry{Actor: fmt.Sprint(os.Getpid()), ActorKind: "cli", Action: "x", Outcome: "ok", Target: fmt.Sprint(i)}
		if err := s.AppendAudit(ctx, []*store.AuditEntry{e}, storetest.Seal); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddUsage(ctx, tn.ID, "p", 1); err != nil {
			t.Fatal(err)
		}
	}
}
