// Package upstream connects the gateway to one MCP server and keeps that
// connection alive.
//
// An [Upstream] owns a supervisor goroutine that connects (stdio child process,
// Streamable HTTP or legacy SSE, all through the official go-sdk client
// transports), fetches the server's catalog, and reconnects with exponential
// backoff when the connection is lost. The gateway never blocks on an upstream
// that is down: [Upstream.Session] answers at once with an error naming the
// cause, and [Upstream.Catalog] is empty until the server is back.
//
// Server-to-client traffic (sampling, elicitation, roots, progress, logging,
// change notifications) is handed to a [Sink], which the gateway implements to
// route it back to the client session that caused it.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/egress"
	"github.com/mcpedge/mcpedge/internal/tlsconf"
	"github.com/mcpedge/mcpedge/internal/tracing"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// State is the life-cycle state of an upstream connection.
type State string

// The states an upstream moves through. Connecting is also the state while a
// restart waits out its backoff.
const (
	StateConnecting State = "connecting"
	// StateStarting is a stdio upstream's state while its child is being
	// started and has not answered initialize yet (a package runner may be
	// downloading the server); Status.Stderr has what the child wrote.
	StateStarting State = "starting"
	StateReady    State = "ready"
	StateFailed   State = "failed"
	StateStopped  State = "stopped"
)

// ErrUnavailable is wrapped by every error returned for an upstream that has
// no live connection, so callers can tell "down" from "the call failed".
var ErrUnavailable = errors.New("upstream unavailable")

// Catalog is everything an upstream offers, fetched in full (all pages) after
// each connect and after each list_changed notification. A Catalog is
// immutable once published.
type Catalog struct {
	Init      *mcp.InitializeResult
	Tools     []*mcp.Tool
	Prompts   []*mcp.Prompt
	Resources []*mcp.Resource
	Templates []*mcp.ResourceTemplate
	Fetched   time.Time
	// URISpelling maps the normal form of a resource URI or URI template
	// the upstream lists in another spelling to its own spelling (set by
	// the gateway's catalog hook, Options.Screen, which lists the normal
	// form): what is relayed to the upstream. Nil when none differs.
	URISpelling map[string]string
}

// Status is a point-in-time view of an upstream for /readyz and the status tools.
type Status struct {
	Name       string    `json:"name"`
	Transport  string    `json:"transport"`
	State      State     `json:"state"`
	LastError  string    `json:"last_error,omitempty"`
	Since      time.Time `json:"since"`
	Restarts   int64     `json:"restarts"`
	Tools      int       `json:"tools"`
	Prompts    int       `json:"prompts"`
	Resources  int       `json:"resources"`
	Templates  int       `json:"templates"`
	Protocol   string    `json:"protocol_version,omitempty"`
	ServerName string    `json:"server_name,omitempty"`
	PID        int       `json:"pid,omitempty"` // the shared stdio child, if running
	// Stderr holds the last lines the upstream's child wrote to stderr,
	// while it is not ready: why a server does not come up is usually
	// there.
	Stderr    []string `json:"stderr,omitempty"`
	Attempted bool     `json:"-"`
}

// Options configure an Upstream. A nil *Options uses the defaults.
type Options struct {
	Logger *slog.Logger
	// Sink receives server-to-client traffic. If nil, such requests are
	// refused and notifications dropped.
	Sink Sink
	// MinBackoff and MaxBackoff bound the reconnect delay. If zero they
	// default to 200ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient is used for http and sse transports. If nil, a client
	// that dials through the upstream's egress policy is used
	// (internal/egress: public addresses, allow_private, and loopback for
	// an upstream configured on loopback). A client given here brings its
	// own dialing; either way, redirects are followed within the
	// upstream's origin only, and requests to another origin are refused.
	HTTPClient *http.Client
	// Resolver resolves upstream host names for the default client; nil
	// means the system's. The policy judges the address a name resolves
	// to, whoever resolves it.
	Resolver *net.Resolver
	// Server, if set, makes this a built-in upstream: an MCP server running
	// inside the gateway, reached over in-memory transports. It goes through
	// the same supervision, catalog and relay as any other upstream.
	Server *mcp.Server
	// Screen, if set, sees every catalog fetched from the upstream before
	// it is stored and served, with the upstream's configuration; it may
	// change items (they are this fetch's own) and remove them. The
	// gateway's description guard ([guard] descriptions) is one.
	Screen func(cfg config.Upstream, cat *Catalog)
	// CertMetrics records the expiry of the upstream's client
	// certificate ([upstreams.tls] cert_file); nil: not recorded.
	CertMetrics *tlsconf.Metrics
}

