package open_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
	"github.com/mcpedge/mcpedge/internal/store/postgres"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

// A backend is one database of one implementation, opened through open
// (the production path) and read and written under the store, as
// someone holding a copy of the database would.
type backend struct {
	url string
	// raw reads and writes the secrets table without the store.
	raw func(t *testing.T) rawDB
	// unsealed opens the database without a master key, as the dialect
	// packages (and mcpedge before secrets were sealed) do.
	unsealed func(t *testing.T) store.Store
}

type rawDB interface {
	get(name string) (value []byte, sealed bool, err error)
	put(name string, value []byte, sealed bool)
}

// backends are a SQLite file and, with MCPEDGE_TEST_POSTGRES, a fresh
// PostgreSQL schema.
func backends(t *testing.T) map[string]func(t *testing.T) backend {
	return map[string]func(t *testing.T) backend{
		"sqlite": func(t *testing.T) backend {
			path := filepath.Join(t.TempDir(), "s.db")
			return backend{
				url: "sqlite://" + path,
				raw: func(t *testing.T) rawDB {
					db, err := sql.Open("sqlite", path)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { db.Close() })
					return sqlRaw{t, db}
				},
				unsealed: func(t *testing.T) store.Store {
					s, err := sqlite.Open(t.Context(), path)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { s.Close() })
					return s
				},
			}
		},
		"postgres": func(t *testing.T) backend {
			u := storetest.PostgresURL(t)
			return backend{
				url: u,
				raw: func(t *testing.T) rawDB {
					c, err := pgx.Connect(t.Context(), u)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { c.Close(context.Background()) })
					return pgRaw{t, c}
				},
				unsealed: func(t *testing.T) store.Store {
					s, err := postgres.Open(t.Context(), u)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { s.Close() })
					return s
				},
			}
		},
	}
}

type sqlRaw struct {
	t  *testing.T
	db *sql.DB
}

func (r sqlRaw) get(name string) (v []byte, sealed bool, err error) {
	err = r.db.QueryRowContext(r.t.Context(), `SELECT value, sealed FROM secrets WHERE name = ?`, name).Scan(&v, &sealed)
	return v, sealed, err
}

func (r sqlRaw) put(name string, v []byte, sealed bool) {
	r.t.Helper()
	if _, err := r.db.ExecContext(r.t.Context(), `INSERT INTO secrets (name, value, sealed, created_at) VALUES (?, ?, ?, 1)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, sealed = excluded.sealed`, name, v, sealed); err != nil {
		r.t.Fatal(err)
	}
}

type pgRaw struct {
	t *testing.T
	c *pgx.Conn
}

func (r pgRaw) get(name string) (v []byte, sealed bool, err error) {
	err = r.c.QueryRow(r.t.Context(), `SELECT value, sealed FROM secrets WHERE name = $1`, name).Scan(&v, &sealed)
	return v, sealed, err
}

func (r pgRaw) put(name string, v []byte, sealed bool) {
	r.t.Helper()
	if _, err := r.c.Exec(r.t.Context(), `INSERT INTO secrets (name, value, sealed, created_at) VALUES ($1, $2, $3, now())
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, sealed = excluded.sealed`, name, v, sealed); err != nil {
		r.t.Fatal(err)
	}
}

// eachBackend runs fn as a subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) { fn(t, mk(t)) })
	}
}

// keyFile is a fresh master key file in a temporary directory.
func keyFile(t *testing.T) sealbox.KeySource {
	return sealbox.FileKey(filepath.Join(t.TempDir(), "store.key"))
}

func openKeyed(t *testing.T, b backend, key sealbox.KeySource) store.Store {
	t.Helper()
	s, err := open.OpenWithKey(t.Context(), b.url, "", key)
	if err != nil {
		t.Fatalf("OpenWithKey: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func secret(t *testing.T, s store.Store, name string) []byte {
	t.Helper()
	v, err := s.GetOrCreateSecret(t.Context(), name, func() ([]byte, error) {
		b := make([]byte, 32)
		rand.Read(b)
		return b, nil
	})
	if err != nil {
		t.Fatalf("GetOrCreateSecret(%s): %v", name, err)
	}
	return v
}

func ring(t *testing.T, s store.Store) *store.SecretRing {
	t.Helper()
	r, err := s.(store.SealedSecrets).SecretRing(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The conformance suite holds for stores whose secrets are sealed, as
// every store of a running gateway is.
func TestConformanceSealed(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			return openKeyed(t, backend{url: "sqlite://" + filepath.Join(t.TempDir(), "c.db")}, keyFile(t))
		})
	})
	t.Run("postgres", func(t *testing.T) {
		storetest.PostgresURL(t) // skips without a database
		key := keyFile(t)
		storetest.Run(t, func(t *testing.T) store.Store {
			return openKeyed(t, backend{url: storetest.PostgresURL(t) + "&pool_max_conns=4"}, key)
		})
	})
}

