package gateway

// Failure handling at the edge: a circuit breaker per upstream, retries of
// calls that are safe to repeat, and per-tool timeouts. Every forwarded call
// goes through begin and end (forward.go); begin asks the breaker to admit
// the call, attempt sends it (again, when that is safe), and end reports the
// outcome. See docs/edge.md, "Failure handling".

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/sony/gobreaker/v2"
)

// edge is the failure-handling state of one upstream: its breaker, retry
// budget and settings. It outlives reloads that leave the upstream as it
// was ([Gateway.Apply] keeps it while the upstream's Fingerprint and
// FailureKey are unchanged) and starts afresh when its configuration
// changes.
type edge struct {
	key     string
	cfg     config.FailureHandling
	retries int
	breaker *breaker // nil: no breaker
	budget  *retryBudget
	lat     latencyEMA // answered calls, for the router (route.go)
}

// latency is the moving average of the connection's answered calls, 0
// before the first.
func (e *edge) latency() time.Duration { return e.lat.get() }

func edgeKey(u config.Upstream) string { return u.Fingerprint() + "/" + u.FailureKey() }

func newEdge(u config.Upstream, log *slog.Logger, onOpen func(upstream, reason string, openFor time.Duration)) *edge {
	e := &edge{key: edgeKey(u), budget: newRetryBudget()}
	if u.Transport == upstream.TransportBuiltin {
		// In-process servers have no transport to fail.
		return e
	}
	e.cfg = u.FailureHandling
	e.retries = u.MaxRetries()
	if failures, openFor, half := u.Breaker.Settings(); failures > 0 {
		e.breaker = newBreaker(u.Name, failures, openFor, half, log)
		e.breaker.onOpen = onOpen
	}
	return e
}

// timeoutFor returns the timeout of one call: the tool's own (tool_timeouts)
// for tools/call when configured, else the upstream's.
func (e *edge) timeoutFor(u *upstream.Upstream, tool string) (d time.Duration, perTool bool) {
	if tool != "" {
		if d, ok := e.cfg.ToolTimeout(tool); ok {
			return d.D(), true
		}
	}
	return u.Config().Timeout.D(), false
}

// applyEdgesLocked gives every wanted upstream its failure-handling state,
// keeping the state of those whose configuration did not change. g.mu must
// be held.
func (g *Gateway) applyEdgesLocked(want map[string]config.Upstream) {
	edges := make(map[string]*edge, len(want))
	for name, w := range want {
		if e := g.edges[name]; e != nil && e.key == edgeKey(w) {
			edges[name] = e
			continue
		}
		edges[name] = newEdge(w, g.log, g.breakerOpened)
	}
	g.edges = edges
}

func (g *Gateway) edgeOf(u *upstream.Upstream) *edge {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if e := g.edges[u.Name()]; e != nil {
		return e
	}
	return g.noEdge
}

// outcome is what one attempt says about the upstream's health.
type outcome int

const (
	// success: the upstream answered — a result, a tool error, or a
	// JSON-RPC error of its own.
	success outcome = iota
	// failure: a transport failure — the upstream could not be reached,
	// the connection broke, or no answer came in time.
	failure
	// excluded: the client gave up first, which says nothing about the
	// upstream.
	excluded
)

// classify says what an attempt's error means for the upstream's health.
// ctx is the call's context, before end cancels it.
func classify(ctx context.Context, err error) outcome {
	if err == nil {
		return success
	}
	switch {
	case isUpstreamError(err):
		return success
	case errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return failure
	case errors.Is(err, context.Canceled), ctx.Err() != nil:
		return excluded
	}
	return failure
}

// The SDK client reports a request that got no answer — it could not be
// sent, the connection broke, or the server answered with an HTTP error —
// as a JSON-RPC error of its own (jsonrpc2.ErrRejected, not exported),
// wrapping the cause. That error is not the upstream's.

// upstreamError returns the JSON-RPC error the upstream itself answered
// with, if err carries one.
func upstreamError(err error) (*jsonrpc.Error, bool) {
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || (werr.Code == mcpwire.CodeRejected && werr.Message == mcpwire.MsgRejected) {
		return nil, false
	}
	return werr, true
}

func isUpstreamError(err error) bool {
	_, ok := upstreamError(err)
	return ok
}