// closeTimeout bounds how long closing one upstream connection may take
// before its context is cancelled and its child killed.
const closeTimeout = 5 * time.Second

// TransportBuiltin names the in-process transport of built-in upstreams.
const TransportBuiltin = "builtin"

// Upstream is one configured MCP server and its supervised connection.
type Upstream struct {
	// cfg is the configuration; a reload that leaves the connection as it
	// is (see [SameConnection]) replaces it in place ([Upstream.SetConfig]).
	cfg  atomic.Pointer[config.Upstream]
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	state     State
	lastErr   string
	since     time.Time
	attempted bool
	shared    *conn
	perSess   map[string]*conn // isolation = "session": client session id -> connection
	restarts  atomic.Int64
	everReady atomic.Bool // a connection was ready once: start_timeout no longer applies
	stderr    stderrTail  // the last lines of its children's stderr (startup.go)

	catalog atomic.Pointer[Catalog]
	refresh chan struct{}
	level   atomic.Pointer[mcp.LoggingLevel] // most verbose level a client asked for

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// Draining (drain.go): calls holding the upstream, and whether a
	// reload is retiring it.
	holdMu   sync.Mutex
	holds    int
	retiring bool
	idle     chan struct{} // closed when holds drops to 0 while retiring

	// tlsErr is why [upstreams.tls] could not be loaded: every connection
	// attempt fails with it.
	tlsErr error

	// pipes are the framed pipes of the stdio connections, by their
	// client session (pipe.go); a connection in it records its writes
	// (sendtrack.go).
	pipes sync.Map // *mcp.ClientSession -> *Pipe

	// The loaded module of a wasm upstream (see wasm.go).
	wasmMu     sync.Mutex
	wasm       *wasmState
	wasmClosed bool
}

// New returns an Upstream for cfg. It does nothing until [Upstream.Start].
func New(cfg config.Upstream, opts *Options) *Upstream {
	u := &Upstream{state: StateConnecting, since: time.Now(), refresh: make(chan struct{}, 1), done: make(chan struct{})}
	u.cfg.Store(&cfg)
	if opts != nil {
		u.opts = *opts
	}
	if u.opts.Logger == nil {
		u.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if u.opts.MinBackoff <= 0 {
		u.opts.MinBackoff = 200 * time.Millisecond
	}
	if u.opts.MaxBackoff <= 0 {
		u.opts.MaxBackoff = 30 * time.Second
	}
	who := fmt.Sprintf("upstream %q", cfg.Name)
	if u.opts.HTTPClient == nil {
		policy := egress.ForUpstream(cfg.Name, cfg.URL, cfg.AllowPrivate)
		dialer := policy.Dialer(&net.Dialer{Resolver: u.opts.Resolver})
		// The server's certificate is always verified; [upstreams.tls]
		// adds CAs and a client certificate. A file that cannot be read
		// fails every connection attempt with the reason (status,
		// /readyz) rather than falling back to something else.
		tc, err := tlsconf.Client(cfg.TLS, "upstreams."+cfg.Name+".tls", "upstream/"+cfg.Name, u.opts.CertMetrics)
		u.tlsErr = err
		u.opts.HTTPClient = &http.Client{Transport: &http.Transport{
			TLSClientConfig:       tc,
			Proxy:                 nil, // never route upstream traffic through an ambient proxy
			DialContext:           dialer.DialContext,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 0, // streamable responses may legitimately wait
			ForceAttemptHTTP2:     true,
		}}
	} else {
		cl := *u.opts.HTTPClient // the caller's client is not changed
		u.opts.HTTPClient = &cl
	}
	// A redirect to another server would take the upstream's configured
	// headers (and the call) with it: only the upstream's own origin is
	// followed, on every request, the hot path's included.
	sameOrigin := egress.SameOriginRedirects(who)
	if prev := u.opts.HTTPClient.CheckRedirect; prev != nil {
		u.opts.HTTPClient.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if err := sameOrigin(req, via); err != nil {
				return err
			}
			return prev(req, via)
		}
	} else {
		u.opts.HTTPClient.CheckRedirect = sameOrigin
	}
	u.log = u.opts.Logger.With("upstream", cfg.Name)
	u.catalog.Store(&Catalog{})
	return u
}

