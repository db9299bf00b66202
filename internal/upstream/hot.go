package upstream

import (
	"bytes"
	"context"
	"net/http"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/tracing"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// CanPost reports whether messages for the client session cs may be
// posted to u directly ([Upstream.Post]) rather than through cs: u speaks
// Streamable HTTP and cs has been initialized.
func (u *Upstream) CanPost(cs *mcp.ClientSession) bool {
	return u.Config().Transport == config.TransportHTTP && cs != nil && cs.InitializeResult() != nil
}

// PipeOf returns the framed pipe of cs, a connection to a stdio child
// that has been initialized, or nil.
func (u *Upstream) PipeOf(cs *mcp.ClientSession) *Pipe {
	if cs == nil || cs.InitializeResult() == nil {
		return nil
	}
	p, _ := u.pipes.Load(cs)
	pp, _ := p.(*Pipe)
	return pp
}

var (
	hdrJSON   = []string{"application/json"}
	hdrAccept = []string{"application/json, text/event-stream"}
)

// Post sends one JSON-RPC message (body, already encoded) to u's endpoint in
// the upstream session of cs, as the SDK client would: the session id and
// protocol version cs negotiated, the upstream's configured headers and the
// gateway's request id; over the same pooled connections as cs. The caller
// reads and closes the response.
func (u *Upstream) Post(ctx context.Context, cs *mcp.ClientSession, body []byte) (*http.Response, error) {
	return u.PostCall(ctx, cs, body, "", "")
}

// PostCall is Post for a message of method that names name (a tool's or
// prompt's name, a resource's URI; "" for none): in a session of the
// 2026-07-28 protocol they go in the Mcp-Method and Mcp-Name headers, as
// that protocol asks. name must be printable ASCII (the caller takes
// another way for other names, which the protocol encodes).
func (u *Upstream) PostCall(ctx context.Context, cs *mcp.ClientSession, body []byte, method, name string) (*http.Response, error) {
	cfg := u.Config()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	h := req.Header
	h["Content-Type"] = hdrJSON
	h["Accept"] = hdrAccept
	if id := cs.ID(); id != "" {
		h["Mcp-Session-Id"] = []string{id}
	}
	v := cs.InitializeResult().ProtocolVersion
	h["Mcp-Protocol-Version"] = []string{v}
	if v >= "2026-07-28" && method != "" {
		h["Mcp-Method"] = []string{method}
		if name != "" {
			h["Mcp-Name"] = []string{name}
		}
	}
	for k, v := range cfg.Headers {
		h.Set(k, v)
	}
	if id := RequestID(ctx); id != "" {
		h.Set("X-Request-Id", id)
	}
	tracing.InjectHeader(ctx, h)
	return u.opts.HTTPClient.Do(req)
}
