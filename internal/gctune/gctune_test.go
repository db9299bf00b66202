package gctune

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// rig is a Tuner with a fake clock and recording seams.
type rig struct {
	t       *Tuner
	now     time.Time
	percent []int
	frees   int
	modes   []int
}

func newRig(o Options) *rig {
	r := &rig{now: time.Unix(1000, 0)}
	o.now = func() time.Time { return r.now }
	o.setPercent = func(p int) int { r.percent = append(r.percent, p); return 0 }
	o.freeOS = func() { r.frees++ }
	o.OnMode = func(p int) { r.modes = append(r.modes, p) }
	r.t = New(o)
	r.t.last, r.t.lastAt = 0, r.now
	return r
}

// second advances the clock one second during which n requests came.
func (r *rig) second(n int) {
	for range n {
		r.t.Observe()
	}
	r.now = r.now.Add(time.Second)
	r.t.sample()
}

func TestTunerSwitchesToBusyAtTheRate(t *testing.T) {
	r := newRig(Options{BusyRate: 20, IdleRate: 5, IdleAfter: 3 * time.Second})
	r.second(19)
	if r.t.Busy() || len(r.percent) != 0 {
		t.Fatalf("19 requests/s switched the mode: busy=%v percents=%v", r.t.Busy(), r.percent)
	}
	r.second(20)
	if !r.t.Busy() || len(r.percent) != 1 || r.percent[0] != DefaultBusyPercent {
		t.Fatalf("20 requests/s: busy=%v percents=%v, want busy with %d", r.t.Busy(), r.percent, DefaultBusyPercent)
	}
	r.second(500)
	if len(r.percent) != 1 {
		t.Fatalf("staying busy set the percent again: %v", r.percent)
	}
	if r.frees != 0 {
		t.Fatalf("memory returned while busy: %d", r.frees)
	}
}

func TestTunerHandsBackStartupMemoryOnceWhenQuiet(t *testing.T) {
	r := newRig(Options{BusyRate: 20, IdleRate: 5})
	r.second(10) // between the thresholds: not quiet yet
	if r.frees != 0 {
		t.Fatalf("memory returned at %d requests/s", 10)
	}
	r.second(0)
	r.second(0)
	if r.frees != 1 {
		t.Fatalf("start-up memory returned %d times over two quiet seconds, want once", r.frees)
	}
	if r.t.Busy() || len(r.percent) != 0 {
		t.Fatalf("the start-up hand-back changed the mode: busy=%v percents=%v", r.t.Busy(), r.percent)
	}
}

func TestTunerReturnsToIdleAfterAQuietPeriodAndFreesMemory(t *testing.T) {
	r := newRig(Options{BusyRate: 20, IdleRate: 5, IdleAfter: 3 * time.Second})
	r.second(100)
	if !r.t.Busy() {
		t.Fatal("not busy at 100 requests/s")
	}
	r.frees = 0
	// Two quiet seconds, then a burst: the quiet period starts over.
	r.second(0)
	r.second(1)
	r.second(50)
	r.second(0)
	r.second(0)
	r.second(0)
	if !r.t.Busy() {
		t.Fatal("went idle before IdleAfter had passed since the quiet period began")
	}
	r.second(0)
	if r.t.Busy() {
		t.Fatal("still busy after 4 quiet seconds (IdleAfter 3s)")
	}
	if got := r.percent[len(r.percent)-1]; got != DefaultIdlePercent {
		t.Fatalf("idle percent %d, want %d", got, DefaultIdlePercent)
	}
	if r.frees != 1 {
		t.Fatalf("memory returned %d times at the switch to idle, want once", r.frees)
	}
	r.second(0)
	if r.frees != 1 {
		t.Fatal("memory returned again while already idle")
	}
}

func TestTunerKeepsItsModeBetweenTheThresholds(t *testing.T) {
	r := newRig(Options{BusyRate: 20, IdleRate: 5, IdleAfter: time.Second})
	r.second(30)
	for range 10 {
		r.second(10) // below busy, above idle
	}
	if !r.t.Busy() {
		t.Fatal("a rate between the thresholds left busy mode")
	}
	r.second(2)
	r.second(2)
	if r.t.Busy() {
		t.Fatal("a rate under IdleRate for IdleAfter kept busy mode")
	}
	for range 5 {
		r.second(10)
	}
	if r.t.Busy() {
		t.Fatal("a rate between the thresholds entered busy mode")
	}
	if len(r.modes) != 2 || r.modes[0] != DefaultBusyPercent || r.modes[1] != DefaultIdlePercent {
		t.Fatalf("modes told %v, want [busy idle]", r.modes)
	}
}

func TestTunerHandlerCountsRequests(t *testing.T) {
	tu := New(Options{})
	h := tu.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != 204 {
			t.Fatalf("wrapped handler answered %d", rec.Code)
		}
	}
	if got := tu.reqs.Load(); got != 3 {
		t.Fatalf("counted %d requests, want 3", got)
	}
}

func TestTunerRunStartsIdleAndStopsWithItsContext(t *testing.T) {
	var set []int
	tu := New(Options{Every: time.Millisecond, setPercent: func(p int) int { set = append(set, p); return 0 }, freeOS: func() {}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tu.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if len(set) == 0 || set[0] != DefaultIdlePercent {
		t.Fatalf("Run set %v first, want the idle percent %d", set, DefaultIdlePercent)
	}
}

func TestNewFillsDefaultsAndKeepsIdleRateUnderBusyRate(t *testing.T) {
	tu := New(Options{BusyRate: 2, IdleRate: 10})
	if tu.o.IdleRate > tu.o.BusyRate {
		t.Fatalf("idle rate %v above busy rate %v", tu.o.IdleRate, tu.o.BusyRate)
	}
	if tu.o.BusyPercent != DefaultBusyPercent || tu.o.IdlePercent != DefaultIdlePercent || tu.o.Every != DefaultEvery || tu.o.IdleAfter != DefaultIdleAfter {
		t.Fatalf("defaults not filled: %+v", tu.o)
	}
}