// Config returns the configuration the upstream was built from.
func (u *Upstream) Config() config.Upstream { return *u.cfg.Load() }

// Guard is the upstream's [guard] settings (Config().Guard without copying
// the whole configuration: it is read on every call).
func (u *Upstream) Guard() config.Guard { return u.cfg.Load().Guard }

// SameConnection reports whether an upstream configured as a can keep
// serving when its configuration becomes b: every field that shapes the
// connection (transport, command, arguments, environment, directory, URL,
// headers, isolation, the wasm module and sandbox) is the same, and only
// settings read per call or per connect differ (timeout, connect_timeout,
// locality, and everything outside the fingerprint).
func SameConnection(a, b config.Upstream) bool {
	return connKey(a) == connKey(b)
}

func connKey(c config.Upstream) string {
	c.Timeout, c.ConnectTimeout, c.Locality = 0, 0, ""
	// Results are scanned per call; descriptions at the catalog's fetch,
	// so a change of those connects again (and fetches it again).
	c.Guard.Results, c.Guard.PersonalData = "", false
	return c.Fingerprint()
}

// SetConfig replaces the upstream's configuration without reconnecting.
// cfg must describe the same connection ([SameConnection]); it reports
// false, changing nothing, when it does not. The new timeouts apply to
// calls and connects that start afterwards.
func (u *Upstream) SetConfig(cfg config.Upstream) bool {
	if cfg.Name != u.Name() || !SameConnection(cfg, u.Config()) {
		return false
	}
	u.cfg.Store(&cfg)
	return true
}

// Name returns the upstream's configured name.
func (u *Upstream) Name() string { return u.cfg.Load().Name }

// Catalog returns the last catalog fetched while the upstream was ready; it is
// empty while the upstream is down.
func (u *Upstream) Catalog() *Catalog { return u.catalog.Load() }

// Status reports the upstream's state for health endpoints.
func (u *Upstream) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.catalog.Load()
	s := Status{
		Name: u.Config().Name, Transport: u.Config().Transport, State: u.state, LastError: u.lastErr,
		Since: u.since, Restarts: u.restarts.Load(), Tools: len(c.Tools), Prompts: len(c.Prompts),
		Resources: len(c.Resources), Templates: len(c.Templates), Attempted: u.attempted,
	}
	if u.shared != nil && u.shared.cmd != nil && u.shared.cmd.Process != nil {
		s.PID = u.shared.cmd.Process.Pid
	}
	if u.state != StateReady {
		s.Stderr = u.stderr.lastLines()
	}
	if c.Init != nil {
		s.Protocol = c.Init.ProtocolVersion
		if c.Init.ServerInfo != nil {
			s.ServerName = c.Init.ServerInfo.Name
		}
	}
	return s
}

func (u *Upstream) setState(s State, err error) {
	u.mu.Lock()
	changed := u.state != s
	u.state = s
	if err != nil {
		u.lastErr = err.Error()
	} else if s == StateReady {
		u.lastErr = ""
	}
	if changed {
		u.since = time.Now()
	}
	if s == StateReady || s == StateFailed {
		u.attempted = true
	}
	u.mu.Unlock()
	if u.opts.Sink != nil && changed {
		u.opts.Sink.StateChanged(u, s)
	}
}