// The row holds a ciphertext, not the secret; the store gives back the
// secret, also after a restart with the same key.
func TestSecretSealedAtRest(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		key := keyFile(t)
		s := openKeyed(t, b, key)
		v := secret(t, s, "jwt-hs256-v1")
		raw, sealed, err := b.raw(t).get("jwt-hs256-v1")
		if err != nil {
			t.Fatal(err)
		}
		if !sealed || bytes.Contains(raw, v) || len(raw) != len(v)+sealbox.Overhead {
			t.Fatalf("row: sealed=%v, %d bytes (secret %d bytes), contains the secret: %v", sealed, len(raw), len(v), bytes.Contains(raw, v))
		}
		if id, err := sealbox.KeyID(raw); err != nil || id != 1 {
			t.Errorf("KeyID of the row = %d, %v; want key 1", id, err)
		}
		s.Close()
		if got := secret(t, openKeyed(t, b, key), "jwt-hs256-v1"); !bytes.Equal(got, v) {
			t.Errorf("after a restart the secret is %x, want %x", got, v)
		}
		// A store opened without the key refuses the row rather than
		// returning the ciphertext.
		if got, err := b.unsealed(t).GetOrCreateSecret(t.Context(), "jwt-hs256-v1", nil); err == nil || !strings.Contains(err.Error(), "without a master key") {
			t.Errorf("unsealed store read a sealed secret: %x, %v", got, err)
		}
	})
}

// A ciphertext copied into another secret's row does not open there: at
// start (every secret is checked) and when read.
func TestSecretMovedFails(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		key := keyFile(t)
		s := openKeyed(t, b, key)
		secret(t, s, "a")
		vb := secret(t, s, "b")
		raw := b.raw(t)
		ca, _, _ := raw.get("a")
		cb, _, _ := raw.get("b")
		raw.put("b", ca, true)
		got, err := s.GetOrCreateSecret(t.Context(), "b", nil)
		if !errors.Is(err, sealbox.ErrOpen) || got != nil {
			t.Fatalf("GetOrCreateSecret of a moved ciphertext = %x, %v; want sealbox.ErrOpen", got, err)
		}
		_, err = open.OpenWithKey(t.Context(), b.url, "", key)
		if !errors.Is(err, sealbox.ErrOpen) || !strings.Contains(err.Error(), `secret "b"`) {
			t.Fatalf("Open with a moved ciphertext: %v; want sealbox.ErrOpen naming secret b", err)
		}
		// Put back, it opens again: nothing was regenerated.
		raw.put("b", cb, true)
		if got, err := s.GetOrCreateSecret(t.Context(), "b", nil); err != nil || !bytes.Equal(got, vb) {
			t.Fatalf("the restored row: %x, %v; want %x", got, err, vb)
		}
	})
}

// A master key that is not the store's is refused at open, with an error
// naming where it came from, and the secrets are left as they were.
func TestWrongMasterKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		right := keyFile(t)
		s := openKeyed(t, b, right)
		v := secret(t, s, "apikey-hmac-v1")
		before, _, _ := b.raw(t).get("apikey-hmac-v1")
		s.Close()

		wrongFile := filepath.Join(t.TempDir(), "other.key")
		k := make([]byte, 32)
		rand.Read(k)
		t.Setenv("TEST_WRONG_STORE_KEY", base64.StdEncoding.EncodeToString(k))
		for _, wrong := range []sealbox.KeySource{sealbox.FileKey(wrongFile), sealbox.EnvKey("TEST_WRONG_STORE_KEY")} {
			st, err := open.OpenWithKey(t.Context(), b.url, "", wrong)
			if err == nil {
				st.Close()
				t.Fatalf("%s: opened with the wrong key", wrong)
			}
			if !strings.Contains(err.Error(), wrong.String()) || !strings.Contains(err.Error(), "is not the one") {
				t.Errorf("%s: error %q does not name the key source and the mismatch", wrong, err)
			}
		}
		t.Setenv("TEST_WRONG_STORE_KEY", "not base64!")
		if _, err := open.OpenWithKey(t.Context(), b.url, "", sealbox.EnvKey("TEST_WRONG_STORE_KEY")); err == nil || !strings.Contains(err.Error(), "TEST_WRONG_STORE_KEY is not base64") {
			t.Errorf("a malformed key: %v", err)
		}
		after, _, _ := b.raw(t).get("apikey-hmac-v1")
		if !bytes.Equal(before, after) {
			t.Error("a refused open changed the secret's row")
		}
		if got := secret(t, openKeyed(t, b, right), "apikey-hmac-v1"); !bytes.Equal(got, v) {
			t.Error("the right key no longer opens the secret")
		}
	})
}

