package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// statelessVersion is the first protocol revision without sessions or
// server-to-client requests.
const statelessVersion = "2026-07-28"

// newEra reports whether a client session speaks the stateless 2026-07-28
// protocol, where the server may not send requests and must instead return
// input-required results. An ephemeral stateless session carries no
// initialize parameters and is new-era by construction.
func newEra(ss *mcp.ServerSession) bool {
	if ss == nil {
		return false
	}
	ip := ss.InitializeParams()
	return ip == nil || ip.ProtocolVersion >= statelessVersion
}

// A continuation lets a 2026-era client take part in a tool call whose
// upstream speaks the older protocol and sends server-to-client requests
// (sampling, elicitation, roots) in the middle of the call.
//
// The upstream call keeps running in the gateway. Each request the upstream
// sends becomes an input-required result for the client, carrying a
// gateway-issued requestState; when the client retries with inputResponses,
// the answers are handed to the waiting upstream request and the gateway
// waits for the next request or the final result. The upstream never knows
// the client is stateless.
type continuation struct {
	// id is "<replica>-<random>": the replica running the call (its
	// askTag), which a resume reaching another replica is relayed to
	// (contrelay.go), and 128 random bits.
	id     string
	method string             // the method and upstream it was issued for:
	up     *upstream.Upstream // a retry must match both
	// caller is the credential identity that started the call ("" in
	// single-user mode): only it may resume the call.
	caller string
	events chan contEvent
	// caps are the client's capabilities; nil: unknown, everything is
	// relayed. Set before the upstream call starts.
	caps *mcp.ClientCapabilities
	mu   sync.Mutex
	// answers are the input requests waiting for the client's answer;
	// ended the ones that no longer wait: true answered, false withdrawn
	// (the upstream gave up on it, or the call ended first). Both guarded
	// by mu; ended holds at most maxEndedAsks.
	answers map[string]chan contAnswer
	ended   map[string]bool
	seq     atomic.Int64
	// held is a final result that arrived while a round was gathering
	// requests; the next round returns it. Guarded by mu.
	held *contEvent
	// next runs the call's next round and returns its result (the
	// method's result type): nextRound for a resume another replica
	// relayed here.
	next func(context.Context) (any, error)
}

// maxEndedAsks bounds what a continuation remembers of its answered and
// withdrawn input requests (an upstream asking without end cannot grow it).
const maxEndedAsks = 1024

// take returns the held final result, if any, and forgets it.
func (c *continuation) take() (contEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		return contEvent{}, false
	}
	ev := *c.held
	c.held = nil
	return ev, true
}

func (c *continuation) hold(ev contEvent) {
	c.mu.Lock()
	c.held = &ev
	c.mu.Unlock()
}

type contEvent struct {
	inputID string
	req     mcp.InputRequest
	refused error // the client cannot answer req: refuse it with this
	res     any   // the final result, of the method's result type
	err     error
}

type contAnswer struct {
	resp mcp.InputResponse
	err  error
}

// continuationPrefix marks requestState values minted by the gateway, so
// they are never mistaken for an upstream's own state.
const continuationPrefix = "mcpedge-cont:"

type continuations struct {
	m sync.Map // id -> *continuation
}

// create registers a continuation run by replica (the gateway's askTag)
// for caller.
func (cs *continuations) create(replica, caller, method string, u *upstream.Upstream, ttl time.Duration) *continuation {
	var b [16]byte
	_, _ = rand.Read(b[:])
	c := &continuation{id: replica + "-" + hex.EncodeToString(b[:]), method: method, up: u, caller: caller,
		events: make(chan contEvent, 4), answers: map[string]chan contAnswer{}, ended: map[string]bool{}}
	cs.m.Store(c.id, c)
	// A client may walk away between rounds: forget the call a while after
	// the upstream's own timeout has ended it.
	time.AfterFunc(2*ttl, func() { cs.drop(c) })
	return c
}

// get finds the continuation a requestState names: ours is false for a
// state the gateway did not mint; c is nil for one this replica does not
// hold (finished, expired, or another replica's; see replicaOf).
func (cs *continuations) get(state string) (c *continuation, ours bool) {
	id, ok := strings.CutPrefix(state, continuationPrefix)
	if !ok {
		return nil, false
	}
	v, ok := cs.m.Load(id)
	if !ok {
		return nil, true
	}
	return v.(*continuation), true
}

// replicaOf is the replica a gateway-minted requestState was issued by
// ("" if it names none).
func replicaOf(state string) string {
	id, _ := strings.CutPrefix(state, continuationPrefix)
	r, _, ok := strings.Cut(id, "-")
	if !ok {
		return ""
	}
	return r
}

