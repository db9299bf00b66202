// Package telemetry holds the gateway's Prometheus metrics and log setup.
//
// Metrics are registered on a registry owned by the caller rather than on
// package globals, so that tests and several gateways in one process do not
// share counters.
package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's request metrics. All label values are bounded:
// upstream names come from config and methods from the MCP method set.
type Metrics struct {
	Registry   *prometheus.Registry
	Requests   *prometheus.CounterVec
	Errors     *prometheus.CounterVec
	Latency    *prometheus.HistogramVec
	Rejections *prometheus.CounterVec
	Sessions   prometheus.Gauge
	Dropped    *prometheus.CounterVec
}

// NewMetrics creates the metrics on a fresh registry, together with the Go
// runtime and process collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Name: "requests_total",
			Help: "MCP requests forwarded to upstreams, by upstream and method.",
		}, []string{"upstream", "method"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Name: "request_errors_total",
			Help: "Failed MCP requests by upstream, method and kind (protocol, tool, unavailable, timeout, canceled).",
		}, []string{"upstream", "method", "kind"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "mcpedge", Name: "request_duration_seconds",
			Help:    "Time from the gateway forwarding a request to the upstream's answer.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"upstream", "method"}),
		Rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Name: "http_rejections_total",
			Help: "HTTP requests refused before reaching MCP handling, by reason.",
		}, []string{"reason"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Name: "notifications_dropped_total",
			Help: "Upstream notifications not delivered to a client because it was not keeping up, by reason.",
		}, []string{"reason"}),
		Sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "mcpedge", Name: "client_sessions",
			Help: "Client sessions currently open on the gateway.",
		}),
	}
	r.MustRegister(m.Requests, m.Errors, m.Latency, m.Rejections, m.Sessions, m.Dropped,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
