// Package gateway is the client-facing side of mcpedge: it federates the
// catalogs of many upstreams into one MCP server (/mcp) and exposes each
// upstream unchanged on its own server (/mcp/<upstream>).
//
// Both faces are go-sdk [mcp.Server]s whose features are kept in step with the
// upstreams' catalogs; every handler forwards to the upstream that owns the
// item. Keeping the SDK on both sides is what gives the gateway both protocol
// eras: the SDK negotiates 2025-era sessions and stateless 2026-07-28 requests
// with clients and with upstreams independently, and the gateway passes
// input-required results and server-to-client requests between them (see
// docs/architecture.md, "Protocol eras").
package gateway

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devload"
	"github.com/mcpedge/mcpedge/internal/rawwire"
	"github.com/mcpedge/mcpedge/internal/sessionstore"
	"github.com/mcpedge/mcpedge/internal/stage/argcheck"
	cachestage "github.com/mcpedge/mcpedge/internal/stage/cache"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/mcpedge/mcpedge/internal/tlsconf"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Version is reported as the aggregated server's version; main sets it.
var Version = "dev"

// Gateway holds the upstreams and the MCP servers built from their catalogs.
type Gateway struct {
	// ev publishes upstream and breaker events (events.go).
	ev      upstreamEvents
	log     *slog.Logger
	metrics *telemetry.Metrics
	cfg     atomic.Pointer[config.Config]

	callSeq atomic.Uint64 // numbers the calls to upstreams (begin)
	// noEdge serves calls on an upstream the gateway no longer configures
	// (removed by a reload while the call began): no breaker, no retries.
	noEdge *edge

	agg *mcp.Server

	mu        sync.RWMutex
	upstreams map[string]*upstream.Upstream
	order     []string               // config order: earlier upstreams win name conflicts
	per       map[string]*mcp.Server // /mcp/<name>
	regs      map[string]*registration
	tools     map[string]route // aggregated tool name -> owner
	prompts   map[string]route
	resources map[string]string // exact resource URI -> upstream
	templates map[string]string // URI template -> upstream
	// templateOrder is templates compiled, in the SDK's order
	// (indexTemplatesLocked).
	templateOrder []ownedTemplate
	edges         map[string]*edge             // upstream -> breaker, retry budget, timeouts (failure.go)
	caches        map[string]*cachestage.Store // upstream -> response cache, if it has one (cache.go)

	builtins []builtin
	draining atomic.Bool
	// security is the multi-tenant layer (nil: single-user mode). Set
	// once before serving, read on every request.
	security Security
	// deferrer is the offline queue (defer.go); nil: calls are never
	// queued. Set once before serving.
	deferrer Deferrer
	// queueHealth reports the offline queue for /readyz and
	// mcpedge__status (queueres.go); nil: not reported.
	queueHealth func() QueueHealth
	// certMetrics records the expiry of upstreams' client certificates;
	// nil: not recorded. Set once before Start (SetCertMetrics).
	certMetrics *tlsconf.Metrics
	// readiness are the checks /readyz runs besides the upstreams' (the
	// store, Redis); set once before serving (SetReadinessChecks).
	readiness  []ReadinessCheck
	readyCache *readinessCache

	inflight inflightTable
	conts    continuations
	// contRelay carries retries of input-required calls to the replica
	// running them (contrelay.go); nil: this replica's own only.
	contRelay sessionstore.Mailbox
	progress  progressTable
	subs      subscriptions
	levels    levelTable
	sessions  sync.Map // client session id -> *mcp.ServerSession
	// clientLevels is the level each 2025-era client session set with
	// logging/setLevel (*mcp.ServerSession -> mcp.LoggingLevel), sent on to
	// stateless upstreams with each request (era.go, statelessHop).
	clientLevels sync.Map
	// callers is, in multi-tenant mode, the principal behind each client
	// session (*mcp.ServerSession -> *principal.Principal), so that what
	// an upstream sends on its own (logs) reaches only sessions whose
	// principal may use that upstream.
	callers  sync.Map
	outboxes sync.Map // *mcp.ServerSession -> *outbox
	bgOnce   sync.Once
	bg       chan func()

	edgeMetrics  *edgeMetrics
	cacheMetrics *cacheMetrics
	argMetrics   argcheck.Metrics
	scan         *guardWiring // guardrails on what upstreams say (guard.go)

	// Routing (route.go). groups maps every configured upstream to its
	// connections (targets); g.mu guards it like upstreams.
	groups       map[string]*group
	sampler      devload.Sampler
	loadSource   atomic.Pointer[func() devload.Sample]
	lastChoice   sync.Map // upstream -> name of the target chosen first last time
	routeMetrics *routeMetrics
	// pipe is the compiled data plane (stages.go).
	pipe pipelineHolder
	// trace makes the spans of calls (tracing.go); a no-op tracer unless
	// SetTracing handed it an enabled provider.
	trace *tracer
	// Reload (Apply): pending are the replacements of changed
	// connections, connecting next to the ones they replace; swapped is
	// closed (and renewed) whenever one is promoted; wantGroups are the
	// configured upstreams of the last Apply. g.mu guards all three.
	pending    map[string]*upstream.Upstream
	swapped    chan struct{}
	wantGroups map[string]config.Upstream
	// retiring are the connections draining after a reload.
	retiringMu sync.Mutex
	retiring   map[*upstream.Upstream]bool
	// catalogs saves the catalogs of upstreams that keep theirs
	// (offline.go); nil: off.
	catalogs *catalogStore
	// clients are the session-era client sessions (clients.go); hot is
	// the hot path's state (hotpath.go, hotforward.go).
	clients clientTable
	hot     hotWire
	// pinner is tool pinning (pins.go); nil: off. Set once before
	// serving.
	pinner Pinner
	// kept are the sessions saved for other replicas and restarts
	// (sessions.go); off until SetSessionKeeper.
	kept sessionKeeping
}