func (cs *continuations) drop(c *continuation) { cs.m.Delete(c.id) }

// ask is called by the sink on behalf of an upstream's server-to-client
// request: it surfaces the request to the client as an input request and
// waits for the client's answer. A request the client declared no
// capability for is not surfaced; it is refused once the round it arrived
// in has been put together (nextRound), so that the client still gets the
// requests it can answer that the upstream sent alongside.
func (c *continuation) ask(ctx context.Context, method string, req mcp.InputRequest) (mcp.InputResponse, error) {
	id := "mcpedge-" + strconv.FormatInt(c.seq.Add(1), 10)
	ch := make(chan contAnswer, 1)
	c.mu.Lock()
	c.answers[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if _, waiting := c.answers[id]; waiting {
			delete(c.answers, id)
			c.endAsk(id, false) // withdrawn: the upstream gave up, or the call ended
		}
		c.mu.Unlock()
	}()
	select {
	case c.events <- contEvent{inputID: id, req: req, refused: c.refusal(method)}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// refusal is the error for a request the client declared no capability for,
// nil if it may be asked.
func (c *continuation) refusal(method string) error {
	if c.caps == nil {
		return nil
	}
	var declared bool
	switch method {
	case "sampling/createMessage":
		declared = c.caps.Sampling != nil
	case "elicitation/create":
		declared = c.caps.Elicitation != nil
	case "roots/list":
		declared = c.caps.RootsV2 != nil
	default:
		return nil
	}
	if declared {
		return nil
	}
	return &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: fmt.Sprintf("mcpedge: the client did not declare the capability for %s", method)}
}

// endAsk records that input request id no longer waits; c.mu is held.
func (c *continuation) endAsk(id string, answered bool) {
	if len(c.ended) < maxEndedAsks {
		c.ended[id] = answered
	}
}

// waiting reports whether input request id still waits for an answer.
func (c *continuation) waiting(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.answers[id]
	return ok
}

// refuse answers a waiting request with err.
func (c *continuation) refuse(id string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.answers[id]; ok {
		delete(c.answers, id)
		c.endAsk(id, false)
		ch <- contAnswer{err: err} // buffered; the only send on ch
	}
}

// answer delivers the client's input responses, each to its waiting
// request, once: applied counts the ones delivered, withdrawn the ones
// for requests that stopped waiting before the client answered (the
// answer is moot, not wrong), again the ones answered already (a repeated
// retry: not applied a second time).
func (c *continuation) answer(responses mcp.InputResponseMap) (applied, withdrawn, again int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, r := range responses {
		if ch, ok := c.answers[id]; ok {
			delete(c.answers, id)
			c.endAsk(id, true)
			ch <- contAnswer{resp: r} // buffered; the only send on ch
			applied++
			continue
		}
		if answered, ok := c.ended[id]; ok {
			if answered {
				again++
			} else {
				withdrawn++
			}
		}
	}
	return applied, withdrawn, again
}

// resume checks a client's retry against continuation c and applies its
// answers; sameTarget tells whether the retry was sent to the call's
// upstream. The error is the one the client gets.
func (c *continuation) resume(method string, sameTarget bool, caller string, responses mcp.InputResponseMap) error {
	if c.caller != caller {
		return errContGone // another caller's: it does not exist for this one
	}
	if c.method != method || !sameTarget {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "requestState belongs to a different request; retry the request it was issued for"}
	}
	applied, withdrawn, again := c.answer(responses)
	if applied+withdrawn > 0 {
		return nil
	}
	if again > 0 {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "these inputResponses were applied already (each answer is applied once); retry with the answers to the latest input-required result"}
	}
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "inputResponses answer none of the pending input requests"}
}

// errContGone is the error for a requestState no replica can resume.
var errContGone = &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "requestState refers to a call the gateway no longer holds (it finished or expired); start the call again"}

// gatherWindow is how long a round waits after an upstream's request for
// another one. An upstream with several questions at once (a 2025-era SDK
// server fulfilling an input-required result of its own tool) sends them
// concurrently; the client gets them in one round, as they were asked,
// instead of one round each. Each round waits this long once, which is
// little next to a sampling or elicitation answer, and generous for requests
// sent together even on a loaded machine. gatherMax bounds the wait.
const (
	gatherWindow = 100 * time.Millisecond
	gatherMax    = time.Second
)

