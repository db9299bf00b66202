package policy

import (
	"context"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/store"
)

// TestOnChange: the hook runs after a load that found a new policy, not
// after the first load nor after one that found the same version.
func TestOnChange(t *testing.T) {
	src := &versionSource{}
	src.publish(1, store.Tenant{ID: "t1", Name: "one"})
	e := New(src, config.DefaultPlans(), nil)
	fired := make(chan struct{}, 4)
	e.OnChange(func() { fired <- struct{}{} })
	ctx := context.Background()
	if err := e.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Load(ctx); err != nil {
		t.Fatal(err)
	}
	src.publish(2, store.Tenant{ID: "t1", Name: "one"}, store.Tenant{ID: "t2", Name: "two"})
	if err := e.Load(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("the hook did not run after the policy changed")
	}
	select {
	case <-fired:
		t.Fatal("the hook ran more than once (at the first load, or for an unchanged version)")
	case <-time.After(100 * time.Millisecond):
	}
}
