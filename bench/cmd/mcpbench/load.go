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
// concurrency, for a fixed duration after a warm-up.
type cell struct {
	Upstream string // upstream kind
	Client   string // "raw" or "sdk"
	Path     string // "direct" or "gateway"
	Conc     int
	url      string
	tool     string
	protocol string // go-sdk client: protocol version to ask for ("" = SDK default)

	Failed     string // why the cell could not be measured ("" if it was)
	Negotiated string // go-sdk client: the protocol version the session uses
	Attempts   int    // 1 + re-runs because the machine was busy

	Calls    int
	Errors   int
	FirstErr string
	Elapsed  time.Duration
	P50, P99 time.Duration
	Mean     time.Duration

	HopCPU, UpstreamCPU, SelfCPU time.Duration // during the measured window
	OtherCPU                     time.Duration // used by every other process on the machine
	HopSyscalls                  int64         // read+write system calls of the hop (gateway or proxy)
	HopSwitches                  int64         // context switches of the hop's threads
	HopRSSMaxKB                  int64         // hop VmRSS, max sampled during the window
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
			cl, err = openRaw(ctx, hc, c.url, c.tool)
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

func openRaw(ctx context.Context, hc *http.Client, url, tool string) (*rawCaller, error) {
	s, err := rawmcp.Open(ctx, hc, url)
	if err != nil {
		return nil, err
	}
	s.Prepare(tool, message)
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

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// run measures the cell: Conc workers call in a closed loop; calls started
// during the measured window count. hopPID and upPID (0 if none) are the
// processes whose CPU time and RSS are read from /proc around the window.
func (c *cell) run(ctx context.Context, warmup, dur time.Duration, hopPID, upPID int) error {
	callers, closeAll, err := openCallers(ctx, c)
	if err != nil {
		return err
	}
	defer closeAll()

	if len(callers) > 0 {
		if sc, ok := callers[0].(*sdkCaller); ok {
			c.Negotiated = sc.protocol()
		}
	}
	var phase atomic.Int32
	lats := make([][]time.Duration, c.Conc)
	errs := make([]int, c.Conc)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i, cl := range callers {
		lats[i] = make([]time.Duration, 0, 1<<14)
		wg.Go(func() {
			for {
				p := phase.Load()
				if p == phaseStop || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := cl.call(ctx)
				d := time.Since(t0)
				if err != nil {
					if p == phaseMeasure {
						errs[i]++
						firstErr.CompareAndSwap(nil, err.Error())
					}
					time.Sleep(time.Millisecond) // a failing target must not become a spin loop
					continue
				}
				if p == phaseMeasure {
					lats[i] = append(lats[i], d)
				}
			}
		})
	}

	sleepCtx(ctx, warmup)
	gw0, up0, self0, all0, sc0, cs0 := cpuOf(hopPID), cpuOf(upPID), selfCPU(), machineBusy(), syscalls(hopPID), ctxSwitches(hopPID)
	t1 := time.Now()
	phase.Store(phaseMeasure)
	end := t1.Add(dur)
	tick := time.NewTicker(100 * time.Millisecond)
	for time.Now().Before(end) && ctx.Err() == nil {
		if hopPID != 0 {
			c.HopRSSMaxKB = max(c.HopRSSMaxKB, rssKB(hopPID))
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		case <-time.After(time.Until(end)):
		}
	}
	tick.Stop()
	phase.Store(phaseStop)
	c.Elapsed = time.Since(t1)
	c.HopCPU, c.UpstreamCPU, c.SelfCPU = cpuOf(hopPID)-gw0, cpuOf(upPID)-up0, selfCPU()-self0
	c.OtherCPU = max(0, machineBusy()-all0-c.HopCPU-c.UpstreamCPU-c.SelfCPU)
	c.HopSyscalls = syscalls(hopPID) - sc0
	c.HopSwitches = ctxSwitches(hopPID) - cs0
	if hopPID != 0 {
		c.HopRSSMaxKB = max(c.HopRSSMaxKB, rssKB(hopPID))
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}

	var all []time.Duration
	for i := range lats {
		all = append(all, lats[i]...)
		c.Errors += errs[i]
	}
	if v := firstErr.Load(); v != nil {
		c.FirstErr = v.(string)
	}
	c.Calls = len(all)
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
