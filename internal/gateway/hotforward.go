package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/rawwire"
	"github.com/mcpedge/mcpedge/internal/tracing"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
	"go.opentelemetry.io/otel/trace"
)

// hotWire is the hot path's state: ids for the requests it posts, and the
// reader of upstream answers with its buffers.
type hotWire struct {
	seq    atomic.Uint64
	reader *rawwire.Reader
	// askTag makes the ids of questions hot-path calls put to clients
	// unique across replicas (sessions.go relays answers between them).
	askTag string
}

// forwardToolWire is the forward stage for a hot-path tools/call: through
// the same breaker, timeouts, retries and routing as forwardTool, but each
// attempt on a Streamable HTTP target posts the client's params with the
// upstream's tool name spliced in and keeps the result's bytes. A target
// the gateway cannot post to (stdio, SSE, WASM) is sent the call through
// the SDK client, as forwardTool does.
func (g *Gateway) forwardToolWire(ctx context.Context, c *pipeline.Call, t *upstream.Upstream, req *mcp.CallToolRequest) (mcp.Result, error) {
	name := c.Item
	do := func(ctx context.Context, cs *mcp.ClientSession, token string) (*mcp.CallToolResult, bool, error) {
		if t.CanPost(cs) && g.hotPostable(c, cs) {
			res, isErr, err, fallback := postWire(g, ctx, c, t, cs, paramsEdit(name, token), hotOwner(t, req.Session), toolResultView,
				func(isErr bool) *mcp.CallToolResult { return &mcp.CallToolResult{IsError: isErr} })
			if !fallback {
				return res, isErr, err
			}
		}
		if p := t.PipeOf(cs); p != nil {
			return pipeWire(g, ctx, c, t, cs, p, paramsEdit(name, token), toolResultView,
				func(isErr bool) *mcp.CallToolResult { return &mcp.CallToolResult{IsError: isErr} })
		}
		hotAttempt(c.Wire.Client, false)
		params := &mcp.CallToolParams{Meta: g.statelessHop(withProgress(ctx, req.Params.Meta, token), req.Params.Meta, req, cs), Name: name}
		if len(req.Params.Arguments) > 0 {
			params.Arguments = req.Params.Arguments
		}
		res, err := cs.CallTool(ctx, params)
		c.Answered = err != nil && isUpstreamError(err)
		if res != nil {
			dropServerInfo(res.Meta)
		}
		return res, err == nil && res != nil && res.IsError, err
	}
	return forward(g, ctx, t, req, pipeline.MethodCallTool, name, req.Params.GetProgressToken(), do)
}

// forwardPromptWire is forwardToolWire for prompts/get.
func (g *Gateway) forwardPromptWire(ctx context.Context, c *pipeline.Call, t *upstream.Upstream, req *mcp.GetPromptRequest) (mcp.Result, error) {
	name := c.Item
	do := func(ctx context.Context, cs *mcp.ClientSession, token string) (*mcp.GetPromptResult, bool, error) {
		if t.CanPost(cs) && g.hotPostable(c, cs) {
			res, _, err, fallback := postWire(g, ctx, c, t, cs, paramsEdit(name, token), hotOwner(t, req.Session), promptResultView,
				func(bool) *mcp.GetPromptResult { return &mcp.GetPromptResult{} })
			if !fallback {
				return res, false, err
			}
		}
		if p := t.PipeOf(cs); p != nil {
			res, _, err := pipeWire(g, ctx, c, t, cs, p, paramsEdit(name, token), promptResultView,
				func(bool) *mcp.GetPromptResult { return &mcp.GetPromptResult{} })
			return res, false, err
		}
		hotAttempt(c.Wire.Client, false)
		params := *req.Params
		params.Name = name
		params.Meta = g.statelessHop(withProgress(ctx, req.Params.Meta, token), req.Params.Meta, req, cs)
		res, err := cs.GetPrompt(ctx, &params)
		c.Answered = err != nil && isUpstreamError(err)
		if res != nil {
			dropServerInfo(res.Meta)
		}
		return res, false, err
	}
	return forward(g, ctx, t, req, pipeline.MethodGetPrompt, "", req.Params.GetProgressToken(), do)
}

