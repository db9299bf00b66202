package gateway

import (
	"github.com/mcpedge/mcpedge/internal/stage/argcheck"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/prometheus/client_golang/prometheus"
)

// upstreamCollector exports every upstream's state at scrape time, so that
// upstreams removed by a reload disappear from /metrics instead of leaving
// stale series behind.
type upstreamCollector struct {
	g        *Gateway
	state    *prometheus.Desc
	restarts *prometheus.Desc
	items    *prometheus.Desc
	sessions *prometheus.Desc
	breaker  *prometheus.Desc
}

func newUpstreamCollector(g *Gateway) *upstreamCollector {
	return &upstreamCollector{
		g: g,
		state: prometheus.NewDesc("mcpedge_upstream_state", "1 for the upstream's current state (connecting, ready, failed, stopped), 0 for the others.",
			[]string{"upstream", "state"}, nil),
		restarts: prometheus.NewDesc("mcpedge_upstream_restarts_total", "Times the upstream's connection was lost and re-established.",
			[]string{"upstream"}, nil),
		items: prometheus.NewDesc("mcpedge_upstream_catalog_items", "Items the upstream currently offers, by kind.",
			[]string{"upstream", "kind"}, nil),
		sessions: prometheus.NewDesc("mcpedge_upstream_session_connections", "Per-client-session connections open to an upstream with isolation = \"session\".",
			[]string{"upstream"}, nil),
		breaker: prometheus.NewDesc("mcpedge_upstream_breaker_state", "The upstream's circuit breaker: 0 closed, 1 half-open, 2 open (absent when it has none).",
			[]string{"upstream"}, nil),
	}
}

func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.restarts
	ch <- c.items
	ch <- c.sessions
	ch <- c.breaker
}

var allStates = []upstream.State{upstream.StateConnecting, upstream.StateStarting, upstream.StateReady, upstream.StateFailed, upstream.StateStopped}

func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.g.Statuses() {
		for _, st := range allStates {
			v := 0.0
			if s.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, s.Name, string(st))
		}
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.Restarts), s.Name)
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(s.Tools), s.Name, "tools")
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(s.Prompts), s.Name, "prompts")
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(s.Resources), s.Name, "resources")
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(s.Templates), s.Name, "resource_templates")
		if u, ok := c.g.Upstream(s.Name); ok {
			ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(u.SessionCount()), s.Name)
		}
		if v, ok := breakerStates[s.Breaker]; ok {
			ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue, v, s.Name)
		}
	}
}

// breakerStates are the values of mcpedge_upstream_breaker_state.
var breakerStates = map[string]float64{"closed": 0, "half-open": 1, "open": 2}

// edgeMetrics count what failure handling does (see failure.go).
type edgeMetrics struct {
	hot *prometheus.CounterVec // method, path, reason
	// contRelays counts retries of input-required calls relayed to the
	// replica running the call (contrelay.go), by outcome.
	contRelays *prometheus.CounterVec
	retries    *prometheus.CounterVec
	rejections *prometheus.CounterVec
}

func newEdgeMetrics(r prometheus.Registerer) *edgeMetrics {
	m := &edgeMetrics{
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Name: "upstream_retries_total",
			Help: "Calls sent to an upstream again after a transport failure, by upstream and method.",
		}, []string{"upstream", "method"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Name: "upstream_breaker_rejections_total",
			Help: "Calls the upstream's circuit breaker refused (open, or half-open with its probes in flight).",
		}, []string{"upstream"}),
		hot: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Name: "hot_path_requests_total",
			Help: "tools/call and prompts/get of session-era clients by the path they took: \"hot\" (bytes relayed, docs/design/pipeline.md) or \"sdk\", with the reason a request did not qualify.",
		}, []string{"method", "path", "reason"}),
	}
	m.contRelays = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mcpedge", Name: "continuation_relays_total",
		Help: "Retries of 2026-07-28 input-required calls that reached another replica than the one running the call, by outcome: \"relayed\" (the owner answered), \"gone\" (the owner has stopped), \"unreachable\" (no Redis), \"failed\" (the relay failed or timed out).",
	}, []string{"outcome"})
	r.MustRegister(m.retries, m.rejections, m.hot, m.contRelays)
	return m
}

// newArgcheckMetrics registers what the argcheck stage counts, by
// upstream (internal/stage/argcheck).
func newArgcheckMetrics(r prometheus.Registerer) argcheck.Metrics {
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mcpedge", Name: name, Help: help}, []string{"upstream"})
	}
	m := argcheck.Metrics{
		Refused:      vec("argcheck_refused_total", "tools/call refused because the arguments do not match the tool's inputSchema."),
		Unchecked:    vec("argcheck_unchecked_total", "tools/call let through unchecked because the tool's inputSchema does not compile (or cannot judge the arguments)."),
		SchemaErrors: vec("argcheck_schema_errors_total", "Tool inputSchemas that do not compile, counted once each (see the log for which)."),
	}
	r.MustRegister(m.Refused, m.Unchecked, m.SchemaErrors)
	return m
}

// forgetConnectionMetrics drops the series labelled with a connection (an
// upstream, or one of its targets such as search@cloud) that a reload
// removed, as the collector above does for its state: its request counters
// and latency would otherwise stay on /metrics with their last values, and
// every renamed target would add more. A connection that is only changed
// keeps its name and so its series. g.mu must be held.
func (g *Gateway) forgetConnectionMetrics(name string) {
	l := prometheus.Labels{"upstream": name}
	g.metrics.Requests.DeletePartialMatch(l)
	g.metrics.Errors.DeletePartialMatch(l)
	g.metrics.Latency.DeletePartialMatch(l)
	g.edgeMetrics.retries.DeletePartialMatch(l)
	g.edgeMetrics.rejections.DeletePartialMatch(l)
}