// route says which upstream owns an aggregated name and what the upstream
// calls it.
type route struct {
	up   string
	name string
	u    *upstream.Upstream // whose handler the SDK server calls (the hot path's target)
}

// registration is what one upstream contributed to the aggregated server, so
// it can be withdrawn exactly when the upstream changes or goes away.
type registration struct {
	tools, prompts, resources, templates []string
	conflicts                            []string
	catalog                              *upstream.Catalog
	// offline: the upstream is down and this, its last catalog, is kept
	// listed (offline.go).
	offline bool
	// perTools are the tools registered on /mcp/<name> by this
	// registration, with the upstream whose handler serves each (the hot
	// path's lookup).
	perTools, perPrompts map[string]*upstream.Upstream
	// schemas are the inputSchemas of perTools as JSON, by the upstream's
	// tool name: what the argcheck stage checks calls against (stages.go).
	schemas map[string][]byte
}

// New builds a gateway for cfg. Upstreams are created but not started; call
// [Gateway.Start].
func New(cfg *config.Config, log *slog.Logger, m *telemetry.Metrics) *Gateway {
	g := &Gateway{
		noEdge: &edge{budget: newRetryBudget()},
		log:    log, metrics: m,
		upstreams: map[string]*upstream.Upstream{},
		per:       map[string]*mcp.Server{},
		regs:      map[string]*registration{},
		tools:     map[string]route{},
		prompts:   map[string]route{},
		resources: map[string]string{},
		templates: map[string]string{},
		groups:    map[string]*group{},
	}
	g.cfg.Store(cfg)
	g.trace = newTracer()
	g.hot.reader = rawwire.NewReader(rawwire.Limits{MaxDepth: config.MaxJSONDepthLimit})
	g.hot.askTag = rand.Text()[:10]
	g.agg = g.newAggregateServer(cfg)
	g.addBuiltins()
	m.Registry.MustRegister(newUpstreamCollector(g))
	g.edgeMetrics = newEdgeMetrics(m.Registry)
	g.cacheMetrics = newCacheMetrics(m.Registry)
	g.scan = newGuardWiring(m.Registry, log)
	g.scan.shadows.refresh = func(conn string) { go g.refreshConn(conn) }
	g.routeMetrics = newRouteMetrics(m.Registry, g)
	g.argMetrics = newArgcheckMetrics(m.Registry)
	g.pipe.args = argcheck.New(argSchemas{g}, &argcheck.Options{Logger: log, Metrics: g.argMetrics})
	g.buildPipeline()
	return g
}

// builtin is an MCP server that runs inside the gateway and is served like
// any upstream.
type builtin struct {
	cfg config.Upstream
	srv *mcp.Server
}

// AddBuiltin registers an in-process MCP server as the upstream name
// (listed as name__… on /mcp and unchanged on /mcp/name). Call it before
// [Gateway.Start]; the name must be one of [config.ReservedNames] so that
// no configured upstream can take it.
func (g *Gateway) AddBuiltin(name string, srv *mcp.Server) {
	cfg := config.Default()
	u := config.Upstream{
		Name: name, Transport: upstream.TransportBuiltin, Isolation: config.IsolationShared,
		Timeout: cfg.Server.RequestTimeout, ConnectTimeout: config.Duration(5 * time.Second),
	}
	g.mu.Lock()
	g.builtins = append(g.builtins, builtin{cfg: u, srv: srv})
	g.mu.Unlock()
}

// Start starts every configured upstream. It does not wait for them.
func (g *Gateway) Start(ctx context.Context) {
	g.Apply(ctx, g.cfg.Load())
}

// Stop stops every upstream (and so every stdio child), pending
// replacements and connections still draining after a reload included,
// waiting at most until ctx is done.
func (g *Gateway) Stop(ctx context.Context) {
	g.mu.Lock()
	ups := slices.Collect(maps.Values(g.upstreams))
	ups = append(ups, slices.Collect(maps.Values(g.pending))...)
	g.mu.Unlock()
	g.retiringMu.Lock()
	ups = append(ups, slices.Collect(maps.Keys(g.retiring))...)
	g.retiringMu.Unlock()
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Go(func() { u.Stop(ctx) })
	}
	wg.Wait()
}

