package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// Targets from the issue, on the 2-core reference machine. Memory targets
// are read as MiB, since VmRSS is in KiB.
const (
	targetAddedP50  = 100 * time.Microsecond
	targetAddedP99  = 300 * time.Microsecond // at the first --rate (500 calls/s)
	targetRatio     = 0.80
	targetIdleKB    = 12 * 1024
	targetLoadedKB  = 24 * 1024
	targetSessKB    = 32 * 1024 // extra for 1,000 idle sessions
	targetSessN     = 1000
	targetCold      = 10 * time.Millisecond
	targetBlobRatio = 2.0 // gateway CPU per large result, times the ReverseProxy's
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

// find returns a measured closed-loop cell (nil if absent or failed).
func (kr *kindResult) find(client, path string, conc int) *cell {
	return findIn(kr.cells, client, path, conc, 0)
}

func findIn(cells []*cell, client, path string, conc, rate int) *cell {
	for _, c := range cells {
		if c.Client == client && c.Path == path && c.Conc == conc && c.Rate == rate && c.Failed == "" {
			return c
		}
	}
	return nil
}

// blobCell returns the large-result cell of path and size.
func (kr *kindResult) blobCell(path string, size int) *cell {
	for _, c := range kr.blobCells {
		if c.Path == path && c.minLen == size && c.Failed == "" {
			return c
		}
	}
	return nil
}

func cpuPer(c *cell) time.Duration {
	if c == nil {
		return 0
	}
	return perCall(c.HopCPU, c.Calls)
}

// orDash formats v with f, or "—" when ok is false.
func orDash(ok bool, f func() string) string {
	if !ok {
		return "—"
	}
	return f()
}

func render(o *options, res *results) string {
	var b strings.Builder
	cpu, ncpu, kernel := machine()
	hi := targetConc(o)
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("## mcpbench results\n\n")
	p("- Command: `go run ./bench/cmd/mcpbench")
	if len(o.args) > 0 {
		p(" %s", strings.Join(o.args, " "))
	}
	p("`\n")
	p("- Machine: %d CPUs (nproc), %s, Linux %s, %s, GOMAXPROCS %d\n", ncpu, cpu, kernel, runtime.Version(), runtime.GOMAXPROCS(0))
	p("- Gateway: %s; upstreams: %s\n", o.gatewayVers, describeKinds(o.upstreams))
	if o.peer != "" {
		p("- Peer: TBXark/mcp-proxy, `%s` (%s)\n", o.peer, o.peerVers)
	} else {
		p("- Peer: **not measured** (no `--peer` binary given; see bench/README.md to build TBXark/mcp-proxy)\n")
	}
	p("- Run: %s, took %s; load cells: %s warm-up, then %d rounds of %s per path, the paths of a comparison taking turns; load average at start %s, at end %s\n",
		res.started.UTC().Format("2006-01-02 15:04 MST"), res.took.Round(time.Second), o.warmup, o.rounds, o.duration, res.loadStart, res.loadEnd)
	if len(o.gatewayEnv) > 0 {
		p("- Gateway environment: %s\n", strings.Join(o.gatewayEnv, " "))
	}
	if o.cpuprofile != "" {
		p("- **Profiled run** (gateway = bench/cmd/gwprof with a CPU profile; upstreams profiled): numbers include profiling overhead\n")
	}
	p("\n")

	// Targets.
	p("### Targets\n\n")
	p("| Measure | Setup | mcpedge | ReverseProxy | peer (mcp-proxy) | Target | Result |\n|---|---|---:|---:|---:|---|---|\n")
	gwPaths := []string{pathGateway, pathGatewayUp}
	for _, kr := range res.kinds {
		px, pe := kr.find("raw", pathProxy, hi), kr.find("raw", pathPeer, hi)
		for _, gp := range gwPaths {
			g := kr.find("raw", gp, hi)
			if g == nil {
				continue
			}
			v := cpuPer(g)
			ok, target := true, ""
			if px != nil {
				ok = ok && v <= cpuPer(px)
				target = "≤ ReverseProxy"
			}
			if pe != nil {
				ok = ok && v < cpuPer(pe)
				target += " and < peer"
			} else {
				target += " (peer not measured)"
			}
			p("| CPU per tools/call, %d clients | %s, %s | %s | %s | %s | %s | %s |\n", hi, kr.kind, pathLabel(gp), us(v),
				orDash(px != nil, func() string { return us(cpuPer(px)) }), orDash(pe != nil, func() string { return us(cpuPer(pe)) }),
				strings.TrimPrefix(target, " "), verdict(ok && (px != nil || pe != nil)))
		}
	}
	for _, kr := range res.kinds {
		d := kr.find("raw", pathDirect, hi)
		if d == nil || d.RPS() == 0 {
			continue
		}
		ratio := func(c *cell) float64 { return c.RPS() / d.RPS() }
		px, pe := kr.find("raw", pathProxy, hi), kr.find("raw", pathPeer, hi)
		for _, gp := range gwPaths {
			g := kr.find("raw", gp, hi)
			if g == nil {
				continue
			}
			p("| Throughput, %% of direct (%.0f calls/s), %d clients | %s, %s | %.0f%% | %s | %s | ≥ %.0f%% | %s |\n", d.RPS(), hi, kr.kind, pathLabel(gp), 100*ratio(g),
				orDash(px != nil, func() string { return fmt.Sprintf("%.0f%%", 100*ratio(px)) }),
				orDash(pe != nil, func() string { return fmt.Sprintf("%.0f%%", 100*ratio(pe)) }),
				100*targetRatio, verdict(ratio(g) >= targetRatio))
		}
	}
	for _, kr := range res.kinds {
		a := kr.alt
		if a == nil {
			continue
		}
		d, okd := a.p50[pathDirect]
		if !okd {
			continue
		}
		added := func(path string) (time.Duration, bool) { v, ok := a.p50[path]; return v - d, ok }
		for _, gp := range gwPaths {
			v, ok := added(gp)
			if !ok {
				continue
			}
			pv, pok := added(pathProxy)
			ev, eok := added(pathPeer)
			p("| Added p50, 1 client (alternating, direct p50 %s) | %s, %s | %s | %s | %s | ≤ %s | %s |\n", us(d), kr.kind, pathLabel(gp), us(v),
				orDash(pok, func() string { return us(pv) }), orDash(eok, func() string { return us(ev) }), us(targetAddedP50), verdict(v <= targetAddedP50))
		}
	}
	if len(o.rates) > 0 {
		rate := o.rates[0]
		for _, kr := range res.kinds {
			d := findIn(kr.openCells, "raw", pathDirect, o.poolSize, rate)
			if d == nil {
				continue
			}
			add := func(path string) (time.Duration, bool) {
				c := findIn(kr.openCells, "raw", path, o.poolSize, rate)
				if c == nil {
					return 0, false
				}
				return c.P99 - d.P99, true
			}
			for _, gp := range gwPaths {
				v, ok := add(gp)
				if !ok {
					continue
				}
				pv, pok := add(pathProxy)
				ev, eok := add(pathPeer)
				// A tail latency is what other work on the machine
				// distorts first: a disturbed comparison is not judged.
				result := verdict(v <= targetAddedP99)
				g := findIn(kr.openCells, "raw", gp, o.poolSize, rate)
				if other := max(d.OtherLoad(), g.OtherLoad()); other > o.maxOther {
					result = fmt.Sprintf("not judged (disturbed: other processes used %.0f%% of the CPUs)", 100*other)
				}
				p("| Added p99 at %d calls/s (open loop, direct p99 %s) | %s, %s | %s | %s | %s | ≤ %s | %s |\n", rate, us(d.P99), kr.kind, pathLabel(gp), us(v),
					orDash(pok, func() string { return us(pv) }), orDash(eok, func() string { return us(ev) }), us(targetAddedP99), result)
			}
		}
	}
	if res.idleNoneKB > 0 {
		p("| Idle RSS | no upstreams | %s | | | ≤ %s | %s |\n", mib(res.idleNoneKB), mib(targetIdleKB), verdict(res.idleNoneKB <= targetIdleKB))
	}
	if res.idleDefaultKB > 0 {
		p("| Idle RSS | no upstreams, default auth and store (SQLite) | %s | | | ≤ %s | %s |\n", mib(res.idleDefaultKB), mib(targetIdleKB), verdict(res.idleDefaultKB <= targetIdleKB))
	}
	for _, kr := range res.kinds {
		p("| Idle RSS | 1 upstream (%s), connected | %s | | %s | ≤ %s | %s |\n", kr.kind, mib(kr.idleKB),
			orDash(kr.peerIdleKB > 0, func() string { return mib(kr.peerIdleKB) }), mib(targetIdleKB), verdict(kr.idleKB <= targetIdleKB))
		if kr.loadedKB > 0 {
			p("| Loaded RSS (max during the %d-client cells) | %s | %s | | %s | ≤ %s | %s |\n", hi, kr.kind, mib(kr.loadedKB),
				orDash(kr.peerLoadedKB > 0, func() string { return mib(kr.peerLoadedKB) }), mib(targetLoadedKB), verdict(kr.loadedKB <= targetLoadedKB))
		}
		for _, sr := range kr.sessions {
			extra := sr.settledKB - sr.baseKB
			if sr.n == targetSessN {
				p("| Extra RSS, %d idle sessions (settled, 7 s) | %s, fresh gateway | %s | | n/a (stateless) | ≤ %s | %s |\n", sr.n, kr.kind, mib(extra), mib(targetSessKB), verdict(extra <= targetSessKB))
			} else {
				p("| Extra RSS, %d idle sessions (settled, 7 s) | %s, fresh gateway | %s | | n/a (stateless) | (%s for 1,000) | |\n", sr.n, kr.kind, mib(extra), mib(targetSessKB))
			}
		}
	}
	var peerCold *coldScenario
	for _, s := range res.cold {
		if s.peer != "" {
			peerCold = s
		}
	}
	for _, s := range res.cold {
		if len(s.ToCall) == 0 || s.peer != "" {
			continue
		}
		m := quantile(s.ToCall, 0.5)
		peerCol := "—"
		if peerCold != nil && len(peerCold.ToCall) > 0 && strings.HasPrefix(s.Name, "http upstream") && strings.HasSuffix(peerCold.Name, strings.TrimPrefix(s.Name, "http upstream ")) {
			peerCol = ms(quantile(peerCold.ToCall, 0.5))
		}
		p("| Cold start, exec → first call (median) | %s | %s | | %s | ≤ %s | %s |\n", s.Name, ms(m), peerCol, ms(targetCold), verdict(m <= targetCold))
	}
	for _, kr := range res.kinds {
		for _, size := range o.blobSizes {
			g, px, pe := kr.blobCell(pathGateway, size), kr.blobCell(pathProxy, size), kr.blobCell(pathPeer, size)
			if g == nil || px == nil || cpuPer(px) == 0 {
				continue
			}
			r := float64(cpuPer(g)) / float64(cpuPer(px))
			label := "≤ 2× ReverseProxy"
			res := verdict(r <= targetBlobRatio)
			if size != 1<<20 {
				res = "(stress)"
			}
			p("| CPU per %s result relayed (%.1f× ReverseProxy) | %s, %s, %d clients | %s | %s | %s | %s | %s |\n", sizeLabel(size), r, kr.kind, pathLabel(pathGateway), o.blobConc,
				us(cpuPer(g)), us(cpuPer(px)), orDash(pe != nil, func() string { return us(cpuPer(pe)) }), label, res)
		}
	}
	p("\n")
	for _, kr := range res.kinds {
		if kr.peerNote != "" {
			p("Peer column, %s: %s.\n\n", kr.kind, kr.peerNote)
		}
	}

	// One client, alternating.
	for _, kr := range res.kinds {
		a := kr.alt
		if a == nil {
			continue
		}
		if len(a.paths) > 0 {
			p("### One client, paths called in turn (%s)\n\n", kr.kind)
			p("%d calls per path, one call on each path in turn (the first path rotating), so every path sees the same machine load; took %s, other processes used %.0f%% of the CPUs meanwhile.\n\n", a.n, a.elapsed.Round(time.Millisecond), 100*a.other)
			p("| Path | p50 | p99 | mean | added p50 | added p99 |\n|---|---:|---:|---:|---:|---:|\n")
			for _, path := range a.paths {
				if _, ok := a.p50[path]; !ok {
					continue
				}
				p("| %s | %s | %s | %s | %s | %s |\n", pathLabel(path), us(a.p50[path]), us(a.p99[path]), us(a.mean[path]),
					us(a.p50[path]-a.p50[pathDirect]), us(a.p99[path]-a.p99[pathDirect]))
			}
			p("\n")
		}
		if a.errorMsg != "" {
			p("- **Failed**: `%s`\n\n", oneLine(a.errorMsg))
		}
		for path, e := range a.failed {
			p("- **Failed**, %s: `%s`\n\n", pathLabel(path), oneLine(e))
		}
	}

	// Load cells.
	p("### Closed loop: throughput, latency and CPU per call\n\n")
	p("CPU per call is utime+stime from /proc/PID/stat over the measured windows (10 ms ticks), divided by the calls ")
	p("(for the hop also, per call, its read+write system calls \"sc\" from /proc/PID/io and its threads' context switches \"cs\" from /proc/PID/task/*/status); ")
	p("\"client\" is the load generator itself (getrusage). Every process shares the same %d CPUs. ", ncpu)
	p("\"Other load\" is the share of the machine's CPU used by processes outside the benchmark during the windows (from /proc/stat); above a few percent the cell was disturbed.\n\n")
	cellTable(p, o, res, func(kr *kindResult) []*cell { return kr.cells }, "Clients")
	p("\n")
	p("| Upstream | Client | Clients | Hop | Added p50 | Added p99 | Throughput hop/direct | Hop CPU/call |\n|---|---|---:|---|---:|---:|---:|---:|\n")
	for _, kr := range res.kinds {
		for _, cl := range []string{"raw", "sdk"} {
			for _, n := range o.concs {
				d := kr.find(cl, pathDirect, n)
				for _, hop := range []string{pathProxy, pathGateway, pathGatewayUp, pathPeer} {
					h := kr.find(cl, hop, n)
					if d == nil || h == nil || d.RPS() == 0 {
						continue
					}
					p("| %s | %s | %d | %s | %s | %s | %.0f%% | %s |\n", kr.kind, cl, n, pathLabel(hop), us(h.P50-d.P50), us(h.P99-d.P99), 100*h.RPS()/d.RPS(), us(cpuPer(h)))
				}
			}
		}
	}
	p("\n")
	if len(o.rates) > 0 {
		p("### Open loop: latency at a fixed rate\n\n")
		p("Calls are issued on schedule (%d sessions available per path; a call waits for a free one); latency is measured from the scheduled time, so a stall is charged to every call it delays.\n\n", o.poolSize)
		cellTable(p, o, res, func(kr *kindResult) []*cell { return kr.openCells }, "Rate")
		p("\n")
	}
	if len(o.blobSizes) > 0 {
		p("### Large results\n\n")
		p("sdkecho's `blob` tool returns the given number of bytes of plain text (no characters to escape) in one text content; %d clients in a closed loop.\n\n", o.blobConc)
		cellTable(p, o, res, func(kr *kindResult) []*cell { return kr.blobCells }, "Result")
		p("\n")
	}

	// Memory.
	p("### Memory (VmRSS from /proc/PID/status)\n\n")
	p("| Process | Idle RSS | of which anon + file | Loaded RSS (max, %d-client raw cells) | Peak (VmHWM) | Upstream idle RSS |\n|---|---:|---:|---:|---:|---:|\n", hi)
	if res.idleNoneKB > 0 {
		p("| mcpedge, no upstreams | %s | %s | — | — | — |\n", mib(res.idleNoneKB), res.idleNone)
	}
	if res.idleDefaultKB > 0 {
		p("| mcpedge, no upstreams, default auth and store | %s | %s | — | — | — |\n", mib(res.idleDefaultKB), res.idleDefault)
	}
	for _, kr := range res.kinds {
		p("| mcpedge, %s | %s | %s | %s | %s | %s |\n", kr.kind, mib(kr.idleKB), kr.idleSplit, mib(kr.loadedKB), mib(kr.hwmKB), mib(kr.upIdleKB))
		if kr.peerIdleKB > 0 {
			p("| peer (mcp-proxy), %s | %s | | %s | %s | |\n", kr.kind, mib(kr.peerIdleKB), mib(kr.peerLoadedKB), mib(kr.peerHWMKB))
		}
	}
	p("\nmcpedge runs in single-user mode (`[auth] mode = \"off\"`) with an in-memory store (`data_dir = \"\"`) except in the \"default auth and store\" row (authentication required, SQLite store and queue in a temporary data_dir). ")
	p("Idle: 300 ms after every upstream reported ready. Anon is RssAnon (heap, stacks), file is RssFile (pages of the mapped executable and shared libraries). Loaded: the gateway's max over its /mcp and /mcp/echo cells.\n\n")
	p("| Upstream | Idle sessions | RSS before | RSS after 300 ms | Extra | RSS after 7 s | Extra | per session (7 s) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, kr := range res.kinds {
		for _, sr := range kr.sessions {
			p("| %s | %d | %s | %s | %s | %s | %s | %.1f KiB |\n", kr.kind, sr.n, mib(sr.baseKB), mib(sr.afterKB), mib(sr.afterKB-sr.baseKB),
				mib(sr.settledKB), mib(sr.settledKB-sr.baseKB), float64(sr.settledKB-sr.baseKB)/float64(sr.n))
		}
	}
	p("\nIdle sessions: a fresh gateway with the upstream connected; sessions opened on /mcp with initialize + notifications/initialized and held open (no GET stream); RSS 300 ms and 7 s after the last one (by 7 s the gateway has been idle long enough to tune its collector for memory, see docs/operations.md#memory; the target is judged on that). The peer serves Streamable HTTP statelessly and keeps no sessions.\n\n")

	// Cold start.
	if len(res.cold) > 0 {
		p("### Cold start (exec → first successful tools/call)\n\n")
		p("| Scenario | Runs | exec → listening (median) | → first call: median | p90 | min | max | RSS then (median) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range res.cold {
			runs := fmt.Sprint(len(s.ToCall))
			if s.Failures > 0 {
				runs += fmt.Sprintf(" (+%d failed: %s)", s.Failures, oneLine(s.LastErr))
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Name, runs, ms(quantile(s.ToListen, 0.5)),
				ms(quantile(s.ToCall, 0.5)), ms(quantile(s.ToCall, 0.9)), ms(quantile(s.ToCall, 0)), ms(quantile(s.ToCall, 1)), mib(medianKB(s.RSSKB)))
		}
		p("\nThe scenarios take turns, one start each. The client connects when the gateway prints its address (the peer: when its port accepts), initializes, and retries tools/call every 100 µs until the tool answers.\n")
	}
	if res.stdio != nil {
		p("\n%s", renderStdio(res.stdio))
	}
	if res.webhooks != nil {
		p("\n%s", renderWebhooks(res.webhooks))
	}
	if res.replicas != nil {
		p("\n%s", renderReplicas(res.replicas))
	}
	if o.cpuprofile != "" {
		p("\nCPU profiles: `%s` (inspect with `go tool pprof -top FILE`).\n", o.cpuprofile)
	}
	return b.String()
}

// cellTable prints the cells the function picks, one row each.
func cellTable(p func(string, ...any), o *options, res *results, pick func(*kindResult) []*cell, loadCol string) {
	p("| Upstream | Client | %s | Path | Calls/s | p50 | p99 | Hop CPU/call | Upstream CPU/call | Client CPU/call | Errors | Other load |\n", loadCol)
	p("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, kr := range res.kinds {
		for _, c := range pick(kr) {
			load := fmt.Sprint(c.Conc)
			switch loadCol {
			case "Rate":
				load = fmt.Sprintf("%d/s", c.Rate)
			case "Result":
				load = sizeLabel(c.minLen)
			}
			if c.Failed != "" {
				p("| %s | %s | %s | %s | **failed** (below) | | | | | | | |\n", c.Upstream, clientLabel(c), load, pathLabel(c.Path))
				continue
			}
			gwc := "—"
			if c.Path != pathDirect {
				gwc = us(cpuPer(c))
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
			if c.Attempts > c.Windows {
				other += fmt.Sprintf(" (%d re-runs)", c.Attempts-c.Windows)
			}
			p("| %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", c.Upstream, clientLabel(c), load, pathLabel(c.Path), c.RPS(),
				us(c.P50), us(c.P99), gwc, us(perCall(c.UpstreamCPU, c.Calls)), us(perCall(c.SelfCPU, c.Calls)), errs, other)
		}
	}
	for _, kr := range res.kinds {
		for _, c := range pick(kr) {
			if c.Failed != "" {
				p("\n- **Failed**, %s, %s: `%s`\n", c.Upstream, c.describe(), oneLine(c.Failed))
			} else if c.FirstErr != "" {
				p("\n- First error, %s, %s: `%s`\n", c.Upstream, c.describe(), oneLine(c.FirstErr))
			}
		}
	}
}

func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
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