// Secrets written in the clear (by an earlier mcpedge) are sealed in
// place, once, when a store is opened with a key; several processes doing
// it at the same time neither corrupt nor seal twice.
func TestPlaintextMigration(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		b.unsealed(t).Close() // migrate the schema
		raw := b.raw(t)
		want := map[string][]byte{}
		for i := range 12 {
			v := []byte(fmt.Sprintf("legacy-secret-%02d-%s", i, strings.Repeat("x", 20)))
			want[fmt.Sprintf("s%02d", i)] = v
			raw.put(fmt.Sprintf("s%02d", i), v, false)
		}
		key := keyFile(t)
		const racers = 4
		stores := make([]store.Store, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				stores[i], errs[i] = open.OpenWithKey(t.Context(), b.url, "", key)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("racer %d: %v", i, err)
			}
			t.Cleanup(func() { stores[i].Close() })
		}
		for name, v := range want {
			ct, sealed, err := raw.get(name)
			if err != nil || !sealed || bytes.Contains(ct, v) {
				t.Fatalf("%s after migration: sealed=%v err=%v, still contains the plaintext: %v", name, sealed, err, bytes.Contains(ct, v))
			}
			for i, s := range stores {
				// A double seal would open to the first ciphertext.
				got, err := s.GetOrCreateSecret(t.Context(), name, nil)
				if err != nil || !bytes.Equal(got, v) {
					t.Fatalf("racer %d: %s = %q, %v; want %q", i, name, got, err, v)
				}
			}
		}
		if r := ring(t, stores[0]); r.Plaintext != 0 || r.Secrets != len(want) {
			t.Errorf("ring after migration: %+v", r)
		}
		// A plaintext row written later (by an old binary still running)
		// is sealed by the first read.
		raw.put("late", []byte("late-plaintext"), false)
		if got, err := stores[1].GetOrCreateSecret(t.Context(), "late", nil); err != nil || string(got) != "late-plaintext" {
			t.Fatalf("late plaintext: %q, %v", got, err)
		}
		if ct, sealed, _ := raw.get("late"); !sealed || bytes.Contains(ct, []byte("late-plaintext")) {
			t.Error("a plaintext row read through a sealed store stays in the clear")
		}
	})
}

// Rekeying adds a key and seals every secret with it; ciphertexts of the
// old key still open meanwhile, in this process and in another one that
// has not seen the new key yet.
func TestRekeySecrets(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		key := keyFile(t)
		a := openKeyed(t, b, key)
		other := openKeyed(t, b, key) // another replica
		names := []string{"apikey-hmac-v1", "jwt-hs256-v1", "third"}
		want := map[string][]byte{}
		for _, n := range names {
			want[n] = secret(t, a, n)
		}
		raw := b.raw(t)
		old, _, _ := raw.get("third")

		id, n, err := a.(store.SealedSecrets).RekeySecrets(t.Context())
		if err != nil || id != 2 || n != len(names) {
			t.Fatalf("RekeySecrets = key %d, %d resealed, %v; want key 2, %d", id, n, err, len(names))
		}
		for _, n := range names {
			ct, sealed, _ := raw.get(n)
			if kid, _ := sealbox.KeyID(ct); !sealed || kid != 2 {
				t.Errorf("%s after rekey: sealed=%v key %d, want key 2", n, sealed, kid)
			}
			if got, err := other.GetOrCreateSecret(t.Context(), n, nil); err != nil || !bytes.Equal(got, want[n]) {
				t.Errorf("the other replica reads %s = %x, %v", n, got, err)
			}
		}
		// A row still sealed with key 1 (as while a rekey runs) opens.
		raw.put("third", old, true)
		for _, s := range []store.Store{a, other} {
			if got, err := s.GetOrCreateSecret(t.Context(), "third", nil); err != nil || !bytes.Equal(got, want["third"]) {
				t.Errorf("a key-1 ciphertext after the rotation: %x, %v", got, err)
			}
		}
		r := ring(t, a)
		if len(r.Keys) != 2 || r.Keys[0].ID != 1 || r.Keys[1].ID != 2 || !r.Keys[1].Active || r.Keys[0].Active ||
			r.Keys[0].Secrets != 1 || r.Keys[1].Secrets != 2 || r.Keys[1].Messages < 3 || r.Keys[0].MaxMessages != sealbox.DefaultMaxMessages {
			t.Errorf("ring after rekey: %+v", r)
		}
		// A second rekey moves the straggler too; a fresh open sees it.
		if id, n, err := other.(store.SealedSecrets).RekeySecrets(t.Context()); err != nil || id != 3 || n != len(names) {
			t.Fatalf("second RekeySecrets = %d, %d, %v", id, n, err)
		}
		fresh := openKeyed(t, b, key)
		for _, n := range names {
			if got, err := fresh.GetOrCreateSecret(t.Context(), n, nil); err != nil || !bytes.Equal(got, want[n]) {
				t.Errorf("after two rekeys %s = %x, %v", n, got, err)
			}
		}
		if r := ring(t, fresh); len(r.Keys) != 3 || r.Keys[2].Secrets != len(names) {
			t.Errorf("ring after the second rekey: %+v", r)
		}
	})
}

