package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/rawwire"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// hotStream is a hot-path call's answer to its client: one JSON body, or —
// once the upstream asks the client something during the call — an event
// stream that carries the questions and then the answer, as the SDK's
// handler would have sent them on the call's own POST.
type hotStream struct {
	g  *Gateway
	e  *clientEntry
	w  http.ResponseWriter
	mu sync.Mutex
	// sse is set once the answer became an event stream; done once the
	// call's answer was written (nothing may follow it).
	sse, done bool
	// posted is set while the call's current attempt was posted by the
	// hot path itself: its progress is read in order from the POST and
	// relayed at once, so the call's end need not wait for stragglers
	// (progressTable.settle). An attempt through the SDK client clears it.
	posted atomic.Bool
}

// hotAttempt records how the call's current attempt is sent: posted by the
// hot path, or through the SDK client. client may be another Asker (or
// nil): then there is nothing to record.
func hotAttempt(client pipeline.Asker, posted bool) {
	if s, ok := client.(*hotStream); ok {
		s.posted.Store(posted)
	}
}

// hotStreamKey carries a hot-path call's stream in the context the chain
// runs with, so that the call made for it (begin) knows its client's side.
type hotStreamKey struct{}

// notify sends a notification on the call's stream (progress of the call).
func (s *hotStream) notify(method string, params any) {
	b, err := json.Marshal(params)
	if err != nil {
		return
	}
	msg := rawwire.AppendString(append(make([]byte, 0, len(b)+64), `{"jsonrpc":"2.0","method":`...), method)
	msg = append(append(append(msg, `,"params":`...), b...), '}')
	_ = s.event(msg)
}

// viaHotStream asks a hot-path call's client, on the call's stream, what
// the upstream asked on another stream of its own (the sink's way).
func viaHotStream[R mcp.InputResponse](ctx context.Context, s *hotStream, method string, p any) (R, error) {
	var zero R
	params, err := hotQuestion(s.e.ss, method, p)
	if err != nil {
		return zero, err
	}
	raw, err := s.Ask(ctx, method, params)
	if err != nil {
		return zero, err
	}
	var res R
	if err := json.Unmarshal(raw, &res); err != nil {
		return zero, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "mcpedge: the client's answer to " + method + ": " + err.Error()}
	}
	return res, nil
}

// hotQuestion encodes the params of a question for the client of session
// ss as the SDK server completes them before sending (its Elicit,
// CreateMessageWithTools, ListRoots): an elicitation's mode inferred and
// checked against the client's capabilities, sampling messages never
// null, roots params absent when the upstream sent none (never null).
func hotQuestion(ss *mcp.ServerSession, method string, p any) ([]byte, error) {
	switch x := p.(type) {
	case *mcp.ElicitParams:
		if x == nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "elicitation/create: params cannot be nil"}
		}
		q := *x
		if q.Mode == "" {
			q.Mode = "form"
			if q.URL != "" || q.ElicitationID != "" {
				q.Mode = "url"
			}
		}
		ip := ss.InitializeParams()
		if ip == nil || ip.Capabilities == nil || ip.Capabilities.Elicitation == nil {
			return nil, errors.New("client does not support elicitation")
		}
		caps := ip.Capabilities.Elicitation
		if q.Mode == "form" && caps.Form == nil && caps.URL != nil {
			return nil, errors.New(`client does not support "form" elicitation`)
		}
		if q.Mode == "url" && caps.URL == nil {
			return nil, errors.New(`client does not support "url" elicitation`)
		}
		p = &q
	case *mcp.CreateMessageWithToolsParams:
		if x == nil {
			x = &mcp.CreateMessageWithToolsParams{}
		}
		q := *x
		if q.Messages == nil {
			q.Messages = []*mcp.SamplingMessageV2{}
		}
		p = &q
	case *mcp.ListRootsParams:
		if x == nil {
			return nil, nil // no params, as the SDK sends none
		}
	}
	return json.Marshal(p)
}

// Ask implements pipeline.Asker: it sends the request on the call's stream
// (turning the answer into an event stream) and waits for the client's
// response, which the client POSTs in its session (hotAnswer).
func (s *hotStream) Ask(ctx context.Context, method string, params []byte) ([]byte, error) {
	id := askPrefix + s.g.hot.askTag + "-" + strconv.FormatUint(s.g.hot.seq.Add(1), 10)
	ch := make(chan []byte, 1)
	key := "s" + id
	s.e.mu.Lock()
	if s.e.asks == nil {
		s.e.asks = map[string]chan []byte{}
	}
	s.e.asks[key] = ch
	s.e.mu.Unlock()
	defer func() {
		s.e.mu.Lock()
		delete(s.e.asks, key)
		s.e.mu.Unlock()
	}()
	msg := rawwire.AppendString(append(make([]byte, 0, len(params)+96), `{"jsonrpc":"2.0","id":`...), id)
	msg = rawwire.AppendString(append(msg, `,"method":`...), method)
	if len(params) > 0 {
		msg = append(append(msg, `,"params":`...), params...)
	}
	msg = append(msg, '}')
	if err := s.event(msg); err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "mcpedge: could not send " + method + " to the client: " + err.Error()}
	}
	select {
	case ans := <-ch:
		result, e, err := rawwire.SplitResponse(ans)
		if err != nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "mcpedge: the client's answer to " + method + ": " + err.Error()}
		}
		if e != nil {
			return nil, &jsonrpc.Error{Code: e.Code, Message: e.Message, Data: e.Data}
		}
		return result, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// event writes one message as an event, turning the answer into an event
// stream first if it is not one yet.
func (s *hotStream) event(msg []byte) error {
	return s.write(msg, false)
}

// write writes msg as an event; last marks the call's answer, after which
// nothing is written.
func (s *hotStream) write(msg []byte, last bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errors.New("the call was already answered")
	}
	s.done = last
	if !s.sse {
		h := s.w.Header()
		h["Content-Type"] = hdrEventStream
		h["Cache-Control"] = hdrNoCache
		s.w.WriteHeader(http.StatusOK)
		s.sse = true
	}
	if _, err := s.w.Write(rawwire.AppendEvent(nil, msg)); err != nil {
		return err
	}
	return http.NewResponseController(s.w).Flush()
}

var (
	hdrEventStream = []string{"text/event-stream"}
	hdrNoCache     = []string{"no-cache"}
)

// hotAnswer delivers a client's POSTed response to the hot-path call that
// asked for it, and reports whether one did (the SDK's handler gets every
// other response).
func (g *Gateway) hotAnswer(r *http.Request, body []byte, env jsonguard.Envelope) bool {
	e := g.clients.get(r.Header.Get("Mcp-Session-Id"))
	if e == nil || env.ID == nil {
		return false
	}
	if g.security != nil && userIDOf(tokenInfoOfRequest(r)) != e.userID {
		return false // not the session's caller: the SDK's handler refuses it
	}
	e.mu.Lock()
	ch, ok := e.asks[idKey(env.ID)]
	if ok {
		delete(e.asks, idKey(env.ID)) // one answer per question
	}
	e.mu.Unlock()
	if !ok {
		return false
	}
	ch <- body
	return true
}