// Apply makes the running upstreams match cfg: upstreams that are new are
// started, removed ones drained and stopped, and changed ones (by
// [config.Upstream.Fingerprint]) updated. Upstreams whose configuration
// did not change keep their connections, child processes and client
// sessions untouched.
//
// A change that leaves the connection as it is ([upstream.SameConnection]:
// only timeout, connect_timeout or locality differ) is applied in place,
// without reconnecting. Any other change makes before it breaks: the new
// connection is built next to the old one, which keeps serving and keeps
// its catalog registered until the new one is ready and its catalog
// registered in its place (promote); the old one then lets the calls in
// flight on it finish (drain) and is stopped. A call that arrives while
// the old connection is down and the new one is still making its first
// attempt waits for it, within its timeout (see awaitReplacement).
func (g *Gateway) Apply(ctx context.Context, cfg *config.Config) (added, removed, changed []string) {
	g.cfg.Store(cfg)
	// want holds the connections (an upstream, or each of its targets),
	// groups the configured upstreams they belong to.
	want := map[string]config.Upstream{}
	groups := map[string]config.Upstream{}
	servers := map[string]*mcp.Server{}
	var order []string
	for _, u := range cfg.Upstreams {
		if u.Disabled {
			continue
		}
		groups[u.Name] = u
		for _, t := range u.Expand() {
			want[t.Name] = t
			order = append(order, t.Name)
		}
	}
	g.mu.Lock()
	for _, b := range g.builtins {
		if _, taken := groups[b.cfg.Name]; taken {
			continue // config validation forbids this; never shadow silently
		}
		want[b.cfg.Name] = b.cfg
		groups[b.cfg.Name] = b.cfg
		servers[b.cfg.Name] = b.srv
		order = append(order, b.cfg.Name)
	}
	if g.pending == nil {
		g.pending = map[string]*upstream.Upstream{}
		g.swapped = make(chan struct{})
	}
	opts := func(name string) *upstream.Options {
		return &upstream.Options{Logger: g.log, Sink: (*sink)(g), Server: servers[name], Screen: g.scan.screen, CertMetrics: g.certMetrics}
	}
	var retire, drop, start []*upstream.Upstream
	var retuned []string // changed in place: their registration is refreshed
	for name, u := range g.upstreams {
		w, ok := want[name]
		pend := g.pending[name]
		switch {
		case !ok:
			removed = append(removed, name)
			retire = append(retire, u)
			delete(g.upstreams, name)
			g.routeMetrics.latency.DeleteLabelValues(name) // its average goes with its edge
			g.levels.replace(u, nil)
			g.forgetConnectionMetrics(name)
			g.unregisterLocked(name)
			if _, stays := groups[name]; !stays {
				// A removed upstream's clients on /mcp/<name> are
				// disconnected. (A target removed from an upstream that
				// stays keeps the upstream's server.)
				if per := g.per[name]; per != nil {
					go closeAll(context.WithoutCancel(ctx), per)
				}
				delete(g.per, name)
			}
		case w.Fingerprint() == u.Config().Fingerprint():
			// Unchanged. A pending replacement (for a change since
			// reverted) is dropped.
		case u.SetConfig(w):
			changed = append(changed, name)
			retuned = append(retuned, name)
		default:
			changed = append(changed, name)
			if pend != nil && (pend.Config().Fingerprint() == w.Fingerprint() || pend.SetConfig(w)) {
				pend = nil // already connecting with this connection: it stays pending
				break
			}
			nu := upstream.New(w, opts(name))
			if l, ok := u.LogLevel(); ok {
				nu.SetLogLevel(l)
			}
			g.pending[name] = nu
			start = append(start, nu)
		}
		if pend != nil {
			drop = append(drop, pend)
			if g.pending[name] == pend {
				delete(g.pending, name)
			}
		}
	}
	for _, name := range order {
		if _, ok := g.upstreams[name]; ok {
			continue
		}
		added = append(added, name)
		u := upstream.New(want[name], opts(name))
		g.upstreams[name] = u
		start = append(start, u)
	}
	g.order = order
	g.scan.shadows.setOrder(order)
	var repinned []string // served under a new pin policy
	for name, w := range groups {
		if old, ok := g.wantGroups[name]; ok && old.EffectivePin() != w.EffectivePin() {
			repinned = append(repinned, name)
		}
	}
	g.wantGroups = groups
	g.applyEdgesLocked(want)
	g.applyCachesLocked(groups)
	g.applyGroupsLocked(groups)
	for _, name := range retuned {
		// Settings outside the connection (the namespace, say) may have
		// changed with the timeouts: register the catalog again, in place.
		if u := g.upstreams[name]; groupName(u) == name && u.Catalog().Init != nil {
			g.registerLocked(name, u, u.Catalog())
		}
	}
	for _, name := range repinned {
		g.reregisterLocked(name)
	}
	g.mu.Unlock()
	for _, u := range drop {
		go u.Stop(context.WithoutCancel(ctx))
	}
	for _, u := range retire {
		g.retire(u)
	}
	for _, u := range start {
		u.Start(ctx)
	}
	return added, removed, changed
}