// forwardReadWire is forwardToolWire for resources/read: the client's
// params go on with the URI unchanged, and the result's bytes come back as
// they came when every content names its uri and mimeType. Otherwise the
// result is decoded and completed as the SDK server completes it (the
// read's URI, the listed MIME type), and a result without contents is an
// error, as there.
func (g *Gateway) forwardReadWire(ctx context.Context, c *pipeline.Call, t *upstream.Upstream, req *mcp.ReadResourceRequest) (mcp.Result, error) {
	uri := req.Params.URI
	own := spelled(t, uri)
	do := func(ctx context.Context, cs *mcp.ClientSession, token string) (*mcp.ReadResourceResult, bool, error) {
		// The client's bytes are sent as they are only when they name
		// the resource as the upstream spells it (uri.go).
		if own == uri && t.CanPost(cs) && g.hotPostable(c, cs) {
			res, _, err, fallback := postWire(g, ctx, c, t, cs, readParamsEdit(token), hotOwner(t, req.Session), readResultView,
				func(bool) *mcp.ReadResourceResult { return &mcp.ReadResourceResult{} })
			if !fallback {
				if err == nil && c.Wire.Result == nil {
					err = completeRead(res, uri, readMIME(t.Catalog(), uri))
				}
				return res, false, err
			}
		}
		if p := t.PipeOf(cs); p != nil && own == uri {
			res, _, err := pipeWire(g, ctx, c, t, cs, p, readParamsEdit(token), readResultView,
				func(bool) *mcp.ReadResourceResult { return &mcp.ReadResourceResult{} })
			if err == nil && c.Wire.Result == nil {
				err = completeRead(res, uri, readMIME(t.Catalog(), uri))
			}
			return res, false, err
		}
		hotAttempt(c.Wire.Client, false)
		params := *req.Params
		params.URI = own
		params.Meta = g.statelessHop(withProgress(ctx, req.Params.Meta, token), req.Params.Meta, req, cs)
		res, err := cs.ReadResource(ctx, &params)
		c.Answered = err != nil && isUpstreamError(err)
		if res != nil {
			dropServerInfo(res.Meta)
			if err == nil {
				err = completeRead(res, uri, readMIME(t.Catalog(), uri))
			}
		}
		return res, false, err
	}
	return forward(g, ctx, t, req, pipeline.MethodReadResource, "", req.Params.GetProgressToken(), do)
}

// completeRead completes a decoded read result as the SDK server does:
// every content without a uri gets the read's, without a mimeType the
// listed one; a result without contents is an error.
func completeRead(res *mcp.ReadResourceResult, uri, mime string) error {
	if res == nil || res.Contents == nil {
		return fmt.Errorf("reading resource %s: the upstream's result has no contents", uri)
	}
	for _, rc := range res.Contents {
		if rc == nil {
			return fmt.Errorf("reading resource %s: the upstream's result has a null content", uri)
		}
		if rc.URI == "" {
			rc.URI = uri
		}
		if rc.MIMEType == "" {
			rc.MIMEType = mime
		}
	}
	return nil
}

// listedMIME is the MIME type an upstream's catalog lists for uri: the
// resource's, else the first matching template's (the SDK server's order:
// resources first, then templates); ok is false when it lists neither.
func listedMIME(cat *upstream.Catalog, uri string) (mime string, ok bool) {
	if cat == nil {
		return "", false
	}
	for _, r := range cat.Resources {
		if r.URI == uri {
			return r.MIMEType, true
		}
	}
	for _, t := range cat.Templates {
		if tmpl, err := uritemplate.New(t.URITemplate); err == nil && tmpl.Regexp().MatchString(uri) {
			return t.MIMEType, true
		}
	}
	return "", false
}

// readMIME is listedMIME's MIME type alone.
func readMIME(cat *upstream.Catalog, uri string) string {
	m, _ := listedMIME(cat, uri)
	return m
}

// hotOwner is the client session that owns t's connection for the call:
// the client's own with per-session isolation, "" for the shared one.
func hotOwner(t *upstream.Upstream, ss *mcp.ServerSession) string {
	if t.Config().Isolation == config.IsolationSession && ss != nil {
		return ss.ID()
	}
	return ""
}

// postWire makes one attempt of a hot-path call on an HTTP target: the
// call's method, the client's params as edit makes them (the upstream's
// name for the item, the gateway's progress token). view reads the
// result without decoding it; summary makes the result the chain returns
// for its bytes. It reports fallback when the upstream no longer knows
// the session (HTTP 404: it did not run the call), so that the attempt
// goes through the SDK client, which renews or reports the session as it
// does for every call. To an upstream of the 2026-07-28 protocol (no
// session) the request goes with that protocol's headers (Mcp-Method,
// Mcp-Name) and _meta, and its input_required rounds are done here
// (hotRounds).
func postWire[R mcp.Result](g *Gateway, ctx context.Context, c *pipeline.Call, t *upstream.Upstream, cs *mcp.ClientSession, edit rawwire.Edit, owner string,
	view func([]byte) (resultView, error), summary func(isErr bool) R) (_ R, isErr bool, _ error, fallback bool) {
	send := func(ctx context.Context, id string, body []byte, _ bool) (rawwire.Answer, bool, error) {
		hotAttempt(c.Wire.Client, true)
		resp, err := t.PostCall(ctx, cs, body, c.Method, c.Item)
		if err != nil {
			if ctx.Err() != nil {
				g.hotCancelled(ctx, t, cs, id)
				return rawwire.Answer{}, false, ctx.Err() // not the HTTP client's error: it names the upstream's URL
			}
			return rawwire.Answer{}, false, plainTransportError{err}
		}
		defer drainClose(resp.Body)
		switch {
		case resp.StatusCode == http.StatusNotFound && cs.ID() != "":
			return rawwire.Answer{}, true, nil
		case resp.StatusCode != http.StatusOK:
			if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct == "application/json" {
				// A JSON-RPC error sent with an HTTP error status (the
				// 2026-07-28 protocol does): the upstream's own answer.
				a, err := g.hot.reader.ReadAnswer(resp, id, nil)
				if err == nil && a.Error != nil {
					return a, false, nil
				}
				a.Release()
				return rawwire.Answer{}, false, fmt.Errorf("upstream answered HTTP %d", resp.StatusCode)
			}
			snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return rawwire.Answer{}, false, fmt.Errorf("upstream answered HTTP %d: %s", resp.StatusCode, bytesTrim(snippet))
		}
		a, err := g.hot.reader.ReadAnswer(resp, id, func(msg []byte, env jsonguard.Envelope) {
			ss, _ := c.Request.GetSession().(*mcp.ServerSession)
			g.hotMessage(ctx, t, cs, owner, ss, c.Wire.Client, msg, env)
		})
		if err != nil {
			if ctx.Err() != nil {
				g.hotCancelled(ctx, t, cs, id)
				return rawwire.Answer{}, false, ctx.Err()
			}
			if errors.Is(err, rawwire.ErrNoAnswer) {
				// The stream broke before the answer: like a connection lost
				// mid-call, the upstream may have run it.
				return rawwire.Answer{}, false, fmt.Errorf("upstream %s: %w", t.Name(), err)
			}
			return rawwire.Answer{}, false, plainTransportError{err}
		}
		return a, false, nil
	}
	return hotRounds(g, ctx, c, t, cs, edit, view, summary, send)
}