// nextRound waits for the upstream call's next event and turns it into what
// the client receives: an input-required result built by needInput, with
// every request the upstream sent meanwhile (see gatherWindow), or the final
// result.
//
// Only requests that still wait are put to the client: one the upstream
// withdrew (it cancelled it, or the call ended) is dropped, and a final
// result that arrives while a round gathers wins over the requests
// gathered, which the ended call can no longer use. (On a shared upstream
// connection a request the upstream sends on its own initiative, such as
// a server asking for roots once it is initialized, is taken for one of
// the calls in flight; it ends with that call.)
func nextRound[R any](g *Gateway, ctx context.Context, c *continuation, needInput func(mcp.InputRequestMap, string) R) (R, error) {
	var zero R
	for {
		ev, held := c.take()
		if !held {
			select {
			case ev = <-c.events:
			case <-ctx.Done():
				// The client gave up on this round; the upstream call is left to
				// finish or time out on its own and the continuation expires with it.
				return zero, ctx.Err()
			}
		}
		if ev.req == nil {
			g.conts.drop(c)
			res, ok := ev.res.(R)
			if !ok && ev.err == nil {
				return zero, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "mcpedge: continuation ended without a result"}
			}
			return res, ev.err
		}
		if !c.waiting(ev.inputID) {
			continue // withdrawn before the client saw it
		}
		reqs := mcp.InputRequestMap{}
		var refused []contEvent
		add := func(ev contEvent) {
			if ev.refused != nil {
				refused = append(refused, ev)
			} else {
				reqs[ev.inputID] = ev.req
			}
		}
		add(ev)
		final := false
		idle, end := time.NewTimer(gatherWindow), time.NewTimer(gatherMax)
	gather:
		for {
			select {
			case more := <-c.events:
				if more.req == nil {
					c.hold(more)
					final = true
					break gather
				}
				if c.waiting(more.inputID) {
					add(more)
				}
				idle.Reset(gatherWindow)
			case <-idle.C:
				break gather
			case <-end.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		idle.Stop()
		end.Stop()
		for _, r := range refused {
			c.refuse(r.inputID, r.refused)
		}
		if final {
			continue // the call has ended: its result, not questions it can no longer use
		}
		for id := range reqs {
			if !c.waiting(id) {
				delete(reqs, id)
			}
		}
		if len(reqs) > 0 {
			return needInput(reqs, continuationPrefix+c.id), nil
		}
		// Only requests the client cannot answer, or withdrawn ones: see
		// what the upstream does next.
	}
}

// runNewEra runs a multi-round-trip method (tools/call, prompts/get,
// resources/read) for a 2026-era client against an upstream that may send
// server-to-client requests mid-call. state and responses are the client's
// requestState and inputResponses; do performs the upstream call.
//
// A retry carrying a requestState of another replica's call is relayed to
// that replica (resumeElsewhere), which runs the call.
func runNewEra[R any](g *Gateway, ctx context.Context, u *upstream.Upstream, req mcp.Request, method, tool, state string, responses mcp.InputResponseMap, progressToken any,
	do func(context.Context, *mcp.ClientSession, string) (R, bool, error), needInput func(mcp.InputRequestMap, string) R) (R, error) {
	var zero R
	caller := callerOf(req)
	timeout, _ := g.edgeOf(u).timeoutFor(u, tool)
	if cont, ours := g.conts.get(state); ours {
		if cont == nil {
			if r := replicaOf(state); r != "" && r != g.hot.askTag {
				return resumeElsewhere[R](g, ctx, r, state, method, groupName(u), caller, responses, 2*timeout)
			}
			return zero, errContGone
		}
		if err := cont.resume(method, cont.up == u, caller, responses); err != nil {
			return zero, err
		}
		return nextRound(g, ctx, cont, needInput)
	}
	cont := g.conts.create(g.hot.askTag, caller, method, u, timeout)
	cont.next = func(ctx context.Context) (any, error) { return nextRound(g, ctx, cont, needInput) }
	if r, ok := req.(interface {
		ClientCapabilities() *mcp.ClientCapabilities
	}); ok {
		cont.caps = r.ClientCapabilities()
	}
	// The upstream call must outlive this HTTP request: the client comes back
	// with a new request carrying the answers.
	cctx, cs, c, err := g.begin(context.WithoutCancel(ctx), u, req, method, tool, progressToken, cont)
	if err != nil {
		g.conts.drop(cont)
		return zero, err
	}
	go func() {
		// Once the client has answered an input request, the call is no
		// longer repeated: a new attempt would ask again.
		res, isErr, err := attempt(g, cctx, c, cs, do, func() bool { return cont.seq.Load() == 0 })
		err = g.end(cctx, c, isErr, err)
		select {
		case cont.events <- contEvent{res: res, err: err}:
		case <-time.After(timeout):
			g.conts.drop(cont) // nobody came back for the result
		}
	}()
	return nextRound(g, ctx, cont, needInput)
}

// callerOf is the credential identity of req's caller ("" without one).
func callerOf(req mcp.Request) string {
	if req == nil {
		return ""
	}
	if ex := req.GetExtra(); ex != nil {
		return userIDOf(ex.TokenInfo)
	}
	return ""
}

// forward runs one request against upstream u for a client of the same era
// (or one the SDK translates for): begin, the call (repeated when that is
// safe, see attempt), end.
func forward[R any](g *Gateway, ctx context.Context, u *upstream.Upstream, req mcp.Request, method, tool string, progressToken any,
	do func(context.Context, *mcp.ClientSession, string) (R, bool, error)) (R, error) {
	ctx, cs, c, err := g.begin(ctx, u, req, method, tool, progressToken, nil)
	if err != nil {
		var zero R
		return zero, err
	}
	res, isErr, err := attempt(g, ctx, c, cs, do, nil)
	return res, g.end(ctx, c, isErr, err)
}

// relay forwards one multi-round-trip request (tools/call, prompts/get,
// resources/read), translating between protocol eras where the SDK does not.
func relay[R any](g *Gateway, ctx context.Context, u *upstream.Upstream, req mcp.Request, method, tool, state string, responses mcp.InputResponseMap, progressToken any,
	do func(context.Context, *mcp.ClientSession, string) (R, bool, error), needInput func(mcp.InputRequestMap, string) R) (R, error) {
	if translate(u, req) {
		return runNewEra(g, ctx, u, req, method, tool, state, responses, progressToken, do, needInput)
	}
	return forward(g, ctx, u, req, method, tool, progressToken, do)
}

// translate reports whether a request needs the gateway's own era
// translation: a stateless client calling an upstream that may send
// server-to-client requests.
func translate(u *upstream.Upstream, req mcp.Request) bool {
	ss, _ := req.GetSession().(*mcp.ServerSession)
	return newEra(ss) && !upstreamNewEra(u)
}

func inputFor(method string, p any) (mcp.InputRequest, error) {
	switch v := p.(type) {
	case *mcp.CreateMessageWithToolsParams:
		return v, nil
	case *mcp.ElicitParams:
		return v, nil
	case *mcp.ListRootsParams:
		if v == nil {
			v = &mcp.ListRootsParams{}
		}
		return v, nil
	}
	return nil, fmt.Errorf("mcpedge: cannot relay %s to a %s client", method, statelessVersion)
}

// statelessHop returns the _meta to send to upstream session cs for a client
// request whose own _meta was client: when cs speaks the stateless
// 2026-07-28 protocol, it carries per request what only the client can say,
// which the gateway would otherwise answer with its own hop-by-hop values:
//
//   - the client's capabilities, as far as the gateway relays them (roots,
//     sampling, elicitation), so that the upstream returns only input
//     requests the client can answer, and refuses (-32021) a call that
//     needs one it cannot;
//   - the client's log level, without which the upstream logs nothing: a
//     2026 client's own, a 2025 client's from its logging/setLevel.
//
// meta is the client's _meta without its hop-by-hop keys (withProgress); it
// is not modified.
func (g *Gateway) statelessHop(meta, client mcp.Meta, req mcp.Request, cs *mcp.ClientSession) mcp.Meta {
	if cs == nil {
		return meta
	}
	if ir := cs.InitializeResult(); ir == nil || ir.ProtocolVersion < statelessVersion {
		return meta
	}
	ss, _ := req.GetSession().(*mcp.ServerSession)
	caps := map[string]any{}
	var level any
	if newEra(ss) {
		if m, ok := client[mcp.MetaKeyClientCapabilities].(map[string]any); ok {
			for _, k := range relayedCapabilities {
				if v, ok := m[k]; ok {
					caps[k] = v
				}
			}
		}
		level = client[mcp.MetaKeyLogLevel]
	} else if ss != nil {
		if ip := ss.InitializeParams(); ip != nil && ip.Capabilities != nil {
			c := ip.Capabilities
			if c.RootsV2 != nil {
				caps["roots"] = c.RootsV2
			}
			if c.Sampling != nil {
				caps["sampling"] = c.Sampling
			}
			if c.Elicitation != nil {
				caps["elicitation"] = c.Elicitation
			}
		}
		if l, ok := g.clientLevels.Load(ss); ok {
			level = l
		}
	}
	out := make(mcp.Meta, len(meta)+2)
	for k, v := range meta {
		out[k] = v
	}
	out[mcp.MetaKeyClientCapabilities] = caps
	if level != nil && level != "" {
		out[mcp.MetaKeyLogLevel] = level
	}
	return out
}

// relayedCapabilities are the client capabilities whose requests the gateway
// relays between a client and a stateless upstream.
var relayedCapabilities = []string{"roots", "sampling", "elicitation"}
