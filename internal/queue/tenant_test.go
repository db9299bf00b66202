package queue

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
)

// memKeys is TenantKeys over in-memory data keys that a test destroys,
// as the store does at erasure.
type memKeys struct {
	mu   sync.Mutex
	keys map[string]*sealbox.DataKey
	down bool // the store does not answer
}

func (m *memKeys) SealTenantData(ctx context.Context, tenant, record string, pt []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[string]*sealbox.DataKey{}
	}
	k := m.keys[tenant]
	if k == nil {
		k, _ = sealbox.NewDataKey(sealbox.NewDataKeyMaterial())
		m.keys[tenant] = k
	}
	return k.Seal(sealbox.AD{Tenant: tenant, Record: record}, pt), nil
}

func (m *memKeys) OpenTenantData(ctx context.Context, tenant, record string, ct []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errors.New("connection refused")
	}
	k := m.keys[tenant]
	if k == nil {
		return nil, store.ErrKeyDestroyed
	}
	return k.Open(sealbox.AD{Tenant: tenant, Record: record}, ct)
}

func (m *memKeys) setDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

func (m *memKeys) destroy(tenant string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, tenant)
}

func TestTenantKeys(t *testing.T) {
	dir := t.TempDir()
	keys := &memKeys{}
	q := openQueue(t, dir, &Options{TenantKeys: keys, PollInterval: 10 * time.Millisecond})
	ctx := t.Context()
	a1 := mustEnqueue(t, q, call("acme", "up", "echo", `{"secret":"acme-args"}`))
	b1 := mustEnqueue(t, q, call("bravo", "up2", "echo", `{"secret":"bravo-args"}`))
	local := mustEnqueue(t, q, call("", "up3", "echo", `{"x":1}`))
	// Sealed twice: the box's plaintext is the tenant's ciphertext.
	db, err := sql.Open("sqlite", filepath.Join(dir, "queue.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var payload []byte
	if err := db.QueryRowContext(ctx, `SELECT payload FROM entries WHERE id = ?`, a1).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	inner, err := q.Box().Open(ctx, callAD("acme", a1), payload)
	if err != nil || !sealbox.IsDataKeyCiphertext(inner) || bytes.Contains(inner, []byte("acme-args")) {
		t.Fatalf("inner layer = %q, %v; want the tenant key's ciphertext", inner, err)
	}
	for tenant, id := range map[string]string{"acme": a1, "bravo": b1, "": local} {
		if _, err := q.Get(ctx, tenant, id); err != nil {
			t.Fatalf("Get %s: %v", id, err)
		}
	}
	must(t, q.Complete(ctx, b1, []byte(`{"ok":"bravo-result"}`)))
	// Export of acme: its entry, decrypted; nothing of bravo.
	var rows []map[string]any
	must(t, q.ExportQueue(ctx, "acme", func(r any) error { rows = append(rows, r.(map[string]any)); return nil }))
	if len(rows) != 1 || rows[0]["id"] != a1 || !bytes.Contains(rows[0]["arguments"].(json.RawMessage), []byte("acme-args")) {
		t.Fatalf("ExportQueue(acme) = %v", rows)
	}
	// A store that does not answer does not fail entries for good.
	keys.setDown(true)
	type got struct {
		e   *Entry
		err error
	}
	ch := make(chan got, 1)
	nctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	go func() { e, err := q.Next(nctx, "up"); ch <- got{e, err} }()
	r := <-ch
	cancel()
	if r.err == nil {
		t.Fatalf("Next with the store down = %+v", r.e)
	}
	if e, _ := q.Info(ctx, a1); e.State != Pending {
		t.Fatalf("entry after a store outage is %s, want pending", e.State)
	}
	keys.setDown(false)
	// Erasure destroys acme's key: its entry is unreadable and fails for
	// good on delivery; bravo's is untouched.
	keys.destroy("acme")
	if _, err := q.Get(ctx, "acme", a1); !errors.Is(err, store.ErrKeyDestroyed) {
		t.Errorf("Get after the key's destruction: %v", err)
	}
	rows = nil
	must(t, q.ExportQueue(ctx, "acme", func(r any) error { rows = append(rows, r.(map[string]any)); return nil }))
	if len(rows) != 1 || rows[0]["unreadable"] == nil || rows[0]["arguments"] != nil {
		t.Errorf("export of an unreadable entry = %v", rows)
	}
	nctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if e, err := q.Next(nctx, "up"); err == nil {
		t.Fatalf("Next delivered %s of an erased tenant", e.ID)
	}
	if e, _ := q.Info(ctx, a1); e.State != Failed {
		t.Errorf("acme's entry is %s, want failed", e.State)
	}
	if e, err := q.Get(ctx, "bravo", b1); err != nil || string(e.Result) != `{"ok":"bravo-result"}` {
		t.Errorf("bravo's entry: %+v, %v", e, err)
	}
	// PurgeTenant removes acme's entries and their usage.
	mustEnqueue(t, q, call("acme", "up", "echo", `{}`))
	n, err := q.PurgeTenant(ctx, "acme")
	if err != nil || n != 2 {
		t.Fatalf("PurgeTenant = %d, %v", n, err)
	}
	if left, _ := q.List(ctx, Filter{Tenant: "acme"}); len(left) != 0 {
		t.Errorf("acme's entries left: %v", left)
	}
	u, _, err := q.Usage(ctx, "acme")
	if err != nil || u.Entries != 0 || u.Bytes != 0 {
		t.Errorf("acme's usage after the purge = %+v, %v", u, err)
	}
	// A queue opened without TenantKeys says why it can not open them.
	q.Close()
	plainQ := openQueue(t, dir, nil)
	if _, err := plainQ.Get(ctx, "bravo", b1); !errors.Is(err, ErrTenantSealed) {
		t.Errorf("Get without TenantKeys: %v", err)
	}
	if _, err := plainQ.Get(ctx, "", local); err != nil {
		t.Errorf("the single-user tenant's entry without TenantKeys: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
