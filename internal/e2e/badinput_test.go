package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type httpCase struct {
	name    string
	path    string
	body    string
	headers map[string]string
	status  int
	code    int    // JSON-RPC error code, 0 to skip
	msg     string // substring of the error message
}

func post(t testing.TB, url string, c httpCase) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+c.path, strings.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m, resp.Header
}

// TestBadInputRejected sends malformed and hostile requests: each gets a
// clear HTTP and JSON-RPC error before anything reaches an upstream, and the
// gateway keeps serving a well-behaved client afterwards.
func TestBadInputRejected(t *testing.T) {
	gw := startGateway(t, "[server]\nmax_body_bytes = 4096\nmax_json_depth = 16\n"+everythingStdio(t, "ev"),
		func(o *gateway.HTTPOptions) { o.AllowedOrigins = []string{"https://app.example.test"} })
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	cases := []httpCase{
		{name: "not json", path: "/mcp", body: `{"jsonrpc":`, status: 400, code: -32700},
		{name: "invalid utf8", path: "/mcp", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\"}", status: 400, code: -32700, msg: "UTF-8"},
		{name: "duplicate key", path: "/mcp", body: `{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}`, status: 400, code: -32600, msg: "duplicate"},
		{name: "escaped duplicate key", path: "/mcp", body: `{"jsonrpc":"2.0","id":1,"method":"ping","\u006dethod":"x"}`, status: 400, code: -32600, msg: "duplicate"},
		{name: "batch", path: "/mcp", body: `[` + init + `]`, status: 400, code: -32600, msg: "batch"},
		{name: "scalar", path: "/mcp", body: `42`, status: 400, code: -32600},
		{name: "too deep", path: "/mcp", body: `{"a":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}`, status: 400, code: -32600, msg: "nesting deeper than 16"},
		{name: "too large", path: "/mcp", body: `{"jsonrpc":"2.0","id":1,"method":"ping","pad":"` + strings.Repeat("x", 5000) + `"}`, status: 413, code: -32600},
		{name: "bad origin", path: "/mcp", body: init, headers: map[string]string{"Origin": "https://evil.example"}, status: 403, msg: "origin"},
		{name: "rebinding origin equal to host", path: "/mcp", body: init, headers: map[string]string{"Origin": gw.URL[:7] + "attacker.test"}, status: 403},
		{name: "token in query", path: "/mcp?access_token=abc", body: init, status: 400, msg: "URL"},
		{name: "method header mismatch", path: "/mcp", body: init, headers: map[string]string{"Mcp-Method": "tools/call"}, status: 400, msg: "Mcp-Method"},
		{name: "name header mismatch", path: "/mcp", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ev__echo","arguments":{}}}`, headers: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "ev__get-env", "Mcp-Protocol-Version": "2026-07-28"}, status: 400, msg: "Mcp-Name"},
		{name: "unknown upstream", path: "/mcp/nope", body: init, status: 404, msg: "nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, m, _ := post(t, gw.URL, c)
			if status != c.status {
				t.Errorf("status %d, want %d: %v", status, c.status, m)
			}
			e, _ := m["error"].(map[string]any)
			if c.code != 0 {
				if code, _ := e["code"].(float64); int(code) != c.code {
					t.Errorf("JSON-RPC code %v, want %d: %v", e["code"], c.code, m)
				}
			}
			if c.msg != "" && !strings.Contains(strings.ToLower(jsonText(m)), strings.ToLower(c.msg)) {
				t.Errorf("error %v does not mention %q", m, c.msg)
			}
		})
	}
	// Allowed origins pass.
	for _, origin := range []string{"https://app.example.test", "http://localhost:3000", "http://127.0.0.1:5173"} {
		status, m, _ := post(t, gw.URL, httpCase{path: "/mcp", body: init, headers: map[string]string{"Origin": origin}})
		if status != 200 {
			t.Errorf("origin %s refused: %d %v", origin, status, m)
		}
	}
	// Rejections are counted.
	var buf bytes.Buffer
	resp, err := http.Get(gw.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(&buf, resp.Body)
	resp.Body.Close()
	for _, want := range []string{`mcpedge_http_rejections_total{reason="duplicate_key"} 2`, `mcpedge_http_rejections_total{reason="batch"} 1`, `mcpedge_http_rejections_total{reason="origin"} 2`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// And a proper client still works.
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	if _, err := cs.ListTools(ctxT(t, 10*time.Second), nil); err != nil {
		t.Fatalf("gateway unusable after bad input: %v", err)
	}
}

// TestBearerToken requires the static token on every endpoint but /healthz
// and compares it exactly.
func TestBearerToken(t *testing.T) {
	gw := startGateway(t, "[server]\n", func(o *gateway.HTTPOptions) { o.Token = "s3cret-token" })
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	for _, c := range []httpCase{
		{name: "missing", path: "/mcp", body: init, status: 401},
		{name: "wrong", path: "/mcp", body: init, headers: map[string]string{"Authorization": "Bearer s3cret-tokex"}, status: 401},
		{name: "prefix", path: "/mcp", body: init, headers: map[string]string{"Authorization": "Bearer s3cret"}, status: 401},
		{name: "right", path: "/mcp", body: init, headers: map[string]string{"Authorization": "Bearer s3cret-token"}, status: 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, m, h := post(t, gw.URL, c)
			if status != c.status {
				t.Errorf("status %d, want %d: %v", status, c.status, m)
			}
			if status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", h.Get("WWW-Authenticate"))
			}
		})
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 401, "/metrics": 401} {
		resp, err := http.Get(gw.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without token: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestMetricsExposeUpstreams checks the Prometheus output names requests,
// latency and upstream states by upstream and method.
func TestMetricsExposeUpstreams(t *testing.T) {
	gw := startGateway(t, "[server]\n"+everythingStdio(t, "ev")+upstreamBlock("down", "stdio", `command = "/nonexistent/x"`))
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	if _, err := cs.CallTool(ctxT(t, 10*time.Second), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "m"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(gw.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mcpedge_requests_total{method="tools/call",upstream="ev"} 1`,
		`mcpedge_request_duration_seconds_count{method="tools/call",upstream="ev"} 1`,
		`mcpedge_upstream_state{state="ready",upstream="ev"} 1`,
		`mcpedge_upstream_state{state="failed",upstream="down"} 1`,
		`mcpedge_upstream_catalog_items{kind="tools",upstream="ev"}`,
		`mcpedge_client_sessions 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
