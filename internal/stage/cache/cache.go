// Package cache is the pipeline stage that answers read-only tools and
// resources from a response cache: results of an upstream's read-only
// tools (readOnlyHint) and of resources/read, kept per upstream for the
// TTL its [upstreams.cache] table sets and served again to the same tenant
// (docs/edge.md, "Response cache").
//
// It sees the call (method, the upstream's item name or URI, arguments,
// principal) and what the stages below it answered; it answers a hit
// itself, marked in the result's _meta, and may answer a stale result
// when the upstream is unreachable. It never caches resumptions of a
// multi-round-trip exchange, tool errors or input-required rounds.
//
// A result is cached under a key made of the scope it may be shared in
// (the caller's tenant, and also the caller's principal unless the result
// may be shared), the upstream, the method, the tool name or URI and the
// canonical JSON of the arguments. Results are kept encoded: the size
// bounds the memory, and every hit decodes a copy of its own that later
// stages may annotate without touching the cached one.
package cache

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/canonjson"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
)

// MetaKey is the _meta key of results the cache served:
// {"hit": true, "age_ms": n} when fresh, {"stale": true, "age_ms": n} when
// served after its TTL because the upstream could not be reached.
const MetaKey = "io.mcpedge/cache"

// A Source finds the cache of a call's upstream.
type Source interface {
	// For returns the cache of c's upstream (c.Target) and, for
	// tools/call, whether the tool is read-only; nil when the upstream
	// has no cache. It is called on every cacheable call.
	For(c *pipeline.Call) (s *Store, readOnly bool)
}

// Options configure the stage. Noted, if set, is told how the cache
// answered a call ("hit" or "stale"), for the routing explanation.
type Options struct {
	Noted func(ctx context.Context, how string)
}

// Stage is the cache stage.
type Stage struct {
	src Source
	o   Options
}

var _ pipeline.Stage = (*Stage)(nil)

// New returns the stage over src; o may be nil.
func New(src Source, o *Options) *Stage {
	s := &Stage{src: src}
	if o != nil {
		s.o = *o
	}
	return s
}

// Name implements [pipeline.Stage].
func (*Stage) Name() string { return "cache" }

// Handle implements [pipeline.Stage].
func (s *Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	if c.Resuming || (c.Method != pipeline.MethodCallTool && c.Method != pipeline.MethodReadResource) {
		return next.Handle(ctx, c)
	}
	st, ro := s.src.For(c)
	if st == nil {
		return next.Handle(ctx, c)
	}
	return st.serve(ctx, c, ro, next, s.o.Noted)
}