// hotPostable reports whether postWire may send call c in upstream
// session cs: always in the session era; in the 2026-07-28 protocol when
// the name goes in the Mcp-Name header as it is (printable ASCII) and the
// tool declares no argument that goes in a header of its own
// (x-mcp-header), which the SDK's way sends.
func (g *Gateway) hotPostable(c *pipeline.Call, cs *mcp.ClientSession) bool {
	return cs.InitializeResult().ProtocolVersion < statelessVersion || g.eraPostable(c)
}

// eraPostable is hotPostable in the 2026-07-28 protocol.
func (g *Gateway) eraPostable(c *pipeline.Call) bool {
	for i := 0; i < len(c.Item); i++ {
		if c.Item[i] < 0x20 || c.Item[i] > 0x7e {
			return false
		}
	}
	if c.Method != pipeline.MethodCallTool {
		return true
	}
	schema, _ := argSchemas{g}.InputSchema(c)
	return !bytes.Contains(schema, []byte("x-mcp-header"))
}

// hotSend sends one round's request (id, body; first: the call's first
// round) and returns the upstream's answer, or fallback: the attempt is to
// go through the SDK client instead (nothing ran).
type hotSend func(ctx context.Context, id string, body []byte, first bool) (a rawwire.Answer, fallback bool, err error)

// hotRounds makes the request of a hot-path attempt (appendPipeRequest:
// edit, the trace context, and for an upstream session cs of the
// 2026-07-28 protocol that protocol's _meta, eraMeta), sends it, and makes
// the attempt's result of the answer (takeAnswer). An answer of that
// protocol that asks for input (input_required) is answered here, as the
// SDK server does it for a client of the session era: each input request
// is decoded, scanned by the guard (scanQuestion) and put to the call's
// client on the call's own stream (askRound); the answers go back with the
// upstream's requestState, at most maxInputRounds times.
func hotRounds[R mcp.Result](g *Gateway, ctx context.Context, c *pipeline.Call, t *upstream.Upstream, cs *mcp.ClientSession, edit rawwire.Edit,
	view func([]byte) (resultView, error), summary func(isErr bool) R, send hotSend) (_ R, isErr bool, _ error, fallback bool) {
	var zero R
	newEra := cs.InitializeResult().ProtocolVersion >= statelessVersion
	var extra, rounds []byte
	if newEra {
		var err error
		if extra, err = g.eraMeta(c, cs); err != nil {
			return zero, false, err, false
		}
	}
	sc := trace.SpanContextFromContext(ctx)
	for round := 0; ; round++ {
		id := "mcpedge-" + strconv.FormatUint(g.hot.seq.Add(1), 10)
		body, err := appendPipeRequest(make([]byte, 0, len(c.Wire.Params)+len(extra)+len(rounds)+180), id, c.Method, c.Wire.Params, edit, sc, extra, rounds)
		if err != nil {
			return zero, false, fmt.Errorf("building the request: %w", err), false
		}
		a, fb, err := send(ctx, id, body, round == 0)
		if fb || err != nil {
			return zero, false, err, fb
		}
		if newEra && a.Error == nil {
			asks, state, need, err := inputRequired(a.Result)
			if err != nil {
				a.Release()
				return zero, false, fmt.Errorf("upstream %s: %w", t.Name(), err), false
			}
			if need {
				if round+1 >= maxInputRounds {
					a.Release()
					return zero, false, fmt.Errorf("upstream %s asked for input %d times in one call; the gateway gives up", t.Name(), maxInputRounds), false
				}
				rounds, err = g.askRound(ctx, c, t, asks, state)
				a.Release() // asks pointed into it
				if err != nil {
					return zero, false, err, false
				}
				continue
			}
		}
		res, isErr, err := takeAnswer(c, t, a, view, summary)
		return res, isErr, err, false
	}
}

