// Package console is the gateway's web console, served at /ui/: signed-in
// operators and tenant administrators see the upstreams, the catalog their
// tenant may use (and call its tools), tenants, users, API keys, plans,
// virtual servers, rules, the queue, devices, lattices, pins and the audit
// log, and act on them.
//
// Pages are written on the server by typed Go functions through a small
// escaping writer (markup.go), not html/template, whose reflection would
// keep every exported method in the binary; one style sheet is embedded.
// The pages load nothing from another origin and run no script, so the
// Content-Security-Policy forbids all script. See docs/design/console.md.
//
// Every view acts as the signed-in principal: administration goes through
// [admin.Ops] with the principal in the context (the API's rules), and
// the catalog, tool calls and readiness go through the gateway's own
// handler with the session's credential, so policy, limits and audit apply
// exactly as to any client.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/principal"
)

//go:embed static
var staticFS embed.FS

// Prefix is where the console is mounted.
const Prefix = "/ui/"

// cookieName is the session cookie's name.
const cookieName = "mcpedge_console"

// Defaults of Options.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
	DefaultMaxSessions = 1000
)

// Authenticator signs people in; *auth.Service implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, token, clientIP string) (*principal.Principal, error)
	Login(ctx context.Context, tenant, user, password, clientIP string) (*auth.Tokens, error)
	Refresh(ctx context.Context, refreshToken, clientIP string) (*auth.Tokens, error)
	Logout(ctx context.Context, p *principal.Principal) error
}

