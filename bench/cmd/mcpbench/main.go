// Command mcpbench measures what the mcpedge gateway costs, against
// baselines measured in the same run: tools/call direct to a go-sdk
// upstream, through a plain httputil.ReverseProxy (the yardstick), through
// the gateway's /mcp and /mcp/<upstream>, and through the peer,
// TBXark/mcp-proxy (--peer BINARY). It measures CPU per call and throughput
// at 16 clients, one-client latency (the paths called in turn), p99 at a
// fixed rate (open loop), large results, memory (idle, loaded, idle
// sessions) and cold start, in one bounded run on loopback.
//
//	go run ./bench/cmd/mcpbench [--peer PATH] [--rounds 5] [--stress] [--out FILE]
//
// It builds the gateway (or takes --gateway PATH) and the benchmark
// upstreams, starts every process on free loopback ports in its own process
// group, and kills them all when it ends, fails or is interrupted. The
// paths of each comparison take turns, so that load from other work on the
// machine falls on all of them alike. See bench/README.md and
// docs/benchmarks.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/fixture"
)

type options struct {
	gateway     string
	duration    time.Duration
	warmup      time.Duration
	upstreams   []string
	concs       []int
	sessions    int
	coldReps    int
	sdkClient   bool
	sdkProtocol string
	proxy       bool
	out         string
	cpuprofile  string
	timeout     time.Duration
	gatewayEnv  []string
	stdio       bool
	quietWait   time.Duration
	maxOther    float64
	retries     int
	peer        string // mcp-proxy binary ("" = no peer column)
	rounds      int
	altCalls    int
	rates       []int
	poolSize    int
	blobSizes   []int
	blobConc    int
	sessCounts  []int
	stress      bool
	// replicaCalls: calls per path of the sessions-across-replicas
	// cell (replicas.go); 0: skip it.
	replicaCalls int
	// webhookEvents: events of the webhook dispatch case (webhooks.go);
	// 0: skip it.
	webhookEvents int
	args          []string
	root          string // module root
	binDir        string
	gatewayVers   string
	peerVers      string
}

// upstreamKind is a benchmark upstream and how to start it.
type upstreamKind struct {
	bin  string
	args []string
	desc string
}

var kinds = map[string]upstreamKind{
	"sdkecho":           {"sdkecho", nil, "go-sdk server, typed echo and blob tools, JSONResponse mode"},
	"sdkecho-sse":       {"sdkecho", []string{"--sse"}, "go-sdk server, typed echo and blob tools, SSE answers (the SDK default)"},
	"sdkecho-stateless": {"sdkecho", []string{"--stateless"}, "go-sdk server, stateless handler (2026-07-28 upstream protocol)"},
	"minecho":           {"minecho", nil, "hand-written minimal echo (JSON answers)"},
}

