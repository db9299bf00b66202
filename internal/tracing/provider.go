// Package tracing is the gateway's OpenTelemetry tracing: the tracer
// provider built from [telemetry.tracing] (OTLP over HTTP, or a no-op
// provider when tracing is off), and W3C trace context read from a
// client's request (traceparent/tracestate HTTP headers and the same keys
// in params._meta, SEP-414) and written into what the gateway sends an
// upstream (both places again).
//
// Nothing here is global: the provider is handed to the code that makes
// spans, and the propagation functions take what they work on. See
// docs/design/tracing.md.
package tracing

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/credentials"
)

// InstrumentationName names the gateway's tracer (the instrumentation
// scope of its spans).
const InstrumentationName = "github.com/mcpedge/mcpedge"

// A Provider is the gateway's tracer provider: the OpenTelemetry SDK's
// with an OTLP exporter (HTTP or gRPC) when tracing is on, a no-op one when it is
// off (spans cost nothing, trace context still travels).
type Provider struct {
	tp       trace.TracerProvider
	sdk      *sdktrace.TracerProvider
	exporter *exporter
}

// Options are what [New] needs besides the configuration.
type Options struct {
	// Log receives export failures (at most one line per LogEvery).
	Log *slog.Logger
	// Registry receives the export metrics; nil: none.
	Registry prometheus.Registerer
	// TLS verifies an https endpoint (internal/tlsconf.Client of
	// [telemetry.tracing.tls]); nil: the system's roots.
	TLS *tls.Config
	// Version is the service.version resource attribute.
	Version string
	// Attributes are further resource attributes (an edge's name).
	Attributes []attribute.KeyValue
}

// LogEvery is the least time between two log lines about failed exports.
const LogEvery = 30 * time.Second

// Off returns the provider of a gateway whose tracing is off.
func Off() *Provider { return &Provider{tp: noop.NewTracerProvider()} }

// New returns the provider for cfg: [Off] when cfg has no endpoint.
func New(cfg config.Tracing, o Options) (*Provider, error) {
	if !cfg.Enabled() {
		return Off(), nil
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	otlp, err := newOTLP(cfg, o.TLS)
	if err != nil {
		return nil, err
	}
	exp := newExporter(otlp, o.Log, o.Registry)
	attrs := append([]attribute.KeyValue{
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", o.Version),
	}, o.Attributes...)
	var sampler sdktrace.Sampler = sdktrace.TraceIDRatioBased(cfg.Sampling)
	if cfg.Sampling >= 1 {
		sampler = sdktrace.AlwaysSample()
	}
	if cfg.ParentBased {
		sampler = sdktrace.ParentBased(sampler)
	}
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(2*time.Second), sdktrace.WithExportTimeout(time.Duration(cfg.Timeout))),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(sampler),
	)
	return &Provider{tp: sdk, sdk: sdk, exporter: exp}, nil
}

// newOTLP returns the OTLP exporter of cfg's protocol.
func newOTLP(cfg config.Tracing, tc *tls.Config) (sdktrace.SpanExporter, error) {
	timeout := time.Duration(cfg.Timeout)
	if cfg.Protocol == config.TracingGRPC {
		opts := []otlptracegrpc.Option{
			otlptracegrpc.WithEndpointURL(cfg.Endpoint), // http:// is plaintext
			otlptracegrpc.WithTimeout(timeout),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: time.Second, MaxInterval: 5 * time.Second, MaxElapsedTime: timeout}),
		}
		if tc != nil {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tc)))
		}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(cfg.Headers))
		}
		return otlptracegrpc.New(context.Background(), opts...)
	}
	hc := &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: tc,
		MaxIdleConns: 4, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: tc != nil,
	}}
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(tracesURL(cfg.Endpoint)),
		otlptracehttp.WithTimeout(timeout),
		otlptracehttp.WithHTTPClient(hc),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: time.Second, MaxInterval: 5 * time.Second, MaxElapsedTime: timeout}),
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	return otlptracehttp.New(context.Background(), opts...)
}

// tracesURL is the OTLP/HTTP traces URL of an endpoint: the endpoint's
// own path when it ends in /v1/traces, else /v1/traces appended.
func tracesURL(endpoint string) string {
	for len(endpoint) > 0 && endpoint[len(endpoint)-1] == '/' {
		endpoint = endpoint[:len(endpoint)-1]
	}
	const p = "/v1/traces"
	if len(endpoint) >= len(p) && endpoint[len(endpoint)-len(p):] == p {
		return endpoint
	}
	return endpoint + p
}

// TracerProvider returns the provider to make tracers from.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.tp }

// Tracer returns the gateway's tracer.
func (p *Provider) Tracer() trace.Tracer { return p.tp.Tracer(InstrumentationName) }

// Enabled reports whether spans are recorded and exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// Shutdown exports what is still buffered and stops the exporter; ctx
// bounds the wait. A no-op for [Off].
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// ForceFlush exports what is buffered now.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// exporter counts and logs what the OTLP exporter could not deliver, and
// keeps the error from OpenTelemetry's global error handler (which would
// print it unstructured on stderr): the batch is dropped either way.
type exporter struct {
	sdktrace.SpanExporter
	log      *slog.Logger
	exported prometheus.Counter
	failed   prometheus.Counter
	lastLog  atomic.Int64
}

func newExporter(inner sdktrace.SpanExporter, log *slog.Logger, reg prometheus.Registerer) *exporter {
	e := &exporter{SpanExporter: inner, log: log,
		exported: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "tracing", Name: "spans_exported_total",
			Help: "Spans delivered to the OTLP endpoint of [telemetry.tracing]."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "tracing", Name: "spans_failed_total",
			Help: "Spans the OTLP endpoint of [telemetry.tracing] did not take (unreachable, refused, timed out); they are dropped."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{e.exported, e.failed} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					log.Warn("tracing: registering a metric", "err", err)
				}
			}
		}
	}
	return e
}

func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		e.exported.Add(float64(len(spans)))
		return nil
	}
	e.failed.Add(float64(len(spans)))
	now := time.Now().UnixNano()
	if last := e.lastLog.Load(); now-last >= int64(LogEvery) && e.lastLog.CompareAndSwap(last, now) {
		e.log.Warn("tracing: exporting spans failed; they are dropped", "spans", len(spans), "err", err)
	}
	return nil
}

// With returns a provider over an OpenTelemetry SDK provider the caller
// built and owns (tests, or a program embedding the gateway with its own
// exporter); Shutdown shuts it down.
func With(sdk *sdktrace.TracerProvider) *Provider { return &Provider{tp: sdk, sdk: sdk} }