// Options configure [New].
type Options struct {
	// Ops does the administration. Required.
	Ops *admin.Ops
	// Auth checks credentials. Required.
	Auth Authenticator
	// Gateway returns the gateway's HTTP handler, through which the
	// console reads /readyz and speaks MCP at /mcp with the session's
	// credential. It is called per request (the handler is built after the
	// console). Required.
	Gateway func() http.Handler
	// ClientIP returns the caller's address (nil: the host of RemoteAddr).
	ClientIP func(*http.Request) string
	// IdleTimeout ends a session unused for this long; MaxAge ends any
	// session this long after sign-in; MaxSessions bounds how many are
	// kept (the oldest goes first). Zero: the defaults.
	IdleTimeout time.Duration
	MaxAge      time.Duration
	MaxSessions int
	// Log receives failures (nil: slog.Default()).
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Console is the web console's handler.
type Console struct {
	o        Options
	static   http.Handler
	mux      *http.ServeMux
	mu       sync.Mutex
	sessions map[string]*session
}

// session is one signed-in browser. The credential stays on the server:
// the browser holds only the random session id.
type session struct {
	id      string
	csrf    string
	token   string // API key or access token
	refresh string // refresh token of a password sign-in
	expires time.Time
	created time.Time
	used    time.Time
	// newKey is a key secret to show once, on the next keys page.
	newKey string
	// flash is a message to show once, on the next page (after a change).
	flash string
}

// New returns the console.
func New(o Options) (*Console, error) {
	if o.ClientIP == nil {
		o.ClientIP = remoteHost
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Console{o: o, sessions: map[string]*session{}, mux: http.NewServeMux()}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix(Prefix+"static/", http.FileServer(http.FS(sub)))
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusFound)
	})
	c.mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusFound)
	})
	c.mux.Handle("GET /ui/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		c.static.ServeHTTP(w, r)
	}))
	c.mux.HandleFunc("GET /ui/signin", c.signinPage)
	c.mux.HandleFunc("POST /ui/signin", c.signin)
	c.mux.Handle("POST /ui/signout", c.authed(true, c.signout))
	c.mux.Handle("GET /ui/{$}", c.authed(false, c.overview))
	c.mux.Handle("GET /ui/catalog", c.authed(false, c.catalog))
	c.mux.Handle("POST /ui/catalog/call", c.authed(true, c.callTool))
	c.mux.Handle("GET /ui/keys", c.authed(false, c.keys))
	c.mux.Handle("POST /ui/keys", c.authed(true, c.createKey))
	c.mux.Handle("POST /ui/keys/revoke", c.authed(true, c.revokeKey))
	c.mux.Handle("POST /ui/keys/rotate", c.authed(true, c.rotateKey))
	c.mux.Handle("GET /ui/audit", c.authed(false, c.audit))
	c.mux.Handle("POST /ui/audit/verify", c.authed(true, c.verifyAudit))
	c.mux.Handle("GET /ui/audit/export", c.authed(false, c.auditExport))
	c.mux.Handle("GET /ui/tenants", c.authed(false, c.tenants))
	c.mux.Handle("POST /ui/tenants", c.authed(true, c.createTenant))
	c.mux.Handle("POST /ui/tenants/update", c.authed(true, c.updateTenant))
	c.mux.Handle("POST /ui/tenants/delete", c.authed(true, c.deleteTenant))
	c.mux.Handle("GET /ui/users", c.authed(false, c.users))
	c.mux.Handle("POST /ui/users", c.authed(true, c.createUser))
	c.mux.Handle("POST /ui/users/update", c.authed(true, c.updateUser))
	c.mux.Handle("POST /ui/users/delete", c.authed(true, c.deleteUser))
	c.mux.Handle("GET /ui/plans", c.authed(false, c.plans))
	c.mux.Handle("POST /ui/plans", c.authed(true, c.putPlan))
	c.mux.Handle("POST /ui/plans/delete", c.authed(true, c.deletePlan))
	c.mux.Handle("GET /ui/servers", c.authed(false, c.servers))
	c.mux.Handle("POST /ui/servers", c.authed(true, c.createServer))
	c.mux.Handle("POST /ui/servers/update", c.authed(true, c.updateServer))
	c.mux.Handle("POST /ui/servers/delete", c.authed(true, c.deleteServer))
	c.mux.Handle("GET /ui/rules", c.authed(false, c.rules))
	c.mux.Handle("POST /ui/rules", c.authed(true, c.createRule))
	c.mux.Handle("POST /ui/rules/delete", c.authed(true, c.deleteRule))
	c.mux.Handle("GET /ui/queue", c.authed(false, c.queue))
	c.mux.Handle("POST /ui/queue/retry", c.authed(true, c.queueAction(true)))
	c.mux.Handle("POST /ui/queue/purge", c.authed(true, c.queueAction(false)))
	c.mux.Handle("GET /ui/devices", c.authed(false, c.devices))
	c.mux.Handle("POST /ui/devices/reapprove", c.authed(true, c.deviceAction(true)))
	c.mux.Handle("POST /ui/devices/revoke", c.authed(true, c.deviceAction(false)))
	c.mux.Handle("GET /ui/lattices", c.authed(false, c.lattices))
	c.mux.Handle("POST /ui/lattices", c.authed(true, c.createLattice))
	c.mux.Handle("POST /ui/lattices/delete", c.authed(true, c.deleteLattice))
	c.mux.Handle("GET /ui/lattices/view", c.authed(false, c.latticeView))
	c.mux.Handle("POST /ui/lattices/path", c.authed(true, c.latticePath))
	c.mux.Handle("GET /ui/pins", c.authed(false, c.pins))
	c.mux.Handle("GET /ui/pins/view", c.authed(false, c.pinView))
	c.mux.Handle("POST /ui/pins/approve", c.authed(true, c.decidePin(true)))
	c.mux.Handle("POST /ui/pins/reject", c.authed(true, c.decidePin(false)))
	c.mux.Handle("GET /ui/guard/view", c.authed(false, c.guardView))
	c.mux.Handle("POST /ui/guard/approve", c.authed(true, c.decideQuarantined(true)))
	c.mux.Handle("POST /ui/guard/reject", c.authed(true, c.decideQuarantined(false)))
}

// ServeHTTP serves the console: / (a redirect) and everything under /ui/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if _, pattern := c.mux.Handler(r); pattern == "" {
		c.render(w, r, http.StatusNotFound, "error", nil, pageData{Title: "Not found", Error: "There is no console page here."})
		return
	}
	c.mux.ServeHTTP(w, r)
}

// csp allows the embedded style sheet and images of tool results given
// as data: URLs; no script at all, no frame, no form to another origin.
const csp = "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on the console's own form posts, which the
	// gateway refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	// Pages are per signed-in person; only /ui/static/ overrides this.
	h.Set("Cache-Control", "no-store")
}

