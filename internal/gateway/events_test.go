package gateway

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/upstream"
)

func TestUpstreamEventTransitions(t *testing.T) {
	var ev upstreamEvents
	steps := []struct {
		st   upstream.State
		want string
	}{
		{upstream.StateConnecting, ""}, // first connection: not an outage
		{upstream.StateReady, ""},
		{upstream.StateConnecting, events.UpstreamDown},
		{upstream.StateFailed, ""}, // the same outage
		{upstream.StateConnecting, ""},
		{upstream.StateReady, events.UpstreamUp},
		{upstream.StateReady, ""},
		{upstream.StateStopped, ""}, // removed by a reload: forgotten
		{upstream.StateConnecting, ""},
		{upstream.StateFailed, events.UpstreamDown}, // never came up
		{upstream.StateReady, events.UpstreamUp},
	}
	for i, s := range steps {
		if got := ev.transition("fs", s.st); got != s.want {
			t.Errorf("step %d (%s): event %q, want %q", i, s.st, got, s.want)
		}
	}
	if got := ev.transition("other", upstream.StateFailed); got != events.UpstreamDown {
		t.Errorf("upstreams are tracked apart: %q", got)
	}
}

type capture struct {
	mu sync.Mutex
	ev []events.Event
}

func (c *capture) Publish(_ context.Context, e events.Event) error {
	c.mu.Lock()
	c.ev = append(c.ev, e)
	c.mu.Unlock()
	return nil
}

// TestBreakerOpenedEvent: a breaker opening from closed publishes one
// event; failing its probe again does not.
func TestBreakerOpenedEvent(t *testing.T) {
	var c capture
	g := &Gateway{log: slog.New(slog.DiscardHandler)}
	g.SetEvents(&c)
	b := newBreaker("x", 1, 20*time.Millisecond, 1, slog.New(slog.DiscardHandler))
	b.onOpen = g.breakerOpened
	fail := func() {
		done, err := b.cb.Allow()
		if err == nil {
			done(errFailure)
		}
	}
	fail() // closed → open
	time.Sleep(40 * time.Millisecond)
	fail() // half-open probe fails → open again
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.ev)
		c.mu.Unlock()
		if n >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a second event, if there were one, would be here by now
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ev) != 1 || c.ev[0].Type != events.BreakerOpened || c.ev[0].Data["upstream"] != "x" {
		t.Fatalf("events: %+v", c.ev)
	}
}
