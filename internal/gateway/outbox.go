package gateway

import (
	"context"
	"time"

	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Notifications from upstreams (logs, progress, resource updates) reach
// clients through per-session outboxes: a bounded queue and one goroutine
// per client session. An upstream delivers its notifications one at a time,
// so writing to a client directly would let one client that stops reading
// stall that upstream's notifications for everyone. A full outbox drops the
// message and counts it.
const (
	outboxSize    = 256
	notifyTimeout = 10 * time.Second
)

type outbox struct {
	ch chan func(context.Context)
}

// post queues f for ss and reports whether it was queued.
func (g *Gateway) post(ss *mcp.ServerSession, f func(context.Context)) bool {
	if ss == nil {
		return false
	}
	v, loaded := g.outboxes.LoadOrStore(ss, &outbox{ch: make(chan func(context.Context), outboxSize)})
	ob := v.(*outbox)
	if !loaded {
		go g.runOutbox(ss, ob)
	}
	select {
	case ob.ch <- f:
		return true
	default:
		g.metrics.Dropped.WithLabelValues("client_outbox_full").Inc()
		return false
	}
}

func (g *Gateway) runOutbox(ss *mcp.ServerSession, ob *outbox) {
	done := make(chan struct{})
	go func() { _ = ss.Wait(); close(done) }()
	for {
		select {
		case f := <-ob.ch:
			ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
			f(ctx)
			cancel()
		case <-done:
			g.outboxes.Delete(ss)
			return
		}
	}
}

// background runs f on the gateway's notification worker (started on first
// use), dropping it when the worker is too far behind.
func (g *Gateway) background(f func()) {
	g.bgOnce.Do(func() {
		g.bg = make(chan func(), 1024)
		go func() {
			for f := range g.bg {
				f()
			}
		}()
	})
	select {
	case g.bg <- f:
	default:
		g.metrics.Dropped.WithLabelValues("worker_queue_full").Inc()
	}
}

// latestOf returns the newest call in flight on u for client session ss.
func (t *inflightTable) latestOf(u *upstream.Upstream, ss *mcp.ServerSession) *call {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.calls[u]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].ss == ss {
			return list[i]
		}
	}
	return nil
}