// Start launches the supervisor. It returns at once; the first connection
// attempt happens in the background so that one slow upstream never delays
// the gateway or its other upstreams.
func (u *Upstream) Start(ctx context.Context) {
	u.ctx, u.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go u.supervise()
}

// Stop closes every connection of the upstream (killing stdio children) and
// waits for the supervisor to exit, at most until ctx is done.
func (u *Upstream) Stop(ctx context.Context) {
	if u.cancel == nil {
		return
	}
	u.cancel()
	select {
	case <-u.done:
	case <-ctx.Done():
	}
	u.mu.Lock()
	sess := u.perSess
	u.perSess = nil
	u.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range sess {
		wg.Go(c.close)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	u.closeWASM()
	u.setState(StateStopped, nil)
}

// Refresh asks the supervisor to fetch the catalog again (after a
// list_changed notification). It never blocks.
func (u *Upstream) Refresh() {
	select {
	case u.refresh <- struct{}{}:
	default:
	}
}

func (u *Upstream) supervise() {
	defer close(u.done)
	backoff := u.opts.MinBackoff
	for u.ctx.Err() == nil {
		// A failed upstream stays "failed", with its last error, while it
		// retries: flapping to "connecting" would hide why it is down.
		u.mu.Lock()
		failed := u.state == StateFailed
		u.mu.Unlock()
		if !failed {
			st := StateConnecting
			if u.Config().Transport == config.TransportStdio {
				st = StateStarting
			}
			u.setState(st, nil)
		}
		start := time.Now()
		c, err := u.connect(u.ctx, "")
		if err == nil {
			err = u.fetchCatalog(u.ctx, c)
			if err != nil {
				c.close()
			}
		}
		if err != nil {
			if u.ctx.Err() != nil {
				return
			}
			u.log.Warn("upstream connect failed", "err", err, "retry_in", backoff)
			u.setState(StateFailed, err)
			if !u.sleep(backoff) {
				return
			}
			backoff = min(backoff*2, u.opts.MaxBackoff)
			continue
		}
		u.mu.Lock()
		u.shared = c
		u.mu.Unlock()
		u.everReady.Store(true)
		u.stderr.reset() // kept for the next failure, not what the last start said
		u.applyLogLevel(c)
		// Register the catalog before reporting ready, so that whoever sees
		// "ready" also finds the upstream's tools.
		if u.opts.Sink != nil {
			u.opts.Sink.CatalogChanged(u)
		}
		u.setState(StateReady, nil)
		u.log.Info("upstream ready", "tools", len(u.Catalog().Tools), "protocol", u.Catalog().Init.ProtocolVersion, "took", time.Since(start))
		err = u.serve(c)
		u.mu.Lock()
		u.shared = nil
		u.mu.Unlock()
		c.close()
		u.catalog.Store(&Catalog{})
		if u.ctx.Err() != nil {
			return
		}
		u.restarts.Add(1)
		u.log.Warn("upstream connection lost", "err", err)
		u.setState(StateFailed, fmt.Errorf("connection lost: %w", err))
		if u.opts.Sink != nil {
			u.opts.Sink.CatalogChanged(u)
		}
		// A connection that lived a while earns a fresh backoff.
		if time.Since(start) > 30*time.Second {
			backoff = u.opts.MinBackoff
		}
		if !u.sleep(backoff) {
			return
		}
		backoff = min(backoff*2, u.opts.MaxBackoff)
	}
}

// serve waits for the connection to end, refreshing the catalog on request.
func (u *Upstream) serve(c *conn) error {
	ended := make(chan error, 1)
	go func() { ended <- c.cs.Wait() }()
	for {
		select {
		case err := <-ended:
			if err == nil {
				err = errors.New("server closed the connection")
			}
			return err
		case <-u.ctx.Done():
			return u.ctx.Err()
		case <-u.refresh:
			if err := u.fetchCatalog(u.ctx, c); err != nil {
				u.log.Warn("catalog refresh failed", "err", err)
				continue
			}
			if u.opts.Sink != nil {
				u.opts.Sink.CatalogChanged(u)
			}
		}
	}
}

func (u *Upstream) sleep(d time.Duration) bool {
	// Jitter keeps a fleet of gateways from reconnecting in lockstep.
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-u.ctx.Done():
		return false
	}
}

