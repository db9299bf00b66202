package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
)

// coldScenario is one gateway configuration whose start-up is timed.
type coldScenario struct {
	Name   string
	config string // TOML
	tool   string
	args   string // JSON object
	want   string // substring of a successful answer
	peer   string // the peer's upstream URL: this scenario starts the peer, not the gateway

	ToListen []time.Duration // exec -> "listening" printed (the peer: its port accepts)
	ToCall   []time.Duration // exec -> first successful tools/call
	RSSKB    []int64         // VmRSS right after the first successful call
	Failures int
	LastErr  string
	cfgPath  string
}

// measureColdAll times start-up: with no upstream (first successful call of
// the built-in mcpedge__status), with each HTTP upstream kind already
// running, with a stdio upstream the gateway spawns itself, and the peer
// with the first HTTP upstream. The scenarios take turns, one start each,
// so that they share whatever load the machine has. It also measures the
// idle RSS of a gateway with no upstream.
func measureColdAll(ctx context.Context, o *options, res *results) error {
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

	// The same with every default (authentication required, SQLite store
	// and queue in data_dir).
	cfgDefault, err := writeFile(o.binDir, "gateway-default.toml", defaultTOML(filepath.Join(o.binDir, "data-default")))
	if err != nil {
		return err
	}
	gw, err = startGateway(ctx, o, cfgDefault, "")
	if err != nil {
		return err
	}
	sleepCtx(ctx, 300*time.Millisecond)
	res.idleDefaultKB = rssKB(gw.pid)
	res.idleDefault = splitOf(gw.pid)
	gw.stop(false)

	if o.coldReps == 0 {
		return nil
	}
	scen := []*coldScenario{{
		Name: "no upstreams, built-in mcpedge__status", config: serverTOML,
		tool: "mcpedge__status", args: `{}`, want: `"upstreams"`,
	}}
	for i, k := range o.upstreams {
		up, err := startUpstream(o, k, "")
		if err != nil {
			return err
		}
		defer up.stop(false)
		url := "http://" + up.addr + "/mcp"
		scen = append(scen, &coldScenario{
			Name: "http upstream " + k + " (already running)", config: httpUpstreamTOML(url),
			tool: "echo__echo", args: `{"message":"cold"}`, want: `"text":"cold"`,
		})
		if i == 0 && o.peer != "" {
			scen = append(scen, &coldScenario{
				Name: "peer (mcp-proxy), http upstream " + k + " (already running)", peer: url,
				tool: "echo", args: `{"message":"cold"}`, want: `"text":"cold"`,
			})
		}
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
		if s.peer == "" {
			if s.cfgPath, err = writeFile(o.binDir, "cold-"+slug(s.Name)+".toml", s.config); err != nil {
				return err
			}
		}
	}
	waitQuiet(ctx, o)
	progress("cold start: %d scenarios x%d, interleaved", len(scen), o.coldReps)
	for rep := range o.coldReps {
		for j := range scen {
			s := scen[(rep+j)%len(scen)]
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var listen, first time.Duration
			var rss int64
			var err error
			if s.peer != "" {
				listen, first, rss, err = coldPeerOnce(ctx, o, s)
			} else {
				listen, first, rss, err = coldOnce(ctx, o.gateway, o.gatewayEnv, s.cfgPath, s)
			}
			if err != nil {
				s.Failures++
				s.LastErr = err.Error()
				if s.Failures > o.coldReps/2 {
					return fmt.Errorf("cold start %s: %w", s.Name, err)
				}
				continue
			}
			s.ToListen = append(s.ToListen, listen)
			s.ToCall = append(s.ToCall, first)
			s.RSSKB = append(s.RSSKB, rss)
			sleepCtx(ctx, 20*time.Millisecond) // let the previous process's teardown finish
		}
	}
	res.cold = scen
	return nil
}

// coldOnce starts the gateway with cfg and times exec to the first
// successful tools/call: the client connects as soon as the gateway prints
// its address, initializes, and retries tools/call every 100µs until the
// tool answers (an HTTP upstream that is not connected yet yields "unknown
// tool").
func coldOnce(ctx context.Context, gw string, env []string, cfg string, s *coldScenario) (toListen, toCall time.Duration, rss int64, err error) {
	c, err := startChild("gateway (cold start)", gw, []string{"serve", "--config", cfg, "--listen", "127.0.0.1:0"}, env, 10*time.Second)
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.stop(false)
	toListen = time.Since(c.started)
	toCall, err = firstCall(ctx, c, "http://"+c.addr+"/mcp", s)
	if err != nil {
		return 0, 0, 0, err
	}
	return toListen, toCall, rssKB(c.pid), nil
}

// coldPeerOnce does the same for the peer, which prints no address: it is
// told a port that was free, "listening" is when that port first accepts a
// connection, and the first call follows the same retries (the peer answers
// 404 until its upstream is connected and the route registered).
func coldPeerOnce(ctx context.Context, o *options, s *coldScenario) (toListen, toCall time.Duration, rss int64, err error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, 0, 0, err
	}
	cfg, err := writeFile(o.binDir, "cold-peer.json", peerConfig(addr, s.peer))
	if err != nil {
		return 0, 0, 0, err
	}
	c, err := startChildAt("peer (cold start)", o.peer, []string{"-config", cfg}, nil, addr)
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.stop(false)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	for {
		conn, err := d.DialContext(dctx, "tcp", addr)
		if err == nil {
			conn.Close()
			break
		}
		if dctx.Err() != nil {
			return 0, 0, 0, fmt.Errorf("peer not listening: %w (stderr: %s)", err, c.stderr)
		}
		time.Sleep(100 * time.Microsecond)
	}
	toListen = time.Since(c.started)
	toCall, err = firstCall(ctx, c, peerURL(addr), s)
	if err != nil {
		return 0, 0, 0, err
	}
	return toListen, toCall, rssKB(c.pid), nil
}

// firstCall initializes on url (retrying every 100µs) and retries the
// scenario's tools/call every 100µs until it succeeds, and returns the time
// since c's exec.
func firstCall(ctx context.Context, c *child, url string, s *coldScenario) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hc := rawmcp.NewHTTPClient(1)
	defer hc.CloseIdleConnections()
	var sess *rawmcp.Session
	var err error
	for {
		sess, err = rawmcp.Open(ctx, hc, url)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("initialize: %w (%s stderr: %s)", err, c.name, c.stderr)
		}
		time.Sleep(100 * time.Microsecond)
	}
	sess.PrepareRaw(s.tool, s.args, s.want)
	for {
		err = sess.Call(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !errors.Is(err, rawmcp.ErrToolFailed) {
			return 0, fmt.Errorf("tools/call %s: %w (%s stderr: %s)", s.tool, err, c.name, c.stderr)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return time.Since(c.started), nil
}

// quantile returns the nearest-rank quantile of ds (unsorted).
func quantile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return percentile(s, p)
}

func medianKB(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
