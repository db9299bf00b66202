package gateway

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sink is the gateway seen as an [upstream.Sink]: it routes what upstreams
// send on their own initiative back to client sessions.
type sink Gateway

var _ upstream.Sink = (*sink)(nil)

func (s *sink) g() *Gateway { return (*Gateway)(s) }

// StateChanged re-subscribes a shared connection that came (back) up to
// every resource its clients are subscribed to: a new connection starts with
// none, and clients would silently stop getting updates.
func (s *sink) StateChanged(u *upstream.Upstream, st upstream.State) {
	s.g().upstreamStateEvent(u, st)
	if st == upstream.StateFailed {
		s.g().pendingFailed(u) // a reload's replacement that cannot connect (gateway.go)
	}
	if st != upstream.StateReady || u.Config().Isolation == config.IsolationSession {
		return
	}
	g := s.g()
	prefix := u.Name() + "\x00"
	g.subs.mu.Lock()
	var uris []string
	for key := range g.subs.count {
		if uri, ok := strings.CutPrefix(key, prefix); ok {
			uris = append(uris, uri)
		}
	}
	g.subs.mu.Unlock()
	if len(uris) == 0 {
		return
	}
	go func() {
		cs, err := u.Session(context.Background(), "")
		if err != nil {
			return
		}
		for _, uri := range uris {
			ctx, cancel := context.WithTimeout(context.Background(), u.Config().Timeout.D())
			if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: spelled(u, uri)}); err != nil {
				g.log.Warn("re-subscribing after reconnect failed", "upstream", u.Name(), "uri", uri, "err", err)
			}
			cancel()
		}
	}()
}

func (s *sink) CatalogChanged(u *upstream.Upstream) { s.g().catalogChanged(u) }

// ResourceUpdated tells every client subscribed to the URI, on /mcp and on
// /mcp/<upstream>; the SDK servers keep the per-session subscription sets.
// The fan-out runs on the gateway's own worker, never on the upstream's
// notification goroutine, so a client that stopped reading cannot hold up
// the upstream's other traffic.
func (s *sink) ResourceUpdated(ctx context.Context, u *upstream.Upstream, p *mcp.ResourceUpdatedNotificationParams) {
	if p == nil {
		return
	}
	if n := normalURI(p.URI); n != p.URI {
		// Clients subscribed in the normal form (uri.go).
		cp := *p
		cp.URI = n
		p = &cp
	}
	g := s.g()
	per := g.PerUpstream(groupName(u))
	g.background(func() {
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		_ = g.agg.ResourceUpdated(ctx, p)
		if per != nil {
			_ = per.ResourceUpdated(ctx, p)
		}
	})
}

// Log forwards an upstream log message. A per-session connection's messages
// go to its client only; a shared connection's go to every client of /mcp and
// /mcp/<upstream>, each filtered by the level that client set. Each client
// gets them through its own bounded outbox.
//
// A message that arrives while a call the SDK's server dispatched is in
// flight on the connection (stdio, SSE and WASM upstreams, and HTTP ones
// off the hot path) goes to that call's client on the call's own stream,
// as the hot path does for a message on a call's stream (logOnCall):
// behind a load balancer, the client's standalone stream is usually on
// another replica. The call is found as a server-to-client request's is
// (target): the owner's newest call on a per-session connection, the
// newest call on a shared one.
func (s *sink) Log(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.LoggingMessageParams) {
	s.logExcept(ctx, u, owner, p, s.logOnSDKCall(u, owner, p))
}