// neverSent reports whether err proves that the request never left the
// gateway, so that no byte of it can have reached the upstream: the
// gateway's own "unavailable" (no connection, a stdio child not running,
// a replaced connection), the SDK's refusal to write to a connection it
// already knows is broken, a write to a dead stdio child's pipe, a failed
// dial (connection refused, no route,
// dial timeout), a DNS failure, or a TLS handshake that failed (the
// request is written only after the handshake). Anything else — a reset
// or EOF on a connection the request was written to, a timeout while
// waiting for the answer, an HTTP error status — may have reached the
// upstream and is "maybe sent". The router falls back at once after a
// call that was never sent, whether or not the call is safe to repeat
// (route.go).
func neverSent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, upstream.ErrUnavailable) {
		return true
	}
	if errors.Is(err, mcp.ErrConnectionClosed) {
		// The SDK refuses a request on a connection already known to be
		// broken or closing before writing it, with its jsonrpc2
		// ErrClientClosing or ErrServerClosing flattened into the text. A
		// request in flight when the connection breaks gets the read
		// error instead, without these words.
		msg := err.Error()
		if strings.Contains(msg, "client is closing") || strings.Contains(msg, "server is closing") {
			return true
		}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	// A write to a stdio child's stdin that failed with EPIPE: the child
	// is gone, and a pipe whose reader is gone delivers nothing, so the
	// child cannot have read the whole request. (Sockets report errors as
	// *net.OpError, never as *os.PathError.)
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Op == "write" && errors.Is(pe.Err, syscall.EPIPE) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var verify *tls.CertificateVerificationError
	var header tls.RecordHeaderError
	var authority x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &authority) ||
		errors.As(err, &host) || errors.As(err, &invalid) {
		return true
	}
	// net/http reports these two handshake failures without a type of
	// their own.
	msg := err.Error()
	return strings.Contains(msg, "net/http: TLS handshake timeout") ||
		strings.Contains(msg, "http: server gave HTTP response to HTTPS client")
}

// transportDetail describes a transport failure for the client without the
// upstream's URL, which may carry a secret expanded into the configuration
// (the SDK sometimes formats the URL into its messages).
func transportDetail(err error, upstreamURL string) string {
	msg := err.Error()
	var uerr *url.Error
	if errors.As(err, &uerr) {
		msg = uerr.Err.Error()
	}
	if upstreamURL != "" {
		msg = strings.ReplaceAll(msg, upstreamURL, "<upstream url>")
	}
	return msg
}

// settle reports the outcome of the call's current attempt to the breaker,
// once.
func (c *call) settle(o outcome, err error) {
	if c.admitted != nil {
		done := c.admitted
		c.admitted = nil
		done(o, err)
	}
}

// A breaker wraps gobreaker's two-step breaker (admit in begin, report in
// end) with what the gateway tells clients and operators: why it opened and
// when it will probe again.
type breaker struct {
	name     string
	failures int
	openFor  time.Duration
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	log      *slog.Logger
	// onOpen, if set, hears when the breaker opens (an event); it is
	// called on a goroutine of its own.
	onOpen func(upstream, reason string, openFor time.Duration)

	mu       sync.Mutex
	lastErr  string    // the latest failure
	reason   string    // why the breaker last opened
	openedAt time.Time // when it last opened
}

var (
	errFailure  = errors.New("transport failure")
	errExcluded = errors.New("not counted")
)

func newBreaker(name string, failures int, openFor time.Duration, halfOpen int, log *slog.Logger) *breaker {
	b := &breaker{name: name, failures: failures, openFor: openFor, log: log}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: uint32(halfOpen),
		Timeout:     openFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(failures) },
		IsExcluded:  func(err error) bool { return errors.Is(err, errExcluded) },
		// Runs under gobreaker's lock: it must not call back into cb.
		OnStateChange: b.changed,
	})
	return b
}

func (b *breaker) changed(_ string, from, to gobreaker.State) {
	b.mu.Lock()
	if to == gobreaker.StateOpen {
		b.openedAt = time.Now()
		if from == gobreaker.StateHalfOpen {
			b.reason = "a probe failed: " + b.lastErr
		} else {
			b.reason = fmt.Sprintf("%d consecutive failures, the last: %s", b.failures, b.lastErr)
		}
	}
	reason := b.reason
	b.mu.Unlock()
	switch to {
	case gobreaker.StateOpen:
		b.log.Warn("circuit breaker opened", "upstream", b.name, "from", from.String(), "reason", reason, "open_for", b.openFor)
		// From closed only: a probe failing again while the upstream
		// stays down is the same outage, not news.
		if b.onOpen != nil && from == gobreaker.StateClosed {
			go b.onOpen(b.name, reason, b.openFor)
		}
	case gobreaker.StateHalfOpen:
		b.log.Info("circuit breaker half-open: probing", "upstream", b.name)
	default:
		b.log.Info("circuit breaker closed", "upstream", b.name)
	}
}

