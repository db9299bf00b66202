package deferq

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/sealbox"
)

func openQueue(t *testing.T, opts *queue.Options) *queue.Queue {
	t.Helper()
	dir := t.TempDir()
	box, err := sealbox.New(t.Context(), sealbox.FileKey(filepath.Join(dir, "queue.key")), nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(t.Context(), filepath.Join(dir, "queue.db"), box, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// A tenant sees its own entries only: another tenant's id is "not found",
// exactly like a missing one.
func TestStatusIsTenantScoped(t *testing.T) {
	a := Queue{Q: openQueue(t, nil)}
	ctx := t.Context()
	id, err := a.Defer(ctx, "tenant-a", "ev", "echo", []byte(`{"message":"x"}`), "")
	if err != nil {
		t.Fatal(err)
	}
	qc, err := a.Status(ctx, "tenant-a", id)
	if err != nil || qc.ID != id || qc.State != "pending" || qc.Target != "ev" || qc.Tool != "echo" {
		t.Fatalf("own entry: %+v, %v", qc, err)
	}
	for _, c := range []struct{ tenant, id string }{{"tenant-b", id}, {"", id}, {"tenant-a", "missing"}} {
		if _, err := a.Status(ctx, c.tenant, c.id); !errors.Is(err, gateway.ErrQueuedNotFound) {
			t.Errorf("tenant %q, id %q: %v, want ErrQueuedNotFound", c.tenant, c.id, err)
		}
	}
	// The same idempotency key within a tenant is one entry; in another
	// tenant it is another.
	k1, _ := a.Defer(ctx, "tenant-a", "ev", "echo", nil, "k")
	k2, _ := a.Defer(ctx, "tenant-a", "ev", "echo", nil, "k")
	k3, _ := a.Defer(ctx, "tenant-b", "ev", "echo", nil, "k")
	if k1 == "" || k1 != k2 || k3 == k1 {
		t.Errorf("idempotency keys: %q %q %q", k1, k2, k3)
	}
}

func TestDeferFull(t *testing.T) {
	a := Queue{Q: openQueue(t, &queue.Options{MaxEntries: 1})}
	if _, err := a.Defer(t.Context(), "", "ev", "echo", nil, ""); err != nil {
		t.Fatal(err)
	}
	_, err := a.Defer(t.Context(), "", "ev", "echo", nil, "")
	if !errors.Is(err, gateway.ErrQueueFull) || !errors.Is(err, queue.ErrFull) || err.Error() == "" {
		t.Errorf("full queue: %v", err)
	}
}