// logOnSDKCall sends p to the client of the call in flight on u's
// connection (owner's, for a per-session one) on that call's stream, and
// returns the client's session (nil: there is no such call, or it is not
// the SDK's to write to: a hot-path call posted to an HTTP upstream reads
// its own messages, and a stateless client's round may be over). A
// hot-path call carried by the SDK client or a stdio pipe gets the message
// on its own stream (logOnCall).
func (s *sink) logOnSDKCall(u *upstream.Upstream, owner string, p *mcp.LoggingMessageParams) *mcp.ServerSession {
	g := s.g()
	if p == nil {
		return nil
	}
	var c *call
	if owner != "" {
		if ss := g.session(owner); ss != nil {
			c = g.inflight.latestOf(u, ss)
		}
	} else {
		c = g.inflight.latest(u)
	}
	if c == nil || c.ss == nil || c.cont != nil || c.ss.ID() == "" || (c.hot != nil && c.hot.posted.Load()) {
		return nil
	}
	if owner == "" && !g.mayReceive(c.ss, groupName(u)) {
		return nil
	}
	if c.hot != nil {
		// A hot-path call whose attempt the SDK client or a stdio
		// pipe carries: its logs come through here, and go on the
		// call's own stream as on the HTTP hot path (hotMessage).
		c.lastLog.Store(time.Now().UnixNano())
		return g.logOnCall(c.hot, c.ss, p)
	}
	ss := c.ss
	c.lastLog.Store(time.Now().UnixNano())
	c.logs.Add(1)
	if !g.post(ss, func(ctx context.Context) {
		defer c.logs.Add(-1)
		if c.released.Load() {
			_ = ss.Log(ctx, p) // the call has answered: its stream is done
			return
		}
		cctx, cancel := c.clientSide(ctx)
		defer cancel()
		_ = ss.Log(cctx, p)
	}) {
		c.logs.Add(-1)
		return nil
	}
	return ss
}

// awaitLogs gives an upstream's log messages sent during call c a moment
// to reach the call's stream (logOnSDKCall) before the call answers. The
// SDK client hands notifications to another goroutine than the answer, so
// a message the upstream sent before its result is often handled after
// it; it would then find no call in flight and go to the client's
// standalone stream, on whatever replica that is. Only calls that may get
// such messages wait: dispatched by the SDK's server, by a client that
// set a log level, to an upstream connection asked to log. They wait
// 2 ms, longer while messages keep coming or are queued (1 ms of quiet),
// 50 ms at most. Hot-path calls posted to an HTTP upstream read their
// messages in order and never wait; those the SDK client or a stdio pipe
// carries do.
func (g *Gateway) awaitLogs(c *call) {
	if (c.hot != nil && c.hot.posted.Load()) || c.cont != nil || c.ss == nil || c.up == nil {
		return
	}
	if _, ok := g.clientLevels.Load(c.ss); !ok {
		return
	}
	g.levels.mu.Lock()
	_, asked := g.levels.applied[c.up]
	g.levels.mu.Unlock()
	if !asked {
		return
	}
	const step, minWait, quietFor, maxWait = 250 * time.Microsecond, 2 * time.Millisecond, time.Millisecond, 50 * time.Millisecond
	start := time.Now()
	for time.Since(start) < maxWait {
		quiet := time.Since(time.Unix(0, c.lastLog.Load()))
		if c.logs.Load() == 0 && time.Since(start) >= minWait && quiet >= quietFor {
			return
		}
		time.Sleep(step)
	}
}

// logExcept is Log for every client but except (nil: none), which got the
// message another way.
func (s *sink) logExcept(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.LoggingMessageParams, except *mcp.ServerSession) {
	if p == nil {
		return
	}
	g := s.g()
	send := func(ss *mcp.ServerSession) {
		if ss == except {
			return
		}
		g.post(ss, func(ctx context.Context) { _ = ss.Log(ctx, p) })
	}
	if owner != "" {
		if ss := g.session(owner); ss != nil {
			send(ss)
		}
		return
	}
	servers := []*mcp.Server{g.agg}
	if per := g.PerUpstream(groupName(u)); per != nil {
		servers = append(servers, per)
	}
	for _, srv := range servers {
		for ss := range srv.Sessions() {
			if g.mayReceive(ss, groupName(u)) { // another tenant's upstream logs nothing to this one
				send(ss)
			}
		}
	}
}