// takeAnswer makes the result of a hot-path attempt from the upstream's
// answer: its error, or its result's bytes kept for the client (view says
// whether they can go as they are; else they are decoded, as the SDK's
// way would have).
func takeAnswer[R mcp.Result](c *pipeline.Call, t *upstream.Upstream, a rawwire.Answer,
	view func([]byte) (resultView, error), summary func(isErr bool) R) (_ R, isErr bool, _ error) {
	var zero R
	if a.Error != nil {
		c.Answered = true
		return zero, false, &jsonrpc.Error{Code: a.Error.Code, Message: a.Error.Message, Data: a.Error.Data}
	}
	v, err := view(a.Result)
	if err != nil {
		a.Release()
		return zero, false, fmt.Errorf("upstream %s: %w", t.Name(), err)
	}
	if v.plain && v.strip {
		b, err := stripServerInfo(a.Result)
		a.Release()
		if err != nil {
			return zero, false, fmt.Errorf("upstream %s: %w", t.Name(), err)
		}
		a = rawwire.Answer{Result: b}
	}
	if !v.plain {
		// Odd but valid: a missing member the SDK's way fills in, or the
		// upstream's serverInfo annotation (dropped). Decode it, as the
		// SDK's way would have.
		res := summary(false)
		err := json.Unmarshal(a.Result, res)
		a.Release()
		if err != nil {
			return zero, false, fmt.Errorf("upstream %s: decoding its result: %w", t.Name(), err)
		}
		dropServerInfo(res.GetMeta())
		tr, ok := any(res).(*mcp.CallToolResult)
		return res, ok && tr.IsError, nil
	}
	sum := summary(v.isError)
	c.Wire.SetResult(a.Result, sum, a.Release)
	return sum, v.isError, nil
}

// pipeWire makes one attempt of a hot-path call on a stdio target: the
// request's bytes (as postWire makes them) written to the child's framed
// pipe, and the bytes of its response line taken back (upstream/pipe.go).
// The child's other messages during the call — progress, logs — go
// through the SDK client as for any call. A child of the 2026-07-28
// protocol is served as postWire serves such an HTTP upstream (hotRounds).
func pipeWire[R mcp.Result](g *Gateway, ctx context.Context, c *pipeline.Call, t *upstream.Upstream, cs *mcp.ClientSession, p *upstream.Pipe, edit rawwire.Edit,
	view func([]byte) (resultView, error), summary func(isErr bool) R) (_ R, isErr bool, _ error) {
	send := func(ctx context.Context, id string, body []byte, first bool) (rawwire.Answer, bool, error) {
		hotAttempt(c.Wire.Client, false) // progress comes through the SDK client
		line, sent, err := p.Call(ctx, id, append(body, '\n'))
		switch {
		case err == nil:
		case ctx.Err() != nil:
			if sent {
				g.pipeCancelled(ctx, t, p, id)
			}
			return rawwire.Answer{}, false, ctx.Err()
		case !sent && first:
			return rawwire.Answer{}, false, fmt.Errorf("%w: %w", upstream.ErrUnavailable, err) // it never reached the child
		default:
			return rawwire.Answer{}, false, fmt.Errorf("upstream %s: %w", t.Name(), err) // written: it may have run
		}
		a, err := g.hot.reader.ParseAnswer(line, id)
		if err != nil {
			return rawwire.Answer{}, false, fmt.Errorf("upstream %s: %w", t.Name(), err)
		}
		return a, false, nil
	}
	res, isErr, err, _ := hotRounds(g, ctx, c, t, cs, edit, view, summary, send)
	return res, isErr, err
}

// maxInputRounds bounds the input_required rounds of one hot call.
const maxInputRounds = 8

// inputRequired reads a 2026-07-28 result: whether it asks for input, and
// then its input requests (raw, by id) and request state.
func inputRequired(result []byte) (asks []byte, state string, need bool, err error) {
	var rt, rawState []byte
	if err := jsonguard.Members(result, func(m jsonguard.Member) bool {
		switch string(m.Key) {
		case "resultType":
			rt = m.Value
		case "inputRequests":
			asks = m.Value
		case "requestState":
			rawState = m.Value
		}
		return true
	}); err != nil {
		return nil, "", false, err
	}
	if string(rt) != `"input_required"` {
		return nil, "", false, nil
	}
	if len(asks) == 0 || asks[0] != '{' {
		return nil, "", false, errors.New("its input_required result has no inputRequests object")
	}
	if rawState != nil {
		var ok bool
		if state, ok = jsonguard.Unquote(rawState); !ok {
			return nil, "", false, errors.New("its requestState is not a string")
		}
	}
	return asks, state, true, nil
}

