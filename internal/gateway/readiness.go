package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/tlsconf"
)

// A ReadinessCheck is a dependency /readyz looks at besides the upstreams:
// the store, Redis. A replica whose check fails is not ready (503): it
// cannot authenticate, limit or audit a call, so it must leave rotation
// rather than fail every request it is sent.
type ReadinessCheck struct {
	// Name is the component's name in /readyz ("store", "redis").
	Name string
	// Kind says what it is ("postgres", "sqlite", "redis").
	Kind string
	// Check returns nil when the component answers; it must honour ctx.
	Check func(ctx context.Context) error
}

// ComponentStatus is one component's state in /readyz.
type ComponentStatus struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
	// State is "up" or "down" for checked components; the queue's is
	// "open", "off" (disabled) or "unavailable".
	State string `json:"state"`
	// Required components make the replica unready when not up.
	Required bool `json:"required"`
	// Error says why the component is down; shown to operators only.
	Error string `json:"error,omitempty"`
	// CheckedAt is when the state was determined (checks are cached for
	// readinessTTL).
	CheckedAt time.Time `json:"checked_at"`
}

// readinessTTL is how long a check's result is reused: probes of every
// replica, and anyone who can reach an unauthenticated /readyz, must not
// turn into a query per request.
const readinessTTL = time.Second

// readinessTimeout bounds one check: an unreachable database makes the
// replica unready within it, rather than holding the probe.
const readinessTimeout = 2 * time.Second

// SetReadinessChecks gives /readyz the components it checks; call it
// before serving.
func (g *Gateway) SetReadinessChecks(checks ...ReadinessCheck) {
	g.readiness = checks
	g.readyCache = &readinessCache{}
}

// SetCertMetrics records the expiry of upstreams' client certificates
// ([upstreams.tls]); call it before Start.
func (g *Gateway) SetCertMetrics(m *tlsconf.Metrics) { g.certMetrics = m }

// QueueDisabled is the queue's health error when [queue] enabled = false.
const QueueDisabled = "disabled in the configuration ([queue] enabled = false)"

// readinessCache runs the checks at most once per readinessTTL, and once
// at a time: concurrent probes wait for the same run.
type readinessCache struct {
	mu      sync.Mutex
	at      time.Time
	result  []ComponentStatus
	running chan struct{}
}

// components returns the checked components' states.
func (g *Gateway) components(ctx context.Context) []ComponentStatus {
	c := g.readyCache
	if c == nil || len(g.readiness) == 0 {
		return nil
	}
	for {
		c.mu.Lock()
		if c.result != nil && time.Since(c.at) < readinessTTL {
			r := c.result
			c.mu.Unlock()
			return r
		}
		if c.running != nil {
			wait := c.running
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return down(g.readiness, "readiness check abandoned: "+ctx.Err().Error())
			}
		}
		done := make(chan struct{})
		c.running = done
		c.mu.Unlock()

		r := runChecks(g.readiness)
		c.mu.Lock()
		c.result, c.at, c.running = r, time.Now(), nil
		c.mu.Unlock()
		close(done)
		return r
	}
}

// runChecks runs the checks concurrently, each within readinessTimeout. It
// does not use the request's context: its result serves other probes too.
func runChecks(checks []ReadinessCheck) []ComponentStatus {
	out := make([]ComponentStatus, len(checks))
	var wg sync.WaitGroup
	for i, ch := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), readinessTimeout)
			defer cancel()
			st := ComponentStatus{Name: ch.Name, Kind: ch.Kind, State: "up", Required: true}
			if err := ch.Check(ctx); err != nil {
				st.State, st.Error = "down", err.Error()
			}
			st.CheckedAt = time.Now().UTC()
			out[i] = st
		})
	}
	wg.Wait()
	return out
}

func down(checks []ReadinessCheck, why string) []ComponentStatus {
	out := make([]ComponentStatus, len(checks))
	for i, ch := range checks {
		out[i] = ComponentStatus{Name: ch.Name, Kind: ch.Kind, State: "down", Required: true, Error: why, CheckedAt: time.Now().UTC()}
	}
	return out
}

// queueComponent is the offline queue as a component: never required (a
// gateway without its queue still serves every upstream that is up).
func queueComponent(h *QueueHealth) ComponentStatus {
	st := ComponentStatus{Name: "queue", Kind: "sqlite", State: "open", CheckedAt: time.Now().UTC()}
	switch {
	case h.Open:
	case h.Error == QueueDisabled:
		st.State = "off"
	default:
		st.State, st.Error = "unavailable", h.Error
	}
	return st
}