// promoteLocked makes nu, the pending replacement of connection name,
// the one that serves: calls routed from now on go to it, and the old
// connection is returned to be retired. The caller registers nu's
// catalog. g.mu must be held.
func (g *Gateway) promoteLocked(name string, nu *upstream.Upstream) (old *upstream.Upstream) {
	old = g.upstreams[name]
	delete(g.pending, name)
	g.upstreams[name] = nu
	g.routeMetrics.latency.DeleteLabelValues(name) // its average goes with the old connection
	if old != nil {
		g.levels.replace(old, nu)
	}
	g.applyGroupsLocked(g.wantGroups)
	close(g.swapped)
	g.swapped = make(chan struct{})
	g.log.Info("upstream reconnected with its new configuration; the previous connection drains", "upstream", name)
	return old
}

// pendingFailed handles the first failed attempt of a pending
// replacement: while the old connection serves, it keeps serving (the
// replacement retries on its own); when the old one is down too, the
// replacement takes over, down, so that the upstream reports the new
// configuration's error and calls waiting for it stop waiting.
func (g *Gateway) pendingFailed(u *upstream.Upstream) {
	name := u.Name()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending[name] != u {
		return
	}
	cur := g.upstreams[name]
	if cur != nil && cur.Catalog().Init != nil {
		g.log.Warn("upstream's new configuration cannot connect yet; the previous connection keeps serving until it does", "upstream", name, "err", u.Status().LastError)
		return
	}
	old := g.promoteLocked(name, u)
	g.catalogChangedLocked(u)
	if old != nil {
		g.retire(old)
	}
}

// retire drains u (the calls routed to it finish, new ones go to its
// replacement) and then stops it, in the background.
func (g *Gateway) retire(u *upstream.Upstream) {
	g.retiringMu.Lock()
	if g.retiring == nil {
		g.retiring = map[*upstream.Upstream]bool{}
	}
	g.retiring[u] = true
	g.retiringMu.Unlock()
	go func() {
		bound := u.Config().Timeout.D()
		for _, d := range u.Config().ToolTimeouts {
			bound = max(bound, d.D())
		}
		ctx, cancel := context.WithTimeout(context.Background(), bound+time.Second)
		u.Retire(ctx)
		cancel()
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		u.Stop(stop)
		cancel()
		g.retiringMu.Lock()
		delete(g.retiring, u)
		g.retiringMu.Unlock()
	}()
}

// Upstream returns the named upstream, if configured.
//
// For an upstream with targets it returns the target whose catalog the
// upstream offers (the first connected one), and false while none is.
func (g *Gateway) Upstream(name string) (*upstream.Upstream, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	u := g.lookupLocked(name)
	return u, u != nil
}

// Statuses returns every upstream's status in config order, with the names
// the upstream could not register because of conflicts.
func (g *Gateway) Statuses() []UpstreamStatus {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]UpstreamStatus, 0, len(g.order))
	for _, name := range g.order {
		u, ok := g.upstreams[name]
		if !ok {
			continue
		}
		s := UpstreamStatus{Status: u.Status()}
		gname := groupName(u)
		if r := g.regs[gname]; r != nil {
			if gname == name || catalogSource(g.groups[gname]) == u {
				s.Conflicts = r.conflicts
			}
			s.CatalogKept = r.offline
		}
		if e := g.edges[name]; e != nil {
			if e.breaker != nil {
				s.Breaker, s.BreakerReason = e.breaker.status()
			}
			if l := e.latency(); l > 0 {
				s.LatencyMs = float64(l.Microseconds()) / 1000
			}
		}
		if gname != name {
			s.Upstream, s.Target = gname, targetName(u)
		}
		s.Locality = u.Config().EffectiveLocality()
		if p := g.pending[name]; p != nil && p != u {
			st := p.Status()
			s.Replacing = &st
		}
		out = append(out, s)
	}
	return out
}

// UpstreamStatus is an upstream's status plus gateway-level problems.
type UpstreamStatus struct {
	upstream.Status
	Conflicts []string `json:"conflicts,omitempty"`
	// Breaker is the state of the upstream's circuit breaker: "closed",
	// "open" or "half-open"; empty when it has none.
	Breaker string `json:"breaker,omitempty"`
	// BreakerReason says why the breaker last opened, while it is not
	// closed.
	BreakerReason string `json:"breaker_reason,omitempty"`
	// Upstream and Target name a target of an upstream with
	// [[upstreams.targets]] (the status's Name is "<upstream>@<target>").
	Upstream string `json:"upstream,omitempty"`
	Target   string `json:"target,omitempty"`
	// Locality is "local" or "remote" (configured or inferred).
	Locality string `json:"locality,omitempty"`
	// LatencyMs is the moving average of answered calls' latency, the
	// router's measure; absent before the first answered call.
	LatencyMs float64 `json:"latency_ms,omitempty"`
	// CatalogKept says that the upstream is down and its last catalog is
	// still listed (keep_catalog).
	CatalogKept bool `json:"catalog_kept,omitempty"`
	// Replacing is the connection a reload is building to replace this
	// one (a changed url, command, headers…), while it is not ready: this
	// one keeps serving until it is. Its last_error says why a
	// replacement does not come up.
	Replacing *upstream.Status `json:"replacing,omitempty"`
}

