package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// clientTable keeps what the gateway itself needs of each client session
// of the session era (2025-11-25 and earlier) that the SDK's handler
// serves: the session, the user its credential bound it to, its idle
// timer, and the hot-path calls in flight on it.
//
// The hot path (hotpath.go) answers tools/call without the SDK's handler,
// so the checks that handler makes on every POST of a session — that the
// session exists and belongs to the caller — are made against this table,
// and the idle timeout is kept here rather than by the SDK (whose timer
// only POSTs through its handler would reset).
type clientTable struct {
	m       sync.Map     // session id -> *clientEntry
	timeout atomic.Int64 // idle timeout (ns); 0: never
}

type clientEntry struct {
	ss     *mcp.ServerSession
	userID string // the SDK's binding: TokenInfo.UserID at initialize ("" in single-user mode)

	mu    sync.Mutex
	refs  int                           // requests in progress
	timer *time.Timer                   // closes the session when idle; nil: no timeout
	hot   map[string]context.CancelFunc // raw JSON-RPC id -> cancel, of hot-path calls in flight
	asks  map[string]chan []byte        // id -> waiter, of requests hot-path calls put to the client
}

// open records a session that answered initialize. The session's end
// must be reported with close (sessionOpened's watcher does).
func (t *clientTable) open(ss *mcp.ServerSession, userID string) {
	id := ss.ID()
	if id == "" {
		return
	}
	e := &clientEntry{ss: ss, userID: userID}
	if d := time.Duration(t.timeout.Load()); d > 0 {
		e.timer = time.AfterFunc(d, func() { _ = ss.Close() })
	}
	if _, loaded := t.m.LoadOrStore(id, e); loaded && e.timer != nil {
		e.timer.Stop()
	}
}

// close forgets a session that ended.
func (t *clientTable) close(ss *mcp.ServerSession) {
	v, ok := t.m.Load(ss.ID())
	if !ok || v.(*clientEntry).ss != ss {
		return
	}
	e := v.(*clientEntry)
	t.m.CompareAndDelete(ss.ID(), e)
	e.mu.Lock()
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.mu.Unlock()
}

func (t *clientTable) get(id string) *clientEntry {
	if id == "" {
		return nil
	}
	v, ok := t.m.Load(id)
	if !ok {
		return nil
	}
	return v.(*clientEntry)
}

// begin marks a request of the session in progress: the idle timer stops
// until the last one ends.
func (e *clientEntry) begin() {
	e.mu.Lock()
	if e.refs == 0 && e.timer != nil {
		e.timer.Stop()
	}
	e.refs++
	e.mu.Unlock()
}

// end marks a request done; the idle timer restarts after the last one.
func (t *clientTable) end(e *clientEntry) {
	e.mu.Lock()
	e.refs--
	if e.refs == 0 && e.timer != nil {
		e.timer.Reset(time.Duration(t.timeout.Load()))
	}
	e.mu.Unlock()
}

// track registers a hot-path call with the client's JSON-RPC id (raw), so
// that the client's notifications/cancelled reaches it; the returned func
// forgets it. A second call with an id already in flight is not tracked
// (the SDK's handler would refuse it; the hot path leaves it to the SDK).
func (e *clientEntry) track(id string, cancel context.CancelFunc) (untrack func(), ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.hot[id]; dup {
		return nil, false
	}
	if e.hot == nil {
		e.hot = map[string]context.CancelFunc{}
	}
	e.hot[id] = cancel
	return func() {
		e.mu.Lock()
		delete(e.hot, id)
		e.mu.Unlock()
	}, true
}

// cancel cancels the hot-path call with the client's id (raw), if one is
// in flight.
func (e *clientEntry) cancel(id string) {
	e.mu.Lock()
	c, ok := e.hot[id]
	e.mu.Unlock()
	if ok {
		c()
	}
}

// openMiddleware records each session-era client session that initialize
// opened, bound to the caller the SDK's handler bound it to.
func (g *Gateway) openMiddleware() mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if method != "initialize" || err != nil {
				return res, err
			}
			if ss, ok := req.GetSession().(*mcp.ServerSession); ok && ss != nil {
				var ti *auth.TokenInfo
				if ex := req.GetExtra(); ex != nil {
					ti = ex.TokenInfo
				}
				g.clients.open(ss, userIDOf(ti))
				// One watcher per session, from its first answer on: a
				// client that never sends notifications/initialized is
				// forgotten all the same when its session ends.
				g.sessionOpened(ss)
			}
			return res, err
		}
	}
}
