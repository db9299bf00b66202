package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
)

// The paths a call can take to the upstream.
const (
	pathDirect    = "direct"     // the upstream itself
	pathProxy     = "proxy"      // bench/cmd/revproxy, the yardstick
	pathGateway   = "gateway"    // mcpedge's /mcp (tools prefixed echo__)
	pathGatewayUp = "gateway-up" // mcpedge's /mcp/echo (the upstream unchanged)
	pathPeer      = "peer"       // TBXark/mcp-proxy's /echo/mcp
)

func pathLabel(p string) string {
	switch p {
	case pathProxy:
		return "ReverseProxy"
	case pathGateway:
		return "mcpedge /mcp"
	case pathGatewayUp:
		return "mcpedge /mcp/echo"
	case pathPeer:
		return "peer (mcp-proxy)"
	}
	return p
}

// hasBlob reports whether the upstream kind has the blob tool.
func hasBlob(kind string) bool { return strings.HasPrefix(kind, "sdkecho") }

type kindResult struct {
	kind      string
	idleKB    int64
	idleSplit rssSplit
	loadedKB  int64 // max VmRSS sampled during the widest closed-loop raw gateway cells
	hwmKB     int64 // VmHWM at the end
	upIdleKB  int64
	sessions  []sessionsResult

	peerNote     string // why there is no peer column ("" if there is)
	peerIdleKB   int64
	peerLoadedKB int64
	peerHWMKB    int64

	alt       *altResult
	cells     []*cell // closed loop
	openCells []*cell
	blobCells []*cell

	gatewayProfile string
}

// sessionsResult is the RSS a fresh gateway gains from n idle sessions.
type sessionsResult struct {
	n               int
	baseKB, afterKB int64
	// settledKB is the RSS 7 s after the last session opened: the
	// gateway has seen no request for longer than gctune's IdleAfter.
	settledKB int64
}

// altResult is the one-client latency of every path, measured by calling
// them in turn (rawmcp.Alternate).
type altResult struct {
	n        int
	paths    []string
	p50, p99 map[string]time.Duration
	mean     map[string]time.Duration
	failed   map[string]string
	other    float64 // other processes' share of the CPUs meanwhile
	elapsed  time.Duration
	errorMsg string
}