// askRound puts each of a 2026-07-28 upstream's input requests (asks, an
// object of {method, params} by id) to the call's client, as the SDK
// server would, and returns the members the next round sends: the
// answers as inputResponses, and state as requestState.
func (g *Gateway) askRound(ctx context.Context, c *pipeline.Call, t *upstream.Upstream, asks []byte, state string) ([]byte, error) {
	ss, _ := c.Request.GetSession().(*mcp.ServerSession)
	if c.Wire.Client == nil || ss == nil {
		return nil, errors.New("mcpedge: the upstream asks for input and the call has no client to ask")
	}
	invalid := fmt.Errorf("upstream %s: its inputRequests are not valid input requests", t.Name())
	out := append(make([]byte, 0, 256), `"inputResponses":{`...)
	first := true
	var fail error
	err := jsonguard.Members(asks, func(m jsonguard.Member) bool {
		var ask struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(m.Value, &ask); err != nil {
			fail = invalid
			return false
		}
		var p any
		switch ask.Method {
		case "elicitation/create":
			p = &mcp.ElicitParams{}
		case "sampling/createMessage":
			p = &mcp.CreateMessageWithToolsParams{}
		case "roots/list":
			p = &mcp.ListRootsParams{}
		default:
			fail = fmt.Errorf("upstream %s asks the client for %q, which the gateway does not relay", t.Name(), ask.Method)
			return false
		}
		if len(ask.Params) > 0 && string(ask.Params) != "null" && json.Unmarshal(ask.Params, p) != nil {
			fail = invalid
			return false
		}
		res, err := g.askClient(ctx, c.Wire.Client, t, ss, ask.Method, p)
		if err != nil {
			fail = fmt.Errorf("multi-round-trip: asking the client: %w", err)
			return false
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(append(append(out, m.RawKey...), ':'), res...)
		return true
	})
	switch {
	case fail != nil:
		return nil, fail
	case err != nil:
		return nil, invalid
	}
	out = append(out, '}')
	if state != "" {
		out = rawwire.AppendString(append(out, `,"requestState":`...), state)
	}
	return out, nil
}

// askClient puts one question of upstream t (method, its decoded params p)
// to a hot call's client (the call's stream), after the guard has scanned
// it (which may refuse it), as the SDK server would put it, and returns
// the client's raw result.
func (g *Gateway) askClient(ctx context.Context, client pipeline.Asker, t *upstream.Upstream, ss *mcp.ServerSession, method string, p any) ([]byte, error) {
	scanned, err := g.scanQuestion(ctx, t, method, p)
	if err != nil {
		return nil, err // the guard refused it (descriptions = "quarantine")
	}
	q, err := hotQuestion(ss, method, scanned)
	if err != nil {
		return nil, err
	}
	res, err := client.Ask(ctx, method, q)
	if err == nil && len(res) == 0 {
		err = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "mcpedge: the client answered " + method + " without a result"}
	}
	return res, err
}

// eraMeta is what a request to a 2026-07-28 upstream session cs carries in
// its _meta beside the client's own keys, as members (no braces): the
// protocol version, the gateway's client info, the client's capabilities
// as far as the gateway relays them and its log level (statelessHop).
func (g *Gateway) eraMeta(c *pipeline.Call, cs *mcp.ClientSession) ([]byte, error) {
	hop := g.statelessHop(nil, nil, c.Request, cs)
	hop[mcp.MetaKeyProtocolVersion] = cs.InitializeResult().ProtocolVersion
	hop[mcp.MetaKeyClientInfo] = upstream.ClientInfo()
	b, err := json.Marshal(hop)
	if err != nil {
		return nil, fmt.Errorf("encoding the request's _meta: %w", err)
	}
	return b[1 : len(b)-1], nil
}

// appendPipeRequest is the request pipeWire writes: rawwire.AppendRequest
// with edit, the trace context of sc in the params' _meta (traceEdit), meta
// (members, no braces; nil: none) added to that _meta, which is made if
// the params have none, and more (members; nil: none) added to the params;
// all on one line.
func appendPipeRequest(dst []byte, id, method string, params []byte, edit rawwire.Edit, sc trace.SpanContext, meta, more []byte) ([]byte, error) {
	edit = traceEdit(sc, edit)
	saw := false
	withMeta := func(key, val []byte) ([]byte, bool) {
		out, keep := []byte(nil), true
		if edit != nil {
			out, keep = edit(key, val)
		}
		if !keep || string(key) != "_meta" {
			return out, keep
		}
		if out == nil {
			out = val
		}
		if meta == nil {
			saw = true
			return out, true
		}
		if len(out) == 0 || out[0] != '{' {
			return nil, false // null: a _meta of meta alone, below
		}
		saw = true
		inner := bytes.TrimSpace(out[1:bytes.LastIndexByte(out, '}')])
		m := make([]byte, 0, len(inner)+len(meta)+3)
		m = append(append(m, '{'), inner...)
		if len(inner) > 0 {
			m = append(m, ',')
		}
		return append(append(m, meta...), '}'), true
	}
	tail := func(dst []byte, empty bool) []byte {
		if !saw && (meta != nil || sc.IsValid()) {
			if !empty {
				dst = append(dst, ',')
			}
			dst = append(dst, `"_meta":{`...)
			n := len(dst)
			if sc.IsValid() {
				dst = tracing.AppendMetaMembers(dst, sc)
			}
			if meta != nil {
				if len(dst) > n {
					dst = append(dst, ',')
				}
				dst = append(dst, meta...)
			}
			dst = append(dst, '}')
			empty = false
		}
		if more != nil {
			if !empty {
				dst = append(dst, ',')
			}
			dst = append(dst, more...)
		}
		return dst
	}
	start := len(dst)
	dst, err := rawwire.AppendRequestTail(dst, id, method, params, withMeta, tail)
	if err != nil {
		return nil, err
	}
	// One line, whatever whitespace the client's params (or its answers in
	// more) hold: a line-framed child would read each piece of a broken
	// line as a message of its own, and a piece can be a whole request.
	// In valid JSON a line break is only whitespace between tokens.
	for i := start; i < len(dst); i++ {
		if dst[i] == '\n' || dst[i] == '\r' {
			dst[i] = ' '
		}
	}
	return dst, nil
}