// viewer is what an authenticated page handler gets.
type viewer struct {
	s   *session
	p   *principal.Principal
	ctx context.Context // carries p and the client address, for Ops
}

// authed resolves the session (redirecting to the sign-in page without
// one) and, for state-changing requests, checks the CSRF token.
func (c *Console) authed(changes bool, next func(http.ResponseWriter, *http.Request, *viewer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.lookup(r)
		if s == nil {
			if changes {
				c.render(w, r, http.StatusForbidden, "error", nil, pageData{Title: "Signed out", Error: "Your session has ended; sign in again."})
				return
			}
			http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
			return
		}
		if changes {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				c.render(w, r, http.StatusBadRequest, "error", nil, pageData{Title: "Bad request", Error: "The form could not be read."})
				return
			}
			if !sameOrigin(r) || !tokenEqual(r.PostForm.Get("csrf"), s.csrf) {
				c.render(w, r, http.StatusForbidden, "error", nil, pageData{Title: "Refused", Error: "The form's security token is missing or wrong; reload the page and try again."})
				return
			}
		}
		ip := c.o.ClientIP(r)
		p, err := c.principal(r.Context(), s, ip)
		if err != nil {
			c.drop(s.id)
			clearCookie(w, r)
			if changes {
				c.render(w, r, http.StatusForbidden, "error", nil, pageData{Title: "Signed out", Error: "Your credential is no longer valid; sign in again."})
				return
			}
			http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
			return
		}
		ctx := admin.WithClientIP(principal.With(r.Context(), p), ip)
		next(w, r, &viewer{s: s, p: p, ctx: ctx})
	})
}

// maxFormBytes bounds a console form (tool arguments included).
const maxFormBytes = 256 << 10

// sameOrigin refuses a form posted from another origin when the browser
// says where it came from (the CSRF token is the primary check).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == ""
	}
	i := strings.Index(o, "://")
	return i >= 0 && strings.EqualFold(o[i+3:], r.Host)
}

func tokenEqual(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// principal authenticates the session's credential again, so a revoked
// key or ended session signs the console out at once. A password
// session's expired access token is refreshed.
func (c *Console) principal(ctx context.Context, s *session, ip string) (*principal.Principal, error) {
	c.mu.Lock()
	tok, refresh, exp := s.token, s.refresh, s.expires
	c.mu.Unlock()
	if refresh != "" && !exp.IsZero() && c.o.Now().After(exp.Add(-30*time.Second)) {
		t, err := c.o.Auth.Refresh(ctx, refresh, ip)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		s.token, s.refresh, s.expires = t.AccessToken, t.RefreshToken, c.o.Now().Add(time.Duration(t.ExpiresIn)*time.Second)
		tok = s.token
		c.mu.Unlock()
	}
	return c.o.Auth.Authenticate(ctx, tok, ip)
}

// lookup returns the request's live session, or nil.
func (c *Console) lookup(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil
	}
	now := c.o.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ck.Value]
	if s == nil {
		return nil
	}
	if now.Sub(s.used) > c.o.IdleTimeout || now.Sub(s.created) > c.o.MaxAge {
		delete(c.sessions, s.id)
		return nil
	}
	s.used = now
	return s
}

// start keeps a new session and sets its cookie.
func (c *Console) start(w http.ResponseWriter, r *http.Request, s *session) {
	s.id, s.csrf = randomToken(), randomToken()
	now := c.o.Now()
	s.created, s.used = now, now
	c.mu.Lock()
	for id, old := range c.sessions {
		if now.Sub(old.used) > c.o.IdleTimeout || now.Sub(old.created) > c.o.MaxAge {
			delete(c.sessions, id)
		}
	}
	for len(c.sessions) >= c.o.MaxSessions {
		var oldest *session
		for _, old := range c.sessions {
			if oldest == nil || old.used.Before(oldest.used) {
				oldest = old
			}
		}
		delete(c.sessions, oldest.id)
	}
	c.sessions[s.id] = s
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: s.id, Path: Prefix, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.o.MaxAge / time.Second),
	})
}

func (c *Console) drop(id string) {
	c.mu.Lock()
	delete(c.sessions, id)
	c.mu.Unlock()
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}