func measureKind(ctx context.Context, o *options, k string) (*kindResult, error) {
	kr := &kindResult{kind: k}
	if err := measureLoad(ctx, o, k, kr); err != nil {
		return nil, err
	}
	for _, n := range o.sessCounts {
		if err := measureSessions(ctx, o, k, n, kr); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// measureLoad starts the upstream, the gateway, the yardstick and the peer
// in front of it, and measures idle memory, then the load cells.
func measureLoad(ctx context.Context, o *options, k string, kr *kindResult) error {
	var upProf, gwProf string
	if o.cpuprofile != "" {
		upProf = filepath.Join(o.cpuprofile, k+".pprof")
		gwProf = filepath.Join(o.cpuprofile, "gateway-"+k+".pprof")
		kr.gatewayProfile = gwProf
	}
	progress("%s: starting upstream, gateway, ReverseProxy and peer", k)
	up, err := startUpstream(o, k, upProf)
	if err != nil {
		return err
	}
	defer up.stop(upProf != "")
	upURL := "http://" + up.addr + "/mcp"
	cfg, err := writeFile(o.binDir, "gateway-"+k+".toml", httpUpstreamTOML(upURL))
	if err != nil {
		return err
	}
	gw, err := startGateway(ctx, o, cfg, gwProf)
	if err != nil {
		return err
	}
	defer gw.stop(gwProf != "")

	var px *child
	if o.proxy {
		px, err = startChild("revproxy", filepath.Join(o.binDir, "revproxy"),
			[]string{"--listen", "127.0.0.1:0", "--target", upURL}, nil, 10*time.Second)
		if err != nil {
			return err
		}
		defer px.stop(false)
	}
	var peer *child
	if o.peer == "" {
		kr.peerNote = "no peer binary given (--peer)"
	} else {
		peer, err = startPeer(ctx, o, k, upURL)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			kr.peerNote = "the peer did not start: " + oneLine(err.Error())
			progress("%s: %s", k, kr.peerNote)
			peer = nil
		} else {
			defer peer.stop(false)
		}
	}

	sleepCtx(ctx, 300*time.Millisecond)
	kr.idleKB = rssKB(gw.pid)
	kr.idleSplit = splitOf(gw.pid)
	kr.upIdleKB = rssKB(up.pid)
	if peer != nil {
		kr.peerIdleKB = rssKB(peer.pid)
	}

	// mk returns one cell per path, for the raw client unless client says.
	mk := func(client string, conc, rate int) []*cell {
		var out []*cell
		add := func(path, url, tool string, hop int) {
			out = append(out, &cell{Upstream: k, Client: client, Path: path, Conc: conc, Rate: rate,
				url: url, tool: tool, hopPID: hop, protocol: o.sdkProtocol})
		}
		add(pathDirect, upURL, "echo", 0)
		if px != nil && client == "raw" {
			add(pathProxy, "http://"+px.addr+"/mcp", "echo", px.pid)
		}
		add(pathGateway, "http://"+gw.addr+"/mcp", "echo__echo", gw.pid)
		if client == "raw" {
			add(pathGatewayUp, "http://"+gw.addr+"/mcp/echo", "echo", gw.pid)
			if peer != nil {
				add(pathPeer, peerURL(peer.addr), "echo", peer.pid)
			}
		}
		return out
	}

	// One client: latency, calling the paths in turn.
	if o.altCalls > 0 {
		progress("%s: one client, %d calls per path, alternating", k, o.altCalls)
		pids := []int{up.pid, gw.pid}
		if px != nil {
			pids = append(pids, px.pid)
		}
		if peer != nil {
			pids = append(pids, peer.pid)
		}
		waitQuiet(ctx, o, pids...)
		kr.alt = measureAlternating(ctx, o, mk("raw", 1, 0), pids)
		if err := ctx.Err(); err != nil {
			return err
		}
	}

	// Closed loop at each concurrency.
	clients := []string{"raw"}
	if o.sdkClient {
		clients = append(clients, "sdk")
	}
	hi := targetConc(o)
	for _, cl := range clients {
		for _, n := range o.concs {
			cells := mk(cl, n, 0)
			if err := runGroup(ctx, o, cells, up.pid); err != nil {
				return err
			}
			for _, c := range cells {
				if cl == "raw" && n == hi && c.Failed == "" {
					switch c.Path {
					case pathGateway, pathGatewayUp:
						kr.loadedKB = max(kr.loadedKB, c.HopRSSMaxKB)
					case pathPeer:
						kr.peerLoadedKB = max(kr.peerLoadedKB, c.HopRSSMaxKB)
					}
				}
			}
			kr.cells = append(kr.cells, cells...)
		}
	}

	// Open loop at fixed rates.
	for _, r := range o.rates {
		cells := mk("raw", o.poolSize, r)
		if err := runGroup(ctx, o, cells, up.pid); err != nil {
			return err
		}
		kr.openCells = append(kr.openCells, cells...)
	}

	// Large results.
	if hasBlob(k) {
		for _, size := range o.blobSizes {
			cells := mk("raw", o.blobConc, 0)
			for _, c := range cells {
				if c.tool == "echo__echo" {
					c.tool = "echo__blob"
				} else {
					c.tool = "blob"
				}
				c.args = `{"bytes":` + strconv.Itoa(size) + `}`
				c.want = `END"`
				c.minLen = size
			}
			if err := runGroup(ctx, o, cells, up.pid); err != nil {
				return err
			}
			kr.blobCells = append(kr.blobCells, cells...)
		}
	}
	kr.hwmKB, _ = statusKB(gw.pid, "VmHWM")
	if peer != nil {
		kr.peerHWMKB, _ = statusKB(peer.pid, "VmHWM")
	}
	return nil
}

func measureAlternating(ctx context.Context, o *options, cells []*cell, pids []int) *altResult {
	a := &altResult{n: o.altCalls, p50: map[string]time.Duration{}, p99: map[string]time.Duration{},
		mean: map[string]time.Duration{}, failed: map[string]string{}}
	hc := rawmcp.NewHTTPClient(len(cells))
	defer hc.CloseIdleConnections()
	var sess []*rawmcp.Session
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range sess {
			_ = s.Close(cctx)
		}
	}()
	for _, c := range cells {
		s, err := rawmcp.Open(ctx, hc, c.url)
		if err != nil {
			a.failed[c.Path] = err.Error()
			continue
		}
		s.Prepare(c.tool, message)
		sess = append(sess, s)
		a.paths = append(a.paths, c.Path)
	}
	if len(sess) == 0 {
		return a
	}
	if _, err := rawmcp.Alternate(ctx, sess, 200); err != nil { // warm-up
		a.errorMsg = err.Error()
		return a
	}
	ours := func() time.Duration { return benchCPU(pids) }
	all0, ours0, t0 := machineBusy(), ours(), time.Now()
	lat, err := rawmcp.Alternate(ctx, sess, o.altCalls)
	a.elapsed = time.Since(t0)
	other := max(0, machineBusy()-all0-(ours()-ours0))
	a.other = other.Seconds() / (a.elapsed.Seconds() * float64(runtime.NumCPU()))
	if err != nil {
		a.errorMsg = err.Error()
		return a
	}
	for i, p := range a.paths {
		l := lat[i]
		slices.Sort(l)
		var sum time.Duration
		for _, d := range l {
			sum += d
		}
		a.p50[p], a.p99[p] = percentile(l, 0.5), percentile(l, 0.99)
		a.mean[p] = sum / time.Duration(len(l))
	}
	return a
}

