package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// Targets from the issue, on the 2-core reference machine.
const (
	targetAddedP50   = 100 * time.Microsecond
	targetCPUPerCall = 50 * time.Microsecond
	targetRatio      = 0.80
	targetIdleKB     = 12 * 1024 // 12 MB, read as MiB since VmRSS is in KiB
	targetCold       = 10 * time.Millisecond
)

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "**MISS**"
}

func us(d time.Duration) string {
	v := float64(d) / float64(time.Microsecond)
	if v < 0 {
		return fmt.Sprintf("%.0f µs", v)
	}
	if v < 10 {
		return fmt.Sprintf("%.1f µs", v)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// find returns a measured cell (nil if absent or failed).
func (kr *kindResult) find(client, path string, conc int) *cell {
	for _, c := range kr.cells {
		if c.Client == client && c.Path == path && c.Conc == conc && c.Failed == "" {
			return c
		}
	}
	return nil
}

func render(o *options, res *results) string {
	var b strings.Builder
	cpu, ncpu, kernel := machine()
	lo, hi := o.concs[0], maxInt(o.concs)
	for _, n := range o.concs {
		lo = min(lo, n)
	}
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("## mcpbench results\n\n")
	p("- Command: `go run ./bench/cmd/mcpbench")
	if len(o.args) > 0 {
		p(" %s", strings.Join(o.args, " "))
	}
	p("`\n")
	p("- Machine: %d CPUs (nproc), %s, Linux %s, %s, GOMAXPROCS %d\n", ncpu, cpu, kernel, runtime.Version(), runtime.GOMAXPROCS(0))
	p("- Gateway: %s; upstreams: %s\n", o.gatewayVers, describeKinds(o.upstreams))
	p("- Run: %s, took %s; each load cell: %s warm-up, %s measured; closed loop, one session per client; load average at start %s, at end %s\n",
		res.started.UTC().Format("2006-01-02 15:04 MST"), res.took.Round(time.Second), o.warmup, o.duration, res.loadStart, res.loadEnd)
	if len(o.gatewayEnv) > 0 {
		p("- Gateway environment: %s\n", strings.Join(o.gatewayEnv, " "))
	}
	if o.cpuprofile != "" {
		p("- **Profiled run** (gateway = bench/cmd/gwprof with a CPU profile; upstreams profiled): numbers include profiling overhead\n")
	}
	p("\n")

	// Targets.
	p("### Targets\n\n")
	p("| Measure | Setup | Measured | Target | Result |\n|---|---|---:|---:|---|\n")
	for _, kr := range res.kinds {
		d, g := kr.find("raw", "direct", lo), kr.find("raw", "gateway", lo)
		if d != nil && g != nil {
			added := g.P50 - d.P50
			p("| Added p50 latency, %d client | %s, raw client | %s | ≤ %s | %s |\n", lo, kr.kind, us(added), us(targetAddedP50), verdict(added <= targetAddedP50))
		}
	}
	for _, kr := range res.kinds {
		if g := kr.find("raw", "gateway", hi); g != nil {
			pc := perCall(g.HopCPU, g.Calls)
			p("| Gateway CPU per call, %d clients | %s, raw client | %s | ≤ %s | %s |\n", hi, kr.kind, us(pc), us(targetCPUPerCall), verdict(pc <= targetCPUPerCall))
		}
	}
	// Throughput is a saturation measure: with one client it is just
	// 1/latency (see the hop table below for that ratio).
	for _, kr := range res.kinds {
		d, g := kr.find("raw", "direct", hi), kr.find("raw", "gateway", hi)
		if d != nil && g != nil && d.RPS() > 0 {
			r := g.RPS() / d.RPS()
			p("| Throughput gateway/direct, %d clients | %s, raw client | %.0f%% | ≥ %.0f%% | %s |\n", hi, kr.kind, 100*r, 100*targetRatio, verdict(r >= targetRatio))
		}
	}
	if res.idleNoneKB > 0 {
		p("| Idle RSS | no upstreams | %s | ≤ %s | %s |\n", mib(res.idleNoneKB), mib(targetIdleKB), verdict(res.idleNoneKB <= targetIdleKB))
	}
	for _, kr := range res.kinds {
		p("| Idle RSS | 1 upstream (%s), connected | %s | ≤ %s | %s |\n", kr.kind, mib(kr.idleKB), mib(targetIdleKB), verdict(kr.idleKB <= targetIdleKB))
	}
	for _, s := range res.cold {
		if len(s.ToCall) == 0 {
			continue
		}
		m := quantile(s.ToCall, 0.5)
		p("| Cold start, exec → first call (median) | %s | %s | ≤ %s | %s |\n", s.Name, ms(m), ms(targetCold), verdict(m <= targetCold))
	}
	p("\n")

	// Load cells.
	p("### Throughput, latency and CPU per call\n\n")
	p("CPU per call is utime+stime from /proc/PID/stat over the measured window (10 ms ticks), divided by the calls ")
	p("(for the hop also, per call, its read+write system calls \"sc\" from /proc/PID/io and its threads' context switches \"cs\" from /proc/PID/task/*/status); ")
	p("\"client\" is the load generator itself (getrusage). Every process shares the same %d CPUs. ", ncpu)
	p("\"Other load\" is the share of the machine's CPU used by processes outside the benchmark during the window (from /proc/stat); above a few percent the cell was disturbed.\n\n")
	p("| Upstream | Client | Clients | Path | Calls/s | p50 | p99 | Hop CPU/call (gateway or proxy) | Upstream CPU/call | Client CPU/call | Errors | Other load |\n")
	p("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, kr := range res.kinds {
		for _, c := range kr.cells {
			if c.Failed != "" {
				p("| %s | %s | %d | %s | **failed** (below) | | | | | | | |\n", c.Upstream, clientLabel(c), c.Conc, c.Path)
				continue
			}
			gwc := "—"
			if c.Path != "direct" {
				gwc = us(perCall(c.HopCPU, c.Calls))
				if c.HopSyscalls > 0 && c.Calls > 0 {
					gwc += fmt.Sprintf(" (%.1f sc, %.1f cs)", float64(c.HopSyscalls)/float64(c.Calls), float64(c.HopSwitches)/float64(c.Calls))
				}
			}
			errs := fmt.Sprint(c.Errors)
			if c.Errors > 0 {
				errs = fmt.Sprintf("**%d**", c.Errors)
			}
			other := fmt.Sprintf("%.0f%%", 100*c.OtherLoad())
			if c.OtherLoad() > o.maxOther {
				other = "**" + other + "**"
			}
			if c.Attempts > 1 {
				other += fmt.Sprintf(" (try %d)", c.Attempts)
			}
			p("| %s | %s | %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", c.Upstream, clientLabel(c), c.Conc, c.Path, c.RPS(),
				us(c.P50), us(c.P99), gwc, us(perCall(c.UpstreamCPU, c.Calls)), us(perCall(c.SelfCPU, c.Calls)), errs, other)
		}
	}
	p("\n")
	p("| Upstream | Client | Clients | Hop | Added p50 | Added p99 | Throughput hop/direct | Hop CPU/call |\n|---|---|---:|---|---:|---:|---:|---:|\n")
	for _, kr := range res.kinds {
		for _, cl := range []string{"raw", "sdk"} {
			for _, n := range o.concs {
				d := kr.find(cl, "direct", n)
				for _, hop := range []string{"proxy", "gateway"} {
					h := kr.find(cl, hop, n)
					if d == nil || h == nil || d.RPS() == 0 {
						continue
					}
					name := hop
					if hop == "proxy" {
						name = "ReverseProxy"
					}
					p("| %s | %s | %d | %s | %s | %s | %.0f%% | %s |\n", kr.kind, cl, n, name, us(h.P50-d.P50), us(h.P99-d.P99), 100*h.RPS()/d.RPS(), us(perCall(h.HopCPU, h.Calls)))
				}
			}
		}
	}
	for _, kr := range res.kinds {
		for _, c := range kr.cells {
			if c.Failed != "" {
				p("\n- **Failed**, %s, %s client, %s, %d clients: `%s`\n", c.Upstream, clientLabel(c), c.Path, c.Conc, oneLine(c.Failed))
			} else if c.FirstErr != "" {
				p("\n- First error, %s, %s client, %s, %d clients: `%s`\n", c.Upstream, clientLabel(c), c.Path, c.Conc, oneLine(c.FirstErr))
			}
		}
	}
	p("\n")

	// Memory.
	p("### Memory (VmRSS from /proc/PID/status)\n\n")
	p("| Gateway with | Idle RSS | of which anon + file | Loaded RSS (max, %d-client raw run) | Peak (VmHWM) | RSS per idle session | Upstream idle RSS |\n|---|---:|---:|---:|---:|---:|---:|\n", hi)
	if res.idleNoneKB > 0 {
		p("| no upstreams | %s | %s | — | — | — | — |\n", mib(res.idleNoneKB), res.idleNone)
	}
	for _, kr := range res.kinds {
		per := "—"
		if kr.sessions > 0 {
			per = fmt.Sprintf("%.1f KiB (+%s over %d sessions)", float64(kr.sessAfterKB-kr.sessBaseKB)/float64(kr.sessions),
				mib(kr.sessAfterKB-kr.sessBaseKB), kr.sessions)
		}
		p("| %s | %s | %s | %s | %s | %s | %s |\n", kr.kind, mib(kr.idleKB), kr.idleSplit, mib(kr.loadedKB), mib(kr.hwmKB), per, mib(kr.upIdleKB))
	}
	p("\nIdle: 300 ms after every upstream reported ready. Anon is RssAnon (heap, stacks), file is RssFile (pages of the mapped executable and shared libraries). Per idle session: sessions opened on /mcp with initialize + notifications/initialized and held open (no GET stream), RSS delta after 300 ms divided by their number.\n\n")

	// Cold start.
	if len(res.cold) > 0 {
		p("### Cold start (exec of `mcpedge serve` → first successful tools/call)\n\n")
		p("| Scenario | Runs | exec → listening (median) | → first call: median | p90 | min | max | RSS then (median) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range res.cold {
			runs := fmt.Sprint(len(s.ToCall))
			if s.Failures > 0 {
				runs += fmt.Sprintf(" (+%d failed: %s)", s.Failures, s.LastErr)
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Name, runs, ms(quantile(s.ToListen, 0.5)),
				ms(quantile(s.ToCall, 0.5)), ms(quantile(s.ToCall, 0.9)), ms(quantile(s.ToCall, 0)), ms(quantile(s.ToCall, 1)), mib(medianKB(s.RSSKB)))
		}
		p("\nThe client connects when the gateway prints its address, initializes, and retries tools/call every 100 µs until the tool answers.\n")
	}
	if o.cpuprofile != "" {
		p("\nCPU profiles: `%s` (inspect with `go tool pprof -top FILE`).\n", o.cpuprofile)
	}
	return b.String()
}

func clientLabel(c *cell) string {
	if c.Client == "sdk" && c.Negotiated != "" {
		return "sdk (" + c.Negotiated + ")"
	}
	return c.Client
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "`", "'")), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func describeKinds(ks []string) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, k+" ("+kinds[k].desc+")")
	}
	return strings.Join(parts, "; ")
}