// fetchCatalog lists everything the server offers, following every page.
func (u *Upstream) fetchCatalog(ctx context.Context, c *conn) error {
	ctx, cancel := context.WithTimeout(ctx, u.Config().ConnectTimeout.D()+u.Config().Timeout.D())
	defer cancel()
	cat := &Catalog{Init: c.cs.InitializeResult(), Fetched: time.Now()}
	caps := &mcp.ServerCapabilities{}
	if cat.Init != nil && cat.Init.Capabilities != nil {
		caps = cat.Init.Capabilities
	}
	if caps.Tools != nil {
		for t, err := range c.cs.Tools(ctx, nil) {
			if err != nil {
				return fmt.Errorf("listing tools: %w", err)
			}
			if t != nil {
				cat.Tools = append(cat.Tools, t)
			}
		}
	}
	if caps.Prompts != nil {
		for p, err := range c.cs.Prompts(ctx, nil) {
			if err != nil {
				return fmt.Errorf("listing prompts: %w", err)
			}
			if p != nil {
				cat.Prompts = append(cat.Prompts, p)
			}
		}
	}
	if caps.Resources != nil {
		for r, err := range c.cs.Resources(ctx, nil) {
			if err != nil {
				return fmt.Errorf("listing resources: %w", err)
			}
			if r != nil {
				cat.Resources = append(cat.Resources, r)
			}
		}
		for t, err := range c.cs.ResourceTemplates(ctx, nil) {
			if err != nil {
				return fmt.Errorf("listing resource templates: %w", err)
			}
			if t != nil {
				cat.Templates = append(cat.Templates, t)
			}
		}
	}
	if u.opts.Screen != nil {
		u.opts.Screen(u.Config(), cat)
	}
	u.catalog.Store(cat)
	return nil
}

// Session returns the client session that should carry a request made on
// behalf of the gateway client session clientID. With isolation "shared" that
// is the one supervised connection; with "session" it is a connection of the
// client's own, opened on first use.
func (u *Upstream) Session(ctx context.Context, clientID string) (*mcp.ClientSession, error) {
	u.mu.Lock()
	shared, state, lastErr := u.shared, u.state, u.lastErr
	if u.Config().Isolation != "session" || clientID == "" {
		u.mu.Unlock()
		if shared == nil {
			if lastErr == "" {
				lastErr = string(state)
			}
			return nil, fmt.Errorf("%w: %s: %s", ErrUnavailable, u.Config().Name, lastErr)
		}
		return shared.cs, nil
	}
	if c, ok := u.perSess[clientID]; ok {
		u.mu.Unlock()
		return c.cs, nil
	}
	u.mu.Unlock()
	if shared == nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrUnavailable, u.Config().Name, lastErr)
	}
	c, err := u.connect(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: opening per-session connection: %v", ErrUnavailable, u.Config().Name, err)
	}
	wait, cancel := context.WithTimeout(ctx, u.Config().ConnectTimeout.D())
	c.awaitCatalog(wait, u.Catalog().Tools)
	cancel()
	u.mu.Lock()
	if u.ctx.Err() != nil || u.state == StateStopped { // stopped meanwhile
		u.mu.Unlock()
		c.close()
		return nil, fmt.Errorf("%w: %s: stopped", ErrUnavailable, u.Config().Name)
	}
	if u.perSess == nil {
		u.perSess = map[string]*conn{}
	}
	if old, ok := u.perSess[clientID]; ok { // lost a race with ourselves
		u.mu.Unlock()
		c.close()
		return old.cs, nil
	}
	u.perSess[clientID] = c
	u.mu.Unlock()
	u.applyLogLevel(c)
	// A per-session connection that dies is forgotten, so the client's next
	// call opens a fresh one instead of failing until its session ends.
	go func() {
		_ = c.cs.Wait()
		u.mu.Lock()
		if u.perSess[clientID] == c {
			delete(u.perSess, clientID)
		}
		u.mu.Unlock()
		c.close()
	}()
	return c.cs, nil
}

