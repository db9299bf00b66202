package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/tracing"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing end to end (docs/design/tracing.md): a client inside a trace
// calls a tool through the real gateway binary into an upstream that
// joins the trace from what it receives, and a real trace backend
// (Jaeger v2, built by scripts/test.sh into $MCPEDGE_TOOLS_DIR) holds
// one trace whose parent links go client → gateway server span → its
// stage spans → the gateway's upstream-call span → the upstream's span.

// seenTrace is what the traced upstream received with one call.
type seenTrace struct {
	header, meta string // traceparent header and _meta value
	state, note  string // _meta's tracestate and "note"
}

// tracedUpstream is an MCP server over Streamable HTTP, instrumented as
// the OpenTelemetry semantic conventions for MCP say: its tool's span is
// a child of the context in the request's params._meta (SEP-414). It
// records the traceparent header and _meta value of every call.
type tracedUpstream struct {
	URL  string
	mu   sync.Mutex
	seen []seenTrace
}

func (u *tracedUpstream) calls() []seenTrace {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenTrace(nil), u.seen...)
}

func startTracedUpstream(t *testing.T, tp trace.TracerProvider) *tracedUpstream {
	t.Helper()
	u := &tracedUpstream{}
	tracer := tp.Tracer("trace-upstream")
	s := mcp.NewServer(&mcp.Implementation{Name: "traced", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "work", Description: "does traced work"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		meta := req.Params.GetMeta()
		var st seenTrace
		st.meta, _ = meta["traceparent"].(string)
		st.state, _ = meta["tracestate"].(string)
		st.note, _ = meta["note"].(string)
		if req.Extra != nil && req.Extra.Header != nil {
			st.header = req.Extra.Header.Get("Traceparent")
		}
		u.mu.Lock()
		u.seen = append(u.seen, st)
		u.mu.Unlock()
		carrier := propagation.MapCarrier{}
		for _, k := range []string{"traceparent", "tracestate"} {
			if v, ok := meta[k].(string); ok {
				carrier[k] = v
			}
		}
		ctx = propagation.TraceContext{}.Extract(ctx, carrier)
		_, span := tracer.Start(ctx, "upstream work", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("gen_ai.tool.name", "work")))
		time.Sleep(5 * time.Millisecond)
		span.End()
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	u.URL = srv.URL + "/mcp"
	return u
}

// traceHeaders sends a fixed traceparent header with every request (the
// client's HTTP instrumentation).
type traceHeaders struct {
	traceparent string
	base        http.RoundTripper
}

func (h traceHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if h.traceparent != "" {
		r.Header.Set("Traceparent", h.traceparent)
	}
	return h.base.RoundTrip(r)
}

// callInTrace calls tool on the gateway at url in a client session of
// the protocol version, with the trace context of ctx in the traceparent
// header and in _meta when those are set.
func callInTrace(t *testing.T, url, version, tool, headerTP string, meta map[string]any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := &http.Client{Transport: bearerTransport{token: e2eAdminKey, base: traceHeaders{traceparent: headerTP, base: http.DefaultTransport}}}
	c := mcp.NewClient(&mcp.Implementation{Name: "trace-client", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connecting (%s): %v", version, err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Meta: meta})
	if err != nil || res.IsError {
		t.Fatalf("calling %s (%s): %v %+v", tool, version, err, res)
	}
	return res
}

// TestTraceContextPassesThrough: with tracing off (no [telemetry.tracing])
// a client's trace context reaches the upstream unchanged, in the
// traceparent header and in _meta, whichever way the client sent it, in
// both protocol eras (the hot path and the SDK's way).
func TestTraceContextPassesThrough(t *testing.T) {
	up := startTracedUpstream(t, noop.NewTracerProvider())
	gw := startGateway(t, upstreamBlock("traced", "http", "url = "+q(up.URL)))
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const tp2 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		for _, how := range []string{"header", "meta", "both", "none"} {
			header, meta, want := "", map[string]any(nil), tp
			switch how {
			case "header":
				header = tp
			case "meta":
				meta = map[string]any{"traceparent": tp}
			case "both": // _meta is the message's own: it wins
				header, meta = tp2, map[string]any{"traceparent": tp}
			case "none":
				want = ""
			}
			n := len(up.calls())
			callInTrace(t, gw.URL+"/mcp", version, "traced__work", header, meta)
			calls := up.calls()
			if len(calls) != n+1 {
				t.Fatalf("%s/%s: the upstream saw %d calls, want %d", version, how, len(calls)-n, 1)
			}
			if got := calls[n]; got.header != want || got.meta != want {
				t.Errorf("%s/%s: the upstream got header %q and _meta %q, want %q in both", version, how, got.header, got.meta, want)
			}
		}
	}
}

// jaegerBinary is the Jaeger v2 all-in-one scripts/test.sh builds.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	root, err := nodeclient.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "scripts/tools.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^JAEGER_VERSION=(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("scripts/tools.sh does not set JAEGER_VERSION")
	}
	dir := os.Getenv("MCPEDGE_TOOLS_DIR")
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(c, "mcpedge-tools")
	}
	p := filepath.Join(dir, "jaeger-"+string(m[1]), "jaeger")
	if _, err := os.Stat(p); err != nil {
		msg := p + " is not built (scripts/test.sh builds it, see scripts/tools.sh)"
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" || os.Getenv("MCPEDGE_REQUIRE_TOOLS") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// jaeger is a running Jaeger v2 with in-memory storage, listening on
// loopback only.
type jaeger struct {
	OTLP, OTLPGRPC, Query string // http://127.0.0.1:port
}

func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := jaegerBinary(t)
	otlp, otlpGRPC, query, grpcQuery, health := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %s
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
      grpc:
        endpoint: %s
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`, health, query, grpcQuery, otlp, otlpGRPC)
	path := writeFile(t, "jaeger.yaml", cfg)
	cmd := exec.Command(bin, "--config", path)
	logs := &lockedLog{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	j := &jaeger{OTLP: "http://" + otlp, OTLPGRPC: "http://" + otlpGRPC, Query: "http://" + query}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(j.Query + "/api/services")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger did not come up: %v\n%s", err, tailLines(logs.String(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jaegerSpan is a span as Jaeger's query API returns it.
type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	ProcessID string `json:"processID"`
	Tags      []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	service string
}

func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

func (s jaegerSpan) tag(k string) string {
	for _, tg := range s.Tags {
		if tg.Key == k {
			return fmt.Sprint(tg.Value)
		}
	}
	return ""
}

// trace fetches the spans of traceID, waiting until want spans are there.
func (j *jaeger) trace(t *testing.T, traceID string, want int) map[string]jaegerSpan {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		resp, err := http.Get(j.Query + "/api/traces/" + traceID)
		if err == nil {
			var body struct {
				Data []struct {
					Spans     []jaegerSpan `json:"spans"`
					Processes map[string]struct {
						ServiceName string `json:"serviceName"`
					} `json:"processes"`
				} `json:"data"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err == nil && len(body.Data) == 1 {
				spans := map[string]jaegerSpan{}
				for _, s := range body.Data[0].Spans {
					s.service = body.Data[0].Processes[s.ProcessID].ServiceName
					spans[s.SpanID] = s
				}
				if len(spans) >= want {
					return spans
				}
				last = fmt.Sprintf("%d spans", len(spans))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: want at least %d spans in Jaeger, have %s (%v)", traceID, want, last, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestTracingToJaeger runs one call per protocol era from a traced client
// through the gateway binary (tracing on, exporting to Jaeger) into the
// traced upstream, and checks the parent/child links in Jaeger.
func TestTracingToJaeger(t *testing.T) {
	j := startJaeger(t)
	newTP := func(service string) *sdktrace.TracerProvider {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(j.OTLP+"/v1/traces"))
		if err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return tp
	}
	clientTP, upstreamTP := newTP("trace-client"), newTP("trace-upstream")
	up := startTracedUpstream(t, upstreamTP)
	cfg := "[server]\nshutdown_grace = \"2s\"\n" +
		"[telemetry.tracing]\nendpoint = " + q(j.OTLP) + "\nservice_name = \"mcpedge-test\"\n" +
		upstreamBlock("traced", "http", "url = "+q(up.URL))
	p := startProc(t, writeFile(t, "mcpedge.toml", cfg), freeAddr(t), "XDG_DATA_HOME="+t.TempDir(), "MCPEDGE_ADMIN_KEY="+e2eAdminKey)
	p.waitReady(t, e2eAdminKey, "traced")

	for _, era := range []struct{ version, carry string }{
		{"2025-11-25", "header"}, // the hot path
		{"2026-07-28", "meta"},   // the SDK's way, stateless
	} {
		t.Run(era.version, func(t *testing.T) {
			ctx, span := clientTP.Tracer("trace-client").Start(context.Background(), "agent call", trace.WithSpanKind(trace.SpanKindClient))
			sc := span.SpanContext()
			carrier := propagation.MapCarrier{}
			propagation.TraceContext{}.Inject(ctx, carrier)
			header, meta := "", map[string]any(nil)
			if era.carry == "header" {
				header = carrier["traceparent"]
			} else {
				meta = map[string]any{"traceparent": carrier["traceparent"]}
			}
			n := len(up.calls())
			callInTrace(t, p.URL+"/mcp", era.version, "traced__work", header, meta)
			span.End()
			got := up.calls()[n]
			if got.header == "" || got.header != got.meta {
				t.Errorf("the upstream got traceparent header %q and _meta %q: want the same, the gateway's", got.header, got.meta)
			}
			// client, server, authenticate, authorize, cache, route,
			// forward, upstream call, upstream: at least 8.
			spans := j.trace(t, sc.TraceID().String(), 8)
			var leaf jaegerSpan
			for _, s := range spans {
				if s.service == "trace-upstream" {
					leaf = s
				}
			}
			if leaf.SpanID == "" {
				t.Fatalf("no span of the upstream in the trace: %v", spanNames(spans))
			}
			// Walk from the upstream's span to the root.
			var chain []jaegerSpan
			for s, ok := leaf, true; ok; s, ok = spans[s.parent()] {
				chain = append(chain, s)
				if len(chain) > 20 {
					t.Fatal("a cycle in the parent links")
				}
			}
			var path []string
			for i := len(chain) - 1; i >= 0; i-- {
				path = append(path, chain[i].service+":"+chain[i].OperationName)
			}
			want := []string{"trace-client:agent call", "mcpedge-test:tools/call traced__work", "mcpedge-test:mcpedge.authorize",
				"mcpedge-test:mcpedge.cache", "mcpedge-test:mcpedge.route", "mcpedge-test:mcpedge.forward",
				"mcpedge-test:tools/call work", "trace-upstream:upstream work"}
			if !subsequence(path, want) || path[0] != want[0] || path[len(path)-1] != want[len(want)-1] {
				t.Errorf("parent chain from the upstream's span:\n  %s\nwant it to pass through, in order:\n  %s", strings.Join(path, " → "), strings.Join(want, " → "))
			}
			// The upstream's parent is the gateway's upstream-call span,
			// whose context the upstream received.
			call := spans[leaf.parent()]
			if call.OperationName != "tools/call work" || call.tag("span.kind") != "client" || !strings.Contains(got.meta, call.SpanID) {
				t.Errorf("upstream-call span %+v; the upstream got %q", call, got.meta)
			}
			var server jaegerSpan
			for _, s := range chain {
				if s.OperationName == "tools/call traced__work" {
					server = s
				}
			}
			if server.tag("span.kind") != "server" || server.tag("mcp.method.name") != "tools/call" || server.tag("gen_ai.tool.name") != "traced__work" ||
				server.tag("mcp.protocol.version") != era.version || server.tag("mcpedge.upstream") != "traced" || server.parent() != sc.SpanID().String() {
				t.Errorf("server span: %+v", server)
			}
			if era.version == "2025-11-25" && server.tag("mcp.session.id") == "" {
				t.Errorf("server span without mcp.session.id: %+v", server.Tags)
			}
			auth := false
			for _, s := range spans {
				if s.OperationName == "mcpedge.authenticate" && s.parent() == server.SpanID {
					auth = true
				}
			}
			if !auth {
				t.Errorf("no mcpedge.authenticate span under the server span: %v", spanNames(spans))
			}
		})
	}
	// OTLP over gRPC: another gateway exports to Jaeger's gRPC receiver.
	t.Run("grpc", func(t *testing.T) {
		cfg := "[server]\nshutdown_grace = \"2s\"\n" +
			"[telemetry.tracing]\nendpoint = " + q(j.OTLPGRPC) + "\nprotocol = \"grpc\"\nservice_name = \"mcpedge-grpc\"\n" +
			upstreamBlock("traced", "http", "url = "+q(up.URL))
		pg := startProc(t, writeFile(t, "mcpedge.toml", cfg), freeAddr(t), "XDG_DATA_HOME="+t.TempDir(), "MCPEDGE_ADMIN_KEY="+e2eAdminKey)
		pg.waitReady(t, e2eAdminKey, "traced")
		ctx, span := clientTP.Tracer("trace-client").Start(context.Background(), "agent call")
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, carrier)
		callInTrace(t, pg.URL+"/mcp", "2025-11-25", "traced__work", carrier["traceparent"], nil)
		span.End()
		spans := j.trace(t, span.SpanContext().TraceID().String(), 8)
		found := false
		for _, s := range spans {
			if s.service == "mcpedge-grpc" && s.OperationName == "tools/call traced__work" && s.parent() == span.SpanContext().SpanID().String() {
				found = true
			}
		}
		if !found {
			t.Errorf("no server span of the gateway exporting over gRPC: %v", spanNames(spans))
		}
	})
	// Export is observable: spans delivered are counted on /metrics.
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mb, _ := io.ReadAll(resp.Body)
	metrics := string(mb)
	if !regexp.MustCompile(`(?m)^mcpedge_tracing_spans_exported_total [1-9]`).MatchString(metrics) {
		t.Errorf("/metrics does not count exported spans:\n%s", grepLines(metrics, "mcpedge_tracing"))
	}
}

