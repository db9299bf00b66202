package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sink is the gateway seen as an [upstream.Sink]: it routes what upstreams
// send on their own initiative back to client sessions.
type sink Gateway

var _ upstream.Sink = (*sink)(nil)

func (s *sink) g() *Gateway { return (*Gateway)(s) }

func (s *sink) StateChanged(u *upstream.Upstream, st upstream.State) {}

func (s *sink) CatalogChanged(u *upstream.Upstream) { s.g().catalogChanged(u) }

// ResourceUpdated tells every client subscribed to the URI, on /mcp and on
// /mcp/<upstream>; the SDK servers keep the per-session subscription sets.
func (s *sink) ResourceUpdated(ctx context.Context, u *upstream.Upstream, p *mcp.ResourceUpdatedNotificationParams) {
	if p == nil {
		return
	}
	g := s.g()
	_ = g.agg.ResourceUpdated(ctx, p)
	if per := g.PerUpstream(u.Name()); per != nil {
		_ = per.ResourceUpdated(ctx, p)
	}
}

// Log forwards an upstream log message. A per-session connection's messages
// go to its client only; a shared connection's go to every client of /mcp and
// /mcp/<upstream>, each filtered by the level that client set.
func (s *sink) Log(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.LoggingMessageParams) {
	if p == nil {
		return
	}
	g := s.g()
	if owner != "" {
		if ss := g.session(owner); ss != nil {
			_ = ss.Log(ctx, p)
		}
		return
	}
	servers := []*mcp.Server{g.agg}
	if per := g.PerUpstream(u.Name()); per != nil {
		servers = append(servers, per)
	}
	for _, srv := range servers {
		for ss := range srv.Sessions() {
			_ = ss.Log(ctx, p)
		}
	}
}

// Progress restores the client's own progress token and sends the
// notification to the client whose call it belongs to.
func (s *sink) Progress(ctx context.Context, u *upstream.Upstream, p *mcp.ProgressNotificationParams) {
	if p == nil {
		return
	}
	t, ok := s.g().progress.get(p.ProgressToken)
	if !ok {
		return // the call already ended, or the token was never ours
	}
	q := *p
	q.ProgressToken = t.token
	_ = t.ss.NotifyProgress(ctx, &q)
	t.last.Store(time.Now().UnixNano())
}

// target finds the client session a server-to-client request belongs to,
// and the continuation to use instead when that client is stateless.
func (s *sink) target(u *upstream.Upstream, owner, method string) (*mcp.ServerSession, *continuation, error) {
	g := s.g()
	if owner != "" {
		if ss := g.session(owner); ss != nil {
			return ss, nil, nil
		}
		return nil, nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("mcpedge: the client session for %s has ended", method)}
	}
	if c := g.inflight.latest(u); c != nil {
		return c.ss, c.cont, nil
	}
	return nil, nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("mcpedge: %s from upstream %s arrived while no client request was in flight, so there is no client to ask", method, u.Name())}
}

// viaContinuation asks a stateless client through an input-required result.
func viaContinuation[R mcp.InputResponse](ctx context.Context, c *continuation, method string, p any) (R, error) {
	var zero R
	req, err := inputFor(method, p)
	if err != nil {
		return zero, err
	}
	resp, err := c.ask(ctx, req)
	if err != nil {
		return zero, err
	}
	r, ok := resp.(R)
	if !ok {
		return zero, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("mcpedge: the client answered %s with a %T", method, resp)}
	}
	return r, nil
}

func (s *sink) CreateMessage(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.CreateMessageWithToolsParams) (*mcp.CreateMessageWithToolsResult, error) {
	ss, cont, err := s.target(u, owner, "sampling/createMessage")
	if err != nil {
		return nil, err
	}
	if cont != nil {
		return viaContinuation[*mcp.CreateMessageWithToolsResult](ctx, cont, "sampling/createMessage", p)
	}
	return ss.CreateMessageWithTools(ctx, p)
}

func (s *sink) Elicit(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.ElicitParams) (*mcp.ElicitResult, error) {
	ss, cont, err := s.target(u, owner, "elicitation/create")
	if err != nil {
		return nil, err
	}
	if cont != nil {
		return viaContinuation[*mcp.ElicitResult](ctx, cont, "elicitation/create", p)
	}
	return ss.Elicit(ctx, p)
}

func (s *sink) ElicitationComplete(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.ElicitationCompleteParams) {
	if p == nil {
		return
	}
	if ss, cont, err := s.target(u, owner, "notifications/elicitation/complete"); err == nil && cont == nil {
		_ = ss.NotifyElicitationComplete(ctx, p)
	}
}

func (s *sink) ListRoots(ctx context.Context, u *upstream.Upstream, owner string, p *mcp.ListRootsParams) (*mcp.ListRootsResult, error) {
	ss, cont, err := s.target(u, owner, "roots/list")
	if err != nil {
		return nil, err
	}
	if cont != nil {
		return viaContinuation[*mcp.ListRootsResult](ctx, cont, "roots/list", p)
	}
	return ss.ListRoots(ctx, p)
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
// client; the SDK server then filters per client session.
type levelTable struct {
	mu      sync.Mutex
	bySess  map[*mcp.ServerSession]mcp.LoggingLevel
	applied map[string]int
}

var levelRank = map[mcp.LoggingLevel]int{"debug": 0, "info": 1, "notice": 2, "warning": 3, "error": 4, "critical": 5, "alert": 6, "emergency": 7}

func (t *levelTable) drop(ss *mcp.ServerSession) {
	t.mu.Lock()
	delete(t.bySess, ss)
	t.mu.Unlock()
}

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
			var ups []*upstream.Upstream
			g.mu.RLock()
			if only != "" {
				if u := g.upstreams[only]; u != nil {
					ups = append(ups, u)
				}
			} else {
				for _, name := range g.order {
					if u := g.upstreams[name]; u != nil {
						ups = append(ups, u)
					}
				}
			}
			g.mu.RUnlock()
			for _, u := range ups {
				if init := u.Catalog().Init; init == nil || init.Capabilities == nil || init.Capabilities.Logging == nil {
					continue
				}
				g.levels.mu.Lock()
				if g.levels.applied == nil {
					g.levels.applied = map[string]int{}
				}
				cur, set := g.levels.applied[u.Name()]
				if set && cur <= rank {
					g.levels.mu.Unlock()
					continue
				}
				g.levels.applied[u.Name()] = rank
				g.levels.mu.Unlock()
				for _, cs := range u.Sessions() {
					if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: p.Level}); err != nil {
						g.log.Warn("forwarding logging/setLevel failed", "upstream", u.Name(), "err", err)
					}
				}
			}
			return res, nil
		}
	}
}
