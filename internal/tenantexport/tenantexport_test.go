package tenantexport

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

type fakeQueue []map[string]any

func (q fakeQueue) ExportQueue(ctx context.Context, tenantID string, emit func(any) error) error {
	for _, r := range q {
		if r["tenant"] == tenantID {
			if err := emit(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func newStore(t *testing.T) (store.Store, *store.Tenant) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	tn := &store.Tenant{Name: "acme", Plan: "free"}
	must(t, st.CreateTenant(ctx, tn))
	must(t, st.CreateUser(ctx, &store.User{TenantID: tn.ID, Name: "alice", Role: "owner", PasswordHash: "$argon2id$secret"}))
	must(t, st.CreateKey(ctx, &store.APIKey{TenantID: tn.ID, Name: "ci", Prefix: "mk_abc", Hash: []byte("KEYHASH"), Role: "member"}))
	must(t, st.CreateVirtualServer(ctx, &store.VirtualServer{TenantID: tn.ID, Name: "all", Upstreams: []string{"*"}}))
	must(t, st.AppendAudit(ctx, []*store.AuditEntry{{TenantID: tn.ID, Actor: "a", ActorKind: "user", Action: "tool.call", Outcome: "ok"}},
		func(e *store.AuditEntry) { e.Hash = []byte("h") }))
	return st, tn
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, st store.Store, tn *store.Tenant, q QueueSource) ([]byte, *Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := Write(t.Context(), &buf, st, tn, Options{Queue: q, QueueName: "test", Now: func() time.Time { return time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC) }})
	must(t, err)
	return buf.Bytes(), m
}

func TestWriteCheck(t *testing.T) {
	st, tn := newStore(t)
	q := fakeQueue{{"tenant": tn.ID, "id": "q1", "arguments": map[string]any{"x": 1}}, {"tenant": "other", "id": "q2"}}
	b, m := write(t, st, tn, q)
	got, err := Check(bytes.NewReader(b), int64(len(b)))
	must(t, err)
	if got.Tenant.ID != tn.ID || got.Tenant.Name != "acme" || len(got.Files) != len(Files()) || got.Queue != "test" {
		t.Fatalf("manifest = %+v", got)
	}
	records := map[string]int64{}
	for _, f := range m.Files {
		records[f.Name] = f.Records
	}
	for name, n := range map[string]int64{"tenant.jsonl": 1, "users.jsonl": 1, "api_keys.jsonl": 1, "virtual_servers.jsonl": 1,
		"audit.jsonl": 1, "queue.jsonl": 1, "rules.jsonl": 0, "lattices.jsonl": 0} {
		if records[name] != n {
			t.Errorf("%s: %d records, want %d", name, records[name], n)
		}
	}
	// Order: the data files, then the manifest; no secret anywhere.
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	must(t, err)
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, _ := f.Open()
		body, _ := io.ReadAll(rc)
		rc.Close()
		for _, secret := range []string{"$argon2id$secret", "KEYHASH", "S0VZSEFTSA"} {
			if bytes.Contains(body, []byte(secret)) {
				t.Errorf("%s contains %q", f.Name, secret)
			}
		}
		if f.Name == "queue.jsonl" && bytes.Contains(body, []byte("q2")) {
			t.Error("another tenant's queue entry was exported")
		}
	}
	if want := append(Files(), ManifestName); strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("archive files %v, want %v", names, want)
	}
	// Without a queue: an empty queue.jsonl.
	b, m = write(t, st, tn, nil)
	if _, err := Check(bytes.NewReader(b), int64(len(b))); err != nil || m.Files[len(m.Files)-1].Records != 0 {
		t.Fatalf("without a queue: %v, %+v", err, m.Files[len(m.Files)-1])
	}
}

// rebuild copies an archive, changing files with edit (nil: drop it).
func rebuild(t *testing.T, b []byte, edit func(name string, body []byte) []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	must(t, err)
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, _ := f.Open()
		body, _ := io.ReadAll(rc)
		rc.Close()
		body = edit(f.Name, body)
		if body == nil {
			continue
		}
		w, err := zw.Create(f.Name)
		must(t, err)
		w.Write(body)
	}
	must(t, zw.Close())
	return out.Bytes()
}

func TestCheckRefuses(t *testing.T) {
	st, tn := newStore(t)
	b, _ := write(t, st, tn, nil)
	editManifest := func(f func(m *Manifest)) func(string, []byte) []byte {
		return func(name string, body []byte) []byte {
			if name != ManifestName {
				return body
			}
			var m Manifest
			must(t, json.Unmarshal(body, &m))
			f(&m)
			out, _ := json.Marshal(m)
			return out
		}
	}
	cases := map[string][]byte{
		"not a zip":        []byte("hello"),
		"truncated":        b[:len(b)/2],
		"a record changed": rebuild(t, b, func(name string, body []byte) []byte { return bytes.Replace(body, []byte("alice"), []byte("mallo"), 1) }),
		"a record added": rebuild(t, b, func(name string, body []byte) []byte {
			if name == "rules.jsonl" {
				return []byte("{}\n")
			}
			return body
		}),
		"not JSON": rebuild(t, b, func(name string, body []byte) []byte {
			if name == "users.jsonl" {
				return []byte("[1]\n")
			}
			return body
		}),
		"file missing": rebuild(t, b, func(name string, body []byte) []byte {
			if name == "audit.jsonl" {
				return nil
			}
			return body
		}),
		"no manifest": rebuild(t, b, func(name string, body []byte) []byte {
			if name == ManifestName {
				return nil
			}
			return body
		}),
		"count forged":   rebuild(t, b, editManifest(func(m *Manifest) { m.Files[1].Records++ })),
		"version":        rebuild(t, b, editManifest(func(m *Manifest) { m.Version = 2 })),
		"files reorder":  rebuild(t, b, editManifest(func(m *Manifest) { m.Files[0], m.Files[1] = m.Files[1], m.Files[0] })),
		"manifest trash": rebuild(t, b, func(name string, body []byte) []byte { return append(body, "x"...) }),
	}
	for name, archive := range cases {
		if _, err := Check(bytes.NewReader(archive), int64(len(archive))); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Check = %v, want ErrInvalid", name, err)
		}
	}
}

// TestWriteEmitError: a failing writer stops the export with its error.
func TestWriteEmitError(t *testing.T) {
	st, tn := newStore(t)
	_, err := Write(t.Context(), failWriter{}, st, tn, Options{})
	if err == nil {
		t.Fatal("Write to a failing writer succeeded")
	}
	_, err = Write(t.Context(), io.Discard, st, &store.Tenant{ID: "nope", Name: "nope"}, Options{})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// fakeData exports a fixed tenant, for the fuzz target's seed.
type fakeData struct{ store.TenantData }

func (fakeData) ExportTenant(ctx context.Context, id string, emit func(string, any) error) error {
	if err := emit("tenant", map[string]any{"id": id, "name": "acme"}); err != nil {
		return err
	}
	return emit("audit", &store.AuditEntry{Seq: 1, TenantID: id, Action: "tool.call", Hash: []byte("h")})
}

func FuzzCheck(f *testing.F) {
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, fakeData{}, &store.Tenant{ID: "t1", Name: "acme"}, Options{}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Check(bytes.NewReader(b), int64(len(b)))
		if err == nil && m == nil {
			t.Fatal("Check returned neither a manifest nor an error")
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("Check error %v is not ErrInvalid", err)
		}
	})
}
