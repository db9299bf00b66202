// Command mcpbench measures what the mcpedge gateway costs: tools/call
// throughput and latency direct to an upstream and through the gateway, the
// gateway's CPU time per call at saturation, its memory (idle, loaded, per
// idle session) and its cold start, in one bounded run on loopback.
//
//	go run ./bench/cmd/mcpbench [--duration 5s] [--out docs/benchmarks-run.md]
//
// It builds the gateway (or takes --gateway PATH) and the two benchmark
// upstreams, starts every process on free loopback ports in its own process
// group, and kills them all when it ends, fails or is interrupted. See
// bench/README.md and docs/benchmarks.md.
package main

import (
	"context"
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
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
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
	quietWait   time.Duration
	maxOther    float64
	retries     int
	args        []string
	root        string // module root
	binDir      string
	gatewayVers string
}

// upstreamKind is a benchmark upstream and how to start it.
type upstreamKind struct {
	bin  string
	args []string
	desc string
}

var kinds = map[string]upstreamKind{
	"sdkecho":           {"sdkecho", nil, "go-sdk server, typed echo tool, JSONResponse mode"},
	"sdkecho-sse":       {"sdkecho", []string{"--sse"}, "go-sdk server, SSE answers (the SDK default)"},
	"sdkecho-stateless": {"sdkecho", []string{"--stateless"}, "go-sdk server, stateless handler (2026-07-28 upstream protocol)"},
	"minecho":           {"minecho", nil, "hand-written minimal echo (JSON answers)"},
}

func main() {
	o := &options{args: os.Args[1:]}
	flag.StringVar(&o.gateway, "gateway", "", "mcpedge binary to measure (default: build ./cmd/mcpedge)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per load cell")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up time per load cell (not measured)")
	ups := flag.String("upstreams", "sdkecho,minecho", "upstream kinds to measure: sdkecho, minecho, sdkecho-sse, sdkecho-stateless")
	concs := flag.String("concurrency", "1,16", "concurrent clients per cell, comma-separated")
	flag.IntVar(&o.sessions, "sessions", 200, "idle sessions opened to measure RSS per session")
	flag.IntVar(&o.coldReps, "coldstart", 20, "cold starts per scenario")
	flag.BoolVar(&o.sdkClient, "sdk-client", true, "also load with the go-sdk client (realism), besides the raw client")
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
	for _, c := range strings.Split(*concs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > 256 {
			fatalf("bad --concurrency value %q (1..256)", c)
		}
		o.concs = append(o.concs, n)
	}
	if o.duration <= 0 || o.warmup < 0 || o.sessions < 1 || o.sessions > 5000 || o.coldReps < 0 || o.coldReps > 500 ||
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
	started    time.Time
	took       time.Duration
	loadStart  string
	loadEnd    string
}

