// Package gctune picks the Go collector's trade-off from the gateway's load.
//
// Forwarding a call allocates short-lived buffers, so under load Go's default
// GOGC=100 makes the collector run often and cost more CPU than a proxy
// should; a high GOGC (400) removes most of that cost but lets garbage grow
// to four times the live heap, which a Raspberry Pi or a replica with a
// small memory limit pays for the whole time it is idle. A Tuner switches
// between the two: it counts requests, and once a second compares the rate
// with two thresholds. At or above Options.BusyRate the collector gets
// Options.BusyPercent (throughput); after Options.IdleAfter below
// Options.IdleRate it gets Options.IdlePercent again and the freed memory is
// returned to the operating system at once (one collection, paid when there
// is nothing else to do). A gateway starts idle, and hands back what its
// start-up left behind at the first quiet sample.
//
// The GOGC environment variable, when set, wins: the caller then does not run
// a Tuner (see [FromEnv]).
package gctune

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of [Options].
const (
	DefaultBusyPercent = 400
	DefaultIdlePercent = 100
	DefaultBusyRate    = 20 // requests per second
	DefaultIdleRate    = 5
	DefaultIdleAfter   = 3 * time.Second
	DefaultEvery       = time.Second
)

// Options configure a Tuner; zero fields take the defaults.
type Options struct {
	BusyPercent, IdlePercent int
	// BusyRate is the request rate (per second, over one period) at or
	// above which the collector is tuned for throughput.
	BusyRate float64
	// IdleRate is the rate below which the gateway counts as idle; it must
	// stay there for IdleAfter before the collector is tuned for memory.
	IdleRate  float64
	IdleAfter time.Duration
	// Every is the sampling period.
	Every time.Duration
	// Logger gets a debug line at each switch (nil: none).
	Logger *slog.Logger
	// OnMode is told the GC percent in force after each switch, and once
	// at Run's start (for a gauge; nil: nobody).
	OnMode func(percent int)

	// Seams for tests; nil means the runtime's.
	setPercent func(int) int
	freeOS     func()
	now        func() time.Time
}

// Tuner switches the collector's GC percent with the request rate.
type Tuner struct {
	o    Options
	reqs atomic.Uint64
	busy atomic.Bool
	// state of Run's loop
	last      uint64
	lastAt    time.Time
	quietFrom time.Time
	started   bool // start-up's garbage has been handed back
}

// New returns an idle Tuner; the caller sets the idle percent in force
// (Start does it) before load arrives.
func New(o Options) *Tuner {
	if o.BusyPercent <= 0 {
		o.BusyPercent = DefaultBusyPercent
	}
	if o.IdlePercent <= 0 {
		o.IdlePercent = DefaultIdlePercent
	}
	if o.BusyRate <= 0 {
		o.BusyRate = DefaultBusyRate
	}
	if o.IdleRate <= 0 || o.IdleRate > o.BusyRate {
		o.IdleRate = min(DefaultIdleRate, o.BusyRate)
	}
	if o.IdleAfter <= 0 {
		o.IdleAfter = DefaultIdleAfter
	}
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if o.setPercent == nil {
		o.setPercent = debug.SetGCPercent
	}
	if o.freeOS == nil {
		o.freeOS = debug.FreeOSMemory
	}
	if o.now == nil {
		o.now = time.Now
	}
	return &Tuner{o: o}
}

// FromEnv reports whether the collector is the Tuner's to tune: not when
// GOGC is set in the environment.
func FromEnv() bool { return os.Getenv("GOGC") == "" }

// Observe counts a request; it is what the wrapped handler calls.
func (t *Tuner) Observe() { t.reqs.Add(1) }

// Handler wraps h so each request is counted.
func (t *Tuner) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.reqs.Add(1)
		h.ServeHTTP(w, r)
	})
}

// Busy reports whether the collector is tuned for throughput.
func (t *Tuner) Busy() bool { return t.busy.Load() }

// Run sets the idle percent, then samples the rate every period until ctx
// ends. It is not safe to call twice at once.
func (t *Tuner) Run(ctx context.Context) {
	t.o.setPercent(t.o.IdlePercent)
	t.busy.Store(false)
	t.last, t.lastAt = t.reqs.Load(), t.o.now()
	if t.o.OnMode != nil {
		t.o.OnMode(t.o.IdlePercent)
	}
	tick := time.NewTicker(t.o.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.sample()
		}
	}
}

// sample compares the rate since the last sample with the thresholds and
// switches the mode when it must.
func (t *Tuner) sample() {
	now, n := t.o.now(), t.reqs.Load()
	secs := now.Sub(t.lastAt).Seconds()
	if secs <= 0 {
		return
	}
	rate := float64(n-t.last) / secs
	t.last, t.lastAt = n, now
	switch {
	case rate >= t.o.BusyRate:
		t.quietFrom = time.Time{}
		t.started = true // the switch back to idle hands memory back
		if !t.busy.Load() {
			t.busy.Store(true)
			t.o.setPercent(t.o.BusyPercent)
			t.told("busy", rate, t.o.BusyPercent)
		}
	case rate < t.o.IdleRate:
		if !t.busy.Load() {
			if !t.started {
				// Start-up (config, store, catalogs) leaves garbage
				// that an idle gateway would keep mapped for good.
				t.started = true
				t.o.freeOS()
			}
			return
		}
		if t.quietFrom.IsZero() {
			t.quietFrom = now
		}
		if now.Sub(t.quietFrom) >= t.o.IdleAfter {
			t.busy.Store(false)
			t.quietFrom = time.Time{}
			t.o.setPercent(t.o.IdlePercent)
			t.o.freeOS()
			t.told("idle", rate, t.o.IdlePercent)
		}
	default:
		t.quietFrom = time.Time{} // between the thresholds: keep the mode
	}
}

func (t *Tuner) told(mode string, rate float64, percent int) {
	if t.o.Logger != nil {
		t.o.Logger.Debug("collector tuned for the load", "mode", mode, "requests_per_second", rate, "gc_percent", percent)
	}
	if t.o.OnMode != nil {
		t.o.OnMode(percent)
	}
}

// Gauge registers mcpedge_gc_percent on reg and returns the OnMode that
// sets it.
func Gauge(reg prometheus.Registerer) func(int) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mcpedge_gc_percent",
		Help: "GC percent the gateway set for the load (100 idle, 400 busy by default; absent when GOGC is set).",
	})
	reg.MustRegister(g)
	return func(p int) { g.Set(float64(p)) }
}
