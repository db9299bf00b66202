package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// caller makes one tools/call and checks the answer. Each worker owns one.
type caller interface {
	call(ctx context.Context) error
	close(ctx context.Context)
}

// cell is one load measurement: a client kind against an endpoint at a
// concurrency (closed loop) or a fixed rate (open loop), measured in
// --rounds windows of --duration that alternate with the other paths' so
// that every path sees the same machine load; its figures are the sums
// over the windows.
type cell struct {
	Upstream string // upstream kind
	Client   string // "raw" or "sdk"
	Path     string // see pathLabel
	Conc     int    // closed loop: concurrent clients; open loop: sessions in the pool
	Rate     int    // open loop: calls per second (0: closed loop)
	url      string
	tool     string
	args     string // raw client: tools/call arguments ("" = echo of message)
	want     string // raw client: what a good answer contains (with args)
	minLen   int    // raw client: least bytes of a good answer
	protocol string // go-sdk client: protocol version to ask for ("" = SDK default)
	hopPID   int    // gateway, proxy or peer (0: direct)

	Failed     string // why the cell could not be measured ("" if it was)
	Negotiated string // go-sdk client: the protocol version the session uses
	Attempts   int    // windows run, including re-runs because the machine was busy
	Windows    int    // windows counted

	Calls    int
	Errors   int
	FirstErr string
	Elapsed  time.Duration
	P50, P99 time.Duration
	Mean     time.Duration
	lats     []time.Duration

	HopCPU, UpstreamCPU, SelfCPU time.Duration // during the measured windows
	OtherCPU                     time.Duration // used by every other process on the machine
	HopSyscalls                  int64         // read+write system calls of the hop (gateway or proxy)
	HopSwitches                  int64         // context switches of the hop's threads
	HopRSSMaxKB                  int64         // hop VmRSS, max sampled during the windows
}

// OtherLoad is the share of the machine's CPU capacity that processes other
// than the benchmark's used during the window: anything above a few percent
// means the numbers are not clean.
func (c *cell) OtherLoad() float64 {
	if c.Elapsed <= 0 {
		return 0
	}
	return c.OtherCPU.Seconds() / (c.Elapsed.Seconds() * float64(runtime.NumCPU()))
}

func (c *cell) RPS() float64 {
	if c.Elapsed <= 0 {
		return 0
	}
	return float64(c.Calls) / c.Elapsed.Seconds()
}

func perCall(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

const message = "hello from mcpbench"

// open gives one session per worker.
func openCallers(ctx context.Context, c *cell) ([]caller, func(), error) {
	hc := rawmcp.NewHTTPClient(c.Conc)
	cleanup := func() { hc.CloseIdleConnections() }
	out := make([]caller, 0, c.Conc)
	for range c.Conc {
		var cl caller
		var err error
		switch c.Client {
		case "raw":
			cl, err = openRaw(ctx, hc, c)
		case "sdk":
			cl, err = openSDK(ctx, hc, c.url, c.tool, c.protocol)
		default:
			err = fmt.Errorf("unknown client %q", c.Client)
		}
		if err != nil {
			for _, o := range out {
				o.close(ctx)
			}
			cleanup()
			return nil, nil, err
		}
		out = append(out, cl)
	}
	return out, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, o := range out {
			o.close(cctx)
		}
		cleanup()
	}, nil
}

type rawCaller struct{ s *rawmcp.Session }

func openRaw(ctx context.Context, hc *http.Client, c *cell) (*rawCaller, error) {
	s, err := rawmcp.Open(ctx, hc, c.url)
	if err != nil {
		return nil, err
	}
	if c.args != "" {
		s.PrepareRaw(c.tool, c.args, c.want)
	} else {
		s.Prepare(c.tool, message)
	}
	s.ExpectMinBytes(c.minLen)
	return &rawCaller{s}, nil
}

func (r *rawCaller) call(ctx context.Context) error { return r.s.Call(ctx) }
func (r *rawCaller) close(ctx context.Context)      { _ = r.s.Close(ctx) }

type sdkCaller struct {
	cs   *mcp.ClientSession
	tool string
	args map[string]any
}

func openSDK(ctx context.Context, hc *http.Client, url, tool, protocol string) (*sdkCaller, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpbench-sdk", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc},
		&mcp.ClientSessionOptions{ProtocolVersion: protocol})
	if err != nil {
		return nil, fmt.Errorf("go-sdk client connect: %w", err)
	}
	return &sdkCaller{cs: cs, tool: tool, args: map[string]any{"message": message}}, nil
}

// protocol returns the protocol version the session negotiated.
func (s *sdkCaller) protocol() string {
	if r := s.cs.InitializeResult(); r != nil {
		return r.ProtocolVersion
	}
	return ""
}

func (s *sdkCaller) call(ctx context.Context) error {
	res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: s.tool, Arguments: s.args})
	if err != nil {
		return err
	}
	if res.IsError || len(res.Content) != 1 {
		return fmt.Errorf("tool error: %+v", res.Content)
	}
	if t, ok := res.Content[0].(*mcp.TextContent); !ok || t.Text != message {
		return fmt.Errorf("unexpected content %+v", res.Content[0])
	}
	return nil
}

func (s *sdkCaller) close(context.Context) { _ = s.cs.Close() }

// window is one measured stretch of a cell.
type window struct {
	lats     []time.Duration
	errs     int
	firstErr string
	elapsed  time.Duration

	hopCPU, upCPU, selfCPU, otherCPU time.Duration
	syscalls, switches, rssMaxKB     int64
}

func (w *window) otherLoad() float64 {
	if w.elapsed <= 0 {
		return 0
	}
	return w.otherCPU.Seconds() / (w.elapsed.Seconds() * float64(runtime.NumCPU()))
}