// Forget drops the per-session connection of clientID if it is still cs
// (the upstream said it no longer knows that session), so that the next
// [Upstream.Session] opens a fresh one.
func (u *Upstream) Forget(clientID string, cs *mcp.ClientSession) {
	u.mu.Lock()
	c, ok := u.perSess[clientID]
	if ok && c.cs == cs {
		delete(u.perSess, clientID)
	} else {
		ok = false
	}
	u.mu.Unlock()
	if ok {
		go c.close()
	}
}

// ReleaseSession closes the per-session connection of a client session that
// ended. It is a no-op for shared upstreams.
func (u *Upstream) ReleaseSession(clientID string) {
	u.mu.Lock()
	c, ok := u.perSess[clientID]
	delete(u.perSess, clientID)
	u.mu.Unlock()
	if ok {
		go c.close()
	}
}

// SetLogLevel records the logging level clients want from this upstream and
// applies it to every open connection and to each one opened later
// (reconnects, per-session connections, replacements after a reload keep
// their own Upstream and start from the next setLevel).
func (u *Upstream) SetLogLevel(level mcp.LoggingLevel) {
	u.level.Store(&level)
	u.mu.Lock()
	var conns []*conn
	if u.shared != nil {
		conns = append(conns, u.shared)
	}
	for _, c := range u.perSess {
		conns = append(conns, c)
	}
	u.mu.Unlock()
	for _, c := range conns {
		go u.applyLogLevel(c)
	}
}

// LogLevel returns the logging level clients asked of this upstream, if any.
func (u *Upstream) LogLevel() (mcp.LoggingLevel, bool) {
	if l := u.level.Load(); l != nil {
		return *l, true
	}
	return "", false
}

// applyLogLevel sends the wanted level to a connection whose server logs.
func (u *Upstream) applyLogLevel(c *conn) {
	lvl := u.level.Load()
	if lvl == nil {
		return
	}
	init := c.cs.InitializeResult()
	if init == nil || init.Capabilities == nil || init.Capabilities.Logging == nil {
		return
	}
	ctx, cancel := context.WithTimeout(u.ctx, u.Config().Timeout.D())
	defer cancel()
	if err := c.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: *lvl}); err != nil {
		u.log.Warn("setting the upstream's logging level failed", "level", *lvl, "err", err)
	}
}

// SessionCount returns how many per-session connections are open.
func (u *Upstream) SessionCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.perSess)
}

// Sessions returns every live client session of the upstream (shared and
// per-session), for fan-out such as logging levels.
func (u *Upstream) Sessions() []*mcp.ClientSession {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*mcp.ClientSession
	if u.shared != nil {
		out = append(out, u.shared.cs)
	}
	for _, c := range u.perSess {
		out = append(out, c.cs)
	}
	return out
}

// conn is one client session to the upstream plus what must be cleaned up
// with it.
type conn struct {
	cs      *mcp.ClientSession
	cmd     *exec.Cmd
	pipe    *Pipe  // stdio
	unpipe  func() // forgets pipe in its upstream's pipes
	cancel  context.CancelFunc
	onClose func() // extra cleanup (the server side of a built-in upstream)
	closing sync.Once
	changed chan struct{} // tools/list_changed on a per-session connection
}

func (c *conn) toolsChanged() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// awaitCatalog waits, at most until ctx is done, for a fresh per-session
// connection to offer every tool of the shared catalog. Some servers
// register tools only after initialization (or after learning the client's
// capabilities) and announce them with list_changed; the client was shown
// the shared catalog, so its first call must not race that registration.
func (c *conn) awaitCatalog(ctx context.Context, want []*mcp.Tool) {
	if len(want) == 0 {
		return
	}
	for {
		have := map[string]bool{}
		for t, err := range c.cs.Tools(ctx, nil) {
			if err != nil {
				return
			}
			have[t.Name] = true
		}
		missing := false
		for _, t := range want {
			if !have[t.Name] {
				missing = true
				break
			}
		}
		if !missing {
			return
		}
		select {
		case <-c.changed:
		case <-ctx.Done():
			return
		}
	}
}