// Aggregate returns the server behind /mcp.
func (g *Gateway) Aggregate() *mcp.Server { return g.agg }

// PerUpstream returns the server behind /mcp/<name>, or nil while that
// upstream has never been ready.
func (g *Gateway) PerUpstream(name string) *mcp.Server {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.per[name]
}

func (g *Gateway) newAggregateServer(cfg *config.Config) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcpedge", Title: "mcpedge gateway", Version: Version}, &mcp.ServerOptions{
		Logger:       telemetry.SDKLogger(g.log),
		PageSize:     cfg.Server.PageSize,
		Instructions: "mcpedge federates several MCP servers. Tool and prompt names are <upstream>__<name>; resource URIs are the upstreams' own.",
		Capabilities: &mcp.ServerCapabilities{
			Tools:       &mcp.ToolCapabilities{ListChanged: true},
			Prompts:     &mcp.PromptCapabilities{ListChanged: true},
			Resources:   &mcp.ResourceCapabilities{ListChanged: true, Subscribe: true},
			Logging:     &mcp.LoggingCapabilities{},
			Completions: &mcp.CompletionCapabilities{},
		},
		SubscribeHandler: func(ctx context.Context, r *mcp.SubscribeRequest) error {
			return g.subscribe(ctx, "", r)
		},
		UnsubscribeHandler: func(ctx context.Context, r *mcp.UnsubscribeRequest) error {
			return g.unsubscribe(ctx, "", r)
		},
		CompletionHandler: func(ctx context.Context, r *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return g.complete(ctx, "", r)
		},
		InitializedHandler: func(ctx context.Context, r *mcp.InitializedRequest) { g.sessionOpened(r.Session) },
	})
	s.AddReceivingMiddleware(g.keepMiddleware(""), g.openMiddleware(), g.authzMiddleware(""), g.levelMiddleware(""), g.readMiddleware(""))
	return s
}

// newPerUpstreamServer mirrors one upstream: its server info, instructions
// and capabilities, so a client on /mcp/<name> sees that server unchanged.
func (g *Gateway) newPerUpstreamServer(name string, cat *upstream.Catalog) *mcp.Server {
	impl := &mcp.Implementation{Name: name, Version: "unknown"}
	opts := &mcp.ServerOptions{Logger: telemetry.SDKLogger(g.log), PageSize: g.cfg.Load().Server.PageSize, Capabilities: &mcp.ServerCapabilities{}}
	if init := cat.Init; init != nil {
		if init.ServerInfo != nil {
			impl = init.ServerInfo
		}
		opts.Instructions = init.Instructions
		if c := init.Capabilities; c != nil {
			cp := *c
			opts.Capabilities = &cp
		}
	}
	caps := opts.Capabilities
	if caps.Resources != nil && caps.Resources.Subscribe {
		opts.SubscribeHandler = func(ctx context.Context, r *mcp.SubscribeRequest) error {
			return g.subscribe(ctx, name, r)
		}
		opts.UnsubscribeHandler = func(ctx context.Context, r *mcp.UnsubscribeRequest) error {
			return g.unsubscribe(ctx, name, r)
		}
	}
	if caps.Completions != nil {
		opts.CompletionHandler = func(ctx context.Context, r *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return g.complete(ctx, name, r)
		}
	}
	opts.InitializedHandler = func(ctx context.Context, r *mcp.InitializedRequest) { g.sessionOpened(r.Session) }
	s := mcp.NewServer(impl, opts)
	s.AddReceivingMiddleware(g.keepMiddleware(name), g.openMiddleware(), g.authzMiddleware(name), g.levelMiddleware(name), g.readMiddleware(name))
	return s
}

// catalogChanged brings both servers in line with an upstream's catalog. It
// runs on the upstream's supervisor goroutine after every (re)connect, loss
// and list_changed; the SDK servers then tell connected clients through their
// own list_changed notifications.
//
// Items that stay are replaced in place and only items that went away are
// removed, so a refresh never shows clients a catalog with the upstream's
// tools briefly missing. Every registration is guarded: an item the SDK
// refuses (it panics on some malformed definitions) costs that item, reported
// as a conflict, never the gateway.
func (g *Gateway) catalogChanged(u *upstream.Upstream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.catalogChangedLocked(u)
}

// catalogChangedLocked is catalogChanged with g.mu held.
func (g *Gateway) catalogChangedLocked(u *upstream.Upstream) {
	name := u.Name()
	cat := u.Catalog()
	if p := g.pending[name]; p == u {
		if cat.Init == nil {
			return // not promoted: the connection it replaces still serves
		}
		// The replacement is ready: it takes over, and its catalog is
		// registered below in place of the old one's.
		if old := g.promoteLocked(name, u); old != nil {
			g.retire(old)
		}
	} else if p != nil && g.upstreams[name] == u && cat.Init == nil {
		// The connection being replaced was lost.
		if !p.Status().Attempted {
			// Its replacement is making its first attempt: keep the
			// catalog listed; calls wait for the replacement
			// (awaitReplacement).
			return
		}
		if old := g.promoteLocked(name, p); old != nil {
			g.retire(old)
		}
		u, cat = p, p.Catalog()
	}
	if g.upstreams[name] != u {
		return // replaced or removed meanwhile
	}
	if gname := groupName(u); gname != name {
		// A target: its upstream offers the catalog of its first
		// connected target, which this change may have changed.
		g.refreshGroupLocked(gname)
		return
	}
	if cat.Init == nil {
		if g.keepOfflineLocked(name) {
			return // down, but its last catalog stays listed
		}
		g.unregisterLocked(name) // down: its items are withdrawn until it is back
		return
	}
	g.registerLocked(name, u, cat)
}