// admit asks the breaker to let one attempt through; done must then be
// called with the attempt's outcome. A nil breaker admits everything.
func (b *breaker) admit() (done func(outcome, error), err error) {
	if b == nil {
		return func(outcome, error) {}, nil
	}
	report, err := b.cb.Allow()
	if err != nil {
		return nil, err
	}
	return func(o outcome, cause error) {
		switch o {
		case failure:
			if cause != nil {
				msg := strings.TrimPrefix(cause.Error(), "upstream "+b.name+": ")
				b.mu.Lock()
				b.lastErr = truncateMsg(msg, 200)
				b.mu.Unlock()
			}
			report(errFailure)
		case excluded:
			report(errExcluded)
		default:
			report(nil)
		}
	}, nil
}

// rejection is the message a client gets for a call the breaker refused.
func (b *breaker) rejection(err error) string {
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		return fmt.Sprintf("upstream %s: circuit breaker half-open: its probe calls are in flight, so this call was not sent; try again shortly", b.name)
	}
	b.mu.Lock()
	reason, probe := b.reason, b.openedAt.Add(b.openFor)
	b.mu.Unlock()
	return fmt.Sprintf("upstream %s: circuit breaker open after %s; calls fail fast until it probes again at %s (in %s)",
		b.name, reason, probe.UTC().Format("15:04:05.000Z"), max(time.Until(probe), 0).Round(time.Millisecond))
}

