package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/faultproxy"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestResponseCache puts the response cache in front of the real everything
// server, reached through a fault proxy that counts what reaches it: a
// second identical call of a read-only tool (echo) and of resources/read is
// answered by the gateway, different arguments go upstream, a tool that is
// not read-only is never cached, and with serve_stale an expired result is
// served, marked stale, while the proxy blackholes the upstream. The
// registered tools stay listed throughout.
func TestResponseCache(t *testing.T) {
	target := nodeclient.StartEverythingHTTP(t)
	gw, p := faultGateway(t, target, `timeout = "2s"`, "retries = 0",
		"[upstreams.breaker]\nfailures = 1\nopen_for = \"1h\"",
		"[upstreams.cache]\nttl = \"1s\"\nserve_stale = true\ntools = { \"get-sum\" = \"1h\" }")
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	ctx := ctxT(t, 60*time.Second)

	echo := func(msg string) (*mcp.CallToolResult, error) {
		return cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": msg}})
	}
	alpha := p.Watch("alpha-cached", 0)
	beta := p.Watch("beta-cached", 0)
	first, err := echo("alpha-cached")
	if err != nil || text(t, first) != "Echo: alpha-cached" {
		t.Fatalf("first echo: %v %v", first, err)
	}
	if first.Meta[cacheKeyMeta] != nil {
		t.Errorf("a result from the upstream is marked: %v", first.Meta)
	}
	second, err := echo("alpha-cached")
	if err != nil || text(t, second) != "Echo: alpha-cached" {
		t.Fatalf("second echo: %v %v", second, err)
	}
	if m, _ := second.Meta[cacheKeyMeta].(map[string]any); m["hit"] != true {
		t.Errorf("second echo not marked as a hit: %v", second.Meta)
	}
	// Another client, of the 2026-07-28 era, gets the same cached result.
	cs2 := goClient(t, gw.URL+"/mcp", nil, "2026-07-28")
	third, err := cs2.CallTool(ctx, &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "alpha-cached"}})
	if err != nil || text(t, third) != "Echo: alpha-cached" {
		t.Fatalf("echo from a 2026-07-28 client: %v %v", third, err)
	}
	if m, _ := third.Meta[cacheKeyMeta].(map[string]any); m["hit"] != true {
		t.Errorf("echo from a 2026-07-28 client not marked as a hit: %v", third.Meta)
	}
	if _, err := echo("beta-cached"); err != nil {
		t.Fatal(err)
	}
	if a, b := alpha.Seen(), beta.Seen(); a != 1 || b != 1 {
		t.Errorf("requests at the upstream: alpha %d (want 1: the second was a hit), beta %d (want 1)", a, b)
	}

	// A tool that is not read-only (toggle-simulated-logging) always goes
	// upstream, even with a TTL configured for everything.
	toggle := p.Watch(`"toggle-simulated-logging"`, 0)
	for range 2 {
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__toggle-simulated-logging"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := toggle.Seen(); n != 2 {
		t.Errorf("a tool that is not read-only reached the upstream %d times, want 2", n)
	}

	// resources/read of a static resource.
	res, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	uri := ""
	for _, r := range res.Resources {
		if strings.Contains(r.URI, "/static/") {
			uri = r.URI
			break
		}
	}
	if uri == "" {
		t.Fatalf("no static resource listed: %d resources", len(res.Resources))
	}
	reads := p.Watch(uri[strings.LastIndex(uri, "/")+1:], 0)
	var bodies []string
	for range 2 {
		rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		bodies = append(bodies, rr.Contents[0].Text+string(rr.Contents[0].Blob))
	}
	if n := reads.Seen(); n != 1 || bodies[0] != bodies[1] {
		t.Errorf("reads of %s at the upstream: %d, want 1 (same content: %v)", uri, n, bodies[0] == bodies[1])
	}

	m := get(t, gw.URL+"/metrics")
	for _, want := range []string{`mcpedge_cache_hits_total{upstream="ev"} 3`, `mcpedge_cache_misses_total{upstream="ev"} 3`, `mcpedge_cache_bytes{upstream="ev"} `} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The TTL (1s) passes; the upstream goes dark. The first call times
	// out upstream (and opens the breaker), the next is refused by the
	// breaker: both get the stale result.
	time.Sleep(1100 * time.Millisecond)
	p.Set(faultproxy.Blackhole())
	defer p.Set(faultproxy.Pass())
	for i := range 2 {
		t0 := time.Now()
		res, err := echo("alpha-cached")
		if err != nil {
			t.Fatalf("call %d with the upstream dark: %v", i, err)
		}
		st, _ := res.Meta[cacheKeyMeta].(map[string]any)
		if text(t, res) != "Echo: alpha-cached" || st["stale"] != true {
			t.Errorf("call %d with the upstream dark: %q, _meta %v", i, text(t, res), res.Meta)
		}
		if age, _ := st["age_ms"].(float64); age < 1000 {
			t.Errorf("stale age_ms = %v, want >= 1000", st["age_ms"])
		}
		t.Logf("stale answer %d in %s: %v", i, time.Since(t0).Round(time.Millisecond), res.Meta[cacheKeyMeta])
	}
	if st := breakerState(gw); st != "open" {
		t.Errorf("breaker %q, want open", st)
	}
	// Nothing cached for these arguments: the client sees the error.
	if _, err := echo("never-cached"); code(err) == 0 {
		t.Errorf("uncached call with the upstream dark: %v, want a gateway error", err)
	}
	// The catalog stays visible: the gateway serves the tools it registered.
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tl := range lt.Tools {
		found = found || tl.Name == "ev__echo"
	}
	if !found {
		t.Errorf("ev__echo not listed while the upstream is dark (%d tools)", len(lt.Tools))
	}
}

// cacheKeyMeta is the _meta key the gateway marks cached results with.
const cacheKeyMeta = "io.mcpedge/cache"