func (c *conn) close() {
	c.closing.Do(func() {
		// The SDK's Close waits for requests in flight on the connection; a
		// server-to-client request a client never answers must not keep the
		// connection (and a stdio child) alive, so the wait is bounded.
		done := make(chan struct{})
		go func() { _ = c.cs.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeTimeout):
		}
		c.cancel()
		if c.onClose != nil {
			c.onClose()
		}
		if c.cmd != nil {
			killTree(c.cmd)
		}
		if c.unpipe != nil {
			c.unpipe()
		}
	})
}

// connect opens one client session. owner is the gateway client session the
// connection belongs to ("" for the shared connection); it is handed to the
// sink so server-to-client requests reach the right client.
//
// The context given to Connect lives as long as the connection: the SSE
// transport ties its event stream to it. So the connect timeout is a timer
// that cancels it only if Connect has not returned in time.
func (u *Upstream) connect(_ context.Context, owner string) (*conn, error) {
	var wasmSrv *mcp.Server
	if u.Config().Transport == config.TransportWASM {
		// Loaded before the connect timer starts: compiling a large module
		// on a small device can take longer than connect_timeout, and the
		// load is bounded by itself (tools/list by the sandbox timeout).
		srv, err := u.wasmServer()
		if err != nil {
			return nil, fmt.Errorf("loading wasm module: %w", err)
		}
		wasmSrv = srv
	}
	if tr := u.Config().Transport; u.tlsErr != nil && (tr == config.TransportHTTP || tr == config.TransportSSE) {
		return nil, u.tlsErr
	}
	ctx, cancel := context.WithCancel(u.ctx)
	// Until the upstream has been ready once, a connect may include the
	// server's first download (start_timeout, startup.go).
	budget := u.Config().ConnectTimeout.D()
	if owner == "" && !u.everReady.Load() {
		budget = u.Config().EffectiveStartTimeout().D()
	}
	timer := time.AfterFunc(budget, cancel)
	c := &conn{cancel: cancel, changed: make(chan struct{}, 1)}
	var (
		t        mcp.Transport
		startErr error // a stdio child that could not be started
	)
	switch u.Config().Transport {
	case TransportBuiltin:
		if u.opts.Server == nil {
			cancel()
			return nil, errors.New("built-in upstream without a server")
		}
		ct, err := connectInProcess(ctx, u.opts.Server, c)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("starting built-in server: %w", err)
		}
		t = ct
	case config.TransportWASM:
		ct, err := connectInProcess(ctx, wasmSrv, c)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("starting wasm server: %w", err)
		}
		t = ct
	case "stdio":
		cmd := exec.Command(u.Config().Command, u.Config().Args...)
		cmd.Dir = u.Config().Dir
		// A minimal environment, not the gateway's: a third-party server
		// must not read the gateway's keys (env.go).
		cmd.Env = childEnv(os.Environ(), u.Config().InheritEnv, u.Config().Env, runtime.GOOS == "windows")
		if owner == "" {
			u.stderr.reset() // what this start says, not the last one
		}
		cmd.Stderr = newLineLogger(u.log, &u.stderr)
		configureChild(cmd)
		c.cmd = cmd
		// One framed pipe for the SDK client and the hot path (pipe.go);
		// the SDK's side records whether each call's request reached
		// the child's stdin (sendtrack.go).
		p, err := startPipe(cmd, 2*time.Second)
		if err != nil {
			startErr = err
			break
		}
		c.pipe = p
		t = writeTracking{&mcp.IOTransport{Reader: sdkReader{p}, Writer: sdkWriter{p}, MaxLineLength: MaxPipeLine}}
	case "http":
		t = &mcp.StreamableClientTransport{Endpoint: u.Config().URL, HTTPClient: u.httpClient(), MaxRetries: 1}
	case "sse":
		t = &mcp.SSEClientTransport{Endpoint: u.Config().URL, HTTPClient: u.httpClient()}
	default:
		return nil, fmt.Errorf("unknown transport %q", u.Config().Transport)
	}
	var (
		cs  *mcp.ClientSession
		err = startErr
	)
	if err == nil {
		client := mcp.NewClient(ClientInfo(), u.clientOptions(owner, c))
		client.AddReceivingMiddleware(u.guardMiddleware(), u.rootsMiddleware(owner), u.elicitMiddleware(owner))
		cs, err = client.Connect(ctx, t, nil)
	}
	// Whether the connect timer fired is decided here, before cancel
	// below makes ctx look expired: a connect that failed at once (a
	// refused dial, say) did not time out.
	timedOut := !timer.Stop()
	if timedOut && err == nil {
		_ = cs.Close()
	}
	if (err != nil || timedOut) && u.ctx.Err() == nil {
		// Said as what it is, with the child's last words and a hint.
		err = explainConnectErr(u.Config(), err, timedOut, budget, u.stderr.lastLines())
	}
	if err != nil {
		cancel()
		if c.cmd != nil {
			killTree(c.cmd)
		}
		if c.onClose != nil {
			c.onClose()
		}
		return nil, fmt.Errorf("connecting: %w", err)
	}
	c.cs = cs
	if c.pipe != nil {
		u.pipes.Store(cs, c.pipe)
		c.unpipe = func() { u.pipes.Delete(cs) }
	}
	return c, nil
}

