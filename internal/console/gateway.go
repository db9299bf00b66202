package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// gatewayTimeout bounds one view's calls through the gateway.
const gatewayTimeout = 30 * time.Second

// maxGatewayReply bounds what the console reads of one gateway answer.
const maxGatewayReply = 8 << 20

// inProcess is an http.RoundTripper that serves requests with the
// gateway's handler in this process, as if the browser's request had
// been sent to it: same address, same host, the session's credential.
type inProcess struct {
	h    http.Handler
	from *http.Request // the browser's request
	tok  string
}

func (t *inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.RemoteAddr = t.from.RemoteAddr
	req.Host = t.from.Host
	req.TLS = t.from.TLS
	for _, h := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded"} {
		if v := t.from.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	req.Header.Set("Authorization", "Bearer "+t.tok)
	req.Header.Del("Origin")
	if req.Body == nil {
		req.Body = http.NoBody
	}
	w := &bufferWriter{header: http.Header{}}
	t.h.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &http.Response{
		StatusCode: w.status, Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

// bufferWriter keeps a whole answer. Only answers that end are asked for
// (no standalone event stream; see mcpSession).
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferWriter) Header() http.Header { return w.header }
func (w *bufferWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *bufferWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len()+len(b) > maxGatewayReply {
		return 0, fmt.Errorf("console: the gateway's answer is larger than %d bytes", maxGatewayReply)
	}
	return w.body.Write(b)
}
func (w *bufferWriter) Flush() {}

func (c *Console) client(r *http.Request, v *viewer) *http.Client {
	c.mu.Lock()
	tok := v.s.token
	c.mu.Unlock()
	return &http.Client{Transport: &inProcess{h: c.o.Gateway(), from: r, tok: tok}, Timeout: gatewayTimeout}
}

// readiness is /readyz's body as the console shows it.
type readiness struct {
	Ready      bool `json:"ready"`
	Components []struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Required bool   `json:"required"`
		Error    string `json:"error"`
	} `json:"components"`
	Upstreams []map[string]any `json:"upstreams"`
	Queue     *queueHealth     `json:"queue"`
}

// queueHealth is /readyz's queue detail (operators only).
type queueHealth struct {
	Open                 bool    `json:"open"`
	Error                string  `json:"error"`
	Entries              int64   `json:"entries"`
	MaxEntries           int64   `json:"max_entries"`
	Bytes                int64   `json:"bytes"`
	MaxBytes             int64   `json:"max_bytes"`
	Waiting              int64   `json:"waiting"`
	OldestWaitingSeconds float64 `json:"oldest_waiting_seconds"`
	NearFull             bool    `json:"near_full"`
}

// readyz asks the gateway's /readyz as the signed-in person: operators get
// the details, others the verdict and the components' states.
func (c *Console) readyz(r *http.Request, v *viewer) (*readiness, error) {
	ctx, cancel := context.WithTimeout(r.Context(), gatewayTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Host+"/readyz", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client(r, v).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var rd readiness
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
		return nil, fmt.Errorf("reading /readyz (HTTP %d): %w", resp.StatusCode, err)
	}
	return &rd, nil
}

// mcpSession opens an MCP session with the gateway as the signed-in
// person; the caller closes it. The catalog it sees is the one the
// person's tenant, plan, virtual servers and rules allow.
func (c *Console) mcpSession(ctx context.Context, r *http.Request, v *viewer) (*mcp.ClientSession, error) {
	cl := mcp.NewClient(&mcp.Implementation{Name: "mcpedge-console", Version: "1"}, nil)
	tr := &mcp.StreamableClientTransport{
		Endpoint: "http://" + r.Host + "/mcp", HTTPClient: c.client(r, v),
		DisableStandaloneSSE: true, MaxRetries: -1,
	}
	return cl.Connect(ctx, tr, nil)
}

// apiError is the admin API's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// api calls the gateway's JSON API in process as the signed-in person
// (the views whose API is not admin.Ops: the queue, devices, lattices):
// the API's own authorisation applies. A JSON body is sent when body is
// not nil; a 2xx answer is decoded into out (when not nil); any other
// answer is returned as an *admin.Error with the API's status and
// message.
func (c *Console) api(r *http.Request, v *viewer, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(r.Context(), gatewayTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+r.Host+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client(r, v).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxGatewayReply))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var ae apiError
		msg := ""
		if json.Unmarshal(raw, &ae) == nil {
			msg = ae.Error.Message
		}
		if msg == "" {
			msg = fmt.Sprintf("the gateway answered %s", resp.Status)
		}
		return &admin.Error{Code: codeOf(resp.StatusCode), Message: msg}
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("reading %s %s: %w", method, path, err)
	}
	return nil
}

// codeOf maps an HTTP status back to the admin API's error code, so the
// page answers with the same status.
func codeOf(status int) string {
	switch status {
	case http.StatusBadRequest:
		return admin.CodeInvalidArgument
	case http.StatusUnauthorized:
		return admin.CodeUnauthenticated
	case http.StatusForbidden:
		return admin.CodeForbidden
	case http.StatusNotFound:
		return admin.CodeNotFound
	case http.StatusConflict:
		return admin.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return admin.CodeBodyTooLarge
	case http.StatusServiceUnavailable:
		return admin.CodeUnavailable
	}
	return admin.CodeInternal
}
