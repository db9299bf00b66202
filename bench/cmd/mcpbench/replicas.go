package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/rawmcp"
)

// Sessions across replicas (docs/design/sessions.md): three gateways on
// one store, one client. The same kind of session once pinned to one
// replica and once with every call sent to the next replica, alternating
// one call each, in the same run: the added p50 is what a load balancer
// without affinity costs per call once every replica holds a copy of the
// session. And the first call of a session on a replica that never saw it
// (it re-creates the session from the store), against a second call
// there.

type replicasResult struct {
	n                       int
	pinnedP50, switchingP50 time.Duration
	pinnedP99, switchingP99 time.Duration
	firstP50, secondP50     time.Duration
	firstN                  int
	errorMsg                string
}

// replicaTOML is serverTOML with a store file every replica shares
// (SQLite; several processes on one file) and the upstream.
func replicaTOML(db, upURL string) string {
	return fmt.Sprintf(`[server]
listen = "127.0.0.1:0"
log_level = "warn"
shutdown_grace = "1s"
data_dir = ""

[store]
url = "sqlite://%s"
key_file = %q

[auth]
mode = "off"

[[upstreams]]
name = "echo"
transport = "http"
url = %q
`, db, filepath.Join(filepath.Dir(db), "store.key"), upURL)
}

func measureReplicas(ctx context.Context, o *options) (*replicasResult, error) {
	r := &replicasResult{n: o.replicaCalls}
	progress("replicas: starting the upstream and three gateways on one store")
	up, err := startUpstream(o, "sdkecho", "")
	if err != nil {
		return nil, err
	}
	defer up.stop(false)
	db := filepath.Join(o.binDir, "replicas", "store.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		return nil, err
	}
	cfg, err := writeFile(filepath.Dir(db), "replica.toml", replicaTOML(db, "http://"+up.addr+"/mcp"))
	if err != nil {
		return nil, err
	}
	var urls []string
	for range 3 {
		gw, err := startGateway(ctx, o, cfg, "") // one after the other: the first creates the store
		if err != nil {
			return nil, err
		}
		defer gw.stop(false)
		urls = append(urls, "http://"+gw.addr+"/mcp")
	}
	hc := rawmcp.NewHTTPClient(4)
	defer hc.CloseIdleConnections()

	pinned, err := rawmcp.Open(ctx, hc, urls[0])
	if err != nil {
		return nil, err
	}
	switching, err := rawmcp.Open(ctx, hc, urls[0])
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = pinned.Close(cctx)
		_ = switching.Close(cctx)
	}()
	for _, s := range []*rawmcp.Session{pinned, switching} {
		s.Prepare("echo__echo", message)
	}
	switching.Rotate(urls)
	sess := []*rawmcp.Session{pinned, switching}
	if _, err := rawmcp.Alternate(ctx, sess, 200); err != nil { // warm-up; every replica gets its copy
		r.errorMsg = err.Error()
		return r, nil
	}
	lat, err := rawmcp.Alternate(ctx, sess, o.replicaCalls)
	if err != nil {
		r.errorMsg = err.Error()
		return r, nil
	}
	for i := range lat {
		slices.Sort(lat[i])
	}
	r.pinnedP50, r.pinnedP99 = percentile(lat[0], 0.5), percentile(lat[0], 0.99)
	r.switchingP50, r.switchingP99 = percentile(lat[1], 0.5), percentile(lat[1], 0.99)

	// First call on a replica that never saw the session, then a second.
	r.firstN = min(200, max(20, o.replicaCalls/20))
	var first, second []time.Duration
	for range r.firstN {
		s, err := rawmcp.Open(ctx, hc, urls[0])
		if err != nil {
			return nil, err
		}
		s.Prepare("echo__echo", message)
		s.Rotate(urls[1:2])
		for j := range 2 {
			t0 := time.Now()
			if err := s.Call(ctx); err != nil {
				r.errorMsg = err.Error()
				return r, nil
			}
			if j == 0 {
				first = append(first, time.Since(t0))
			} else {
				second = append(second, time.Since(t0))
			}
		}
		_ = s.Close(ctx)
	}
	slices.Sort(first)
	slices.Sort(second)
	r.firstP50, r.secondP50 = percentile(first, 0.5), percentile(second, 0.5)
	return r, nil
}

// renderReplicas is the report's section for measureReplicas.
func renderReplicas(r *replicasResult) string {
	if r == nil {
		return ""
	}
	s := "### Sessions across replicas\n\n"
	s += "Three gateways on one SQLite store, the go-sdk echo upstream, one raw client; docs/design/sessions.md.\n\n"
	if r.errorMsg != "" {
		return s + "**Failed:** " + r.errorMsg + "\n\n"
	}
	s += "| Session | p50 | p99 |\n|---|---|---|\n"
	s += fmt.Sprintf("| pinned to one replica | %s | %s |\n", r.pinnedP50, r.pinnedP99)
	s += fmt.Sprintf("| every call on the next replica | %s | %s |\n\n", r.switchingP50, r.switchingP99)
	s += fmt.Sprintf("Added p50 per call when every request switches replica: **%s** (target ≤ 150µs), over %d calls each, alternating.\n\n",
		r.switchingP50-r.pinnedP50, r.n)
	s += fmt.Sprintf("First call of a session on a replica that never saw it (re-created from the store): p50 %s, against %s for the next call there (%d sessions).\n\n",
		r.firstP50, r.secondP50, r.firstN)
	return s
}