// status returns the breaker's state ("closed", "half-open", "open") and,
// unless closed, why it opened.
func (b *breaker) status() (state, reason string) {
	st := b.cb.State()
	if st == gobreaker.StateClosed {
		return st.String(), ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return st.String(), b.reason
}

func truncateMsg(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Retry budget: retries may add at most retryRatio to an upstream's request
// rate, plus retryFloor a second so that a quiet upstream can still retry,
// with at most retryBurst saved up. A token bucket: every call earns
// retryRatio of a retry, every retry spends one.
const (
	retryRatio = 0.2
	retryFloor = 1.0 // retries a second, whatever the traffic
	retryBurst = 5.0
)

type retryBudget struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newRetryBudget() *retryBudget {
	return &retryBudget{tokens: retryBurst, last: time.Now(), now: time.Now}
}

// earn credits one call.
func (b *retryBudget) earn() {
	b.mu.Lock()
	b.tokens = min(b.tokens+retryRatio, retryBurst)
	b.mu.Unlock()
}

// spend takes one retry from the budget, if there is one.
func (b *retryBudget) spend() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.tokens+el.Seconds()*retryFloor, retryBurst)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// repeatable are the methods that only read, and so are safe to send again
// when an attempt may or may not have reached the upstream.
var repeatable = map[string]bool{
	"tools/list": true, "prompts/list": true, "resources/list": true, "resources/templates/list": true,
	"resources/read": true, "prompts/get": true, "completion/complete": true, "ping": true,
}

// safeToRepeat reports whether a call may be sent again: a repeatable
// method, or a tool the upstream annotates as read-only or idempotent. The
// annotations are the upstream's own claims; an operator who does not trust
// them sets retries = 0. They are read from the catalog clients are
// shown (listedCatalog): under tool pinning's "hold", the pinned ones.
func (g *Gateway) safeToRepeat(u *upstream.Upstream, method, tool string) bool {
	if repeatable[method] {
		return true
	}
	if method != "tools/call" {
		return false
	}
	a := toolAnnotations(g.listedCatalog(u), tool)
	return a != nil && (a.ReadOnlyHint || a.IdempotentHint)
}

// Retry backoff: retryBase doubling per attempt up to retryMax, each wait
// drawn at random between half and all of it.
const (
	retryBase = 50 * time.Millisecond
	retryMax  = time.Second
)

func retryBackoff(attempt int) time.Duration {
	d := min(retryBase<<min(attempt-1, 10), retryMax)
	return d/2 + rand.N(d/2+1)
}

// attempt runs do for call c on session cs and, when an attempt fails in
// transport and the call is safe to repeat, sends it again (see
// [Gateway.retry]). replayable, if set, can veto a retry (a call whose
// client already answered input requests). When the upstream says it no
// longer knows a per-session connection's session, the request — which it
// did not run — is sent once more on a fresh one, as it always was.
func attempt[R any](g *Gateway, ctx context.Context, c *call, cs *mcp.ClientSession,
	do func(context.Context, *mcp.ClientSession, string) (R, bool, error), replayable func() bool) (R, bool, error) {
	for n := 1; ; n++ {
		res, isErr, err := send(g, ctx, c, cs, do)
		c.att.Dispatch(!neverSent(err))
		if errors.Is(err, mcp.ErrSessionMissing) && c.clientID != "" {
			// The upstream forgot this client's session (it restarted or
			// timed it out) and did not run the request: open a new one and
			// send the request there, once.
			c.up.Forget(c.clientID, cs)
			if cs2, err2 := c.up.Session(ctx, c.clientID); err2 == nil {
				cs = cs2
				res, isErr, err = send(g, ctx, c, cs, do)
				c.att.Dispatch(!neverSent(err))
			}
		}
		if err == nil {
			return res, isErr, nil
		}
		next, ok := g.retry(ctx, c, cs, n, err, replayable)
		if !ok {
			return res, isErr, err
		}
		cs = next
	}
}

// send runs do once on cs, refining its error with what became of the
// request on the wire (see [upstream.Upstream.TrackSend]): on a stdio connection, a
// request the SDK never wrote, or whose write failed, is recognized as
// never sent even when the SDK reports the read loop's bare EOF for it.
// With tracing on, the attempt is a client span (tracing.go), the parent
// of the upstream's own spans.
func send[R any](g *Gateway, ctx context.Context, c *call, cs *mcp.ClientSession,
	do func(context.Context, *mcp.ClientSession, string) (R, bool, error)) (R, bool, error) {
	ctx, span := g.startUpstreamSpan(ctx, c, cs)
	tctx, refine := c.up.TrackSend(ctx, cs)
	res, isErr, err := do(tctx, cs, c.token)
	err = refine(err)
	endUpstreamSpan(span, isErr, err)
	return res, isErr, err
}

// retry decides whether attempt n of call c, which failed with err, is sent
// again; if so it waits out the backoff, has the breaker admit the new
// attempt and returns the session to send it on.
//
// A call is retried only when all of these hold: the failure is in
// transport (not the upstream's own error, not the call's deadline, not
// the client's cancellation); the call is safe to repeat; fewer than
// `retries` retries were made; the call's deadline leaves room for the
// backoff and another attempt; the upstream's retry budget allows it; the
// breaker admits it. A per-session call goes again only on the same
// upstream session: if the client's connection was lost, its state went
// with it, and replaying on a new one could act on missing state.
func (g *Gateway) retry(ctx context.Context, c *call, cs *mcp.ClientSession, n int, err error, replayable func() bool) (*mcp.ClientSession, bool) {
	e := c.edge
	if n > e.retries || classify(ctx, err) != failure || ctx.Err() != nil {
		return nil, false
	}
	if (replayable != nil && !replayable()) || !g.safeToRepeat(c.up, c.method, c.tool) {
		return nil, false
	}
	wait := retryBackoff(n)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 2*wait {
		return nil, false
	}
	name := c.up.Name()
	if !e.budget.spend() {
		g.log.Warn("upstream call not retried: retry budget spent", "request_id", upstream.RequestID(ctx), "upstream", name, "method", c.method, "tool", c.tool, "err", err)
		return nil, false
	}
	c.settle(failure, errors.New(transportDetail(err, c.up.Config().URL)))
	g.log.Warn("retrying upstream call", "request_id", upstream.RequestID(ctx), "upstream", name, "method", c.method, "tool", c.tool, "attempt", n+1, "backoff", wait, "err", err)
	t := time.NewTimer(wait)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return nil, false
	}
	done, berr := e.breaker.admit()
	if berr != nil {
		g.edgeMetrics.rejections.WithLabelValues(name).Inc()
		g.log.Warn("upstream call not retried: circuit breaker", "request_id", upstream.RequestID(ctx), "upstream", name, "method", c.method, "state", berr)
		return nil, false
	}
	c.admitted = done
	next, serr := c.up.Session(ctx, c.clientID)
	if serr != nil {
		c.settle(failure, serr)
		return nil, false
	}
	if c.clientID != "" && c.release == "" && next != cs {
		c.settle(excluded, nil)
		g.log.Warn("upstream call not retried: the client's upstream session was lost", "request_id", upstream.RequestID(ctx), "upstream", name, "method", c.method)
		return nil, false
	}
	g.edgeMetrics.retries.WithLabelValues(name, c.method).Inc()
	return next, true
}