// meter reads the processes' counters around a window.
type meter struct {
	hopPID, upPID          int
	hop0, up0, self0, all0 time.Duration
	sc0, cs0               int64
	t0                     time.Time
}

func startMeter(hopPID, upPID int) *meter {
	m := &meter{hopPID: hopPID, upPID: upPID}
	m.hop0, m.up0, m.self0, m.all0 = cpuOf(hopPID), cpuOf(upPID), selfCPU(), machineBusy()
	m.sc0, m.cs0 = syscalls(hopPID), ctxSwitches(hopPID)
	m.t0 = time.Now()
	return m
}

// sampleUntil samples the hop's RSS every 100 ms until end.
func (m *meter) sampleUntil(ctx context.Context, w *window, end time.Time) {
	for time.Now().Before(end) && ctx.Err() == nil {
		if m.hopPID != 0 {
			w.rssMaxKB = max(w.rssMaxKB, rssKB(m.hopPID))
		}
		sleepCtx(ctx, min(100*time.Millisecond, time.Until(end)))
	}
}

func (m *meter) stop(w *window) {
	w.elapsed = time.Since(m.t0)
	w.hopCPU, w.upCPU, w.selfCPU = cpuOf(m.hopPID)-m.hop0, cpuOf(m.upPID)-m.up0, selfCPU()-m.self0
	w.otherCPU = max(0, machineBusy()-m.all0-w.hopCPU-w.upCPU-w.selfCPU)
	w.syscalls = syscalls(m.hopPID) - m.sc0
	w.switches = ctxSwitches(m.hopPID) - m.cs0
	if m.hopPID != 0 {
		w.rssMaxKB = max(w.rssMaxKB, rssKB(m.hopPID))
	}
}

// closedLoop runs every caller in a closed loop for dur; calls started in
// the window count, and the window lasts until they have all returned.
func closedLoop(ctx context.Context, callers []caller, dur time.Duration, hopPID, upPID int) *window {
	w := &window{}
	var stop atomic.Bool
	lats := make([][]time.Duration, len(callers))
	errs := make([]int, len(callers))
	var firstErr atomic.Value
	var wg sync.WaitGroup
	m := startMeter(hopPID, upPID)
	for i, cl := range callers {
		lats[i] = make([]time.Duration, 0, 1<<12)
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil {
				t0 := time.Now()
				err := cl.call(ctx)
				d := time.Since(t0)
				if err != nil {
					errs[i]++
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(time.Millisecond) // a failing target must not become a spin loop
					continue
				}
				lats[i] = append(lats[i], d)
			}
		})
	}
	m.sampleUntil(ctx, w, m.t0.Add(dur))
	stop.Store(true)
	// The calls in flight count, so the window ends when they are done:
	// every counted call's CPU time is inside it (which matters when a
	// call is long against the window, as with large results).
	wg.Wait()
	m.stop(w)
	for i := range lats {
		w.lats = append(w.lats, lats[i]...)
		w.errs += errs[i]
	}
	if v := firstErr.Load(); v != nil {
		w.firstErr = v.(string)
	}
	return w
}

// openLoop issues rate calls per second for dur, each on a free caller of
// the pool (waiting for one if all are busy). Latency is measured from the
// call's scheduled time, so a stalled target is charged for the calls it
// delayed (no coordinated omission).
func openLoop(ctx context.Context, callers []caller, rate int, dur time.Duration, hopPID, upPID int) *window {
	w := &window{}
	pool := make(chan caller, len(callers))
	for _, c := range callers {
		pool <- c
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	m := startMeter(hopPID, upPID)
	end := m.t0.Add(dur)
	rssW := &window{}
	var rssDone sync.WaitGroup // sampling in its own goroutine keeps the schedule free of pauses
	rssDone.Go(func() { m.sampleUntil(ctx, rssW, end) })
	for i := 0; ctx.Err() == nil; i++ {
		at := m.t0.Add(time.Duration(i) * interval)
		if !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		var cl caller
		select {
		case cl = <-pool:
		case <-ctx.Done():
		}
		if cl == nil {
			break
		}
		wg.Go(func() {
			err := cl.call(ctx)
			d := time.Since(at)
			pool <- cl
			mu.Lock()
			if err != nil {
				w.errs++
				if w.firstErr == "" {
					w.firstErr = err.Error()
				}
			} else {
				w.lats = append(w.lats, d)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	rssDone.Wait()
	m.stop(w)
	w.rssMaxKB = max(w.rssMaxKB, rssW.rssMaxKB)
	return w
}

// add counts w in the cell.
func (c *cell) add(w *window) {
	c.Windows++
	c.lats = append(c.lats, w.lats...)
	c.Calls += len(w.lats)
	c.Errors += w.errs
	if c.FirstErr == "" {
		c.FirstErr = w.firstErr
	}
	c.Elapsed += w.elapsed
	c.HopCPU += w.hopCPU
	c.UpstreamCPU += w.upCPU
	c.SelfCPU += w.selfCPU
	c.OtherCPU += w.otherCPU
	c.HopSyscalls += w.syscalls
	c.HopSwitches += w.switches
	c.HopRSSMaxKB = max(c.HopRSSMaxKB, w.rssMaxKB)
}

// finish computes the cell's latency figures.
func (c *cell) finish() error {
	all := c.lats
	c.lats = nil
	if len(all) == 0 {
		return fmt.Errorf("no successful calls (%d errors): %s", c.Errors, c.FirstErr)
	}
	slices.Sort(all)
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	c.Mean = sum / time.Duration(len(all))
	c.P50 = percentile(all, 0.50)
	c.P99 = percentile(all, 0.99)
	return nil
}

// percentile returns the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func cpuOf(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	d, _ := cpuTime(pid)
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
