package config

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Telemetry is [telemetry]: what the gateway tells observability systems
// beyond its /metrics and logs.
type Telemetry struct {
	// Tracing is [telemetry.tracing]: OpenTelemetry spans of client calls,
	// exported over OTLP. Off unless Endpoint is set; W3C trace context is
	// carried from clients to upstreams either way (docs/design/tracing.md).
	Tracing Tracing
}

// Tracing protocols (toml telemetry.tracing.protocol).
const (
	// TracingHTTP is OTLP over HTTP with protobuf bodies, to
	// <endpoint>/v1/traces.
	TracingHTTP = "http/protobuf"
	// TracingGRPC, OTLP over gRPC, is refused: the gRPC module would link
	// an HTML template executor (golang.org/x/net/trace), which keeps
	// every exported method of the binary alive (12 MB more, measured
	// December 2026). Every OTLP receiver also takes OTLP/HTTP.
	TracingGRPC = "grpc"
)

// Defaults and bounds of [telemetry.tracing].
const (
	DefaultTracingServiceName = "mcpedge"
	DefaultTracingTimeout     = Duration(10 * time.Second)
	// MaxTracingTimeout bounds telemetry.tracing.timeout: an export that
	// takes longer holds the batch it carries.
	MaxTracingTimeout = Duration(time.Minute)
	// MaxTracingHeaders bounds telemetry.tracing.headers.
	MaxTracingHeaders = 32
)

// Tracing configures span export ([telemetry.tracing]).
type Tracing struct {
	// Endpoint is the collector's URL (toml "endpoint"): for OTLP/HTTP
	// its base URL, e.g. http://collector:4318, spans going to
	// <endpoint>/v1/traces; for gRPC http(s)://host:4317. Empty:
	// tracing is off.
	Endpoint string
	// Protocol is the OTLP protocol (toml "protocol"): "http/protobuf"
	// (the only one built in).
	Protocol string
	// Sampling is the share of new traces recorded, 0 to 1 (toml
	// "sampling"); a call whose client sent a trace context follows the
	// client's sampled flag when ParentBased is set.
	Sampling float64
	// ParentBased makes a client's sampling decision (the sampled flag
	// of its traceparent) the gateway's (toml "parent_based", default
	// true).
	ParentBased bool
	// ServiceName is the service.name resource attribute (toml
	// "service_name").
	ServiceName string
	// Headers are sent with every export (toml "headers"), e.g. a
	// collector's credentials; values may name environment variables
	// (${NAME}).
	Headers map[string]string
	// Timeout bounds one export (toml "timeout").
	Timeout Duration
	// TLS verifies an https endpoint (toml [telemetry.tracing.tls]: a CA
	// bundle, a client certificate, a server name).
	TLS ClientTLS
}

// Enabled reports whether spans are recorded and exported.
func (t Tracing) Enabled() bool { return t.Endpoint != "" }

// DefaultTracing returns [telemetry.tracing] with nothing set: off.
func DefaultTracing() Tracing {
	return Tracing{Protocol: TracingHTTP, Sampling: 1, ParentBased: true, ServiceName: DefaultTracingServiceName, Timeout: DefaultTracingTimeout}
}

var (
	telemetryKeys = []string{"tracing"}
	tracingKeys   = []string{"endpoint", "protocol", "sampling", "parent_based", "service_name", "headers", "timeout", "tls"}
)

// decodeTelemetry reads [telemetry] into c.Telemetry and validates it.
func (d *decoder) decodeTelemetry(top *table, c *Config) {
	t := d.subTable(top, "telemetry")
	if t == nil {
		return
	}
	tt := d.subTable(t, "tracing")
	t.unknown(telemetryKeys)
	if tt == nil {
		return
	}
	tr := &c.Telemetry.Tracing
	if tt.str("endpoint", &tr.Endpoint) {
		l := tt.loc("endpoint")
		tr.Endpoint, _ = d.expand(tr.Endpoint, l.pos, l.field, false)
	}
	tt.str("protocol", &tr.Protocol)
	if v := tt.get("sampling"); v != nil {
		switch v.kind {
		case kFloat:
			tr.Sampling = v.f
		case kInt:
			tr.Sampling = float64(v.i)
		default:
			tt.typeErr("sampling", v, "number between 0 and 1")
		}
	}
	tt.boolean("parent_based", &tr.ParentBased)
	tt.str("service_name", &tr.ServiceName)
	tt.strMap("headers", &tr.Headers, true, false)
	tt.duration("timeout", &tr.Timeout)
	if ct := d.decodeClientTLS(tt, &tr.TLS); ct != nil {
		d.validateClientTLS(&tr.TLS, ct, "telemetry.tracing.tls")
	}
	tt.unknown(tracingKeys)

	bad := func(key, format string, args ...any) {
		l := tt.loc(key)
		d.add(l.pos, l.field, format, args...)
	}
	if tr.Endpoint != "" {
		if problem := tracingEndpointProblem(tr.Endpoint); problem != "" {
			bad("endpoint", "%s", problem)
		}
	} else if tr.TLS.Set() || len(tr.Headers) > 0 {
		bad("endpoint", "is required when [telemetry.tracing] sets headers or tls: it names the collector")
	}
	switch tr.Protocol {
	case TracingHTTP:
	case TracingGRPC:
		bad("protocol", "%q is not built in (it would add about 12 MB to the binary): use %q, which the OpenTelemetry Collector, Jaeger and Tempo all accept (on port 4318 by convention)", TracingGRPC, TracingHTTP)
	default:
		bad("protocol", "must be %q (OTLP over HTTP), got %q", TracingHTTP, truncate(tr.Protocol, 32))
	}
	if !(tr.Sampling >= 0 && tr.Sampling <= 1) {
		bad("sampling", "must be between 0 and 1, got %s", strconv.FormatFloat(tr.Sampling, 'g', -1, 64))
	}
	if tr.ServiceName == "" || len(tr.ServiceName) > 128 {
		bad("service_name", "must be 1 to 128 bytes, got %d", len(tr.ServiceName))
	}
	if len(tr.Headers) > MaxTracingHeaders {
		bad("headers", "must have at most %d entries, got %d", MaxTracingHeaders, len(tr.Headers))
	}
	for k, v := range tr.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") || strings.ContainsAny(v, "\r\n") {
			bad("headers", "%q is not a valid HTTP header", truncate(k, 64))
			break
		}
	}
	if tr.Timeout <= 0 || tr.Timeout > MaxTracingTimeout {
		bad("timeout", "must be greater than 0 and at most %s, got %s", MaxTracingTimeout, tr.Timeout)
	}
}

// tracingEndpointProblem says what is wrong with an OTLP endpoint, "" if
// nothing.
func tracingEndpointProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a URL: " + err.Error()
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http:// or https:// URL, got scheme " + strconv.Quote(u.Scheme)
	case u.Host == "":
		return "must name a host, e.g. http://collector:4318"
	case u.User != nil:
		return "must not carry credentials: put them in headers"
	case u.RawQuery != "" || u.Fragment != "":
		return "must not have a query or fragment"
	}
	return ""
}
