package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpedge/mcpedge/internal/config"
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

// TestUpstreamDownUpEvents: an HTTP upstream that is not there at start is
// reported down once (however often its reconnects fail); when its server
// comes up, up once.
func TestUpstreamDownUpEvents(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, err := config.Parse("events.toml", []byte(upstreamBlock("late", "http://"+addr+"/mcp", `connect_timeout = "1s"`)))
	if err != nil {
		t.Fatal(err)
	}
	var c capture
	g, _, _ := startTestGateway(t, cfg, true, func(g *Gateway) { g.SetEvents(&c) })
	types := func() []string {
		c.mu.Lock()
		defer c.mu.Unlock()
		var out []string
		for _, e := range c.ev {
			if e.Data["upstream"] != "late" {
				t.Errorf("event of another upstream: %+v", e)
			}
			out = append(out, e.Type)
		}
		return out
	}
	if !waitFor(t, "upstream.down", 20*time.Second, func() bool { return slices.Equal(types(), []string{events.UpstreamDown}) }) {
		t.Fatalf("events %v, statuses %+v", types(), g.Statuses())
	}
	// Now the server is there.
	var ln2 net.Listener
	for range 50 {
		if ln2, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "late", Version: "1"}, nil)
	srv := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)}
	go srv.Serve(ln2)
	defer srv.Close()
	if !waitFor(t, "upstream.up", 40*time.Second, func() bool {
		return slices.Equal(types(), []string{events.UpstreamDown, events.UpstreamUp})
	}) {
		t.Fatalf("events %v, statuses %+v", types(), g.Statuses())
	}
}