// registerLocked registers cat, the catalog of connection u, as what the
// configured upstream name offers. g.mu must be held.
func (g *Gateway) registerLocked(name string, u *upstream.Upstream, cat *upstream.Catalog) {
	defer g.indexTemplatesLocked()
	// What is saved for keep_catalog is the catalog as pinning served it,
	// without the guard's warning lines, which are added again when a
	// saved catalog is registered.
	saved := g.pinnedLocked(name, u, cat)
	cat = annotateFlagged(g.scan.rejudgeHeld(u.Config(), cat, saved))
	old := g.regs[name]
	if old == nil {
		old = &registration{catalog: &upstream.Catalog{}}
	}
	per := g.per[name]
	if per == nil {
		per = g.newPerUpstreamServer(name, cat)
		g.per[name] = per
	}
	reg := &registration{catalog: cat, perTools: map[string]*upstream.Upstream{}, perPrompts: map[string]*upstream.Upstream{}, schemas: map[string][]byte{}}
	ucfg := u.Config()
	prefix := ucfg.NamePrefix()
	skip := func(format string, args ...any) { reg.conflicts = append(reg.conflicts, fmt.Sprintf(format, args...)) }
	var perSkipped struct{ tools, prompts, resources, templates []string } // refused on /mcp/<name> too
	owned := func(owner string) bool { return owner == name }

	// Withdraw first what is gone, so its names are free for the new items.
	perTools, perPrompts, perRes, perTmpl := set(toolNames(cat)), set(promptNames(cat)), set(resourceURIs(cat)), set(templateURIs(cat))
	per.RemoveTools(missing(toolNames(old.catalog), perTools)...)
	per.RemovePrompts(missing(promptNames(old.catalog), perPrompts)...)
	per.RemoveResources(missing(resourceURIs(old.catalog), perRes)...)
	per.RemoveResourceTemplates(missing(templateURIs(old.catalog), perTmpl)...)
	g.withdrawLocked(old, func(kind, key string) bool {
		switch kind {
		case "tool":
			r, ok := g.tools[key]
			return ok && r.up == name && !perTools[r.name]
		case "prompt":
			r, ok := g.prompts[key]
			return ok && r.up == name && !perPrompts[r.name]
		case "resource":
			return !perRes[key]
		default:
			return !perTmpl[key]
		}
	})

	for _, t := range cat.Tools {
		schema, err := toolSchema(t)
		if err != nil {
			skip("tool %q skipped: %v", t.Name, err)
			perSkipped.tools = append(perSkipped.tools, t.Name)
			continue
		}
		if err := guarded(func() { per.AddTool(t, g.toolHandler(u, t.Name)) }); err != nil {
			skip("tool %q skipped: %v", t.Name, err)
			perSkipped.tools = append(perSkipped.tools, t.Name)
			continue
		}
		reg.perTools[t.Name] = u
		reg.schemas[t.Name] = schema
		agg := NamespacedName(prefix, t.Name)
		g.yieldToLocalLocked("tool", g.tools, name, agg, g.agg.RemoveTools)
		if owner, taken := g.tools[agg]; (taken && !owned(owner.up)) || agg == builtinStatus || agg == builtinQueueResult || (taken && owner.name != t.Name) {
			skip("tool %q: aggregated name %q already used by %s", t.Name, agg, orBuiltin(owner.up))
			continue
		}
		at := *t
		at.Name = agg
		if err := guarded(func() { g.agg.AddTool(&at, g.toolHandler(u, t.Name)) }); err != nil {
			skip("tool %q skipped: %v", t.Name, err)
			continue
		}
		g.tools[agg] = route{up: name, name: t.Name, u: u}
		reg.tools = append(reg.tools, agg)
	}
	for _, p := range cat.Prompts {
		if err := guarded(func() { per.AddPrompt(p, g.promptHandler(u, p.Name)) }); err != nil {
			skip("prompt %q skipped: %v", p.Name, err)
			perSkipped.prompts = append(perSkipped.prompts, p.Name)
			continue
		}
		reg.perPrompts[p.Name] = u
		agg := NamespacedName(prefix, p.Name)
		g.yieldToLocalLocked("prompt", g.prompts, name, agg, g.agg.RemovePrompts)
		if owner, taken := g.prompts[agg]; taken && (!owned(owner.up) || owner.name != p.Name) {
			skip("prompt %q: aggregated name %q already used by %s", p.Name, agg, owner.up)
			continue
		}
		ap := *p
		ap.Name = agg
		if err := guarded(func() { g.agg.AddPrompt(&ap, g.promptHandler(u, p.Name)) }); err != nil {
			skip("prompt %q skipped: %v", p.Name, err)
			continue
		}
		g.prompts[agg] = route{up: name, name: p.Name, u: u}
		reg.prompts = append(reg.prompts, agg)
	}
	for _, r := range cat.Resources {
		if err := guarded(func() { per.AddResource(r, g.resourceHandler(u)) }); err != nil {
			skip("resource %q skipped: %v", r.URI, err)
			perSkipped.resources = append(perSkipped.resources, r.URI)
			continue
		}
		if reservedURI(r.URI) {
			skip("resource %q not offered on /mcp: the %s scheme is the gateway's own", r.URI, reservedScheme)
			continue
		}
		g.yieldURIToLocalLocked("resource", g.resources, name, r.URI, g.agg.RemoveResources)
		if owner, taken := g.resources[r.URI]; taken && !owned(owner) {
			skip("resource %q already offered by %s", r.URI, owner)
			continue
		}
		if err := guarded(func() { g.agg.AddResource(r, g.resourceHandler(u)) }); err != nil {
			skip("resource %q skipped: %v", r.URI, err)
			continue
		}
		g.resources[r.URI] = name
		reg.resources = append(reg.resources, r.URI)
	}
	for _, t := range cat.Templates {
		if err := checkTemplate(t.URITemplate); err != nil {
			skip("resource template %q skipped: %v", t.URITemplate, err)
			perSkipped.templates = append(perSkipped.templates, t.URITemplate)
			continue
		}
		if err := guarded(func() { per.AddResourceTemplate(t, g.resourceHandler(u)) }); err != nil {
			skip("resource template %q skipped: %v", t.URITemplate, err)
			perSkipped.templates = append(perSkipped.templates, t.URITemplate)
			continue
		}
		if reservedURI(t.URITemplate) {
			skip("resource template %q not offered on /mcp: the %s scheme is the gateway's own", t.URITemplate, reservedScheme)
			continue
		}
		g.yieldURIToLocalLocked("template", g.templates, name, t.URITemplate, g.agg.RemoveResourceTemplates)
		if owner, taken := g.templates[t.URITemplate]; taken && !owned(owner) {
			skip("resource template %q already offered by %s", t.URITemplate, owner)
			continue
		}
		if err := guarded(func() { g.agg.AddResourceTemplate(t, g.resourceHandler(u)) }); err != nil {
			skip("resource template %q skipped: %v", t.URITemplate, err)
			continue
		}
		g.templates[t.URITemplate] = name
		reg.templates = append(reg.templates, t.URITemplate)
	}
	// Items still listed but refused this time (bad schema, refused by the
	// SDK) must not linger with their old definitions.
	inNew := map[string]map[string]bool{"tool": set(reg.tools), "prompt": set(reg.prompts), "resource": set(reg.resources), "template": set(reg.templates)}
	g.withdrawLocked(old, func(kind, key string) bool {
		if inNew[kind][key] {
			return false
		}
		switch kind {
		case "tool":
			return g.tools[key].up == name
		case "prompt":
			return g.prompts[key].up == name
		case "resource":
			return g.resources[key] == name
		default:
			return g.templates[key] == name
		}
	})
	per.RemoveTools(perSkipped.tools...)
	per.RemovePrompts(perSkipped.prompts...)
	per.RemoveResources(perSkipped.resources...)
	per.RemoveResourceTemplates(perSkipped.templates...)
	g.regs[name] = reg
	g.catalogRegisteredLocked(name, saved)
	g.logConflictsLocked(name, old.conflicts, reg.conflicts)
}

