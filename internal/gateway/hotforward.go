package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
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
		if t.CanPost(cs) && cs.InitializeResult().ProtocolVersion < statelessVersion {
			res, isErr, err, fallback := postWire(g, ctx, c, t, cs, paramsEdit(name, token), hotOwner(t, req.Session), toolResultView,
				func(isErr bool) *mcp.CallToolResult { return &mcp.CallToolResult{IsError: isErr} })
			if !fallback {
				return res, isErr, err
			}
		}
		hotAttempt(c.Wire.Client, false)
		params := &mcp.CallToolParams{Meta: withProgress(req.Params.Meta, token), Name: name}
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
		if t.CanPost(cs) && cs.InitializeResult().ProtocolVersion < statelessVersion {
			res, _, err, fallback := postWire(g, ctx, c, t, cs, paramsEdit(name, token), hotOwner(t, req.Session), promptResultView,
				func(bool) *mcp.GetPromptResult { return &mcp.GetPromptResult{} })
			if !fallback {
				return res, false, err
			}
		}
		hotAttempt(c.Wire.Client, false)
		params := *req.Params
		params.Name = name
		params.Meta = withProgress(req.Params.Meta, token)
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
		// The client's bytes are posted as they are only when they name
		// the resource as the upstream spells it (uri.go).
		if own == uri && t.CanPost(cs) && cs.InitializeResult().ProtocolVersion < statelessVersion {
			res, _, err, fallback := postWire(g, ctx, c, t, cs, readParamsEdit(token), hotOwner(t, req.Session), readResultView,
				func(bool) *mcp.ReadResourceResult { return &mcp.ReadResourceResult{} })
			if !fallback {
				if err == nil && c.Wire.Result == nil {
					err = completeRead(res, uri, readMIME(t.Catalog(), uri))
				}
				return res, false, err
			}
		}
		hotAttempt(c.Wire.Client, false)
		params := *req.Params
		params.URI = own
		params.Meta = withProgress(req.Params.Meta, token)
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
// does for every call.
func postWire[R mcp.Result](g *Gateway, ctx context.Context, c *pipeline.Call, t *upstream.Upstream, cs *mcp.ClientSession, edit rawwire.Edit, owner string,
	view func([]byte) (resultView, error), summary func(isErr bool) R) (_ R, isErr bool, _ error, fallback bool) {
	var zero R
	id := "mcpedge-" + strconv.FormatUint(g.hot.seq.Add(1), 10)
	body, err := rawwire.AppendRequest(make([]byte, 0, len(c.Wire.Params)+96), id, c.Method, c.Wire.Params, edit)
	if err != nil {
		return zero, false, fmt.Errorf("building the request: %w", err), false
	}
	hotAttempt(c.Wire.Client, true)
	resp, err := t.Post(ctx, cs, body)
	if err != nil {
		if ctx.Err() != nil {
			g.hotCancelled(ctx, t, cs, id)
			return zero, false, ctx.Err(), false // not the HTTP client's error: it names the upstream's URL
		}
		return zero, false, plainTransportError{err}, false
	}
	defer drainClose(resp.Body)
	switch {
	case resp.StatusCode == http.StatusNotFound && cs.ID() != "":
		return zero, false, nil, true
	case resp.StatusCode != http.StatusOK:
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return zero, false, fmt.Errorf("upstream answered HTTP %d: %s", resp.StatusCode, bytesTrim(snippet)), false
	}
	a, err := g.hot.reader.ReadAnswer(resp, id, func(msg []byte, env jsonguard.Envelope) {
		ss, _ := c.Request.GetSession().(*mcp.ServerSession)
		g.hotMessage(ctx, t, cs, owner, ss, c.Wire.Client, msg, env)
	})
	if err != nil {
		if ctx.Err() != nil {
			g.hotCancelled(ctx, t, cs, id)
			return zero, false, ctx.Err(), false
		}
		if errors.Is(err, rawwire.ErrNoAnswer) {
			// The stream broke before the answer: like a connection lost
			// mid-call, the upstream may have run it.
			return zero, false, fmt.Errorf("upstream %s: %w", t.Name(), err), false
		}
		return zero, false, plainTransportError{err}, false
	}
	if a.Error != nil {
		c.Answered = true
		return zero, false, &jsonrpc.Error{Code: a.Error.Code, Message: a.Error.Message, Data: a.Error.Data}, false
	}
	v, err := view(a.Result)
	if err != nil {
		a.Release()
		return zero, false, fmt.Errorf("upstream %s: %w", t.Name(), err), false
	}
	if !v.plain {
		// Odd but valid: a missing member the SDK's way fills in, or the
		// upstream's serverInfo annotation (dropped). Decode it, as the
		// SDK's way would have.
		res := summary(false)
		err := json.Unmarshal(a.Result, res)
		a.Release()
		if err != nil {
			return zero, false, fmt.Errorf("upstream %s: decoding its result: %w", t.Name(), err), false
		}
		dropServerInfo(res.GetMeta())
		tr, ok := any(res).(*mcp.CallToolResult)
		return res, ok && tr.IsError, nil, false
	}
	sum := summary(v.isError)
	c.Wire.SetResult(a.Result, sum, a.Release)
	return sum, v.isError, nil, false
}

// hotCancelled tells the upstream that the request id of a hot call whose
// context ended (the client's notifications/cancelled, the call's
// timeout, the gateway stopping) is cancelled, as the SDK client does for
// its own requests. It is sent on its own, best effort.
func (g *Gateway) hotCancelled(ctx context.Context, t *upstream.Upstream, cs *mcp.ClientSession, id string) {
	if ctx.Err() == nil {
		return
	}
	reason := "the call's context ended: " + context.Cause(ctx).Error()
	msg := rawwire.AppendString(append(make([]byte, 0, 160), `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":`...), id)
	msg = append(rawwire.AppendString(append(msg, `,"reason":`...), reason), "}}"...)
	go func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		resp, err := t.Post(actx, cs, msg)
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
	plain   bool // content is an array and nothing needs changing
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
// list is an array and there is no serverInfo annotation to drop. A result
// that is not an object, or carries the 2026-07-28 protocol's
// multi-round-trip members (which a session-era client cannot be sent),
// is an error.
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
		case "inputRequests", "resultType", "requestState":
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
	v.plain = hasContent && !serverInfo
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
		if p, err = g.scanQuestion(ctx, t, env.Method, p); err != nil {
			break
		}
		var q []byte
		if q, err = hotQuestion(ss, env.Method, p); err != nil {
			break
		}
		raw, err = client.Ask(ctx, env.Method, q)
		if raw == nil && err == nil {
			err = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "mcpedge: the client answered " + env.Method + " without a result"}
		}
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