func main() {
	o := &options{args: os.Args[1:]}
	flag.StringVar(&o.gateway, "gateway", "", "mcpedge binary to measure (default: build ./cmd/mcpedge)")
	flag.DurationVar(&o.duration, "duration", 2*time.Second, "measured time per load cell and round (see --rounds)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up time per load cell (not measured)")
	flag.IntVar(&o.rounds, "rounds", 3, "measured windows per load cell; the paths of a comparison take turns, one window each per round")
	ups := flag.String("upstreams", "sdkecho", "upstream kinds to measure: sdkecho, minecho, sdkecho-sse, sdkecho-stateless")
	concs := flag.String("concurrency", "16", "concurrent clients per closed-loop cell, comma-separated")
	flag.IntVar(&o.replicaCalls, "replicas", 2000, "sessions across replicas: calls on each path (pinned, switching replica every call) on three gateways sharing a store (0 = skip)")
	flag.IntVar(&o.webhookEvents, "webhooks", 0, "webhook dispatch throughput: events published and delivered to a loopback receiver (0 = skip)")
	flag.IntVar(&o.altCalls, "alternate", 3000, "one-client latency: calls on each path, alternating one call per path (0 = skip)")
	rates := flag.String("rate", "500", "open-loop cells: calls per second, comma-separated (\"\" = skip)")
	flag.IntVar(&o.poolSize, "open-sessions", 16, "open-loop cells: sessions a call may use (a call waits when all are busy)")
	blobs := flag.String("large", "1048576", "large-result cells: bytes of text the upstream's blob tool returns, comma-separated (\"\" = skip)")
	flag.IntVar(&o.blobConc, "large-clients", 2, "large-result cells: concurrent clients")
	flag.IntVar(&o.sessions, "sessions", 1000, "idle sessions opened (on a fresh gateway) to measure the RSS they add")
	flag.IntVar(&o.coldReps, "coldstart", 20, "cold starts per scenario (scenarios interleaved)")
	flag.StringVar(&o.peer, "peer", "", "TBXark/mcp-proxy `binary` to measure as the peer column (see bench/README.md to build it; none: no peer column)")
	flag.BoolVar(&o.stress, "stress", false, "also run the stress cases: 64 clients, 2,000 calls/s open loop, 10 MiB results, 5,000 idle sessions")
	flag.BoolVar(&o.sdkClient, "sdk-client", false, "also load with the go-sdk client (realism), besides the raw client")
	flag.BoolVar(&o.stdio, "stdio", true, "also measure a stdio upstream the hop spawns (sdkecho --stdio): mcpedge's hot path against hot_path = false and the peer")
	flag.BoolVar(&o.proxy, "proxy", true, "also measure a plain httputil.ReverseProxy hop (raw client), as a yardstick")
	flag.StringVar(&o.sdkProtocol, "sdk-protocol", "", "protocol version the go-sdk client asks for (default: the SDK's, which tries 2026-07-28 first)")
	flag.StringVar(&o.out, "out", "", "also write the markdown report to `file`")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write CPU profiles of the gateway and upstreams to `dir` (the gateway is then bench/cmd/gwprof, built from the same packages)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "abort the whole run after this long")
	flag.DurationVar(&o.quietWait, "quiet-wait", 0, "before each cell, wait up to this long for other processes to use less than --max-other-load of the CPUs")
	flag.Float64Var(&o.maxOther, "max-other-load", 0.10, "share of the machine's CPU other processes may use before a cell counts as disturbed")
	flag.IntVar(&o.retries, "retries", 0, "re-run a disturbed load cell up to this many times")
	flag.Func("gateway-env", "extra `KEY=VALUE` in the gateway's environment, e.g. GOGC=400 (repeatable)", func(s string) error {
		if !strings.Contains(s, "=") {
			return errors.New("want KEY=VALUE")
		}
		o.gatewayEnv = append(o.gatewayEnv, s)
		return nil
	})
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected arguments: %v", flag.Args())
	}
	for _, u := range strings.Split(*ups, ",") {
		u = strings.TrimSpace(u)
		if _, ok := kinds[u]; !ok {
			fatalf("unknown upstream kind %q", u)
		}
		o.upstreams = append(o.upstreams, u)
	}
	o.concs = intList("--concurrency", *concs, 1, 256)
	o.rates = intList("--rate", *rates, 1, 20000)
	o.blobSizes = intList("--large", *blobs, 1, fixture.MaxBlobBytes)
	o.sessCounts = []int{o.sessions}
	if len(o.concs) == 0 {
		fatalf("--concurrency needs at least one value")
	}
	if o.stress {
		o.concs = appendNew(o.concs, 64)
		o.rates = appendNew(o.rates, 2000)
		o.blobSizes = appendNew(o.blobSizes, 10<<20)
		o.sessCounts = appendNew(o.sessCounts, 5000)
	}
	if o.peer != "" {
		abs, err := filepath.Abs(o.peer)
		if err != nil {
			fatalf("--peer: %v", err)
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() {
			fatalf("--peer %s: not a file", o.peer)
		}
		o.peer = abs
	}
	if o.duration <= 0 || o.warmup < 0 || o.sessions < 1 || o.sessions > 20000 || o.coldReps < 0 || o.coldReps > 500 ||
		o.rounds < 1 || o.rounds > 20 || o.altCalls < 0 || o.altCalls > 1000000 || o.poolSize < 1 || o.poolSize > 1024 ||
		o.blobConc < 1 || o.blobConc > 64 || o.replicaCalls < 0 || o.replicaCalls > 1000000 || o.webhookEvents < 0 || o.webhookEvents > 1000000 ||
		o.quietWait < 0 || o.quietWait > 10*time.Minute || o.retries < 0 || o.retries > 5 || o.maxOther <= 0 {
		fatalf("out-of-range flag value")
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		interrupted.Store(true)
		fmt.Fprintf(os.Stderr, "\nmcpbench: %v: stopping every child process\n", s)
		killAll()
		cancel()
		if o.binDir != "" {
			os.RemoveAll(o.binDir)
		}
		os.Exit(130)
	}()

	report, err := run(ctx, o)
	killAll()
	if o.binDir != "" {
		os.RemoveAll(o.binDir)
	}
	if report != "" {
		fmt.Print(report)
		if o.out != "" {
			if werr := os.WriteFile(o.out, []byte(report), 0o644); werr != nil {
				fatalf("%v", werr)
			}
			fmt.Fprintf(os.Stderr, "mcpbench: report written to %s\n", o.out)
		}
	}
	if err != nil {
		fatalf("%v", err)
	}
}

var interrupted atomic.Bool

