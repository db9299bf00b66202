package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/mcpedge/mcpedge/internal/sessionstore"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Input-required calls of 2026-07-28 clients across replicas
// (docs/design/sessions.md, "Continuations").
//
// The upstream call of a continuation runs in the replica that started it,
// blocked on the question it put to the client; only that process can hand
// it the answer. The requestState names that replica (continuation.id), so
// a retry that the load balancer sends elsewhere is relayed to it over the
// mailbox (Redis): the replica that received it checks the request as any
// other (authentication, policy), sends the answers, the method, the
// upstream group and the caller, and returns what the owner's next round
// gives — another input-required result or the final one. The owner
// checks the caller and the request, applies each answer once, and runs
// the round. A replica that is gone is told at once by Redis (nobody
// subscribed to its name): the client gets an error saying the call must
// be started again.

// resumeRequest is a retry relayed to the replica running the call.
type resumeRequest struct {
	State     string          `json:"state"`
	Method    string          `json:"method"`
	Group     string          `json:"group"`
	Caller    string          `json:"caller"`
	Responses json.RawMessage `json:"responses"`
}

// resumeReply is the owner's answer: the round's result (the method's
// result type) or the JSON-RPC error the client gets.
type resumeReply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *jsonrpc.Error  `json:"error,omitempty"`
}

// SetContinuationRelay makes the retries of 2026-07-28 clients'
// input-required calls reach the replica running the call, whichever
// replica they land on, and makes this replica serve the retries relayed
// to it. Call it before serving; nil: a retry reaching another replica is
// refused with an error telling the client to start the call again.
func (g *Gateway) SetContinuationRelay(m sessionstore.Mailbox) {
	g.contRelay = m
	if m != nil {
		m.Serve(g.hot.askTag, g.serveResume)
	}
}

// resumeElsewhere relays a retry of a call replica runs, waiting at most
// wait for the round's result.
func resumeElsewhere[R any](g *Gateway, ctx context.Context, replica, state, method, group, caller string, responses mcp.InputResponseMap, wait time.Duration) (R, error) {
	var zero R
	if g.contRelay == nil {
		g.edgeMetrics.contRelays.WithLabelValues("unreachable").Inc()
		return zero, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "requestState refers to a call another replica runs, which this one cannot reach (no Redis is configured); start the call again"}
	}
	raw, err := json.Marshal(responses)
	if err != nil {
		return zero, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "inputResponses cannot be relayed: " + err.Error()}
	}
	body, err := json.Marshal(resumeRequest{State: state, Method: method, Group: group, Caller: caller, Responses: raw})
	if err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	out, err := g.contRelay.Send(ctx, replica, body)
	outcome := "relayed"
	defer func() { g.edgeMetrics.contRelays.WithLabelValues(outcome).Inc() }()
	switch {
	case errors.Is(err, sessionstore.ErrNoReplica):
		outcome = "gone"
		return zero, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "requestState refers to a call that ran on a replica that has stopped; start the call again"}
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		outcome = "failed"
		return zero, err
	case err != nil:
		outcome = "failed"
		g.log.Warn("a retry of an input-required call could not be relayed to the replica running it", "err", err)
		return zero, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the retry could not reach the replica running the call: " + err.Error()}
	}
	var rep resumeReply
	if err := json.Unmarshal(out, &rep); err != nil {
		return zero, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the replica running the call gave a reply that does not decode"}
	}
	if rep.Error != nil {
		return zero, rep.Error
	}
	var res R
	if err := json.Unmarshal(rep.Result, &res); err != nil {
		return zero, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the replica running the call gave a result that does not decode: " + err.Error()}
	}
	return res, nil
}

// serveResume runs a retry another replica relayed here: it is checked
// against the call as a local retry is (caller, method, upstream group),
// its answers applied once, and the next round's result returned.
func (g *Gateway) serveResume(ctx context.Context, body []byte) []byte {
	fail := func(err error) []byte {
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) {
			werr = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
		}
		b, _ := json.Marshal(resumeReply{Error: werr})
		return b
	}
	var rr resumeRequest
	if err := json.Unmarshal(body, &rr); err != nil {
		return fail(&jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "a relayed retry that does not decode"})
	}
	var responses mcp.InputResponseMap
	if len(rr.Responses) > 0 && string(rr.Responses) != "null" {
		if err := json.Unmarshal(rr.Responses, &responses); err != nil {
			return fail(&jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "inputResponses: " + err.Error()})
		}
	}
	cont, ours := g.conts.get(rr.State)
	if !ours || cont == nil || cont.next == nil {
		return fail(errContGone)
	}
	if err := cont.resume(rr.Method, groupName(cont.up) == rr.Group, rr.Caller, responses); err != nil {
		return fail(err)
	}
	res, err := cont.next(ctx)
	if err != nil {
		return fail(err)
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return fail(&jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the result cannot be relayed: " + err.Error()})
	}
	b, _ := json.Marshal(resumeReply{Result: raw})
	return b
}
