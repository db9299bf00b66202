package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/sessionstore"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sync/singleflight"
)

// Sessions that any replica can serve (docs/design/sessions.md).
//
// With a keeper set (SetSessionKeeper), every session-era client session
// is saved when initialize opens it and when the client changes it
// (logging level, resource subscriptions). A replica that receives a
// request with an Mcp-Session-Id it does not know loads the session,
// checks that it belongs to the caller and the endpoint (else HTTP 404,
// as for a session that does not exist), and re-creates it under the same
// id: a new SDK session over a transport of its own, started in the saved
// state, to which the gateway's own effects of the client's changes are
// replayed (the level sent on to upstreams, the subscriptions made
// upstream). The SDK's handler cannot adopt a session it did not create,
// so kept sessions — opened here (openKept) or re-created — are served by
// serveCopy, which makes that handler's checks itself. Answers to the
// questions calls put to clients, and clients' cancellations, that land on
// another replica than the call's are relayed (SetAnswerRelay).

// sessionKeeping is the gateway's state for kept sessions.
type sessionKeeping struct {
	keeper     sessionstore.Keeper
	recovering singleflight.Group
	// copies are the kept sessions this replica holds, by session id;
	// byHash finds their ids by the hashes other replicas announce.
	copies sync.Map // id -> *sessionCopy
	byHash sync.Map // sessionstore.IDHash(id) -> id
	// replayKey marks the requests the gateway replays into a re-created
	// session (header replayHeader), so that they are not saved again.
	replayKey string
	replayID  atomic.Int64
	// relay carries clients' answers and cancellations between replicas
	// (nil: they reach only the replica they land on).
	relay sessionstore.Relay
}

// askPrefix starts the ids of the questions hot-path calls put to their
// clients (hotstream.go); an answer with such an id that no call of this
// replica waits for is relayed to the others.
const askPrefix = "mcpedge-ask-"

// SetAnswerRelay makes a client's answer to a question a call put to it
// (sampling, elicitation, roots, asked by a hot-path call) reach the
// replica running the call, whichever replica the answer's POST reached.
// Call it before serving; nil: answers reach this replica's calls only.
func (g *Gateway) SetAnswerRelay(r sessionstore.Relay) {
	g.kept.relay = r
	if r != nil {
		r.SubscribeAnswers(g.answerRelayed)
	}
}

// relayAnswer passes on a POSTed answer to a hot-path question that no
// call of this replica waits for (hotAnswer found none), and answers 202;
// it reports whether it did. c is the session the request was checked
// against (its caller, its endpoint).
func (g *Gateway) relayAnswer(w http.ResponseWriter, r *http.Request, c *sessionCopy) bool {
	if g.kept.relay == nil || r.Body == nil {
		return false
	}
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return false
	}
	env, err := jsonguard.ParseEnvelope(body)
	if err != nil {
		return false
	}
	if env.Method == "notifications/cancelled" && env.ID == nil {
		// The call may run on another replica: tell them all (the one
		// running it cancels it); this one takes it as well (the SDK's
		// server and the hot path, which has seen it already).
		if err := g.kept.relay.PublishAnswer(r.Context(), sessionstore.IDHash(c.id), cancelRelay, body); err != nil {
			g.log.Warn("a client's cancellation could not be relayed to the other replicas", "err", err)
		}
		return false
	}
	if env.Method != "" || env.ID == nil {
		return false
	}
	askID, ok := jsonguard.Unquote(env.ID)
	if !ok {
		return false
	}
	rest, hot := strings.CutPrefix(askID, askPrefix)
	if !hot {
		if rest, ok = strings.CutPrefix(askID, sdkAskPrefix); !ok {
			return false // not a question the gateway put
		}
	}
	if strings.HasPrefix(rest, g.hot.askTag+"-") {
		return false // this replica's own: its call has ended (hot), or the session takes it (SDK)
	}
	if err := g.kept.relay.PublishAnswer(r.Context(), sessionstore.IDHash(c.id), askID, body); err != nil {
		g.log.Warn("a client's answer could not be relayed to the replica that asked", "err", err)
	}
	w.WriteHeader(http.StatusAccepted)
	return true
}

