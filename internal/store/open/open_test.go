package open_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

func mustOpen(t *testing.T, rawURL, dataDir string) store.Store {
	t.Helper()
	s, err := open.Open(t.Context(), rawURL, dataDir)
	if err != nil {
		t.Fatalf("Open(%q, %q): %v", rawURL, dataDir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// persists writes a tenant, reopens the URL and finds it again.
func persists(t *testing.T, rawURL, dataDir string) {
	t.Helper()
	s := mustOpen(t, rawURL, dataDir)
	tn := &store.Tenant{Name: "t"}
	if err := s.CreateTenant(t.Context(), tn); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := mustOpen(t, rawURL, dataDir).GetTenant(t.Context(), tn.ID); err != nil {
		t.Fatalf("reopening %q: the tenant is gone: %v", rawURL, err)
	}
}

func TestDefaultFileInDataDir(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	persists(t, "", dataDir)
	st, err := os.Stat(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o700 {
		t.Errorf("data dir mode = %v, want 0700", m)
	}
	if _, err := os.Stat(filepath.Join(dataDir, open.DefaultFile)); err != nil {
		t.Errorf("no %s in the data dir: %v", open.DefaultFile, err)
	}
}

func TestInMemory(t *testing.T) {
	for _, u := range []string{"", "sqlite::memory:"} {
		s := mustOpen(t, u, "")
		if s.Kind() != "sqlite" {
			t.Errorf("Open(%q).Kind() = %q, want sqlite", u, s.Kind())
		}
		if err := s.CreateTenant(t.Context(), &store.Tenant{Name: "t"}); err != nil {
			t.Fatal(err)
		}
		// A second in-memory store is a database of its own.
		if n, _ := mustOpen(t, u, "").CountTenants(t.Context()); n != 0 {
			t.Errorf("a second in-memory store sees %d tenants of the first", n)
		}
	}
}

func TestSQLitePaths(t *testing.T) {
	dir := t.TempDir()
	persists(t, "sqlite://"+filepath.Join(dir, "abs.db"), "/nonexistent-data-dir")
	if _, err := os.Stat(filepath.Join(dir, "abs.db")); err != nil {
		t.Errorf("sqlite:///abs: %v", err)
	}
	persists(t, "sqlite://sub/rel.db", dir)
	if _, err := os.Stat(filepath.Join(dir, "sub", "rel.db")); err != nil {
		t.Errorf("sqlite://rel is not relative to the data dir: %v", err)
	}
}

func TestPostgres(t *testing.T) {
	u := storetest.PostgresURL(t)
	// A PostgreSQL store needs an explicit master key (secrets_test.go).
	t.Setenv(open.KeyEnv, "c3RvcmUta2V5LW9mLXRoZS1wb3N0Z3Jlcy10ZXN0ISE=")
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		s := mustOpen(t, scheme+strings.TrimPrefix(u, "postgres://"), "")
		if s.Kind() != "postgres" {
			t.Errorf("Kind() = %q, want postgres", s.Kind())
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct{ url, dataDir, want string }{
		{"mysql://root:hunter2@db/x", "", `"mysql://root:xxxxx@db/x": unsupported`},
		{"sqlite://rel.db", "", "data_dir, which is not set"},
		{"sqlite://", "/tmp", "names no file"},
		{"sqlite:rel.db", "/tmp", "want sqlite:///abs/path.db"},
		{"redis://:hunter2@h:6379/0", "", "redis://:xxxxx@h:6379/0"},
		{"http://u:hunter2@[::1", "", `"http:…" (unparsable)`},
		{"postgres://u:hunter2@127.0.0.1:1/x?sslmode=disable&connect_timeout=1", "", "postgres://u:xxxxx@127.0.0.1:1/x"},
	} {
		_, err := open.Open(t.Context(), tc.url, tc.dataDir)
		if err == nil {
			t.Errorf("Open(%q) succeeded", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v, want it to say %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error shows the password: %v", tc.url, err)
		}
	}
}

// TestDefaultKeyBesideTheFile: the default key file is store.key beside
// the database file each URL names; memory databases get a key in
// memory, and PostgreSQL none.
func TestDefaultKeyBesideTheFile(t *testing.T) {
	for _, c := range []struct{ url, dataDir, want string }{
		{"", "/data", "key file " + filepath.Join("/data", open.KeyFile)},
		{"sqlite:///srv/db/x.db", "/data", "key file " + filepath.Join("/srv/db", open.KeyFile)},
		{"sqlite://sub/x.db", "/data", "key file " + filepath.Join("/data/sub", open.KeyFile)},
		{"", "", "in-memory"},
		{"sqlite::memory:", "/data", "in-memory"},
		{"sqlite://x.db", "", "in-memory"}, // refused by Open
	} {
		k, err := open.DefaultKey(c.url, c.dataDir)
		if err != nil || !strings.Contains(k.String(), c.want) {
			t.Errorf("DefaultKey(%q, %q) = %v, %v; want %q", c.url, c.dataDir, k, err, c.want)
		}
	}
	if k, err := open.DefaultKey("postgres://u@h/db", ""); err == nil {
		t.Errorf("DefaultKey(postgres) = %v, want an error", k)
	}
}