// logConflictsLocked logs the conflicts of an upstream's registration that
// its previous registration did not have: a catalog fetched again (a
// list_changed, a reconnect) repeats its conflicts, which were said once.
// The hub's items that give way to an edge's own (its built-in tools, its
// local upstreams: "local first", docs/hub.md) are expected: each is
// logged at debug and their count in one line at info. Any other conflict
// is a configuration problem the gateway works around (the item is not
// offered): a warning. Every conflict stays in the upstream's status.
func (g *Gateway) logConflictsLocked(name string, before, now []string) {
	seen := set(before)
	var fresh []string
	for _, c := range now {
		if !seen[c] {
			fresh = append(fresh, c)
		}
	}
	if len(fresh) == 0 {
		return
	}
	if name == HubUpstream {
		for _, c := range fresh {
			g.log.Debug("hub item not offered: this edge has its own of that name (local first)", "upstream", name, "problem", c)
		}
		g.log.Info("hub items not offered: this edge has its own of those names (local first); the list is in /readyz", "upstream", name, "count", len(fresh), "total", len(now))
		return
	}
	for _, c := range fresh {
		g.log.Warn("catalog conflict", "upstream", name, "problem", c)
	}
}

// guarded runs an SDK registration call, turning a panic (the SDK panics on
// some malformed definitions) into an error.
func guarded(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("refused by the MCP server: %v", r)
		}
	}()
	f()
	return nil
}

