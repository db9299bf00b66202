package gateway

import (
	"fmt"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// singleHeaders may occur at most once in a request: each decides who is
// calling or which session and protocol revision a message belongs to,
// and a second copy is read by one component (Header.Get takes the first)
// and possibly another one by a proxy in front or an upstream.
var singleHeaders = []string{"Authorization", "Mcp-Session-Id", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name", "Origin"}

// edgeBody tracks whether a request body was read to its end, so that a
// response to a request whose body was left unread closes the connection
// instead of waiting for that body (net/http discards up to 256 KiB of it
// before it sends the response, on a connection without a deadline
// otherwise).
type edgeBody struct {
	io.ReadCloser
	eof atomic.Bool
}

func (b *edgeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

// edgeWriter adds Connection: close to a response whose request body was
// not read to its end.
type edgeWriter struct {
	http.ResponseWriter
	body *edgeBody
	done bool
}

func (w *edgeWriter) WriteHeader(code int) {
	if !w.done {
		w.done = true
		if w.body != nil && !w.body.eof.Load() {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *edgeWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *edgeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *edgeWriter) Flush() {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// edge applies the checks every request passes, on every endpoint, before
// it is routed (docs/security.md, "Request-path hardening"):
//
//   - framing the server could not refuse itself (FramingListener marks it)
//     is refused, and the connection closed;
//   - Authorization, Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method,
//     Mcp-Name and Origin may occur once;
//   - Host, when the gateway listens on loopback only, names a loopback
//     host (DNS rebinding), and Origin is loopback or allowed;
//   - a body must arrive within BodyReadTimeout of the headers, whether or
//     not anything reads it: the read deadline is set here, before
//     authentication, so an unauthenticated client holds a connection no
//     longer than an authenticated one.
func (g *Gateway) edge(o HTTPOptions, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, a := range o.AllowedOrigins {
		allowed[strings.TrimRight(strings.ToLower(a), "/")] = true
	}
	hosts := map[string]bool{}
	for _, h := range o.AllowedHosts {
		hosts[strings.TrimSuffix(strings.ToLower(h), ".")] = true
	}
	for o := range allowed {
		if u, err := url.Parse(o); err == nil && u.Hostname() != "" {
			hosts[u.Hostname()] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body *edgeBody
		if r.Body != nil && r.Body != http.NoBody {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(o.BodyReadTimeout))
			body = &edgeBody{ReadCloser: r.Body}
			r = r.WithContext(r.Context()) // a shallow copy: net/http's own request keeps its body
			r.Body = body
		}
		ew := &edgeWriter{ResponseWriter: w, body: body}
		w = ew
		if body != nil {
			defer func() {
				if !body.eof.Load() {
					// The answer has been written (Connection: close) and
					// nothing will read the rest of the body: net/http
					// would still try to, before closing. End the wait
					// now, also after a body read deadline, which
					// readBody lifts again.
					_ = http.NewResponseController(ew.ResponseWriter).SetReadDeadline(time.Now())
				}
			}()
		}
		if why := r.Header.Get(framingHeader); why != "" {
			w.Header().Set("Connection", "close")
			g.refuse(w, r, http.StatusBadRequest, "framing", "ambiguous request framing: "+why+" (RFC 9112 §6.1, §6.3); the connection is closed")
			return
		}
		for _, h := range singleHeaders {
			if v := r.Header.Values(h); len(v) > 1 {
				g.refuse(w, r, http.StatusBadRequest, "repeated_header", fmt.Sprintf("the %s header occurs %d times; send it once", h, len(v)))
				return
			}
		}
		if o.LoopbackOnly && !loopbackHost(r.Host, hosts) {
			g.refuse(w, r, http.StatusForbidden, "host", fmt.Sprintf("host %q is not allowed: this gateway listens on loopback only and answers to localhost, a loopback address or a name in server.allowed_hosts (DNS rebinding protection)", r.Host))
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !originAllowed(origin, allowed) && !consoleSameOrigin(o, r, origin) {
			g.refuse(w, r, http.StatusForbidden, "origin", fmt.Sprintf("origin %q is not allowed; add it to server.allowed_origins", origin))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuse answers in the form of the endpoint: a JSON-RPC error on /mcp, a
// JSON problem object elsewhere.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, status int, reason, msg string) {
	if r.URL.Path == "/mcp" || strings.HasPrefix(r.URL.Path, "/mcp/") {
		g.reject(w, r, status, reason, mcpwire.CodeInvalidRequest, msg)
		return
	}
	g.log.Info("request rejected", "request_id", RequestID(r.Context()), "reason", reason, "status", status, "path", r.URL.Path, "remote", r.RemoteAddr, "detail", msg)
	g.rejectREST(w, r, status, reason, msg)
}

// loopbackHost reports whether the Host header names this machine
// (localhost, a name under .localhost, a loopback address) or one of
// hosts.
func loopbackHost(hostport string, hosts map[string]bool) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	return hosts[host]
}