func spanNames(spans map[string]jaegerSpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.service+":"+s.OperationName)
	}
	return out
}

// subsequence reports whether want appears in got in order (with other
// elements between).
func subsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestTracingSpansInProcess is TestTracingToJaeger without the backend
// (an in-memory span recorder), so that it runs everywhere and under the
// race detector: the server span is the client's child, the stage spans
// nest under it, the upstream-call span under forward, and the upstream
// gets that span's context in both header and _meta, in both eras.
func TestTracingSpansInProcess(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	up := startTracedUpstream(t, tp)
	gw := startGatewayWith(t, upstreamBlock("traced", "http", "url = "+q(up.URL)), func(g *gateway.Gateway) { g.SetTracing(tracing.With(tp)) })
	// The hot path with the context in the header (the gateway adds a
	// _meta) and in _meta (the gateway's replaces the client's, spliced);
	// the SDK's way with it in _meta.
	for _, era := range []struct{ version, carry string }{{"2025-11-25", "header"}, {"2025-11-25", "meta"}, {"2026-07-28", "meta"}} {
		ctx, span := tp.Tracer("trace-client").Start(context.Background(), "agent call")
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, carrier)
		header, meta := carrier["traceparent"], map[string]any(nil)
		if era.carry == "meta" {
			header, meta = "", map[string]any{"traceparent": carrier["traceparent"], "tracestate": "client=1", "note": "kept"}
		}
		n := len(up.calls())
		callInTrace(t, gw.URL+"/mcp", era.version, "traced__work", header, meta)
		span.End()
		got := up.calls()[n]
		spans := map[trace.SpanID]sdktrace.ReadOnlySpan{}
		var leaf sdktrace.ReadOnlySpan
		deadline := time.Now().Add(10 * time.Second)
		// Until the chain from the upstream's span reaches the client's:
		// the gateway's server span ends once its answer is written, which
		// may be after the client has read it.
		rooted := func() bool {
			n := 0
			for s := leaf; s != nil && n < 20; s, n = spans[s.Parent().SpanID()], n+1 {
				if s.SpanContext().SpanID() == span.SpanContext().SpanID() {
					return true
				}
			}
			return false
		}
		for (leaf == nil || !rooted()) && time.Now().Before(deadline) {
			for _, s := range rec.Ended() {
				if s.SpanContext().TraceID() == span.SpanContext().TraceID() {
					spans[s.SpanContext().SpanID()] = s
					if s.Name() == "upstream work" {
						leaf = s
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if leaf == nil {
			t.Fatalf("%s: no upstream span in the client's trace", era.version)
		}
		var path []string
		for s := leaf; s != nil; s = spans[s.Parent().SpanID()] {
			path = append([]string{s.Name()}, path...)
			if len(path) > 20 {
				t.Fatal("cycle")
			}
		}
		// (No authorize or defer here: single-user mode, no queue.)
		want := []string{"agent call", "tools/call traced__work", "mcpedge.cache", "mcpedge.route", "mcpedge.forward", "tools/call work", "upstream work"}
		if !subsequence(path, want) || path[0] != want[0] {
			t.Errorf("%s: chain %v, want it to pass through %v", era.version, path, want)
		}
		if era.carry == "meta" && (got.state != "client=1" || got.note != "kept") {
			t.Errorf("%s: the client's other _meta did not travel: tracestate %q, note %q", era.version, got.state, got.note)
		}
		call := spans[leaf.Parent().SpanID()]
		if call.SpanKind() != trace.SpanKindClient || got.header != got.meta || !strings.Contains(got.header, call.SpanContext().SpanID().String()) {
			t.Errorf("%s: the upstream got header %q, _meta %q; the upstream-call span is %s", era.version, got.header, got.meta, call.SpanContext().SpanID())
		}
	}
}