// Progress restores the client's own progress token and sends the
// notification to the client whose call it belongs to, on that call's
// stream. Tokens are checked against the upstream they were given to.
func (s *sink) Progress(ctx context.Context, u *upstream.Upstream, p *mcp.ProgressNotificationParams) {
	if p == nil {
		return
	}
	g := s.g()
	t, ok := g.progress.get(p.ProgressToken)
	if !ok || t.up != u {
		return // the call already ended, or the token is not this upstream's
	}
	q := *p
	q.ProgressToken = t.token
	if t.call != nil && t.call.hot != nil {
		// A hot-path call: on its own stream, now, in order with the
		// rest of what the upstream sent before its answer.
		t.call.hot.notify("notifications/progress", &q)
		t.last.Store(time.Now().UnixNano())
		return
	}
	t.queue.Add(1)
	if !g.post(t.ss, func(ctx context.Context) {
		cctx, cancel := t.call.clientSide(ctx)
		defer cancel()
		_ = t.ss.NotifyProgress(cctx, &q)
		t.last.Store(time.Now().UnixNano())
		t.queue.Add(-1)
	}) {
		t.queue.Add(-1)
	}
}

// target finds the call a server-to-client request belongs to: on a
// per-session connection the owner's newest call on that upstream, on a
// shared connection the newest call in flight on it.
func (s *sink) target(u *upstream.Upstream, owner, method string) (*call, error) {
	g := s.g()
	if owner != "" {
		ss := g.session(owner)
		if ss == nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("mcpedge: the client session for %s has ended", method)}
		}
		if c := g.inflight.latestOf(u, ss); c != nil {
			return c, nil
		}
		return &call{ss: ss, up: u}, nil
	}
	if c := g.inflight.latest(u); c != nil {
		return c, nil
	}
	return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("mcpedge: %s from upstream %s arrived while no client request was in flight, so there is no client to ask", method, u.Name())}
}

// viaContinuation asks a stateless client through an input-required result.
func viaContinuation[R mcp.InputResponse](ctx context.Context, c *continuation, method string, p any) (R, error) {
	var zero R
	req, err := inputFor(method, p)
	if err != nil {
		return zero, err
	}
	resp, err := c.ask(ctx, method, req)
	if err != nil {
		return zero, err
	}
	r, ok := resp.(R)
	if !ok {
		return zero, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("mcpedge: the client answered %s with a %T", method, resp)}
	}
	return r, nil
}

// ask relays one server-to-client request to the client of the call it
// belongs to, bounded by that call's lifetime.
func ask[R mcp.InputResponse](s *sink, ctx context.Context, u *upstream.Upstream, owner, method string, p any, direct func(context.Context, *mcp.ServerSession) (R, error)) (R, error) {
	var zero R
	c, err := s.target(u, owner, method)
	if err != nil {
		return zero, err
	}
	cctx, cancel := c.clientSide(ctx)
	defer cancel()
	if c.cont != nil {
		return viaContinuation[R](cctx, c.cont, method, p)
	}
	if c.hot != nil {
		return viaHotStream[R](cctx, c.hot, method, p)
	}
	return direct(cctx, c.ss)
}

func (s *sink) CreateMessage(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.CreateMessageWithToolsParams) (*mcp.CreateMessageWithToolsResult, error) {
	q, err := s.g().scanQuestion(ctx, u, "sampling/createMessage", p)
	if err != nil {
		return nil, err
	}
	if q, ok := q.(*mcp.CreateMessageWithToolsParams); ok {
		p = q
	}
	return ask(s, ctx, u, owner, "sampling/createMessage", p, func(ctx context.Context, ss *mcp.ServerSession) (*mcp.CreateMessageWithToolsResult, error) {
		return ss.CreateMessageWithTools(ctx, p)
	})
}

func (s *sink) Elicit(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.ElicitParams) (*mcp.ElicitResult, error) {
	q, err := s.g().scanQuestion(ctx, u, "elicitation/create", p)
	if err != nil {
		return nil, err
	}
	if q, ok := q.(*mcp.ElicitParams); ok {
		p = q
	}
	return ask(s, ctx, u, owner, "elicitation/create", p, func(ctx context.Context, ss *mcp.ServerSession) (*mcp.ElicitResult, error) {
		return ss.Elicit(ctx, p)
	})
}

