package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/devload"
	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/faultproxy"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestRouting runs an upstream with two targets — "local" and "cloud",
// both the real everything server over Streamable HTTP, each behind its
// own fault proxy so that the test sees which one a call reached — and
// shows the choice between them changing with priority, latency, the
// device's load, data sensitivity and health, with fallback mid-call for
// calls that are safe to repeat only.
func TestRouting(t *testing.T) {
	target := nodeclient.StartEverythingHTTP(t)
	local, localURL := nodeclient.ProxyTo(t, target)
	cloud, cloudURL := nodeclient.ProxyTo(t, target)
	conf := fmt.Sprintf(`
[[upstreams]]
name = "ev"
timeout = "5s"
retries = 0
local_only = ["get-sum"]

[upstreams.breaker]
failures = 2
open_for = "1h"

[[upstreams.targets]]
name = "local"
url = %q
locality = "local"

[[upstreams.targets]]
name = "cloud"
url = %q
locality = "remote"
`, localURL, cloudURL)

	// Latencies on a busy test machine are noise: the subtests that are
	// not about latency make it decide nothing (latency_factor 1000).
	const noLatency = "[routing]\nlatency_factor = 1000\n"
	start := func(t *testing.T, routing string) (*testGateway, func(name string, args map[string]any) (*mcp.CallToolResult, map[string]any, error)) {
		gw := startGateway(t, routing+conf)
		// The machine running the tests may be busy: the device's load
		// is the test's to set.
		gw.SetLoadSource(func() devload.Sample { return devload.Sample{CPU: 0.1, Memory: 0.2, OK: true} })
		for _, n := range []string{"ev@local", "ev@cloud"} {
			if s := status(gw, n); s.State != "ready" {
				t.Fatalf("target %s: %+v", n, s)
			}
		}
		cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
		call := func(name string, args map[string]any) (*mcp.CallToolResult, map[string]any, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Meta: mcp.Meta{gateway.MetaExplain: true}, Name: "ev__" + name, Arguments: args})
			if err != nil {
				return nil, nil, err
			}
			route, _ := res.Meta[gateway.MetaRoute].(map[string]any)
			return res, route, nil
		}
		return gw, call
	}
	echo := map[string]any{"message": "hi"}
	sum := map[string]any{"a": 1, "b": 2}
	expectRoute := func(t *testing.T, route map[string]any, target, factor string) {
		t.Helper()
		if route["upstream"] != "ev" || route["target"] != target || route["factor"] != factor {
			t.Fatalf("route %v, want target %s decided by %s", route, target, factor)
		}
	}

	t.Run("priority-load-sensitivity", func(t *testing.T) {
		gw, call := start(t, noLatency)
		localEcho, cloudEcho := local.Watch(`"echo"`, 0), cloud.Watch(`"echo"`, 0)
		localSum, cloudSum := local.Watch(`"get-sum"`, 0), cloud.Watch(`"get-sum"`, 0)
		quiet := devload.Sample{CPU: 0.1, Memory: 0.2, OK: true}
		load := quiet
		gw.SetLoadSource(func() devload.Sample { return load })

		_, route, err := call("echo", echo)
		if err != nil {
			t.Fatal(err)
		}
		expectRoute(t, route, "local", "priority")
		if localEcho.Seen() != 1 || cloudEcho.Seen() != 0 {
			t.Fatalf("echo reached local %d, cloud %d times", localEcho.Seen(), cloudEcho.Seen())
		}

		// The device is busy: work goes to the cloud...
		load = devload.Sample{CPU: 0.97, Memory: 0.2, OK: true}
		_, route, err = call("echo", echo)
		if err != nil {
			t.Fatal(err)
		}
		expectRoute(t, route, "cloud", "load")
		if reasons := fmt.Sprint(route["reasons"]); !strings.Contains(reasons, "CPU use 97%") {
			t.Errorf("reasons %s", reasons)
		}
		if cloudEcho.Seen() != 1 {
			t.Fatalf("echo under load reached the cloud %d times", cloudEcho.Seen())
		}
		// ...except a local-only tool, which never leaves the device.
		res, route, err := call("get-sum", sum)
		if err != nil || res.IsError {
			t.Fatalf("get-sum: %v %+v", err, res)
		}
		if route["target"] != "local" || !strings.Contains(fmt.Sprint(route["reasons"]), `tool "get-sum" of upstream ev is local-only`) {
			t.Fatalf("local-only route %v", route)
		}
		if localSum.Seen() != 1 || cloudSum.Seen() != 0 {
			t.Fatalf("get-sum reached local %d, cloud %d times", localSum.Seen(), cloudSum.Seen())
		}
		load = quiet
		_, route, err = call("echo", echo)
		if err != nil {
			t.Fatal(err)
		}
		expectRoute(t, route, "local", "priority")

		m := get(t, gw.URL+"/metrics")
		for _, want := range []string{
			`mcpedge_route_decisions_total{factor="load",target="cloud",upstream="ev"} 1`,
			`mcpedge_route_decisions_total{factor="priority",target="local",upstream="ev"}`,
			`mcpedge_upstream_latency_ema_seconds{upstream="ev@cloud"}`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		ready := get(t, gw.URL+"/readyz")
		for _, want := range []string{`"name":"ev@local"`, `"upstream":"ev"`, `"target":"cloud"`, `"locality":"remote"`} {
			if !strings.Contains(ready, want) {
				t.Errorf("/readyz lacks %s: %s", want, ready)
			}
		}
	})

	t.Run("latency", func(t *testing.T) {
		_, call := start(t, "")
		if _, route, err := call("echo", echo); err != nil || route["target"] != "local" {
			t.Fatalf("first call: %v %v", route, err)
		}
		// 400ms each way: a local call takes at least 800ms, so that the
		// cloud's probe, which must answer in less than half the local
		// average, wins even when a busy test machine slows it down.
		local.Set(faultproxy.Latency(400 * time.Millisecond))
		defer local.Set(faultproxy.Pass())
		// The local target stays first while only it is measured; one
		// call in ten probes the unmeasured cloud, and once the cloud's
		// average is less than half the local's, the cloud is chosen.
		var route map[string]any
		for i := range 30 {
			_, r, err := call("echo", echo)
			if err != nil {
				t.Fatal(err)
			}
			route = r
			if r["factor"] == "latency" && strings.Contains(fmt.Sprint(r["reasons"]), "answers in") {
				break
			}
			if i == 29 {
				t.Fatalf("the cloud never won on latency; last route %v", r)
			}
		}
		expectRoute(t, route, "cloud", "latency")
		if !strings.Contains(fmt.Sprint(route["reasons"]), "target cloud answers in") {
			t.Errorf("reasons %v", route["reasons"])
		}
	})

	t.Run("fallback-health", func(t *testing.T) {
		gw, call := start(t, noLatency)
		cloudEcho, cloudToggle, cloudSum := cloud.Watch(`"echo"`, 0), cloud.Watch(`"toggle-simulated-logging"`, 0), cloud.Watch(`"get-sum"`, 0)
		// The local target breaks each call below after the call's
		// request reached it ("maybe sent"): the request goes through and
		// its connection is reset when the answer begins. Its other
		// connections (its event stream) are left alone, so the gateway
		// cannot learn that the target is failing before it sends the
		// call, which it would then send elsewhere at once whatever the
		// tool ("never sent", docs/edge.md).
		localEcho := local.WatchDelivered(`"echo"`, 1)
		localToggle := local.WatchDelivered(`"toggle-simulated-logging"`, 1)
		defer local.Set(faultproxy.Pass())

		// echo is read-only: it fails on the local target mid-call and
		// is sent again to the cloud.
		res, route, err := call("echo", echo)
		if err != nil || res.IsError {
			t.Fatalf("echo with the local target failing: %v %+v", err, res)
		}
		attempts := fmt.Sprint(route["attempts"])
		if route["target"] != "cloud" || !strings.Contains(attempts, "target:local") || !strings.Contains(attempts, "ok:true target:cloud") {
			t.Fatalf("route %v", route)
		}
		if localEcho.Failed() != 1 || cloudEcho.Seen() != 1 {
			t.Fatalf("echo failed on the local target %d times, reached the cloud %d times", localEcho.Failed(), cloudEcho.Seen())
		}
		// toggle-simulated-logging is neither read-only nor idempotent:
		// it reached the local target and may have run there, so it is
		// not repeated.
		_, _, err = call("toggle-simulated-logging", map[string]any{})
		if code(err) != mcpwire.CodeUpstreamUnavailable {
			t.Fatalf("toggle with the local target failing: %v, want -32010", err)
		}
		if localToggle.Failed() != 1 {
			t.Fatalf("toggle failed on the local target %d times, want 1", localToggle.Failed())
		}
		if cloudToggle.Seen() != 0 {
			t.Fatalf("a call that is not safe to repeat reached the cloud %d times", cloudToggle.Seen())
		}
		// The local target is down from here on.
		local.Set(faultproxy.Reset())
		// Two failures opened the local breaker: the policy now puts the
		// local target last, and calls go to the cloud first.
		waitFor(t, "the local breaker to open", 5*time.Second, func() bool {
			for _, s := range gw.Statuses() {
				if s.Name == "ev@local" {
					return s.Breaker == "open"
				}
			}
			return false
		})
		_, route, err = call("echo", echo)
		if err != nil {
			t.Fatal(err)
		}
		expectRoute(t, route, "cloud", "health")
		if a := fmt.Sprint(route["attempts"]); strings.Contains(a, "local") {
			t.Errorf("a call tried the broken target first: %s", a)
		}
		// A local-only call has nowhere to go and fails fast; it never
		// reaches the cloud.
		t0 := time.Now()
		_, _, err = call("get-sum", sum)
		if code(err) != mcpwire.CodeUpstreamUnavailable || time.Since(t0) > 2*time.Second {
			t.Fatalf("local-only call with the local target down: %v after %s", err, time.Since(t0))
		}
		if cloudSum.Seen() != 0 {
			t.Fatalf("a local-only call reached the cloud %d times", cloudSum.Seen())
		}
		m := get(t, gw.URL+"/metrics")
		if !strings.Contains(m, `mcpedge_route_fallbacks_total{from="local",to="cloud",upstream="ev"} 1`) {
			t.Errorf("fallback not counted:\n%s", grepLines(m, "mcpedge_route"))
		}
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