// Version is the gateway version reported to upstreams; main sets it.
var Version = "dev"

// ClientInfo is how the gateway names itself to upstreams.
func ClientInfo() *mcp.Implementation {
	return &mcp.Implementation{Name: "mcpedge", Version: Version}
}

func (u *Upstream) httpClient() *http.Client {
	cfg := u.Config()
	cl := *u.opts.HTTPClient
	ht := &headerTransport{base: cl.Transport, headers: cfg.Headers, who: fmt.Sprintf("upstream %q", cfg.Name)}
	if pu, err := url.Parse(cfg.URL); err == nil {
		ht.origin = egress.Origin(pu)
	}
	cl.Transport = ht
	return &cl
}

type requestIDKey struct{}

// Detach returns a context with ctx's deadline and cancellation but none of
// its values except the gateway's own request id.
//
// A forwarded request's context comes from the client-facing SDK server and
// carries that side's values — among them the protocol version the client
// negotiated, which the SDK client would otherwise send to the upstream in
// place of the version the upstream negotiated. The two sides of the gateway
// are separate sessions and must not share request-scoped state.
func Detach(ctx context.Context) context.Context { return detached{ctx} }

type detached struct{ context.Context }

func (d detached) Value(key any) any {
	if _, ok := key.(requestIDKey); ok {
		return d.Context.Value(key)
	}
	return nil
}

// WithRequestID returns a context carrying the gateway request id, which
// HTTP upstreams receive as X-Request-Id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// headerTransport adds the configured headers (for example an upstream's own
// credentials) to every request. The client's credentials are never copied
// here: they stop at the gateway.
//
// It sends requests to the upstream's configured origin only: a server may
// point the client elsewhere (the endpoint event of a legacy SSE server
// names any URL), and neither the headers nor the calls may follow.
type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
	who     string
	origin  string // of the configured URL
}

func (h *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if got := egress.Origin(r.URL); got != h.origin {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, &egress.OriginError{Who: h.who, Want: h.origin, Got: got}
	}
	r = r.Clone(r.Context())
	for k, v := range h.headers {
		r.Header.Set(k, v)
	}
	if id := RequestID(r.Context()); id != "" {
		r.Header.Set("X-Request-Id", id)
	}
	// W3C trace context of the call (the gateway's upstream-call span,
	// or the client's passed on), so the upstream's spans join its trace.
	tracing.InjectHeader(r.Context(), r.Header)
	base := h.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
