package gateway

// The response cache: results of an upstream's read-only tools
// (readOnlyHint) and of resources/read, kept per upstream for the TTL its
// [upstreams.cache] table sets and served again to the same tenant. See
// docs/edge.md, "Response cache".
//
// A result is cached under a key made of the scope it may be shared in
// (the caller's tenant, and also the caller's principal unless the result
// may be shared), the upstream, the method, the tool name or URI and the
// canonical JSON of the arguments. Results are kept encoded: the size
// bounds the memory, and every hit decodes a copy of its own that the
// gateway may annotate without touching the cached one.

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/canonjson"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
)

// metaCache is the _meta key of results the cache served:
// {"hit": true, "age_ms": n} when fresh, {"stale": true, "age_ms": n} when
// served after its TTL because the upstream could not be reached.
const metaCache = "io.mcpedge/cache"

// responseCache is one upstream's cache: an LRU bounded by entries and by
// the encoded size of the results. It is safe for concurrent use.
type responseCache struct {
	key      string // upstream Fingerprint + CacheKey: kept across reloads while unchanged
	cfg      config.Cache
	maxN     int
	maxBytes int64
	now      func() time.Time // the clock; tests replace it

	hits, misses prometheus.Counter
	gauge        prometheus.Gauge

	mu    sync.Mutex
	ll    *list.List // front: most recently used
	m     map[string]*list.Element
	bytes int64
}

type cacheEntry struct {
	key     string
	body    []byte
	stored  time.Time
	expires time.Time
}

func newResponseCache(cfg config.Cache, key string) *responseCache {
	n, b := cfg.Limits()
	return &responseCache{key: key, cfg: cfg, maxN: n, maxBytes: b, now: time.Now, ll: list.New(), m: map[string]*list.Element{},
		// Unregistered until applyCachesLocked labels them.
		hits: prometheus.NewCounter(prometheus.CounterOpts{Name: "hits"}), misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "misses"})}
}

// get returns the entry under key. An expired entry is returned (fresh
// false) only when the cache serves stale results; otherwise it is dropped.
func (c *responseCache) get(key string) (e cacheEntry, fresh, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return cacheEntry{}, false, false
	}
	ent := el.Value.(*cacheEntry)
	if c.now().Before(ent.expires) {
		c.ll.MoveToFront(el)
		return *ent, true, true
	}
	if !c.cfg.ServeStale {
		c.removeLocked(el)
		return cacheEntry{}, false, false
	}
	return *ent, false, true
}

// put stores body under key for ttl, dropping the least recently used
// entries while the bounds are exceeded. A body larger than the byte bound
// is not stored.
func (c *responseCache) put(key string, body []byte, ttl time.Duration) {
	if ttl <= 0 || int64(len(body)) > c.maxBytes {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.removeLocked(el)
	}
	ent := &cacheEntry{key: key, body: body, stored: now, expires: now.Add(ttl)}
	c.m[key] = c.ll.PushFront(ent)
	c.bytes += int64(len(body))
	for c.ll.Len() > c.maxN || c.bytes > c.maxBytes {
		c.removeLocked(c.ll.Back())
	}
	c.setGauge()
}

func (c *responseCache) removeLocked(el *list.Element) {
	ent := c.ll.Remove(el).(*cacheEntry)
	delete(c.m, ent.key)
	c.bytes -= int64(len(ent.body))
	c.setGauge()
}

func (c *responseCache) setGauge() {
	if c.gauge != nil {
		c.gauge.Set(float64(c.bytes))
	}
}

// size returns the number of entries and their bytes.
func (c *responseCache) size() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len(), c.bytes
}

// cacheKey returns the key of one request. principal is "" for results
// every principal of the tenant may share. The parts are JSON-encoded as
// one array, so no choice of names can make two requests collide.
func cacheKey(tenant, principal, up, method, name string, canonArgs []byte) string {
	b, _ := json.Marshal([]any{tenant, principal, up, method, name, json.RawMessage(canonArgs)})
	return string(b)
}