// answerRelayed delivers an answer another replica relayed to the call of
// this replica that asked the question, if one waits for it.
func (g *Gateway) answerRelayed(idHash, askID string, body []byte) {
	c := g.copyByHash(idHash)
	if c == nil {
		return
	}
	if askID == cancelRelay {
		// Another replica got the client's notifications/cancelled: the
		// call it names may run here, on the hot path or the SDK's way.
		if e := g.clients.get(c.id); e != nil {
			if id := jsonguard.Lookup(jsonguard.Lookup(body, "params"), "requestId"); id != nil {
				e.cancel(idKey(id))
			}
		}
		if err := g.feed(c, body); err != nil {
			g.log.Debug("a relayed cancellation could not be given to its session", "err", err)
		}
		return
	}
	if strings.HasPrefix(askID, sdkAskPrefix+g.hot.askTag+"-") {
		if err := g.feed(c, body); err != nil {
			g.log.Warn("a relayed answer could not be given to its session", "err", err)
		}
		return
	}
	e := g.clients.get(c.id)
	if e == nil {
		return
	}
	e.mu.Lock()
	ch, ok := e.asks["s"+askID]
	if ok {
		delete(e.asks, "s"+askID) // one answer per question
	}
	e.mu.Unlock()
	if ok {
		select {
		case ch <- body:
		default:
		}
	}
}

const replayHeader = "Mcp-Edge-Replay"

// sessionCopy is this replica's copy of a kept session.
type sessionCopy struct {
	id   string
	face string
	ss   *mcp.ServerSession
	// tr is the session's transport, served by serveCopy (nil: a
	// session the SDK's handler holds, which never happens while sessions
	// are kept; replays refuse it).
	tr *mcp.StreamableServerTransport
	ti *auth.TokenInfo // the caller
	// base carries the caller's credential (the values of the request
	// that re-created the session, not its lifetime), for replays.
	base context.Context

	mu sync.Mutex
	// want is the saved state this copy should be in, applied what it
	// is in (they differ while a replay fails; applyState retries).
	want, applied sessionstore.State
	// applyMu serializes applyState; retries counts its failed rounds.
	applyMu sync.Mutex
	retries int
	// stale is set when another replica announced a change not applied
	// yet; refreshMu serializes refresh.
	stale     atomic.Bool
	refreshMu sync.Mutex
}

// SetSessionKeeper makes client sessions recoverable by every replica
// sharing k's store, and by this one after a restart. Call it before
// serving; nil: sessions live in this process only.
func (g *Gateway) SetSessionKeeper(k sessionstore.Keeper) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	g.kept.keeper, g.kept.replayKey = k, hex.EncodeToString(b[:])
	if k != nil {
		k.Watch(g.sessionChanged)
	}
}

// ownerOf is whom a session opened with ti is bound to.
func ownerOf(ti *auth.TokenInfo) sessionstore.Owner {
	if ti == nil {
		return sessionstore.Owner{}
	}
	o := sessionstore.Owner{UserID: ti.UserID}
	if p, _ := ti.Extra["principal"].(*principal.Principal); p != nil {
		o.TenantID = p.TenantID
	}
	return o
}

// replayed reports whether req is one the gateway replays into a
// re-created session.
func (g *Gateway) replayed(req mcp.Request) bool {
	ex := req.GetExtra()
	return ex != nil && ex.Header != nil && g.kept.replayKey != "" && ex.Header.Get(replayHeader) == g.kept.replayKey
}