type kindResult struct {
	kind           string
	idleKB         int64
	idleSplit      rssSplit
	sessBaseKB     int64
	sessAfterKB    int64
	sessions       int
	loadedKB       int64 // max VmRSS sampled during the 16-client raw gateway cell
	hwmKB          int64 // VmHWM at the end
	upIdleKB       int64
	cells          []*cell
	gatewayProfile string
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
	if err := measureColdAll(ctx, o, res); err != nil {
		return "", err
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
	return nil
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

const serverTOML = `[server]
listen = "127.0.0.1:0"
log_level = "warn"
shutdown_grace = "1s"
`

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
			s := string(b)
			if resp.StatusCode == http.StatusOK && strings.Contains(s, `"ready":true`) &&
				strings.Count(s, `"state":"ready"`) == strings.Count(s, `"state":`) {
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

func measureKind(ctx context.Context, o *options, k string) (*kindResult, error) {
	kr := &kindResult{kind: k}
	var upProf, gwProf string
	if o.cpuprofile != "" {
		upProf = filepath.Join(o.cpuprofile, k+".pprof")
		gwProf = filepath.Join(o.cpuprofile, "gateway-"+k+".pprof")
		kr.gatewayProfile = gwProf
	}
	progress("%s: starting upstream and gateway", k)
	up, err := startUpstream(o, k, upProf)
	if err != nil {
		return nil, err
	}
	defer up.stop(upProf != "")
	cfg, err := writeFile(o.binDir, "gateway-"+k+".toml", httpUpstreamTOML("http://"+up.addr+"/mcp"))
	if err != nil {
		return nil, err
	}
	gw, err := startGateway(ctx, o, cfg, gwProf)
	if err != nil {
		return nil, err
	}
	defer gw.stop(gwProf != "")

	sleepCtx(ctx, 300*time.Millisecond)
	kr.idleKB = rssKB(gw.pid)
	kr.idleSplit = splitOf(gw.pid)
	kr.upIdleKB = rssKB(up.pid)

	// RSS per idle session: N raw sessions (initialize + initialized) held
	// open on /mcp, RSS read before and after.
	progress("%s: opening %d idle sessions", k, o.sessions)
	gwURL := "http://" + gw.addr + "/mcp"
	if err := measureSessions(ctx, o, gw, gwURL, kr); err != nil {
		return nil, err
	}

	// The yardstick: a plain httputil.ReverseProxy hop to the same upstream.
	var px *child
	if o.proxy {
		px, err = startChild("revproxy", filepath.Join(o.binDir, "revproxy"),
			[]string{"--listen", "127.0.0.1:0", "--target", "http://" + up.addr + "/mcp"}, nil, 10*time.Second)
		if err != nil {
			return nil, err
		}
		defer px.stop(false)
	}

	clients := []string{"raw"}
	if o.sdkClient {
		clients = append(clients, "sdk")
	}
	for _, cl := range clients {
		for _, n := range o.concs {
			paths := []string{"direct", "gateway"}
			if px != nil && cl == "raw" {
				paths = []string{"direct", "proxy", "gateway"}
			}
			for _, path := range paths {
				var c *cell
				for attempt := 0; ; attempt++ {
					waitQuiet(ctx, o, gw.pid, up.pid)
					c = &cell{Upstream: k, Client: cl, Path: path, Conc: n, protocol: o.sdkProtocol, Attempts: attempt + 1}
					hopPID := 0
					switch path {
					case "direct":
						c.url, c.tool = "http://"+up.addr+"/mcp", "echo"
					case "proxy":
						c.url, c.tool, hopPID = "http://"+px.addr+"/mcp", "echo", px.pid
					default:
						c.url, c.tool, hopPID = gwURL, "echo__echo", gw.pid
					}
					progress("%s: %s client, %s, %d clients: %s warm-up + %s", k, cl, path, n, o.warmup, o.duration)
					if err := c.run(ctx, o.warmup, o.duration, hopPID, up.pid); err != nil {
						if ctx.Err() != nil {
							return nil, ctx.Err()
						}
						// Recorded and reported; the rest of the run goes on.
						c.Failed = err.Error()
						progress("%s: %s client, %s, %d clients FAILED: %v", k, cl, path, n, err)
						break
					}
					if c.OtherLoad() <= o.maxOther || attempt >= o.retries {
						break
					}
					progress("%s: disturbed: other processes used %.0f%% of the CPUs; again", k, 100*c.OtherLoad())
				}
				if cl == "raw" && path == "gateway" && n == maxInt(o.concs) {
					kr.loadedKB = c.HopRSSMaxKB
				}
				kr.cells = append(kr.cells, c)
			}
		}
	}
	kr.hwmKB, _ = statusKB(gw.pid, "VmHWM")
	return kr, nil
}

func measureSessions(ctx context.Context, o *options, gw *child, url string, kr *kindResult) error {
	hc := rawmcp.NewHTTPClient(4)
	defer hc.CloseIdleConnections()
	kr.sessBaseKB = rssKB(gw.pid)
	sess := make([]*rawmcp.Session, 0, o.sessions)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range sess {
			_ = s.Close(cctx)
		}
	}()
	for range o.sessions {
		s, err := rawmcp.Open(ctx, hc, url)
		if err != nil {
			return fmt.Errorf("opening idle sessions: %w", err)
		}
		sess = append(sess, s)
	}
	sleepCtx(ctx, 300*time.Millisecond)
	kr.sessAfterKB = rssKB(gw.pid)
	kr.sessions = len(sess)
	return ctx.Err()
}

func maxInt(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// measureColdAll times gateway start-up: with no upstream (first successful
// call of the built-in mcpedge__status), with each HTTP upstream kind already
// running, and with a stdio upstream the gateway spawns itself.
func measureColdAll(ctx context.Context, o *options, res *results) error {
	// Idle RSS with no upstreams at all.
	cfgNone, err := writeFile(o.binDir, "gateway-none.toml", serverTOML)
	if err != nil {
		return err
	}
	gw, err := startGateway(ctx, o, cfgNone, "")
	if err != nil {
		return err
	}
	sleepCtx(ctx, 300*time.Millisecond)
	res.idleNoneKB = rssKB(gw.pid)
	res.idleNone = splitOf(gw.pid)
	gw.stop(false)

	if o.coldReps == 0 {
		return nil
	}
	scen := []*coldScenario{{
		Name: "no upstreams, built-in mcpedge__status", config: serverTOML,
		tool: "mcpedge__status", args: `{}`, want: `"upstreams"`,
	}}
	for _, k := range o.upstreams {
		up, err := startUpstream(o, k, "")
		if err != nil {
			return err
		}
		defer up.stop(false)
		scen = append(scen, &coldScenario{
			Name: "http upstream " + k + " (already running)", config: httpUpstreamTOML("http://" + up.addr + "/mcp"),
			tool: "echo__echo", args: `{"message":"cold"}`, want: `"text":"cold"`,
		})
	}
	scen = append(scen, &coldScenario{
		Name: "stdio upstream sdkecho (spawned by the gateway)",
		config: serverTOML + fmt.Sprintf(`
[[upstreams]]
name = "echo"
transport = "stdio"
command = %q
args = ["--stdio"]
`, filepath.Join(o.binDir, "sdkecho")),
		tool: "echo__echo", args: `{"message":"cold"}`, want: `"text":"cold"`,
	})
	for _, s := range scen {
		waitQuiet(ctx, o)
		progress("cold start x%d: %s", o.coldReps, s.Name)
		if err := measureCold(ctx, o.gateway, o.gatewayEnv, s, o.binDir, o.coldReps); err != nil {
			return err
		}
		res.cold = append(res.cold, s)
	}
	return nil
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
		ours := func() time.Duration {
			d := selfCPU()
			for _, p := range pids {
				d += cpuOf(p)
			}
			return d
		}
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