// intList parses a comma-separated list of integers in [lo, hi]; "" is empty.
func intList(name, v string, lo, hi int) []int {
	var out []int
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < lo || n > hi {
			fatalf("bad %s value %q (%d..%d)", name, f, lo, hi)
		}
		out = appendNew(out, n)
	}
	return out
}

func appendNew(v []int, n int) []int {
	if slices.Contains(v, n) {
		return v
	}
	return append(v, n)
}

func itoa(n int) string { return strconv.Itoa(n) }

func fatalf(format string, args ...any) {
	killAll()
	if interrupted.Load() {
		fmt.Fprintln(os.Stderr, "mcpbench: interrupted")
		os.Exit(130)
	}
	fmt.Fprintf(os.Stderr, "mcpbench: "+format+"\n", args...)
	os.Exit(1)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mcpbench: "+format+"\n", args...)
}

// results is everything one run measured.
type results struct {
	kinds      []*kindResult
	cold       []*coldScenario
	idleNoneKB int64
	idleNone   rssSplit

	idleDefaultKB int64 // no upstreams, every setting at its default
	idleDefault   rssSplit
	started       time.Time
	took          time.Duration
	loadStart     string
	loadEnd       string
	replicas      *replicasResult
	webhooks      *webhooksResult
	stdio         *stdioResult
}

func run(ctx context.Context, o *options) (string, error) {
	res := &results{started: time.Now(), loadStart: loadAvg()}
	if err := build(ctx, o); err != nil {
		return "", err
	}
	for _, k := range o.upstreams {
		kr, err := measureKind(ctx, o, k)
		if err != nil {
			return "", fmt.Errorf("%s: %w", k, err)
		}
		res.kinds = append(res.kinds, kr)
	}
	if o.stdio {
		res.stdio = measureStdio(ctx, o)
		if err := ctx.Err(); err != nil {
			return "", err
		}
	}
	if err := measureColdAll(ctx, o, res); err != nil {
		return "", err
	}
	if o.replicaCalls > 0 {
		rr, err := measureReplicas(ctx, o)
		if err != nil {
			return "", fmt.Errorf("replicas: %w", err)
		}
		res.replicas = rr
	}
	if o.webhookEvents > 0 {
		wr, err := measureWebhooks(ctx, o)
		if err != nil {
			return "", fmt.Errorf("webhooks: %w", err)
		}
		res.webhooks = wr
	}
	res.took = time.Since(res.started)
	res.loadEnd = loadAvg()
	return render(o, res), nil
}

// build compiles the gateway (unless --gateway) and the upstreams into a
// temporary directory.
func build(ctx context.Context, o *options) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("run mcpbench from inside the mcpedge module")
	}
	o.root = filepath.Dir(gomod)
	o.binDir, err = os.MkdirTemp("", "mcpbench-")
	if err != nil {
		return err
	}
	pkgs := []string{"./bench/upstream/sdkecho", "./bench/upstream/minecho", "./bench/cmd/revproxy"}
	if o.gateway == "" {
		pkgs = append(pkgs, "./cmd/mcpedge")
	}
	if o.cpuprofile != "" {
		pkgs = append(pkgs, "./bench/cmd/gwprof")
		if err := os.MkdirAll(o.cpuprofile, 0o755); err != nil {
			return err
		}
	}
	progress("building %s", strings.Join(pkgs, " "))
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", o.binDir + string(os.PathSeparator)}, pkgs...)...)
	cmd.Dir = o.root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Measure the binary users get: the default build is pure Go (static).
	cmd.Env = os.Environ()
	if os.Getenv("CGO_ENABLED") == "" {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	if o.gateway == "" {
		o.gateway = filepath.Join(o.binDir, "mcpedge")
	} else if abs, err := filepath.Abs(o.gateway); err == nil {
		o.gateway = abs
	}
	v, err := exec.CommandContext(ctx, o.gateway, "version").Output()
	if err != nil {
		return fmt.Errorf("%s version: %w", o.gateway, err)
	}
	o.gatewayVers = strings.TrimSpace(string(v))
	if o.peer != "" {
		o.peerVers = binaryInfo(ctx, o.peer)
	}
	return nil
}

// binaryInfo describes a Go binary: its Go version and its mcp-go module
// version, from `go version -m`.
func binaryInfo(ctx context.Context, path string) string {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", path).Output()
	if err != nil {
		return "not a Go binary?"
	}
	var parts []string
	for i, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case i == 0 && len(f) == 2:
			parts = append(parts, "built with "+f[1])
		case len(f) >= 3 && (f[0] == "dep" || f[0] == "mod") && strings.HasSuffix(f[1], "mcp-go"):
			parts = append(parts, f[1]+" "+f[2])
		case len(f) >= 2 && f[0] == "build" && strings.HasPrefix(f[1], "CGO_ENABLED="):
			parts = append(parts, f[1])
		}
	}
	return strings.Join(parts, ", ")
}