// keepMiddleware saves what a client's request changed of its session:
// the session itself at initialize, its level at logging/setLevel, its
// subscriptions at resources/(un)subscribe. The save is made before the
// answer is sent, so that the client's next request finds it on any
// replica. A failed save leaves the session working on this replica only,
// and is logged.
func (g *Gateway) keepMiddleware(face string) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			k := g.kept.keeper
			if err != nil || k == nil {
				return res, err
			}
			switch method {
			case "initialize", "logging/setLevel", "resources/subscribe", "resources/unsubscribe":
			default:
				return res, err
			}
			ss, ok := req.GetSession().(*mcp.ServerSession)
			if !ok || ss == nil || ss.ID() == "" || g.replayed(req) {
				return res, err
			}
			id := ss.ID()
			var change func(*sessionstore.State)
			switch p := req.GetParams().(type) {
			case *mcp.InitializeParams:
				ir, _ := res.(*mcp.InitializeResult)
				init, jerr := json.Marshal(p)
				if ir == nil || jerr != nil {
					return res, err
				}
				var ti *auth.TokenInfo
				if ex := req.GetExtra(); ex != nil {
					ti = ex.TokenInfo
				}
				st := sessionstore.State{Face: face, ProtocolVersion: ir.ProtocolVersion, Initialize: init}
				if cerr := k.Create(ctx, id, ownerOf(ti), st); cerr != nil {
					g.log.Warn("session not saved: only this replica can serve it", "err", cerr)
					return res, err
				}
				if c := g.copyOf(id, ss); c != nil {
					c.mu.Lock()
					c.want, c.applied = st.Clone(), st.Clone()
					c.mu.Unlock()
				}
				return res, err
			case *mcp.SetLoggingLevelParams:
				change = func(s *sessionstore.State) { s.LogLevel = string(p.Level) }
			case *mcp.SubscribeParams:
				change = func(s *sessionstore.State) { s.Subscribe(p.URI) }
			case *mcp.UnsubscribeParams:
				change = func(s *sessionstore.State) { s.Unsubscribe(p.URI) }
			default:
				return res, err
			}
			if c := g.copyOf(id, ss); c != nil {
				c.mu.Lock()
				change(&c.want)
				change(&c.applied)
				c.mu.Unlock()
			}
			if _, uerr := k.Update(ctx, id, change); uerr != nil {
				g.log.Warn("session change not saved: other replicas do not see it", "method", method, "err", uerr)
			}
			return res, err
		}
	}
}

// hold records copy c as this replica's copy of its session until the
// session ends.
func (g *Gateway) hold(c *sessionCopy) {
	g.kept.copies.Store(c.id, c)
	g.kept.byHash.Store(sessionstore.IDHash(c.id), c.id)
	go func() {
		_ = c.ss.Wait()
		if g.kept.copies.CompareAndDelete(c.id, c) {
			g.kept.byHash.Delete(sessionstore.IDHash(c.id))
		}
	}()
}

// copyByHash returns this replica's copy of the session whose id hashes
// to idHash, or nil.
func (g *Gateway) copyByHash(idHash string) *sessionCopy {
	id, ok := g.kept.byHash.Load(idHash)
	if !ok {
		return nil
	}
	v, ok := g.kept.copies.Load(id)
	if !ok {
		return nil
	}
	return v.(*sessionCopy)
}

// copyOf returns this replica's copy of session id if it is ss's.
func (g *Gateway) copyOf(id string, ss *mcp.ServerSession) *sessionCopy {
	v, ok := g.kept.copies.Load(id)
	if !ok {
		return nil
	}
	if c := v.(*sessionCopy); c.ss == ss {
		return c
	}
	return nil
}

// errSessionNotFound is answered as the SDK's handler answers a session it
// does not know.
var errSessionNotFound = errors.New("session not found")

