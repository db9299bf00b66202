package policy

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/store"
)

// versionSource is a fakeSource whose version and tenants the test changes
// while Run polls it.
type versionSource struct {
	fakeSource
	mu sync.Mutex
}

func (v *versionSource) PolicyVersion(context.Context) (int64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.version, nil
}

func (v *versionSource) ListTenants(context.Context) ([]store.Tenant, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]store.Tenant(nil), v.tenants...), nil
}

func (v *versionSource) publish(version int64, tenants ...store.Tenant) {
	v.mu.Lock()
	v.version, v.tenants = version, tenants
	v.mu.Unlock()
}

// TestSetPollInterval: a shorter poll interval set while Run waits on a
// long one applies without waiting the long one out, and keeps applying.
func TestSetPollInterval(t *testing.T) {
	src := &versionSource{}
	src.publish(1, store.Tenant{ID: "a", Name: "a"})
	e := New(src, config.DefaultPlans(), nil)
	if err := e.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { e.Run(ctx, time.Hour); close(done) }()
	defer func() { cancel(); <-done }()

	seen := func(id string) bool { _, ok := e.Tenant(id); return ok }
	waitSeen := func(id string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !seen(id) {
			if time.Now().After(deadline) {
				t.Fatalf("tenant %q not loaded within 10s", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	src.publish(2, store.Tenant{ID: "a", Name: "a"}, store.Tenant{ID: "b", Name: "b"})
	e.SetPollInterval(20 * time.Millisecond)
	waitSeen("b")
	// The next change is found by the poll itself: nothing kicks Run.
	src.publish(3, store.Tenant{ID: "c", Name: "c"})
	waitSeen("c")
}
