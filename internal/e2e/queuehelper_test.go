package e2e

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mcpedge/mcpedge/internal/deferq"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/sealbox"
)

// offlineQueue returns a hook for startGatewayWith that gives the gateway
// a real offline queue in dir (queue.db, sealed with dir/queue.key) and
// runs its delivery loop, a function returning the queue once the hook
// ran, and stop, which ends the loop and closes the queue. Register stop
// with t.Cleanup after startGatewayWith returns, so that it runs before
// the gateway's own cleanup stops the gateway. opts.OnDone, when nil,
// announces to the gateway's clients.
func offlineQueue(t *testing.T, dir string, opts queue.Options) (hook func(*gateway.Gateway), q func() *queue.Queue, stop func()) {
	t.Helper()
	box, err := sealbox.New(t.Context(), sealbox.FileKey(filepath.Join(dir, "queue.key")), nil)
	if err != nil {
		t.Fatal(err)
	}
	var qu *queue.Queue
	runDone := make(chan struct{})
	runCtx, stopRun := context.WithCancel(context.Background())
	hook = func(g *gateway.Gateway) {
		o := opts
		if o.OnDone == nil {
			o.OnDone = deferq.Announce(g)
		}
		if o.Logger == nil {
			o.Logger = logger(t)
		}
		var err error
		qu, err = queue.Open(t.Context(), filepath.Join(dir, "queue.db"), box, &o)
		if err != nil {
			t.Fatal(err)
		}
		g.SetDeferrer(deferq.Queue{Q: qu})
		go func() {
			defer close(runDone)
			_ = qu.Run(runCtx, deferq.Deliver(g))
		}()
	}
	stop = func() {
		stopRun()
		if qu != nil {
			<-runDone
			_ = qu.Close()
		}
	}
	return hook, func() *queue.Queue { return qu }, stop
}