// recoverSession returns this replica's copy of session id for a request
// on face by the caller of ti, re-creating it from the keeper when it has
// none. errSessionNotFound when there is no such session for this caller
// on this endpoint.
func (g *Gateway) recoverSession(r *http.Request, id, face string, ti *auth.TokenInfo, srv *mcp.Server) (*sessionCopy, error) {
	o := ownerOf(ti)
	v, err, _ := g.kept.recovering.Do(id+"\x00"+o.UserID, func() (any, error) {
		if v, ok := g.kept.copies.Load(id); ok {
			// A copy this replica holds (opening, or ending): its caller's.
			if c := v.(*sessionCopy); userIDOf(c.ti) == o.UserID {
				return c, nil
			}
			return nil, errSessionNotFound
		}
		rec, err := g.kept.keeper.Load(r.Context(), id)
		if errors.Is(err, sessionstore.ErrNotFound) {
			return nil, errSessionNotFound
		}
		if err != nil {
			return nil, err
		}
		if !rec.BoundTo(o) || rec.State.Face != face {
			return nil, errSessionNotFound // another caller's, or another endpoint's: it does not exist for this one
		}
		if srv == nil {
			return nil, errSessionNotFound
		}
		var init mcp.InitializeParams
		if err := json.Unmarshal(rec.State.Initialize, &init); err != nil {
			return nil, fmt.Errorf("saved session: initialize params: %w", err)
		}
		state := &mcp.ServerSessionState{
			InitializeParams:          &init,
			InitializedParams:         &mcp.InitializedParams{},
			NegotiatedProtocolVersion: rec.State.ProtocolVersion,
			LogLevel:                  mcp.LoggingLevel(rec.State.LogLevel),
		}
		tr := &mcp.StreamableServerTransport{SessionID: id}
		ss, err := srv.Connect(r.Context(), askNaming{tr, g.hot.askTag}, &mcp.ServerSessionOptions{State: state})
		if err != nil {
			return nil, fmt.Errorf("re-creating session: %w", err)
		}
		c := &sessionCopy{id: id, face: face, ss: ss, tr: tr, ti: ti, base: context.WithoutCancel(r.Context())}
		g.hold(c)
		g.clients.open(ss, userIDOf(ti))
		g.sessionOpened(ss)
		g.log.Info("session re-created from the store", "session_hash", sessionstore.IDHash(id)[:16], "face", face, "subscriptions", len(rec.State.Subscriptions))
		g.applyState(c, rec.State)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	c := v.(*sessionCopy)
	if c.face != face {
		return nil, errSessionNotFound
	}
	return c, nil
}

// applyState brings copy c to state s (the saved one): what differs in
// level and subscriptions is replayed into the session as the client's
// own requests, so that the gateway's effects follow (the level is sent
// on to upstreams, subscriptions made upstream and known to the SDK's
// server for its updates). What fails to apply — the upstream owning a
// resource is not connected yet, say, after a restart — is tried again
// 1, 2, 4 … 60 seconds later, while the copy lives.
func (g *Gateway) applyState(c *sessionCopy, s sessionstore.State) {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	c.mu.Lock()
	c.want = s.Clone()
	have := c.applied.Clone()
	c.mu.Unlock()
	failed := false
	apply := func(m string, done func(*sessionstore.State)) {
		if err := g.replay(c, s.ProtocolVersion, m); err != nil {
			g.log.Warn("re-applying a session's state", "session_hash", sessionstore.IDHash(c.id)[:16], "request", m, "err", err)
			failed = true
			return
		}
		c.mu.Lock()
		done(&c.applied)
		c.mu.Unlock()
	}
	if s.LogLevel != "" && s.LogLevel != have.LogLevel {
		apply(`"method":"logging/setLevel","params":{"level":`+quoteJSON(s.LogLevel)+`}`, func(a *sessionstore.State) { a.LogLevel = s.LogLevel })
	}
	for _, uri := range s.Subscriptions {
		if _, found := slices.BinarySearch(have.Subscriptions, uri); !found {
			apply(`"method":"resources/subscribe","params":{"uri":`+quoteJSON(uri)+`}`, func(a *sessionstore.State) { a.Subscribe(uri) })
		}
	}
	for _, uri := range have.Subscriptions {
		if _, found := slices.BinarySearch(s.Subscriptions, uri); !found {
			apply(`"method":"resources/unsubscribe","params":{"uri":`+quoteJSON(uri)+`}`, func(a *sessionstore.State) { a.Unsubscribe(uri) })
		}
	}
	if !failed || c.tr == nil {
		c.retries = 0
		return
	}
	c.retries++
	if c.retries > 30 {
		return
	}
	d := min(time.Second<<min(c.retries-1, 6), time.Minute)
	time.AfterFunc(d, func() {
		if v, ok := g.kept.copies.Load(c.id); !ok || v.(*sessionCopy) != c {
			return // the copy closed
		}
		c.mu.Lock()
		want := c.want.Clone()
		c.mu.Unlock()
		g.applyState(c, want)
	})
}

func quoteJSON(s string) string { b, _ := json.Marshal(s); return string(b) }

// replay sends one request (its members after the id) into copy c's
// session as if its client had, and waits for the answer.
func (g *Gateway) replay(c *sessionCopy, version, members string) error {
	if c.tr == nil {
		// A session the SDK's handler holds: it cannot be fed from
		// here; its state follows when the client's next request
		// re-creates it elsewhere.
		return errors.New("not a re-created session")
	}
	id := g.kept.replayID.Add(1)
	body := `{"jsonrpc":"2.0","id":"mcpedge-replay-` + strconv.FormatInt(id, 10) + `",` + members + `}`
	ctx, cancel := context.WithTimeout(c.base, notifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", c.id)
	req.Header.Set("Mcp-Protocol-Version", version)
	req.Header.Set(replayHeader, g.kept.replayKey)
	rec := &replayWriter{h: http.Header{}}
	c.tr.ServeHTTP(rec, req)
	out := rec.buf.Bytes()
	if rec.status >= 300 {
		return fmt.Errorf("HTTP %d: %s", rec.status, bytes.TrimSpace(out))
	}
	if bytes.Contains(out, []byte(`"error"`)) {
		return fmt.Errorf("refused: %s", bytes.TrimSpace(out))
	}
	return nil
}

// replayWriter keeps a replayed request's answer.
type replayWriter struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (w *replayWriter) Header() http.Header { return w.h }
func (w *replayWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *replayWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.buf.Write(b)
}
func (w *replayWriter) Flush() {}

// sessionChanged applies another replica's change of a session this one
// holds a copy of: a deleted session's copy is closed, a changed one is
// brought to the saved state.
func (g *Gateway) sessionChanged(idHash string, deleted bool) {
	c := g.copyByHash(idHash)
	if c == nil {
		return
	}
	if deleted {
		_ = c.ss.Close()
		return
	}
	// Marked at once, on the announcement's own goroutine: a request of
	// the session that reaches this replica from now on waits for the
	// refresh (keptSession) rather than being served in the old state.
	c.stale.Store(true)
	g.background(func() {
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		g.refresh(ctx, c)
	})
}

// refresh brings copy c to the saved state if another replica changed it
// (c.stale); a session gone from the store is closed.
func (g *Gateway) refresh(ctx context.Context, c *sessionCopy) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if !c.stale.Load() {
		return
	}
	rec, err := g.kept.keeper.Load(ctx, c.id)
	if err != nil {
		if errors.Is(err, sessionstore.ErrNotFound) {
			_ = c.ss.Close()
		}
		c.stale.Store(false) // the next announcement, or the session's end, decides
		return
	}
	c.stale.Store(false)
	g.applyState(c, rec.State)
}

// openKept serves a POST without a session id (initialize) by opening a
// session over a transport of the gateway's own, so that every session,
// opened here or re-created, is served alike (serveCopy) and can have
// another replica's changes replayed into it.
func (g *Gateway) openKept(w http.ResponseWriter, r *http.Request, srv *mcp.Server) {
	if srv == nil {
		http.Error(w, "no server available", http.StatusBadRequest)
		return
	}
	id := rand.Text()
	tr := &mcp.StreamableServerTransport{SessionID: id}
	ss, err := srv.Connect(r.Context(), askNaming{tr, g.hot.askTag}, nil)
	if err != nil {
		g.log.Error("opening a session", "err", err)
		http.Error(w, "failed connection", http.StatusInternalServerError)
		return
	}
	c := &sessionCopy{id: id, face: r.PathValue("upstream"), ss: ss, tr: tr, ti: auth.TokenInfoFromContext(r.Context()), base: context.WithoutCancel(r.Context())}
	g.hold(c)
	g.serveCopy(w, r, c)
	if ss.InitializeParams() == nil {
		_ = ss.Close() // not opened by initialize: nothing can use it
	}
}

// keptSession resolves a request's session for eraSwitch: this replica's
// copy, re-created from the keeper if needed. It answers the request
// itself (HTTP 404) and returns false when the session does not exist for
// this caller on this endpoint; it returns nil, true when sessions are
// not kept or the session is one the SDK's handler serves.
func (g *Gateway) keptSession(w http.ResponseWriter, r *http.Request, sid string, getServer func(*http.Request) *mcp.Server) (*sessionCopy, bool) {
	if g.kept.keeper == nil || sid == "" {
		return nil, true
	}
	face := r.PathValue("upstream")
	ti := auth.TokenInfoFromContext(r.Context())
	if e := g.clients.get(sid); e != nil {
		if e.userID != userIDOf(ti) {
			g.sessionNotFound(w, r)
			return nil, false
		}
		v, ok := g.kept.copies.Load(sid)
		if !ok {
			return nil, true // the SDK's handler's, not kept
		}
		c := v.(*sessionCopy)
		if c.tr == nil {
			g.kept.keeper.Touch(sid)
			return nil, true
		}
		if c.face != face {
			g.sessionNotFound(w, r)
			return nil, false
		}
		if c.stale.Load() {
			g.refresh(r.Context(), c) // another replica changed the session a moment ago
		}
		g.kept.keeper.Touch(sid)
		return c, true
	}
	c, err := g.recoverSession(r, sid, face, ti, getServer(r))
	if errors.Is(err, errSessionNotFound) {
		g.sessionNotFound(w, r)
		return nil, false
	}
	if err != nil {
		g.log.Warn("session could not be re-created", "err", err)
		w.Header().Set("Retry-After", "1")
		g.reject(w, r, http.StatusServiceUnavailable, "session_store", mcpwire.CodeUpstreamUnavailable, "the session could not be loaded; try again")
		return nil, false
	}
	g.kept.keeper.Touch(sid)
	return c, true
}

// keptUse is keptSession for a request the hot path serves (a session
// this replica holds, checked already): the copy is brought up to date if
// another replica just changed it, and kept alive.
func (g *Gateway) keptUse(r *http.Request) {
	sid := r.Header.Get("Mcp-Session-Id")
	if v, ok := g.kept.copies.Load(sid); ok {
		if c := v.(*sessionCopy); c.stale.Load() {
			g.refresh(r.Context(), c)
		}
	}
	g.kept.keeper.Touch(sid)
}

// sessionNotFound answers as the SDK's handler does for a session it does
// not know.
func (g *Gateway) sessionNotFound(w http.ResponseWriter, r *http.Request) {
	g.metrics.Rejections.WithLabelValues("session_not_found").Inc()
	http.Error(w, "session not found", http.StatusNotFound)
}

// keptVersions are the protocol versions a re-created session accepts in
// MCP-Protocol-Version, as the SDK's handler does.
var keptVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// serveCopy serves a request of a re-created session, with the checks the
// SDK's handler makes for the sessions it holds.
func (g *Gateway) serveCopy(w http.ResponseWriter, r *http.Request, c *sessionCopy) {
	// A version of the stateless era is answered by the transport, with
	// the JSON-RPC error the SDK's handler gives.
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && !slices.Contains(keptVersions, v) && v < statelessVersion {
		http.Error(w, "Bad Request: Unsupported protocol version (supported versions: "+strings.Join(keptVersions, ",")+")", http.StatusBadRequest)
		return
	}
	switch r.Method {
	case http.MethodGet:
		if _, stream := accepts(r.Header.Values("Accept")); !stream {
			http.Error(w, "Accept must contain 'text/event-stream' for GET requests", http.StatusBadRequest)
			return
		}
		c.tr.ServeHTTP(w, r)
	case http.MethodPost:
		if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), "application/json") {
			http.Error(w, "Content-Type must be 'application/json'", http.StatusUnsupportedMediaType)
			return
		}
		if jsonOK, streamOK := accepts(r.Header.Values("Accept")); !jsonOK || !streamOK {
			http.Error(w, "Accept must contain both 'application/json' and 'text/event-stream'", http.StatusBadRequest)
			return
		}
		if g.relayAnswer(w, r, c) {
			return
		}
		if e := g.clients.get(c.id); e != nil {
			e.begin()
			defer g.clients.end(e)
		}
		c.tr.ServeHTTP(w, r)
	case http.MethodDelete:
		g.endKept(r.Context(), c.id)
		_ = c.ss.Close()
		if e := g.clients.get(c.id); e != nil {
			g.clients.close(e.ss)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	}
}

// endKept forgets a session its client ended (DELETE), on every replica.
func (g *Gateway) endKept(ctx context.Context, id string) {
	if g.kept.keeper == nil {
		return
	}
	if err := g.kept.keeper.Delete(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, sessionstore.ErrNotFound) {
		g.log.Warn("ended session not removed from the store", "err", err)
	}
}

// cancelRelay marks a relayed notifications/cancelled (in place of a
// question's id).
const cancelRelay = "notifications/cancelled"

// sdkAskPrefix starts the ids of the requests a session's SDK server puts
// to its client (sampling, elicitation, roots during a call the SDK's
// server dispatched), renamed by askNaming so that an answer tells which
// replica asked: "mcpedge-sdk-<replica>-<n>".
const sdkAskPrefix = "mcpedge-sdk-"

// askNaming is the transport of a kept session seen by the SDK's server:
// the gateway's own StreamableServerTransport (whose ServeHTTP serves the
// session), with the ids of the server's requests to the client renamed
// on the way out and back (askConn).
type askNaming struct {
	*mcp.StreamableServerTransport
	tag string
}

func (t askNaming) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.StreamableServerTransport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &askConn{Connection: c, prefix: sdkAskPrefix + t.tag + "-"}, nil
}