// measureSessions starts a fresh gateway with the upstream of kind k, and
// reads its RSS before and after n raw sessions (initialize +
// notifications/initialized) are opened on /mcp and held.
func measureSessions(ctx context.Context, o *options, k string, n int, kr *kindResult) error {
	progress("%s: %d idle sessions on a fresh gateway", k, n)
	up, err := startUpstream(o, k, "")
	if err != nil {
		return err
	}
	defer up.stop(false)
	cfg, err := writeFile(o.binDir, "gateway-sessions-"+k+".toml", httpUpstreamTOML("http://"+up.addr+"/mcp"))
	if err != nil {
		return err
	}
	gw, err := startGateway(ctx, o, cfg, "")
	if err != nil {
		return err
	}
	defer gw.stop(false)
	sleepCtx(ctx, 300*time.Millisecond)
	url := "http://" + gw.addr + "/mcp"
	hc := rawmcp.NewHTTPClient(4)
	defer hc.CloseIdleConnections()
	r := sessionsResult{n: n, baseKB: rssKB(gw.pid)}
	sess := make([]*rawmcp.Session, 0, n)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, s := range sess {
			_ = s.Close(cctx)
		}
	}()
	for range n {
		s, err := rawmcp.Open(ctx, hc, url)
		if err != nil {
			return fmt.Errorf("opening idle sessions: %w", err)
		}
		sess = append(sess, s)
	}
	sleepCtx(ctx, 300*time.Millisecond)
	r.afterKB = rssKB(gw.pid)
	sleepCtx(ctx, 6700*time.Millisecond)
	r.settledKB = rssKB(gw.pid)
	kr.sessions = append(kr.sessions, r)
	return ctx.Err()
}

// targetConc is the concurrency the targets are judged at: 16 clients
// when measured (--stress adds 64), else the most measured.
func targetConc(o *options) int {
	if slices.Contains(o.concs, 16) {
		return 16
	}
	return maxInt(o.concs)
}

func maxInt(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// peerConfig is TBXark/mcp-proxy's configuration (its v2 JSON format): one
// Streamable HTTP server "echo" at upURL, served as Streamable HTTP at
// http://addr/echo/mcp, request logging off (the gateway logs at "warn").
func peerConfig(addr, upURL string) string {
	type opts struct {
		PanicIfInvalid bool `json:"panicIfInvalid"`
		LogEnabled     bool `json:"logEnabled"`
	}
	cfg := map[string]any{
		"mcpProxy": map[string]any{
			"baseURL": "http://" + addr, "addr": addr, "name": "mcp-proxy", "version": "1.0.0",
			"type": "streamable-http", "options": opts{PanicIfInvalid: true},
		},
		"mcpServers": map[string]any{
			"echo": map[string]any{"transportType": "streamable-http", "url": upURL, "options": opts{PanicIfInvalid: true}},
		},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return string(b)
}

func peerURL(addr string) string { return "http://" + addr + "/echo/mcp" }

// freeAddr returns a loopback address with a port that was free a moment
// ago (mcp-proxy cannot listen on port 0 and report it).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startPeer starts mcp-proxy in front of upURL and waits until its route
// answers initialize (it registers the route once the upstream is
// connected).
func startPeer(ctx context.Context, o *options, k, upURL string) (*child, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg, err := writeFile(o.binDir, "peer-"+k+".json", peerConfig(addr, upURL))
	if err != nil {
		return nil, err
	}
	c, err := startChildAt("peer", o.peer, []string{"-config", cfg}, nil, addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hc := rawmcp.NewHTTPClient(1)
	defer hc.CloseIdleConnections()
	for {
		s, err := rawmcp.Open(ctx, hc, peerURL(addr))
		if err == nil {
			_ = s.Close(ctx)
			return c, nil
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("peer exited: %s", c.stderr)
		case <-ctx.Done():
			c.stop(false)
			return nil, fmt.Errorf("peer not ready within 10s: %v (stderr: %s)", err, c.stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