// stripServerInfo returns a copy of result without the serverInfo
// annotation in its _meta, and without the _meta if nothing else is left,
// as the SDK's way relays it.
func stripServerInfo(result []byte) ([]byte, error) {
	return rawwire.AppendObject(make([]byte, 0, len(result)), result, func(key, val []byte) ([]byte, bool) {
		if string(key) != "_meta" || len(val) == 0 || val[0] != '{' {
			return nil, true
		}
		n := 0
		m, err := rawwire.AppendObject(make([]byte, 0, len(val)), val, func(k, _ []byte) ([]byte, bool) {
			if string(k) == mcp.MetaKeyServerInfo {
				return nil, false
			}
			n++
			return nil, true
		})
		if err != nil || n == 0 {
			return nil, false
		}
		return m, true
	})
}

// pipeCancelled is hotCancelled for a stdio target.
func (g *Gateway) pipeCancelled(ctx context.Context, t *upstream.Upstream, p *upstream.Pipe, id string) {
	if err := p.Notify(cancelledNotice(ctx, id)); err != nil {
		g.log.Debug("telling the upstream a hot call was cancelled", "upstream", t.Name(), "err", err)
	}
}

// cancelledNotice is the notifications/cancelled for request id of a
// call whose context ended, with its newline.
func cancelledNotice(ctx context.Context, id string) []byte {
	reason := "the call's context ended: " + context.Cause(ctx).Error()
	msg := rawwire.AppendString(append(make([]byte, 0, 160), `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":`...), id)
	msg = append(rawwire.AppendString(append(msg, `,"reason":`...), reason), "}}\n"...)
	return msg
}

// hotCancelled tells the upstream that the request id of a hot call whose
// context ended (the client's notifications/cancelled, the call's
// timeout, the gateway stopping) is cancelled, as the SDK client does for
// its own requests. It is sent on its own, best effort.
func (g *Gateway) hotCancelled(ctx context.Context, t *upstream.Upstream, cs *mcp.ClientSession, id string) {
	if ctx.Err() == nil {
		return
	}
	msg := cancelledNotice(ctx, id)
	msg = msg[:len(msg)-1] // a POST's body needs no newline
	go func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		resp, err := t.PostCall(actx, cs, msg, "notifications/cancelled", "")
		if err != nil {
			g.log.Debug("telling the upstream a hot call was cancelled", "upstream", t.Name(), "err", err)
			return
		}
		drainClose(resp.Body)
	}()
}

// plainTransportError drops the internal words net/http puts before some
// transport errors ("readLoopPeekFailLocked: "), which tell a user
// nothing, keeping the error's chain for errors.Is and errors.As.
type plainTransportError struct{ err error }

func (e plainTransportError) Error() string {
	return strings.Replace(e.err.Error(), "readLoopPeekFailLocked: ", "", 1)
}

func (e plainTransportError) Unwrap() error { return e.err }

// paramsEdit is how a hot call's params go on: the upstream's name for the
// item, the gateway's progress token for the client's, and nothing but
// name, arguments and _meta — the hot path only takes calls whose params
// are those (hotParams), and sends nothing else, as the SDK's way sends
// only what it knows.
func paramsEdit(name, token string) rawwire.Edit {
	quotedName := rawwire.AppendString(nil, name)
	return func(key, val []byte) ([]byte, bool) {
		switch string(key) {
		case "name":
			return quotedName, true
		case "arguments":
			return nil, true
		case "_meta":
			if token == "" || len(val) == 0 || val[0] != '{' {
				return nil, true
			}
			tok := rawwire.AppendString(nil, token)
			out, err := rawwire.AppendObject(nil, val, func(k, _ []byte) ([]byte, bool) {
				if string(k) == "progressToken" {
					return tok, true
				}
				return nil, true
			})
			if err != nil {
				return nil, false
			}
			return out, true
		}
		return nil, false
	}
}