// askConn renames the numeric ids of outgoing requests to
// prefix+number, and back in the answers.
type askConn struct {
	mcp.Connection
	prefix string
}

func (c *askConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() {
		if n, ok := req.ID.Raw().(int64); ok {
			if id, err := jsonrpc.MakeID(c.prefix + strconv.FormatInt(n, 10)); err == nil {
				r := *req
				r.ID = id
				msg = &r
			}
		}
	}
	return c.Connection.Write(ctx, msg)
}

func (c *askConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if resp, ok := msg.(*jsonrpc.Response); ok && err == nil {
		if s, ok := resp.ID.Raw().(string); ok {
			if rest, ok := strings.CutPrefix(s, c.prefix); ok {
				if n, perr := strconv.ParseInt(rest, 10, 64); perr == nil && n >= 0 {
					if id, ierr := jsonrpc.MakeID(float64(n)); ierr == nil && n < 1<<53 {
						r := *resp
						r.ID = id
						msg = &r
					}
				}
			}
		}
	}
	return msg, err
}

// feed delivers a relayed answer to a question copy c's SDK server put to
// its client, as the client's own POST would have.
func (g *Gateway) feed(c *sessionCopy, body []byte) error {
	if c.tr == nil {
		return errors.New("not a kept session")
	}
	c.mu.Lock()
	version := c.want.ProtocolVersion
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.base, notifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", c.id)
	if version != "" {
		req.Header.Set("Mcp-Protocol-Version", version)
	}
	rec := &replayWriter{h: http.Header{}}
	c.tr.ServeHTTP(rec, req)
	if rec.status >= 300 {
		return fmt.Errorf("HTTP %d: %s", rec.status, bytes.TrimSpace(rec.buf.Bytes()))
	}
	return nil
}

// logOnCall sends a log message an upstream sent on a hot-path call's
// stream to the calling client on that call's own stream, filtered by the
// level the client set, and returns the client's session (nil: not sent
// this way). On the session's standalone stream (GET) the message would
// reach the client only if that stream is on this replica; behind a load
// balancer without affinity it rarely is (docs/design/sessions.md).
func (g *Gateway) logOnCall(client pipeline.Asker, ss *mcp.ServerSession, p *mcp.LoggingMessageParams) *mcp.ServerSession {
	hs, ok := client.(*hotStream)
	if !ok || ss == nil || hs.e == nil || hs.e.ss != ss || p == nil {
		return nil
	}
	lv, ok := g.clientLevels.Load(ss)
	if !ok {
		return nil // no level set: the SDK sends the client no log message at all
	}
	want, ok1 := levelRank[lv.(mcp.LoggingLevel)]
	got, ok2 := levelRank[p.Level]
	if !ok1 || !ok2 {
		return nil
	}
	if got >= want {
		hs.notify("notifications/message", p)
	}
	return ss
}
