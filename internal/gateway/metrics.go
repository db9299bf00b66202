package gateway

import (
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
	}
}

func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.restarts
	ch <- c.items
	ch <- c.sessions
}

var allStates = []upstream.State{upstream.StateConnecting, upstream.StateReady, upstream.StateFailed, upstream.StateStopped}

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
	}
}
