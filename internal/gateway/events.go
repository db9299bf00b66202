package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/upstream"
)

// Events of the gateway's upstreams: down and back up (of shared
// connections; a per-session connection is the client's), and a breaker
// opened. They are published on their own goroutine, never on the
// supervisor's or under the breaker's lock, so a slow store delays no
// reconnect and no call.

// upstreamEvents is what the gateway remembers to tell "down" and "up"
// apart from the first connection.
type upstreamEvents struct {
	pub  atomic.Pointer[publisherBox]
	mu   sync.Mutex
	seen map[string]bool // ready at least once since configured
	down map[string]bool // "down" published, "up" not yet
}

type publisherBox struct{ p events.Publisher }

// SetEvents makes the gateway publish upstream and breaker events to p
// (nil: none).
func (g *Gateway) SetEvents(p events.Publisher) {
	if p == nil {
		g.ev.pub.Store(nil)
		return
	}
	g.ev.pub.Store(&publisherBox{p})
}

func (g *Gateway) publish(typ string, data map[string]any) {
	b := g.ev.pub.Load()
	if b == nil {
		return
	}
	e := events.Event{ID: events.NewID(), Type: typ, Time: time.Now(), Data: data}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.p.Publish(ctx, e); err != nil {
			g.log.Warn("publishing an event failed", "type", typ, "error", err)
		}
	}()
}

// upstreamStateEvent turns an upstream's state change into events: a
// connection that was ready and is lost, or that fails, is "down"; one
// that is ready again after a "down" is "up".
func (g *Gateway) upstreamStateEvent(u *upstream.Upstream, st upstream.State) {
	if u.Config().Isolation == config.IsolationSession {
		return
	}
	name := u.Name()
	typ := g.ev.transition(name, st)
	if typ == "" {
		return
	}
	data := map[string]any{"upstream": name, "state": string(st)}
	if typ == events.UpstreamDown {
		if s := u.Status(); s.LastError != "" {
			data["error"] = s.LastError
		}
	}
	g.publish(typ, data)
}

// transition records upstream name's new state and returns the event it
// makes ("" for none).
func (ev *upstreamEvents) transition(name string, st upstream.State) string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.seen == nil {
		ev.seen, ev.down = map[string]bool{}, map[string]bool{}
	}
	switch st {
	case upstream.StateReady:
		ev.seen[name] = true
		if ev.down[name] {
			delete(ev.down, name)
			return events.UpstreamUp
		}
	case upstream.StateFailed, upstream.StateConnecting:
		if !ev.down[name] && (ev.seen[name] || st == upstream.StateFailed) {
			ev.down[name] = true
			return events.UpstreamDown
		}
	case upstream.StateStopped:
		delete(ev.seen, name)
		delete(ev.down, name)
	}
	return ""
}

// breakerOpened is a breaker's callback when it opens.
func (g *Gateway) breakerOpened(upstreamName, reason string, openFor time.Duration) {
	g.publish(events.BreakerOpened, map[string]any{"upstream": upstreamName, "reason": reason, "open_for": openFor.String()})
}