// Store is one upstream's cache: an LRU bounded by entries and by the
// encoded size of the results. It is safe for concurrent use.
type Store struct {
	key      string
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

type entry struct {
	key     string
	body    []byte
	stored  time.Time
	expires time.Time
}

// Metrics are where a store counts what it does; nil fields count nothing.
type Metrics struct {
	Hits, Misses prometheus.Counter
	Bytes        prometheus.Gauge
}

// NewStore returns an empty cache configured by cfg. key identifies the
// configuration it was made for (a store is kept across reloads while its
// key is the same).
func NewStore(cfg config.Cache, key string, m Metrics) *Store {
	n, b := cfg.Limits()
	s := &Store{key: key, cfg: cfg, maxN: n, maxBytes: b, now: time.Now, ll: list.New(), m: map[string]*list.Element{},
		hits: m.Hits, misses: m.Misses, gauge: m.Bytes}
	if s.hits == nil {
		s.hits = prometheus.NewCounter(prometheus.CounterOpts{Name: "hits"})
	}
	if s.misses == nil {
		s.misses = prometheus.NewCounter(prometheus.CounterOpts{Name: "misses"})
	}
	s.setGauge()
	return s
}

// Key is the key the store was made with.
func (s *Store) Key() string { return s.key }

// Config is the store's configuration.
func (s *Store) Config() config.Cache { return s.cfg }

// get returns the entry under key. An expired entry is returned (fresh
// false) only when the cache serves stale results; otherwise it is dropped.
func (s *Store) get(key string) (e entry, fresh, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.m[key]
	if !ok {
		return entry{}, false, false
	}
	ent := el.Value.(*entry)
	if s.now().Before(ent.expires) {
		s.ll.MoveToFront(el)
		return *ent, true, true
	}
	if !s.cfg.ServeStale {
		s.removeLocked(el)
		return entry{}, false, false
	}
	return *ent, false, true
}

// put stores body under key for ttl, dropping the least recently used
// entries while the bounds are exceeded. A body larger than the byte bound
// is not stored.
func (s *Store) put(key string, body []byte, ttl time.Duration) {
	if ttl <= 0 || int64(len(body)) > s.maxBytes {
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.m[key]; ok {
		s.removeLocked(el)
	}
	ent := &entry{key: key, body: body, stored: now, expires: now.Add(ttl)}
	s.m[key] = s.ll.PushFront(ent)
	s.bytes += int64(len(body))
	for s.ll.Len() > s.maxN || s.bytes > s.maxBytes {
		s.removeLocked(s.ll.Back())
	}
	s.setGauge()
}

func (s *Store) removeLocked(el *list.Element) {
	ent := s.ll.Remove(el).(*entry)
	delete(s.m, ent.key)
	s.bytes -= int64(len(ent.body))
	s.setGauge()
}

func (s *Store) setGauge() {
	if s.gauge != nil {
		s.gauge.Set(float64(s.bytes))
	}
}

// Size returns the number of entries and their bytes.
func (s *Store) Size() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ll.Len(), s.bytes
}

// key returns the key of one request. principal is "" for results every
// principal of the tenant may share. The parts are JSON-encoded as one
// array, so no choice of names can make two requests collide.
func key(tenant, principal, up, method, name string, canonArgs []byte) string {
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

// serve answers c from the store when it can, and otherwise runs the rest
// of the chain and keeps a result worth keeping. readOnly says whether
// the tool (for tools/call) is read-only.
func (s *Store) serve(ctx context.Context, c *pipeline.Call, readOnly bool, next pipeline.Handler, noted func(context.Context, string)) (mcp.Result, error) {
	limit := s.cfg.TTL.D()
	name, args := c.Name, json.RawMessage(nil)
	if c.Method == pipeline.MethodCallTool {
		name, args = c.Item, c.Arguments
		limit = 0
		if readOnly {
			limit = s.cfg.ToolTTL(c.Item)
		}
	}
	canon, ok := canonicalJSON(args)
	if limit <= 0 || !ok {
		return next.Handle(ctx, c)
	}
	tenant, who := "", ""
	if p := c.Principal; p != nil {
		tenant, who = p.TenantID, p.Kind+":"+p.ID
	}
	shared := key(tenant, "", c.Upstream, c.Method, name, canon)
	private := shared
	if who != "" {
		private = key(tenant, who, c.Upstream, c.Method, name, canon)
	}
	ent, fresh, found := s.get(private)
	if !found || !fresh {
		if e, f, ok := s.get(shared); ok && (f || !found) {
			ent, fresh, found = e, f, ok
		}
	}
	if found && fresh {
		if res, ok := decode(c.Method, ent, "hit", s.now()); ok {
			s.hits.Inc()
			if noted != nil {
				noted(ctx, "hit")
			}
			return res, nil
		}
	}
	s.misses.Inc()
	res, err := next.Handle(ctx, c)
	if err != nil {
		if found && s.cfg.ServeStale && unreachable(err) {
			if res, ok := decode(c.Method, ent, "stale", s.now()); ok {
				s.hits.Inc()
				if noted != nil {
					noted(ctx, "stale")
				}
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
	k := private
	if public {
		k = shared
	}
	s.put(k, body, ttl)
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
func keep(res mcp.Result, limit time.Duration) (ttl time.Duration, public, ok bool) {
	switch r := res.(type) {
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

// decode returns a copy of a cached result of method, marked in its
// _meta.
func decode(method string, ent entry, mark string, now time.Time) (mcp.Result, bool) {
	var res mcp.Result
	var meta *mcp.Meta
	switch method {
	case pipeline.MethodCallTool:
		r := new(mcp.CallToolResult)
		res, meta = r, &r.Meta
	case pipeline.MethodReadResource:
		r := new(mcp.ReadResourceResult)
		res, meta = r, &r.Meta
	default:
		return nil, false
	}
	if err := json.Unmarshal(ent.body, res); err != nil {
		return nil, false
	}
	if *meta == nil {
		*meta = mcp.Meta{}
	}
	(*meta)[MetaKey] = map[string]any{mark: true, "age_ms": max(now.Sub(ent.stored).Milliseconds(), 0)}
	return res, true
}

// unreachable reports whether err says the upstream could not be reached
// or did not answer: the errors a stale result may stand in for.
func unreachable(err error) bool {
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) {
		return false
	}
	return werr.Code == mcpwire.CodeUpstreamUnavailable || werr.Code == mcpwire.CodeUpstreamTimeout
}