func set(l []string) map[string]bool {
	m := make(map[string]bool, len(l))
	for _, s := range l {
		m[s] = true
	}
	return m
}

// missing returns the items of l that are not in keep.
func missing(l []string, keep map[string]bool) []string {
	var out []string
	for _, s := range l {
		if !keep[s] {
			out = append(out, s)
		}
	}
	return out
}

// withdrawLocked removes from the aggregated server the items of reg for
// which gone(kind, key) is true.
func (g *Gateway) withdrawLocked(reg *registration, gone func(kind, key string) bool) {
	var tools, prompts, resources, templates []string
	for _, n := range reg.tools {
		if gone("tool", n) {
			tools = append(tools, n)
			delete(g.tools, n)
		}
	}
	for _, n := range reg.prompts {
		if gone("prompt", n) {
			prompts = append(prompts, n)
			delete(g.prompts, n)
		}
	}
	for _, n := range reg.resources {
		if gone("resource", n) {
			resources = append(resources, n)
			delete(g.resources, n)
		}
	}
	for _, n := range reg.templates {
		if gone("template", n) {
			templates = append(templates, n)
			delete(g.templates, n)
		}
	}
	if len(tools) > 0 {
		g.agg.RemoveTools(tools...)
	}
	if len(prompts) > 0 {
		g.agg.RemovePrompts(prompts...)
	}
	if len(resources) > 0 {
		g.agg.RemoveResources(resources...)
	}
	if len(templates) > 0 {
		g.agg.RemoveResourceTemplates(templates...)
	}
}

func orBuiltin(s string) string {
	if s == "" {
		return "the gateway's built-in tools"
	}
	return "upstream " + s
}

// unregisterLocked withdraws everything upstream name registered, on the
// aggregated server and on its own.
func (g *Gateway) unregisterLocked(name string) {
	reg := g.regs[name]
	if reg == nil {
		return
	}
	defer g.indexTemplatesLocked()
	delete(g.regs, name)
	g.withdrawLocked(reg, func(string, string) bool { return true })
	if per := g.per[name]; per != nil {
		c := reg.catalog
		per.RemoveTools(toolNames(c)...)
		per.RemovePrompts(promptNames(c)...)
		per.RemoveResources(resourceURIs(c)...)
		per.RemoveResourceTemplates(templateURIs(c)...)
	}
}

func toolNames(c *upstream.Catalog) []string {
	out := make([]string, len(c.Tools))
	for i, t := range c.Tools {
		out[i] = t.Name
	}
	return out
}

func promptNames(c *upstream.Catalog) []string {
	out := make([]string, len(c.Prompts))
	for i, p := range c.Prompts {
		out[i] = p.Name
	}
	return out
}

func resourceURIs(c *upstream.Catalog) []string {
	out := make([]string, len(c.Resources))
	for i, r := range c.Resources {
		out[i] = r.URI
	}
	return out
}

func templateURIs(c *upstream.Catalog) []string {
	out := make([]string, len(c.Templates))
	for i, t := range c.Templates {
		out[i] = t.URITemplate
	}
	return out
}

// sessionOpened remembers a client session so per-session upstream
// connections and logging can find it, and forgets it when it ends.
func (g *Gateway) sessionOpened(ss *mcp.ServerSession) {
	id := ss.ID()
	if id == "" {
		return
	}
	if _, loaded := g.sessions.LoadOrStore(id, ss); loaded {
		return
	}
	g.metrics.Sessions.Inc()
	go func() {
		_ = ss.Wait()
		g.clients.close(ss)
		g.sessions.Delete(id)
		g.clientLevels.Delete(ss)
		g.metrics.Sessions.Dec()
		g.subs.dropSession(ss, g)
		g.mu.RLock()
		ups := slices.Collect(maps.Values(g.upstreams))
		g.mu.RUnlock()
		for _, u := range ups {
			u.ReleaseSession(id)
		}
	}()
}

// Drain stops new client sessions from starting and waits until no
// forwarded request is in flight, or ctx is done. Existing sessions keep
// working meanwhile, so calls waiting on their clients can finish.
func (g *Gateway) Drain(ctx context.Context) {
	g.draining.Store(true)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for g.inflight.count() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CloseSessions closes every client session on /mcp and /mcp/<upstream>,
// in parallel, waiting at most until ctx is done.
func (g *Gateway) CloseSessions(ctx context.Context) {
	g.mu.RLock()
	servers := []*mcp.Server{g.agg}
	for _, s := range g.per {
		servers = append(servers, s)
	}
	g.mu.RUnlock()
	closeAll(ctx, servers...)
}

// closeAll closes the sessions of servers in parallel, at most until ctx is
// done: closing waits for requests in flight, which may wait on a client.
func closeAll(ctx context.Context, servers ...*mcp.Server) {
	var wg sync.WaitGroup
	for _, s := range servers {
		for ss := range s.Sessions() {
			wg.Go(func() { _ = ss.Close() })
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// WaitAttempted waits until every upstream has made its first connection
// attempt, at most d.
func (g *Gateway) WaitAttempted(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		all := true
		for _, s := range g.Statuses() {
			if !s.Attempted {
				all = false
			}
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