func writeFile(dir, name, content string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(content), 0o644)
}

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

// serverTOML is the benchmark gateway's configuration: single-user mode
// (no authentication, like the peer, which checks no credential; the
// security layer's cost is measured by BenchmarkSecurityLayer) and an
// in-memory store (data_dir ""), so that no run writes files outside its
// temporary directory. defaultTOML keeps the defaults (authentication
// required, a SQLite store and queue in data_dir) for the idle RSS of a
// default setup.
const serverTOML = `[server]
listen = "127.0.0.1:0"
log_level = "warn"
shutdown_grace = "1s"
data_dir = ""

[auth]
mode = "off"
`

func defaultTOML(dataDir string) string {
	return fmt.Sprintf(`[server]
listen = "127.0.0.1:0"
log_level = "warn"
shutdown_grace = "1s"
data_dir = %q
`, dataDir)
}

func httpUpstreamTOML(url string) string {
	return serverTOML + fmt.Sprintf(`
[[upstreams]]
name = "echo"
transport = "http"
url = %q
`, url)
}

// startUpstream starts a benchmark upstream of kind k on a free port.
func startUpstream(o *options, k, profile string) (*child, error) {
	kd := kinds[k]
	args := append([]string{"--listen", "127.0.0.1:0"}, kd.args...)
	if profile != "" {
		args = append(args, "--cpuprofile", profile)
	}
	return startChild(k, filepath.Join(o.binDir, kd.bin), args, nil, 10*time.Second)
}

// startGateway starts the gateway with cfg and waits until /readyz reports
// every upstream ready.
func startGateway(ctx context.Context, o *options, cfg, profile string) (*child, error) {
	bin, env := o.gateway, o.gatewayEnv
	if profile != "" {
		bin = filepath.Join(o.binDir, "gwprof")
		env = append(env, "MCPBENCH_CPUPROFILE="+profile, "MCPBENCH_MEMPROFILE="+strings.TrimSuffix(profile, ".pprof")+".allocs.pprof")
	}
	c, err := startChild("gateway", bin, []string{"serve", "--config", cfg, "--listen", "127.0.0.1:0"}, env, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, "http://"+c.addr+"/readyz", 10*time.Second); err != nil {
		c.stop(false)
		return nil, fmt.Errorf("%w (gateway stderr: %s)", err, c.stderr)
	}
	return c, nil
}

func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	last := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			last = string(b)
			// Ready, and every upstream connected (not only attempted):
			// the components (store, queue) have states of their own.
			var rz struct {
				Ready     bool `json:"ready"`
				Upstreams []struct {
					State string `json:"state"`
				} `json:"upstreams"`
			}
			if resp.StatusCode == http.StatusOK && json.Unmarshal(b, &rz) == nil && rz.Ready &&
				!slices.ContainsFunc(rz.Upstreams, func(u struct {
					State string `json:"state"`
				}) bool {
					return u.State != "ready"
				}) {
				return nil
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway not ready within %s: %s", timeout, last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func machine() (cpu string, ncpu int, kernel string) {
	ncpu = runtime.NumCPU()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return cpu, ncpu, kernel
}

// waitQuiet waits, at most --quiet-wait, until processes other than the
// benchmark's (pids, and this one) use less than --max-other-load of the
// machine over half a second.
func waitQuiet(ctx context.Context, o *options, pids ...int) {
	if o.quietWait <= 0 {
		return
	}
	deadline := time.Now().Add(o.quietWait)
	ncpu := float64(runtime.NumCPU())
	for ctx.Err() == nil {
		ours := func() time.Duration { return benchCPU(pids) }
		all0, ours0, t0 := machineBusy(), ours(), time.Now()
		sleepCtx(ctx, 500*time.Millisecond)
		other := (machineBusy() - all0 - (ours() - ours0)).Seconds() / (time.Since(t0).Seconds() * ncpu)
		if other < o.maxOther {
			return
		}
		if time.Now().After(deadline) {
			progress("machine still busy (other processes at %.0f%% of the CPUs); going on", 100*other)
			return
		}
	}
}

// rssSplit is VmRSS by kind: anonymous memory (heap, stacks) and file-backed
// pages (the mapped executable and shared libraries).
type rssSplit struct{ anonKB, fileKB int64 }

func splitOf(pid int) rssSplit {
	a, _ := statusKB(pid, "RssAnon")
	f, _ := statusKB(pid, "RssFile")
	return rssSplit{a, f}
}

func (r rssSplit) String() string {
	if r.anonKB == 0 && r.fileKB == 0 {
		return "—"
	}
	return fmt.Sprintf("%s + %s", mib(r.anonKB), mib(r.fileKB))
}