func (s *sink) ListRoots(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.ListRootsParams) (*mcp.ListRootsResult, error) {
	return ask(s, ctx, u, owner, "roots/list", p, func(ctx context.Context, ss *mcp.ServerSession) (*mcp.ListRootsResult, error) {
		return ss.ListRoots(ctx, p)
	})
}

func (s *sink) ElicitationComplete(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.ElicitationCompleteParams) {
	if p == nil {
		return
	}
	c, err := s.target(u, owner, "notifications/elicitation/complete")
	if err != nil || c.cont != nil {
		return
	}
	s.g().post(c.ss, func(ctx context.Context) { _ = c.ss.NotifyElicitationComplete(ctx, p) })
}

func (g *Gateway) session(id string) *mcp.ServerSession {
	v, ok := g.sessions.Load(id)
	if !ok {
		return nil
	}
	return v.(*mcp.ServerSession)
}

// levelTable remembers the most verbose logging level any client asked of
// each upstream, so that a shared upstream logs enough for its most curious
// client; the SDK server then filters per client session. It is keyed by
// connection, so a reload moves the entry of a connection it replaces to
// the replacement and drops those of the connections it stops
// ([levelTable.replace]); otherwise every reload would leave entries behind.
type levelTable struct {
	mu      sync.Mutex
	applied map[*upstream.Upstream]int
}

// replace forgets old (stopped by a reload) and, when next is not nil (its
// replacement), gives next old's entry: the replacement is set to the same
// level (see Apply), so a later setLevel that is not more verbose is not
// sent again.
func (t *levelTable) replace(old, next *upstream.Upstream) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rank, ok := t.applied[old]
	delete(t.applied, old)
	if ok && next != nil {
		t.applied[next] = rank
	}
}

var levelRank = map[mcp.LoggingLevel]int{"debug": 0, "info": 1, "notice": 2, "warning": 3, "error": 4, "critical": 5, "alert": 6, "emergency": 7}

// levelMiddleware forwards logging/setLevel to the upstreams behind the
// endpoint when the new level is more verbose than what they were last set to.
func (g *Gateway) levelMiddleware(only string) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if method != "logging/setLevel" || err != nil {
				return res, err
			}
			p, ok := req.GetParams().(*mcp.SetLoggingLevelParams)
			if !ok {
				return res, err
			}
			rank, ok := levelRank[p.Level]
			if !ok {
				return res, err
			}
			if ss, ok := req.GetSession().(*mcp.ServerSession); ok && ss.ID() != "" {
				g.clientLevels.Store(ss, p.Level)
			}
			var ups []*upstream.Upstream
			g.mu.RLock()
			if only != "" {
				if gr := g.groups[only]; gr != nil {
					ups = append(ups, gr.targets...)
				}
			} else {
				for _, name := range g.order {
					if u := g.upstreams[name]; u != nil {
						ups = append(ups, u)
					}
				}
			}
			// g.mu stays read-locked while the table is updated: a reload
			// (Apply, under the write lock) drops the entries of the
			// connections it stops, and must not find one re-added after.
			// SetLogLevel does not block.
			defer g.mu.RUnlock()
			if sec := g.security; sec != nil {
				// Only the upstreams the caller may use: one tenant does
				// not turn up the logging of another's.
				p := principalOf(req)
				ups = slices.DeleteFunc(ups, func(u *upstream.Upstream) bool { return !sec.Allowed(p, groupName(u), "upstream", "") })
			}
			for _, u := range ups {
				g.levels.mu.Lock()
				if g.levels.applied == nil {
					g.levels.applied = map[*upstream.Upstream]int{}
				}
				cur, set := g.levels.applied[u]
				if set && cur <= rank {
					g.levels.mu.Unlock()
					continue
				}
				g.levels.applied[u] = rank
				g.levels.mu.Unlock()
				// The upstream keeps the level and applies it to every
				// connection it has or opens later.
				u.SetLogLevel(p.Level)
			}
			return res, nil
		}
	}
}