// A PostgreSQL store is not opened with a key made up on this machine.
func TestPostgresNeedsExplicitKey(t *testing.T) {
	u := storetest.PostgresURL(t)
	t.Setenv(open.KeyEnv, "")
	_, err := open.Open(t.Context(), u, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), open.KeyEnv) || !strings.Contains(err.Error(), "key_file") {
		t.Fatalf("Open of postgres without a key: %v", err)
	}
	k := make([]byte, 32)
	rand.Read(k)
	t.Setenv(open.KeyEnv, base64.StdEncoding.EncodeToString(k))
	s, err := open.Open(t.Context(), u, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	secret(t, s, "x")
}

// The default key of a SQLite file is store.key beside it, created 0600.
func TestDefaultKeyFile(t *testing.T) {
	t.Setenv(open.KeyEnv, "")
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, "", dir)
	v := secret(t, s, "x")
	s.Close()
	st, err := os.Stat(filepath.Join(dir, open.KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Fatalf("key file: %v, %v", st, err)
	}
	if got := secret(t, mustOpen(t, "", dir), "x"); !bytes.Equal(got, v) {
		t.Error("the secret changed across a restart")
	}
	// The key file gone: the store is refused, not given new secrets.
	os.Rename(filepath.Join(dir, open.KeyFile), filepath.Join(dir, "moved.key"))
	if _, err := open.Open(t.Context(), "", dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, open.KeyFile)+" does not exist") {
		t.Fatalf("Open without its key file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, open.KeyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused open created a key file: %v", err)
	}
	// Restored, it opens again.
	os.Rename(filepath.Join(dir, "moved.key"), filepath.Join(dir, open.KeyFile))
	if got := secret(t, mustOpen(t, "", dir), "x"); !bytes.Equal(got, v) {
		t.Error("the secret changed after restoring the key file")
	}
}

// FuzzSecretRow writes arbitrary bytes into a secret's row, sealed or
// not, as someone with write access to the database could, and reads the
// secret through a sealed store. It must never panic and never hand back
// the bytes of a sealed row (a ciphertext as a key): a sealed row opens to
// the secret it was made for or is an error; a row in the clear is
// returned as it is and sealed in place.
func FuzzSecretRow(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "f.db")
	s, err := open.OpenWithKey(context.Background(), "sqlite://"+path, "", sealbox.FileKey(filepath.Join(dir, "k")))
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	good, err := s.GetOrCreateSecret(context.Background(), "f", func() ([]byte, error) { return []byte("the-real-secret"), nil })
	if err != nil {
		f.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	var goodCT []byte
	if err := db.QueryRow(`SELECT value FROM secrets WHERE name = 'f'`).Scan(&goodCT); err != nil {
		f.Fatal(err)
	}
	f.Add(goodCT, true)
	f.Add(goodCT, false)
	f.Add(goodCT[:len(goodCT)-1], true)
	f.Add(append([]byte{2}, goodCT[1:]...), true)
	f.Add([]byte{}, true)
	f.Add([]byte{}, false)
	f.Add([]byte("plain"), false)
	f.Add(make([]byte, sealbox.Overhead), true)
	f.Fuzz(func(t *testing.T, value []byte, sealed bool) {
		if value == nil {
			value = []byte{}
		}
		if _, err := db.Exec(`UPDATE secrets SET value = ?, sealed = ? WHERE name = 'f'`, value, sealed); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetOrCreateSecret(context.Background(), "f", func() ([]byte, error) {
			t.Fatal("gen called for an existing secret")
			return nil, nil
		})
		switch {
		case sealed && bytes.Equal(value, goodCT):
			if err != nil || !bytes.Equal(got, good) {
				t.Fatalf("the real ciphertext: %q, %v", got, err)
			}
		case sealed || len(value) == 0:
			if err == nil {
				t.Fatalf("forged row %x (sealed %v) opened to %x", value, sealed, got)
			}
		default:
			if err != nil || !bytes.Equal(got, value) {
				t.Fatalf("plaintext row %x read as %x, %v", value, got, err)
			}
			var now []byte
			var isSealed bool
			if err := db.QueryRow(`SELECT value, sealed FROM secrets WHERE name = 'f'`).Scan(&now, &isSealed); err != nil || !isSealed {
				t.Fatalf("plaintext row not sealed after the read: sealed=%v %v", isSealed, err)
			}
		}
	})
}