// traceEdit adds to edit, a hot call's params edit, the trace context of
// sc in the params' _meta (internal/tracing.SpliceMeta): the gateway's
// upstream-call span, or the client's context passed on when tracing is
// off, so that the upstream's spans join the client's trace. A _meta that
// already carries sc (a client's passed on as it is), or is not an object,
// is left alone; params without a _meta get one from appendPipeRequest.
// With sc not valid (no trace context at all) edit is returned as it is.
func traceEdit(sc trace.SpanContext, edit rawwire.Edit) rawwire.Edit {
	if !sc.IsValid() {
		return edit
	}
	return func(key, val []byte) ([]byte, bool) {
		v, keep := []byte(nil), true
		if edit != nil {
			v, keep = edit(key, val)
		}
		if !keep || string(key) != "_meta" {
			return v, keep
		}
		if v == nil {
			v = val
		}
		if len(v) == 0 || v[0] != '{' || tracing.MetaCarries(v, sc) {
			return v, true // not an object: goes on as the client sent it
		}
		out, err := tracing.SpliceMeta(nil, v, sc, nil)
		if err != nil {
			return nil, false
		}
		return out, true
	}
}

// readParamsEdit is paramsEdit for resources/read: the URI unchanged,
// the gateway's progress token for the client's, nothing else.
func readParamsEdit(token string) rawwire.Edit {
	meta := paramsEdit("", token)
	return func(key, val []byte) ([]byte, bool) {
		switch string(key) {
		case "uri":
			return nil, true
		case "_meta":
			return meta(key, val)
		}
		return nil, false
	}
}

// resultView is what the hot path reads of a tools/call result without
// decoding it.
type resultView struct {
	isError bool
	plain   bool // the list (content, messages, contents) is an array
	// strip: the result's _meta carries the upstream's serverInfo, which
	// goes (stripServerInfo).
	strip bool
}

// toolResultView reads a tools/call result's top-level members: it is
// plain when its content is an array.
func toolResultView(b []byte) (resultView, error) { return readResult(b, "content", "tools/call") }

// promptResultView reads a prompts/get result's top-level members: it is
// plain when its messages are an array.
func promptResultView(b []byte) (resultView, error) { return readResult(b, "messages", "prompts/get") }

// readResultView reads a resources/read result: plain when its contents
// are an array of objects that each name their uri and mimeType (else the
// SDK server would fill them in, and so does forwardReadWire, decoding).
func readResultView(b []byte) (resultView, error) {
	v, err := readResult(b, "contents", "resources/read")
	if err != nil || !v.plain {
		return v, err
	}
	contents := jsonguard.Lookup(b, "contents")
	var bad error
	err = jsonguard.Elements(contents, func(el []byte) bool {
		if len(el) == 0 || el[0] != '{' {
			v.plain = false
			return false
		}
		uri, mime := jsonguard.Lookup(el, "uri"), jsonguard.Lookup(el, "mimeType")
		if len(uri) < 3 || uri[0] != '"' || len(mime) < 3 || mime[0] != '"' {
			v.plain = false // missing, empty or not a string: decode and complete
			return false
		}
		return true
	})
	if err != nil {
		bad = err
	}
	return v, bad
}

// readResult reads a result's top-level members: plain when the member
// list is an array. A serverInfo annotation in its _meta (which the
// gateway drops, as the SDK's way does) sets strip. A result that is not
// an object, or carries the 2026-07-28 protocol's multi-round-trip members
// (which a session-era client cannot be sent; pipeWire does the rounds
// before), is an error; resultType "complete" goes on, as on the SDK's way.
func readResult(b []byte, list, method string) (resultView, error) {
	var v resultView
	hasContent, serverInfo := false, false
	var bad string
	if len(b) == 0 || b[0] != '{' {
		return v, fmt.Errorf("its %s result is not an object", method)
	}
	err := jsonguard.Members(b, func(m jsonguard.Member) bool {
		switch string(m.Key) {
		case list:
			hasContent = m.Value[0] == '['
		case "isError":
			switch string(m.Value) {
			case "true":
				v.isError = true
			case "false", "null":
			default:
				if list == "content" {
					// Relayed, a client could read it either way; the
					// SDK's way refuses it, and so does this one.
					bad = "isError"
				}
			}
		case "resultType":
			if string(m.Value) == `"complete"` {
				break // a 2026-07-28 upstream's final round, relayed as the SDK's way relays it
			}
			bad = string(m.Key)
		case "inputRequests", "requestState":
			bad = string(m.Key)
		case "_meta":
			if m.Value[0] == '{' {
				_ = jsonguard.Members(m.Value, func(mm jsonguard.Member) bool {
					if string(mm.Key) == mcp.MetaKeyServerInfo {
						serverInfo = true
					}
					return !serverInfo
				})
			}
		}
		return bad == ""
	})
	if err != nil {
		return v, err
	}
	if bad == "isError" {
		return v, fmt.Errorf("its %s result has an isError that is not a boolean", method)
	}
	if bad != "" {
		return v, fmt.Errorf("its %s result carries %q, a member of the %s protocol, to a session of an earlier one", method, bad, statelessVersion)
	}
	v.plain, v.strip = hasContent, serverInfo
	return v, nil
}

