package gateway

// The response cache's wiring: each upstream with an [upstreams.cache]
// table gets a store of the cache stage (internal/stage/cache), kept across
// reloads while its configuration does not change, with its metrics
// labelled by upstream. The stage finds it through cacheSource. See
// docs/edge.md, "Response cache".

import (
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	cachestage "github.com/mcpedge/mcpedge/internal/stage/cache"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
)

// cacheMetrics count what the response caches do.
type cacheMetrics struct {
	hits, misses *prometheus.CounterVec
	bytes        *prometheus.GaugeVec
}

func newCacheMetrics(r prometheus.Registerer) *cacheMetrics {
	m := &cacheMetrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Name: "cache_hits_total",
			Help: "Cacheable calls answered from the upstream's response cache (stale answers included).",
		}, []string{"upstream"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpedge", Name: "cache_misses_total",
			Help: "Cacheable calls the upstream's response cache could not answer.",
		}, []string{"upstream"}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "mcpedge", Name: "cache_bytes",
			Help: "Encoded size of the results in the upstream's response cache.",
		}, []string{"upstream"}),
	}
	r.MustRegister(m.hits, m.misses, m.bytes)
	return m
}

// applyCachesLocked gives every wanted upstream with a cache its cache,
// keeping the cached results of those whose configuration did not change.
// g.mu must be held.
func (g *Gateway) applyCachesLocked(want map[string]config.Upstream) {
	caches := make(map[string]*cachestage.Store, len(want))
	for name, w := range want {
		if !w.Cache.Enabled() || w.Transport == upstream.TransportBuiltin {
			continue
		}
		key := w.Fingerprint() + "/" + w.Cache.CacheKey()
		if c := g.caches[name]; c != nil && c.Key() == key {
			caches[name] = c
			continue
		}
		var m cachestage.Metrics
		if cm := g.cacheMetrics; cm != nil {
			m = cachestage.Metrics{Hits: cm.hits.WithLabelValues(name), Misses: cm.misses.WithLabelValues(name), Bytes: cm.bytes.WithLabelValues(name)}
		}
		caches[name] = cachestage.NewStore(w.Cache, key, m)
	}
	if cm := g.cacheMetrics; cm != nil {
		for name := range g.caches {
			if caches[name] == nil {
				cm.bytes.DeleteLabelValues(name)
			}
			if _, stays := want[name]; !stays {
				// A removed upstream's counters go with it.
				cm.hits.DeleteLabelValues(name)
				cm.misses.DeleteLabelValues(name)
			}
		}
	}
	g.caches = caches
}

func (g *Gateway) cacheOf(u *upstream.Upstream) *cachestage.Store {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.caches[groupName(u)]
}

// toolAnnotations returns the annotations of tool (the upstream's own
// name) in cat, nil if it has none or no such tool.
func toolAnnotations(cat *upstream.Catalog, tool string) *mcp.ToolAnnotations {
	for _, t := range cat.Tools {
		if t.Name == tool {
			return t.Annotations
		}
	}
	return nil
}

// cacheSource finds the cache stage's store of a call's upstream, and
// whether a called tool is read-only (its readOnlyHint in the catalog the
// client was shown).
type cacheSource struct{ g *Gateway }

// caches reports whether the cache stage would keep or serve c's result
// (the hot path leaves such calls to the SDK's way: the cache stores
// decoded results): a read-only tool with a TTL, or a read of an upstream
// with a cache TTL.
func (s cacheSource) caches(c *pipeline.Call) bool {
	st, ro := s.For(c)
	if c.Method == pipeline.MethodReadResource {
		return st != nil && st.Config().TTL.D() > 0
	}
	return ro
}

func (s cacheSource) For(c *pipeline.Call) (*cachestage.Store, bool) {
	u := target(c)
	if u == nil {
		return nil, false
	}
	st := s.g.cacheOf(u)
	if st == nil || c.Method != pipeline.MethodCallTool || st.Config().ToolTTL(c.Item) <= 0 {
		return st, false
	}
	a := toolAnnotations(s.g.listedCatalog(u), c.Item)
	return st, a != nil && a.ReadOnlyHint
}
