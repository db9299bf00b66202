package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
)

// Stdio upstreams: the gateway spawns the go-sdk echo server (sdkecho
// --stdio --session-era, and once without --session-era: the 2026-07-28
// era) and calls go through its framed pipe (hot path on) or through
// the SDK client (hot_path = false), measured in the same rounds; the peer
// spawns its own child. There is no direct path: a stdio server has no
// HTTP endpoint, so the comparison is between the hops.

const (
	pathStdioHot   = "stdio-hot"      // mcpedge, hot path (framed pipe)
	pathStdioHot26 = "stdio-hot-2026" // the same, the child speaking 2026-07-28
	pathStdioSDK   = "stdio-sdk"      // mcpedge, hot_path = false
	pathStdioPeer  = "stdio-peer"     // TBXark/mcp-proxy with a stdio server
)

type stdioResult struct {
	cells    []*cell
	peerNote string
	failed   string
}

func stdioTOML(bin string, hot, era2026 bool) string {
	args := `["--stdio", "--session-era"]`
	if era2026 {
		args = `["--stdio"]`
	}
	return fmt.Sprintf(`[server]
listen = "127.0.0.1:0"
log_level = "warn"
shutdown_grace = "1s"
data_dir = ""
hot_path = %v

[auth]
mode = "off"

[[upstreams]]
name = "echo"
transport = "stdio"
command = %q
args = %s
`, hot, bin, args)
}

// peerStdioConfig is mcp-proxy's configuration with one stdio server.
func peerStdioConfig(addr, bin string) string {
	cfg := map[string]any{
		"mcpProxy": map[string]any{
			"baseURL": "http://" + addr, "addr": addr, "name": "mcp-proxy", "version": "1.0.0",
			"type": "streamable-http", "options": map[string]any{"panicIfInvalid": true},
		},
		"mcpServers": map[string]any{
			"echo": map[string]any{"transportType": "stdio", "command": bin, "args": []string{"--stdio", "--session-era"}, "options": map[string]any{"panicIfInvalid": true}},
		},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return string(b)
}

func measureStdio(ctx context.Context, o *options) *stdioResult {
	r := &stdioResult{}
	bin := filepath.Join(o.binDir, "sdkecho")
	progress("stdio: gateways with a spawned sdkecho --stdio (hot path on and off)")
	var hops []*child
	defer func() {
		for _, c := range hops {
			c.stop(false)
		}
	}()
	start := func(hot, era2026 bool) *child {
		cfg, err := writeFile(o.binDir, fmt.Sprintf("gateway-stdio-%v-%v.toml", hot, era2026), stdioTOML(bin, hot, era2026))
		if err != nil {
			r.failed = err.Error()
			return nil
		}
		gw, err := startGateway(ctx, o, cfg, "")
		if err != nil {
			r.failed = err.Error()
			return nil
		}
		hops = append(hops, gw)
		return gw
	}
	hot, sdk, hot26 := start(true, false), start(false, false), start(true, true)
	if hot == nil || sdk == nil || hot26 == nil {
		return r
	}
	hi := targetConc(o)
	mk := func(path, url, tool string, pid int) *cell {
		return &cell{Upstream: "sdkecho-stdio", Client: "raw", Path: path, Conc: hi, url: url, tool: tool, hopPID: pid}
	}
	cells := []*cell{
		mk(pathStdioHot, "http://"+hot.addr+"/mcp", "echo__echo", hot.pid),
		mk(pathStdioSDK, "http://"+sdk.addr+"/mcp", "echo__echo", sdk.pid),
		mk(pathStdioHot26, "http://"+hot26.addr+"/mcp", "echo__echo", hot26.pid),
	}
	if o.peer == "" {
		r.peerNote = "no peer binary given (--peer)"
	} else if addr, err := freeAddr(); err != nil {
		r.peerNote = err.Error()
	} else if cfg, err := writeFile(o.binDir, "peer-stdio.json", peerStdioConfig(addr, bin)); err != nil {
		r.peerNote = err.Error()
	} else if pc, err := startChildAt("peer", o.peer, []string{"-config", cfg}, nil, addr); err != nil {
		r.peerNote = "the peer did not start: " + oneLine(err.Error())
	} else {
		hops = append(hops, pc)
		if err := waitPeerReady(ctx, addr); err != nil {
			r.peerNote = "the peer did not serve: " + oneLine(err.Error())
		} else {
			cells = append(cells, mk(pathStdioPeer, peerURL(addr), "echo", pc.pid))
		}
	}
	sleepCtx(ctx, 300*time.Millisecond)
	if err := runGroup(ctx, o, cells, 0); err != nil {
		r.failed = err.Error()
	}
	r.cells = cells
	return r
}

func renderStdio(r *stdioResult) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("### Stdio upstream (sdkecho --stdio --session-era, spawned by the hop)\n\n")
	p("The go-sdk echo server as a stdio child of each hop, raw clients in a closed loop; no direct path (a stdio server has no HTTP endpoint). ")
	p("mcpedge with the hot path relays through the child's framed pipe (docs/design/pipeline.md#stdio-upstreams-the-framed-pipe); with `hot_path = false` through the SDK on both sides. Hop CPU is the hop process alone, not its child. The child offers the session era only (`--session-era`) except in the 2026-07-28 row, where each request carries that era's `_meta`.\n\n")
	if r.failed != "" {
		p("**Failed:** %s\n\n", r.failed)
	}
	if r.peerNote != "" {
		p("Peer: %s.\n\n", r.peerNote)
	}
	p("| Hop | Clients | Calls/s | p50 | p99 | Hop CPU/call | Errors |\n|---|---:|---:|---:|---:|---:|---:|\n")
	label := map[string]string{pathStdioHot: "mcpedge /mcp, hot path (framed pipe)", pathStdioSDK: "mcpedge /mcp, hot_path = false (SDK)",
		pathStdioHot26: "mcpedge /mcp, hot path, child speaking 2026-07-28", pathStdioPeer: "peer (mcp-proxy)"}
	for _, c := range r.cells {
		if c.Failed != "" {
			p("| %s | %d | failed: %s | | | | |\n", label[c.Path], c.Conc, oneLine(c.Failed))
			continue
		}
		p("| %s | %d | %.0f | %s | %s | %s | %d |\n", label[c.Path], c.Conc, c.RPS(), us(c.P50), us(c.P99), us(perCall(c.HopCPU, c.Calls)), c.Errors)
	}
	p("\n")
	return b.String()
}

// waitPeerReady waits up to 10 s for the peer at addr to open a session.
func waitPeerReady(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hc := rawmcp.NewHTTPClient(1)
	defer hc.CloseIdleConnections()
	for {
		s, err := rawmcp.Open(ctx, hc, peerURL(addr))
		if err == nil {
			_ = s.Close(ctx)
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(5 * time.Millisecond):
		}
	}
}