// hotMessage handles a message an upstream sent on a hot-path call's
// stream before its answer, as the SDK client's handlers would
// (upstream/sink.go): notifications go to the sink; requests go to the
// call's own client on the call's own stream (client, which knows exactly
// whose call it is), or through the sink when there is no such stream.
func (g *Gateway) hotMessage(ctx context.Context, t *upstream.Upstream, cs *mcp.ClientSession, owner string, ss *mcp.ServerSession, client pipeline.Asker, msg []byte, env jsonguard.Envelope) {
	s := (*sink)(g)
	params := func(dst any) bool {
		p := jsonguard.Lookup(msg, "params")
		if len(p) == 0 || string(p) == "null" {
			return false // the spec requires params of each of these
		}
		return json.Unmarshal(p, dst) == nil
	}
	if env.ID == nil {
		switch env.Method {
		case "notifications/message":
			var p mcp.LoggingMessageParams
			if params(&p) {
				// The calling client gets it on the call's own stream
				// (sessions.go, logOnCall); every other one as before.
				s.logExcept(ctx, t, owner, &p, g.logOnCall(client, ss, &p))
			}
		case "notifications/progress":
			var p mcp.ProgressNotificationParams
			if params(&p) {
				s.Progress(ctx, t, &p)
			}
		case "notifications/resources/updated":
			var p mcp.ResourceUpdatedNotificationParams
			if params(&p) {
				s.ResourceUpdated(ctx, t, &p)
			}
		case "notifications/elicitation/complete":
			var p mcp.ElicitationCompleteParams
			if params(&p) {
				s.ElicitationComplete(ctx, t, owner, &p)
			}
		case "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed":
			t.Refresh()
		}
		return
	}
	var (
		res any
		raw []byte
		err error
	)
	switch env.Method {
	case "roots/list", "sampling/createMessage", "elicitation/create":
		if client == nil || ss == nil {
			break
		}
		// Decoded and put as the SDK server would put it (hotQuestion):
		// a strict client refuses a question whose params the SDK
		// server would have completed.
		var p any
		switch env.Method {
		case "roots/list":
			var rp *mcp.ListRootsParams
			if q := (&mcp.ListRootsParams{}); params(q) {
				rp = q
			}
			p = rp
		case "sampling/createMessage":
			p = &mcp.CreateMessageWithToolsParams{}
			if !params(p) {
				err = &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "sampling/createMessage without valid params"}
			}
		case "elicitation/create":
			p = &mcp.ElicitParams{}
			if !params(p) {
				err = &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "elicitation/create without valid params"}
			}
		}
		if err != nil {
			break
		}
		raw, err = g.askClient(ctx, client, t, ss, env.Method, p)
	}
	switch {
	case raw != nil || err != nil:
	case env.Method == "ping":
		res = struct{}{}
	case env.Method == "roots/list":
		var p mcp.ListRootsParams
		_ = params(&p)
		res, err = s.ListRoots(ctx, t, owner, &p)
	case env.Method == "sampling/createMessage":
		var p mcp.CreateMessageWithToolsParams
		if !params(&p) {
			err = &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "sampling/createMessage without valid params"}
			break
		}
		res, err = s.CreateMessage(ctx, t, owner, &p)
	case env.Method == "elicitation/create":
		var p mcp.ElicitParams
		if !params(&p) {
			err = &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "elicitation/create without valid params"}
			break
		}
		res, err = s.Elicit(ctx, t, owner, &p)
	default:
		err = &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found: " + env.Method}
	}
	var out []byte
	if err != nil {
		code, data := int64(mcpwire.CodeInternalError), []byte(nil)
		var werr *jsonrpc.Error
		if errors.As(err, &werr) {
			code, data = werr.Code, werr.Data
		}
		out = rawwire.AppendError(nil, env.ID, code, err.Error(), data)
	} else if raw != nil {
		out = append(append(rawwire.AppendResult(nil, env.ID), raw...), rawwire.ResultTail...)
	} else {
		b, merr := json.Marshal(res)
		if merr != nil {
			out = rawwire.AppendError(nil, env.ID, mcpwire.CodeInternalError, merr.Error(), nil)
		} else {
			out = append(append(rawwire.AppendResult(nil, env.ID), b...), rawwire.ResultTail...)
		}
	}
	// The answer is its own POST (202 Accepted), sent while this stream
	// is still being read: the upstream waits for it before answering.
	go func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		resp, err := t.Post(actx, cs, out)
		if err != nil {
			g.log.Warn("answering an upstream's request on the hot path", "upstream", t.Name(), "method", env.Method, "err", err)
			return
		}
		drainClose(resp.Body)
	}()
}

// drainClose reads a little of what is left of a body, so that its
// connection can be reused, and closes it.
func drainClose(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 4<<10)
	_ = b.Close()
}

func bytesTrim(b []byte) string {
	s := string(b)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
