package e2e

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
)

// names returns result[kind]["names"] as strings.
func names(t testing.TB, res nodeclient.Result, kind string) []string {
	t.Helper()
	m, _ := res[kind].(map[string]any)
	raw, _ := m["names"].([]any)
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		out = append(out, r.(string))
	}
	return out
}

func pages(res nodeclient.Result, kind string) int {
	m, _ := res[kind].(map[string]any)
	n, _ := m["pages"].(float64)
	return int(n)
}

// TestFederationNodeClient points the Node SDK client at a gateway that
// federates the everything server twice: once as a stdio child and once over
// Streamable HTTP. It checks namespacing, pagination, routing of calls,
// prompts, resources and completions to the right upstream, and that the
// per-upstream endpoint shows the server unchanged.
func TestFederationNodeClient(t *testing.T) {
	httpURL := nodeclient.StartEverythingHTTP(t)
	gw := startGateway(t, "[server]\npage_size = 5\n"+
		everythingStdio(t, "local")+
		// remote's arguments are not checked (check_arguments), so that
		// /mcp/remote answers exactly as the server does, bad arguments
		// included (below); local's are.
		upstreamBlock("remote", "http", "url = "+q(httpURL), "check_arguments = false"))

	res := nodeclient.Run(t, gw.URL+"/mcp", "list", nil)
	tools := names(t, res, "tools")
	for _, want := range []string{"local__echo", "remote__echo", "local__get-tiny-image", "remote__trigger-sampling-request", "mcpedge__status"} {
		if !slices.Contains(tools, want) {
			t.Errorf("aggregated tools lack %q; have %v", want, tools)
		}
	}
	if p := pages(res, "tools"); p < 2 {
		t.Errorf("tools/list with page_size 5 over %d tools came in %d page(s), want pagination", len(tools), p)
	}
	prompts := names(t, res, "prompts")
	if !slices.Contains(prompts, "local__simple-prompt") || !slices.Contains(prompts, "remote__simple-prompt") {
		t.Errorf("aggregated prompts = %v", prompts)
	}
	// Both upstreams offer the same resource URIs: the first in config
	// order keeps them, the second's are refused and reported.
	st := gw.Statuses()
	if len(st) != 2 || st[0].State != "ready" || st[1].State != "ready" {
		t.Fatalf("statuses = %+v", st)
	}
	// Whichever became ready second reports the duplicates.
	if (len(st[0].Conflicts) == 0) == (len(st[1].Conflicts) == 0) {
		t.Errorf("duplicate resource URIs must be reported by exactly one upstream: local %v, remote %v", st[0].Conflicts, st[1].Conflicts)
	}

	for _, up := range []string{"local", "remote"} {
		r := nodeclient.Run(t, gw.URL+"/mcp", "call", map[string]any{"name": up + "__echo", "arguments": map[string]any{"message": "via " + up}})
		if got := jsonText(r["result"]); !strings.Contains(got, "Echo: via "+up) {
			t.Errorf("%s__echo result = %s", up, got)
		}
	}

	// /mcp/remote is the upstream unchanged: same names, same server info.
	direct := nodeclient.Run(t, httpURL, "list", nil)
	via := nodeclient.Run(t, gw.URL+"/mcp/remote", "list", nil)
	if d, v := names(t, direct, "tools"), names(t, via, "tools"); !reflect.DeepEqual(sorted(d), sorted(v)) {
		t.Errorf("/mcp/remote tools differ from direct:\ndirect %v\nvia    %v", d, v)
	}
	dInit := nodeclient.Run(t, httpURL, "initialize", nil)
	vInit := nodeclient.Run(t, gw.URL+"/mcp/remote", "initialize", nil)
	if !reflect.DeepEqual(dInit["serverInfo"], vInit["serverInfo"]) || dInit["instructions"] != vInit["instructions"] {
		t.Errorf("server info differs: direct %v / %q, via %v / %q", dInit["serverInfo"], dInit["instructions"], vInit["serverInfo"], vInit["instructions"])
	}

	// Every content type comes through byte-for-byte equal to a direct call.
	for _, call := range []map[string]any{
		{"name": "get-tiny-image", "arguments": map[string]any{}},
		{"name": "get-annotated-message", "arguments": map[string]any{"messageType": "success", "includeImage": true}},
		{"name": "get-resource-links", "arguments": map[string]any{"count": 3}},
		{"name": "get-structured-content", "arguments": map[string]any{"location": "New York"}},
		{"name": "get-sum", "arguments": map[string]any{"a": 2, "b": "not a number"}},
	} {
		d := nodeclient.Run(t, httpURL, "call", call)
		v := nodeclient.Run(t, gw.URL+"/mcp/remote", "call", call)
		if !reflect.DeepEqual(d["result"], v["result"]) || !reflect.DeepEqual(d["error"], v["error"]) {
			t.Errorf("%s differs through the gateway:\ndirect %s\nvia    %s", call["name"], jsonText(d), jsonText(v))
		}
	}

	// With the check on, arguments the tool's schema forbids are refused by
	// the gateway, naming the path, instead of reaching the server.
	bad := map[string]any{"name": "get-sum", "arguments": map[string]any{"a": 2, "b": "not a number"}}
	if _, err := nodeclient.Try(t, gw.URL+"/mcp/local", "call", bad); err == nil || !strings.Contains(err.Error(), "-32602") || !strings.Contains(err.Error(), "at /b: got string, want number") {
		t.Errorf("get-sum with a string for b on a checked upstream: %v", err)
	}

	// An embedded resource (its blob holds a timestamp, so compare shape).
	ref := nodeclient.Run(t, gw.URL+"/mcp/remote", "call", map[string]any{"name": "get-resource-reference", "arguments": map[string]any{"resourceType": "Blob", "resourceId": 2}})
	if txt := jsonText(ref["result"]); !strings.Contains(txt, `"type":"resource"`) || !strings.Contains(txt, `"blob":"`) || !strings.Contains(txt, `"uri":"demo://resource/dynamic/blob/2"`) {
		t.Errorf("embedded resource = %s", txt)
	}

	// Prompts, resources and completion are routed to their owner.
	p := nodeclient.Run(t, gw.URL+"/mcp", "prompt", map[string]any{"name": "remote__args-prompt", "arguments": map[string]any{"city": "Paris", "state": "Texas"}})
	if !strings.Contains(jsonText(p["result"]), "Paris") {
		t.Errorf("prompt result = %s", jsonText(p))
	}
	rd := nodeclient.Run(t, gw.URL+"/mcp", "read", map[string]any{"uri": "demo://resource/dynamic/text/1"})
	if !strings.Contains(jsonText(rd["result"]), "demo://resource/dynamic/text/1") {
		t.Errorf("read result = %s", jsonText(rd))
	}
	cp := nodeclient.Run(t, gw.URL+"/mcp", "complete", map[string]any{"ref": map[string]any{"type": "ref/prompt", "name": "local__completable-prompt"}, "argument": map[string]any{"name": "department", "value": "E"}})
	if !strings.Contains(jsonText(cp), "Engineering") {
		t.Errorf("completion result = %s", jsonText(cp))
	}

	// The status tool reports both upstreams.
	s := nodeclient.Run(t, gw.URL+"/mcp", "call", map[string]any{"name": "mcpedge__status", "arguments": map[string]any{}})
	if txt := jsonText(s["result"]); !strings.Contains(txt, `"name":"local"`) || !strings.Contains(txt, `"name":"remote"`) {
		t.Errorf("status = %s", txt)
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func jsonText(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestServerToClientNodeClient runs the interactive features through /mcp
// with the Node client: sampling, elicitation with defaults and enums,
// roots, progress, cancellation, subscriptions and logging.
func TestServerToClientNodeClient(t *testing.T) {
	gw := startGateway(t, "[server]\n"+everythingStdio(t, "ev"))
	url := gw.URL + "/mcp"

	t.Run("sampling", func(t *testing.T) {
		r := nodeclient.Run(t, url, "sampling", map[string]any{"name": "ev__trigger-sampling-request", "arguments": map[string]any{"prompt": "hello"}})
		if n, _ := r["requests"].(float64); n != 1 || !strings.Contains(jsonText(r["result"]), "sampled-by-node") {
			t.Errorf("sampling = %s", jsonText(r))
		}
	})
	t.Run("elicitation", func(t *testing.T) {
		r := nodeclient.Run(t, url, "elicitation", map[string]any{"name": "ev__trigger-elicitation-request", "arguments": map[string]any{}, "content": map[string]any{"name": "Ada", "check": true}})
		req := jsonText(r["request"])
		for _, want := range []string{`"default":"It was a dark and stormy night."`, `"enum":["pet-1"`, `"default":42`} {
			if !strings.Contains(req, want) {
				t.Errorf("elicitation request lost %s: %s", want, req)
			}
		}
		if !strings.Contains(jsonText(r["result"]), "Ada") {
			t.Errorf("elicitation result = %s", jsonText(r["result"]))
		}
	})
	t.Run("roots", func(t *testing.T) {
		r := nodeclient.Run(t, url, "roots", map[string]any{"name": "ev__get-roots-list", "arguments": map[string]any{}})
		if !strings.Contains(jsonText(r), "file:///tmp/mcpedge-roots") {
			t.Errorf("roots = %s", jsonText(r))
		}
	})
	t.Run("progress", func(t *testing.T) {
		r := nodeclient.Run(t, url, "progress", map[string]any{"name": "ev__trigger-long-running-operation", "arguments": map[string]any{"duration": 1, "steps": 4}})
		if n, _ := r["count"].(float64); n != 4 {
			t.Errorf("progress notifications = %v, want 4: %s", r["count"], jsonText(r))
		}
	})
	t.Run("cancel", func(t *testing.T) {
		r := nodeclient.Run(t, url, "cancel", map[string]any{"name": "ev__trigger-long-running-operation", "arguments": map[string]any{"duration": 20, "steps": 20}, "then": map[string]any{"name": "ev__echo", "arguments": map[string]any{"message": "still here"}}})
		if ms, _ := r["elapsedMs"].(float64); ms > 15000 {
			t.Errorf("cancelled call took %v ms", ms)
		}
		if !strings.Contains(jsonText(r), "still here") {
			t.Errorf("session unusable after cancel: %s", jsonText(r))
		}
	})
	t.Run("subscribe", func(t *testing.T) {
		r := nodeclient.Run(t, url, "subscribe", map[string]any{"uri": "demo://resource/dynamic/text/1", "toggleTool": "ev__toggle-subscriber-updates", "timeoutMs": 15000}, nodeclient.WithTimeout(40*time.Second))
		if n, _ := r["count"].(float64); n < 1 {
			t.Errorf("subscribe = %s", jsonText(r))
		}
	})
	t.Run("logging", func(t *testing.T) {
		r := nodeclient.Run(t, url, "logging", map[string]any{"level": "debug", "toggleTool": "ev__toggle-simulated-logging", "durationMs": 6000}, nodeclient.WithTimeout(40*time.Second))
		if n, _ := r["count"].(float64); n < 1 {
			t.Errorf("logging = %s", jsonText(r))
		}
	})
}