// canonicalJSON returns the canonical form of one JSON value: object keys
// sorted, no insignificant whitespace, numbers as written, no HTML
// escaping; false if raw is not exactly one valid JSON value. Absent
// arguments are the empty object. (The audit log hashes arguments in the
// same form: both use internal/canonjson.)
func canonicalJSON(raw []byte) ([]byte, bool) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return []byte("{}"), true
	}
	return canonjson.Canonical(raw)
}

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
	caches := make(map[string]*responseCache, len(want))
	for name, w := range want {
		if !w.Cache.Enabled() || w.Transport == upstream.TransportBuiltin {
			continue
		}
		key := w.Fingerprint() + "/" + w.Cache.CacheKey()
		if c := g.caches[name]; c != nil && c.key == key {
			caches[name] = c
			continue
		}
		c := newResponseCache(w.Cache, key)
		if cm := g.cacheMetrics; cm != nil {
			c.hits, c.misses, c.gauge = cm.hits.WithLabelValues(name), cm.misses.WithLabelValues(name), cm.bytes.WithLabelValues(name)
			c.gauge.Set(0)
		}
		caches[name] = c
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

func (g *Gateway) cacheOf(u *upstream.Upstream) *responseCache {
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

// cacheable is a result type the cache keeps.
type cacheable interface {
	*mcp.CallToolResult | *mcp.ReadResourceResult
}

// cached answers a tools/call (name is the upstream's tool name) or
// resources/read (name is the URI) from u's cache when it can, and
// otherwise runs it and keeps a result worth keeping. bypass is set for
// requests that continue an earlier round (requestState, inputResponses).
func cached[R cacheable](g *Gateway, ctx context.Context, u *upstream.Upstream, req mcp.Request, method, name string, args json.RawMessage, bypass bool, run func(context.Context) (R, error)) (R, error) {
	c := g.cacheOf(u)
	if c == nil || bypass {
		return run(ctx)
	}
	ro := false
	if method == "tools/call" && c.cfg.ToolTTL(name) > 0 {
		a := toolAnnotations(g.listedCatalog(u), name)
		ro = a != nil && a.ReadOnlyHint
	}
	return serve(c, ctx, req, groupName(u), method, name, args, ro, run)
}

// serve is cached for one cache: readOnly says whether the tool (for
// tools/call) is read-only.
func serve[R cacheable](c *responseCache, ctx context.Context, req mcp.Request, up, method, name string, args json.RawMessage, readOnly bool, run func(context.Context) (R, error)) (R, error) {
	limit := c.cfg.TTL.D()
	if method == "tools/call" {
		limit = 0
		if readOnly {
			limit = c.cfg.ToolTTL(name)
		}
	}
	canon, ok := canonicalJSON(args)
	if limit <= 0 || !ok {
		return run(ctx)
	}
	tenant, who := "", ""
	if p := principalOf(req); p != nil {
		tenant, who = p.TenantID, p.Kind+":"+p.ID
	}
	shared := cacheKey(tenant, "", up, method, name, canon)
	private := shared
	if who != "" {
		private = cacheKey(tenant, who, up, method, name, canon)
	}
	ent, fresh, found := c.get(private)
	if !found || !fresh {
		if e, f, ok := c.get(shared); ok && (f || !found) {
			ent, fresh, found = e, f, ok
		}
	}
	if found && fresh {
		if res, ok := decodeCached[R](ent, "hit", c.now()); ok {
			c.hits.Inc()
			noteCache(ctx, "hit")
			return res, nil
		}
	}
	c.misses.Inc()
	res, err := run(ctx)
	if err != nil {
		if found && c.cfg.ServeStale && unreachable(err) {
			if res, ok := decodeCached[R](ent, "stale", c.now()); ok {
				c.hits.Inc()
				noteCache(ctx, "stale")
				return res, nil
			}
		}
		return res, err
	}
	ttl, public, ok := keep(res, limit)
	if !ok {
		return res, nil
	}
	body, err := json.Marshal(res)
	if err != nil {
		return res, nil
	}
	key := private
	if public {
		key = shared
	}
	c.put(key, body, ttl)
	return res, nil
}

// keep says whether and for how long a result may be cached, at most
// limit, and whether every principal of the tenant may share it.
//
// Never kept: tool errors, and input-required rounds of a call. A
// resources/read result's 2026-07-28 hints apply: a positive ttlMs
// shortens the TTL (it never extends it), and cacheScope "private" keeps
// the result for the calling principal only. ttlMs 0 is taken as no hint:
// the SDK writes 0 for every server that set none, so it cannot be told
// from "immediately stale". Tool results carry no hints and are shared
// within the tenant.
func keep[R cacheable](res R, limit time.Duration) (ttl time.Duration, public, ok bool) {
	switch r := any(res).(type) {
	case *mcp.CallToolResult:
		if r == nil || r.IsError || len(r.InputRequests) > 0 || r.RequestState != "" {
			return 0, false, false
		}
		return limit, true, true
	case *mcp.ReadResourceResult:
		if r == nil || len(r.InputRequests) > 0 || r.RequestState != "" {
			return 0, false, false
		}
		ttl = limit
		if h := time.Duration(r.TTLMs) * time.Millisecond; h > 0 && h < ttl {
			ttl = h
		}
		return ttl, r.CacheScope == "" || r.CacheScope == "public", true
	}
	return 0, false, false
}

// decodeCached returns a copy of a cached result, marked in its _meta.
func decodeCached[R cacheable](ent cacheEntry, mark string, now time.Time) (R, bool) {
	var res R
	var meta *mcp.Meta
	switch any(res).(type) {
	case *mcp.CallToolResult:
		r := new(mcp.CallToolResult)
		res, meta = any(r).(R), &r.Meta
	case *mcp.ReadResourceResult:
		r := new(mcp.ReadResourceResult)
		res, meta = any(r).(R), &r.Meta
	}
	if err := json.Unmarshal(ent.body, any(res)); err != nil {
		var zero R
		return zero, false
	}
	if *meta == nil {
		*meta = mcp.Meta{}
	}
	(*meta)[metaCache] = map[string]any{mark: true, "age_ms": max(now.Sub(ent.stored).Milliseconds(), 0)}
	return res, true
}

// unreachable reports whether err says the upstream could not be reached
// or did not answer: the errors a stale result may stand in for.
func unreachable(err error) bool {
	code := errCode(err)
	return code == mcpwire.CodeUpstreamUnavailable || code == mcpwire.CodeUpstreamTimeout
}
