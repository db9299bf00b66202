// Package edge is the edge side of hub mode: a gateway with [hub] url
// signs in to its hub with its device key (enrolling the first time),
// offers the hub's tools to its own clients through a synthetic upstream
// named "hub", and sends the hub batched, zstd-compressed telemetry.
//
// The synthetic upstream does not talk to the hub directly: it talks to a
// small reverse proxy on a loopback port of this process, which adds the
// device's current bearer credential to every request. The credential is
// short-lived, re-obtained by a signed challenge whenever it expires or
// the hub refuses it, and never written to disk; the upstream's
// configuration (and so its connection) stays the same across sign-ins.
// The proxy admits only requests carrying a per-process random secret, so
// other local processes cannot borrow the device's identity through it.
package edge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/egress"
	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/tlsconf"
)

// UpstreamName is the name of the synthetic upstream that stands for the
// hub; config reserves it.
const UpstreamName = "hub"

// linkHeader carries the proxy's per-process secret from the synthetic
// upstream to the proxy (and no further).
const linkHeader = "X-Mcpedge-Hub-Link"

// Key is the device key (devicekey.Key without Attest and Close).
type Key interface {
	crypto.Signer
	Kind() string // "tpm" or "file"
	ID() string
}

// Options configure a [Link].
type Options struct {
	Hub config.Hub
	Key Key
	// Attest returns the key's TPM attestation for nonce (JSON of
	// devicekey.Attestation); required for "tpm" keys.
	Attest func(nonce []byte) (json.RawMessage, error)
	// Activate answers the hub's credential activation challenge at
	// enrollment (TPM2_ActivateCredential); nil for keys not in a TPM.
	Activate func(credentialBlob, encSecret []byte) ([]byte, error)
	// Audit is the edge's own audit log, read after the last sequence
	// number the hub has.
	Audit store.Audit
	// Gatherer is the edge's metrics registry; Registerer, if set, gets
	// the link's own metrics.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// Transport reaches the hub; nil: a transport with sane timeouts that
	// dials through the hub's egress policy (private addresses allowed,
	// metadata addresses refused).
	Transport http.RoundTripper
	// CertMetrics records the expiry of the [hub.tls] client certificate
	// (nil: not recorded).
	CertMetrics *tlsconf.Metrics
	// Hostname is the default device name (tests); "" means os.Hostname.
	Hostname string
}

// Link is a running edge link.
type Link struct {
	o       Options
	base    *url.URL // the hub
	secret  string   // the proxy's admission secret
	client  *http.Client
	proxy   *httputil.ReverseProxy
	srv     *http.Server
	ln      net.Listener
	enc     *zstd.Encoder
	metrics *linkMetrics

	mu      sync.Mutex
	token   string
	expires time.Time
	ttl     time.Duration // of the current credential, as issued
	tenant  string
	acked   int64 // the hub's last audit sequence number of this device
	haveSeq bool
	lastErr string
	// refusal is the hub's last refusal of a sign-in and refusedAt when;
	// requests do not ask again within refusalHold of it.
	refusal   error
	refusedAt time.Time
	lastSent  time.Time
	ring      []hub.Snapshot
	dropped   int64
	kick      chan struct{} // sign in again now
	signing   chan struct{} // held during a sign-in (capacity 1)

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks o and prepares a link; Start runs it.
func New(o Options) (*Link, error) {
	if !o.Hub.Enabled() {
		return nil, errors.New("edge: [hub] url is not set")
	}
	if o.Key == nil || o.Audit == nil || o.Gatherer == nil {
		return nil, errors.New("edge: a device key, the audit log and the metrics registry are required")
	}
	if o.Key.Kind() == "tpm" && o.Attest == nil {
		return nil, errors.New("edge: a TPM device key needs an attestation function")
	}
	base, err := url.Parse(o.Hub.URL)
	if err != nil {
		return nil, fmt.Errorf("edge: hub url: %w", err)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Transport == nil {
		// The hub is often on the private network, so private addresses
		// are allowed; cloud metadata, unspecified, multicast and
		// reserved addresses never are (docs/egress.md). With a proxy
		// from the environment, the address checked is the proxy's.
		hubEgress := &egress.Policy{Who: "hub", Trusted: true}
		// The hub's certificate is always verified; [hub.tls] adds CAs
		// (a hub with a private CA) and a client certificate (a hub
		// behind mTLS).
		tc, err := tlsconf.Client(o.Hub.TLS, "hub.tls", "hub", o.CertMetrics)
		if err != nil {
			return nil, fmt.Errorf("edge: %w", err)
		}
		o.Transport = &http.Transport{
			TLSClientConfig:       tc,
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           hubEgress.Dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 0, // SSE streams answer late
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   8,
			ForceAttemptHTTP2:     true,
		}
	}
	if o.Hub.Name == "" {
		o.Hub.Name = o.Hostname
		if o.Hub.Name == "" {
			o.Hub.Name, _ = os.Hostname()
		}
		if len(o.Hub.Name) > 64 {
			o.Hub.Name = o.Hub.Name[:64]
		}
	}
	sec := make([]byte, 32)
	if _, err := rand.Read(sec); err != nil {
		return nil, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, err
	}
	l := &Link{
		o: o, base: base, secret: hex.EncodeToString(sec), enc: enc,
		// The link's requests carry the device's credentials: redirects
		// are followed within the hub's origin only.
		client: &http.Client{Transport: o.Transport, Timeout: 30 * time.Second, CheckRedirect: egress.SameOriginRedirects("hub")},
		kick:   make(chan struct{}, 1), signing: make(chan struct{}, 1),
	}
	l.metrics = newLinkMetrics(o.Registerer, l)
	l.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(l.base)
			pr.Out.URL.Path = "/mcp"
			pr.Out.URL.RawPath = ""
			pr.Out.Host = l.base.Host
			pr.Out.Header.Del(linkHeader)
			pr.Out.Header.Set("Authorization", "Bearer "+tokenFrom(pr.In.Context()))
		},
		Transport:     o.Transport,
		FlushInterval: -1, // SSE: every event at once
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusUnauthorized {
				l.invalidate(tokenFrom(resp.Request.Context()))
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				l.setErr("hub unreachable: " + err.Error())
			}
			http.Error(w, "mcpedge edge: the hub is unreachable: "+err.Error(), http.StatusBadGateway)
		},
		ErrorLog: slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
	return l, nil
}

type tokenKey struct{}

func tokenFrom(ctx context.Context) string {
	s, _ := ctx.Value(tokenKey{}).(string)
	return s
}

// Start listens on a loopback port for the synthetic upstream and starts
// signing in and sending telemetry in the background. It does not wait
// for the hub: an edge starts, and serves its local tools, while the hub
// is down.
func (l *Link) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("edge: listening for the hub upstream: %w", err)
	}
	l.ln = ln
	l.srv = &http.Server{Handler: http.HandlerFunc(l.serveProxy), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(l.o.Log.Handler(), slog.LevelDebug)}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	l.wg.Go(func() { _ = l.srv.Serve(ln) })
	l.wg.Go(func() { l.signInLoop(runCtx) })
	l.wg.Go(func() { l.telemetryLoop(runCtx) })
	return nil
}

// Upstream is the synthetic upstream that offers the hub's tools: its
// /mcp through the proxy, without a namespace (the hub's names already
// are <upstream>__<tool>), with [hub] deferrable and timeout. The
// gateway gives local tools precedence over it on a name clash.
func (l *Link) Upstream() config.Upstream {
	prefix := ""
	u := config.Upstream{
		Name: UpstreamName, DisplayName: "hub " + l.base.Host, Transport: config.TransportHTTP,
		URL: "http://" + l.ln.Addr().String() + "/mcp", Headers: map[string]string{linkHeader: l.secret},
		Prefix: &prefix, Timeout: l.o.Hub.Timeout, ConnectTimeout: config.DefaultConnectTimeout,
		Isolation: config.IsolationShared,
	}
	u.Deferrable = append([]string(nil), l.o.Hub.Deferrable...)
	return u
}

// Close stops the link: the proxy (ending streams to the hub), sign-in and
// telemetry. It waits for its goroutines.
func (l *Link) Close() {
	if l.cancel != nil {
		l.cancel()
	}
	if l.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = l.srv.Shutdown(ctx)
		cancel()
		_ = l.srv.Close()
	}
	l.wg.Wait()
	l.enc.Close()
	if t, ok := l.o.Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
}

func (l *Link) serveProxy(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(linkHeader)), []byte(l.secret)) != 1 {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if r.URL.Path != "/mcp" {
		http.NotFound(w, r)
		return
	}
	tok, err := l.currentToken(r.Context())
	if err != nil {
		// 503: the gateway counts it as the upstream being unavailable
		// (and queues a deferrable call).
		http.Error(w, "mcpedge edge: not signed in to the hub: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	l.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
}

// currentToken returns a valid credential, signing in first if there is
// none (bounded by 10 s).
func (l *Link) currentToken(ctx context.Context) (string, error) {
	l.mu.Lock()
	tok, exp, last := l.token, l.expires, l.lastErr
	refusal, refusedAt := l.refusal, l.refusedAt
	l.mu.Unlock()
	if tok != "" && time.Until(exp) > 30*time.Second {
		return tok, nil
	}
	// A hub that just refused this device (a changed PCR, say) refuses
	// it again: every hub call of a busy client would otherwise cost an
	// attestation and an audit entry on the hub. The sign-in loop keeps
	// retrying on its backoff.
	if refusal != nil && time.Since(refusedAt) < refusalHold {
		return "", refusal
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.signIn(ctx); err != nil {
		if last != "" {
			return "", fmt.Errorf("%v (before: %s)", err, last)
		}
		return "", err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.token, nil
}

// renewBefore is how long before its expiry a credential is renewed: a
// fifth of its life, at least a minute.
func (l *Link) renewBefore() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.ttl/5, time.Minute)
}

// invalidate drops tok (the hub refused it) and asks for a sign-in.
func (l *Link) invalidate(tok string) {
	l.mu.Lock()
	if tok != "" && l.token == tok {
		l.token = ""
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *Link) setErr(s string) {
	l.mu.Lock()
	l.lastErr = s
	l.mu.Unlock()
}

// Status is what the edge knows of its hub link.
type Status struct {
	Hub         string    `json:"hub"`
	DeviceID    string    `json:"device_id"`
	Kind        string    `json:"kind"`
	SignedIn    bool      `json:"signed_in"`
	Tenant      string    `json:"tenant,omitempty"`
	AuditAcked  int64     `json:"audit_acked"`
	LastSent    time.Time `json:"last_telemetry,omitzero"`
	Buffered    int       `json:"buffered_snapshots"`
	Dropped     int64     `json:"dropped_snapshots"`
	LastProblem string    `json:"last_problem,omitempty"`
}

// Status reports the link's state.
func (l *Link) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Status{
		Hub: l.base.String(), DeviceID: l.o.Key.ID(), Kind: l.o.Key.Kind(),
		SignedIn: l.token != "" && time.Now().Before(l.expires), Tenant: l.tenant,
		AuditAcked: l.acked, LastSent: l.lastSent, Buffered: len(l.ring), Dropped: l.dropped, LastProblem: l.lastErr,
	}
}

// ---- sign-in

// hubError is a refusal by the hub, with its code.
type hubError struct {
	status int
	code   string
	msg    string
}

func (e *hubError) Error() string {
	return fmt.Sprintf("the hub refused (%d %s): %s", e.status, e.code, e.msg)
}

// permanent reports refusals that retrying will not cure: the operator
// must change something.
func (e *hubError) permanent() bool {
	switch e.code {
	case "bad_token", "token_required", "bad_signature", "wrong_hub", "downgrade", "attestation_unsupported", "tenant_disabled", "unknown_tenant", "invalid_request",
		hub.CodeAttestationRequired, hub.CodeBadAttestation, hub.CodeUncertifiedKey, hub.CodeWrongAK, hub.CodeActivationFailed,
		hub.CodeEKUntrusted, hub.CodeEKMismatch:
		return true
	}
	return false
}

// needsOperator reports refusals an operator cures on the hub without
// anything changing on the device (a re-approval after a PCR change):
// retried on the normal backoff, so the device is back soon after.
func (e *hubError) needsOperator() bool { return e.code == hub.CodePCRChanged }

func (l *Link) signInLoop(ctx context.Context) {
	backoff := time.Second
	for {
		l.mu.Lock()
		tok, exp := l.token, l.expires
		l.mu.Unlock()
		var wait time.Duration
		if tok == "" || time.Until(exp) <= l.renewBefore() {
			callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := l.signIn(callCtx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				var he *hubError
				if errors.As(err, &he) && he.permanent() {
					l.o.Log.Error("hub sign-in refused; fix the cause, it is retried every 5 minutes (local tools keep working)", "hub", l.base.Host, "code", he.code, "err", err.Error())
					wait = 5 * time.Minute
				} else if errors.As(err, &he) && he.needsOperator() {
					l.o.Log.Error("hub sign-in refused: this device's TPM measurements changed; an operator re-approves it on the hub if the change is expected (local tools keep working)", "hub", l.base.Host, "code", he.code, "err", err.Error(), "retry_in", backoff.String())
					wait = backoff
					backoff = min(backoff*2, time.Minute)
				} else {
					l.o.Log.Warn("hub sign-in failed; retrying", "hub", l.base.Host, "err", err.Error(), "in", backoff.String())
					wait = backoff
					backoff = min(backoff*2, time.Minute)
				}
			} else {
				backoff = time.Second
			}
		}
		if wait == 0 {
			l.mu.Lock()
			exp = l.expires
			l.mu.Unlock()
			// Renew when a fifth of the credential's life is left.
			wait = max(time.Until(exp)-l.renewBefore(), time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-l.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// signIn signs in with a fresh nonce; a hub that does not know the device
// (first start, or its store was reset) gets an enrollment instead.
func (l *Link) signIn(ctx context.Context) error {
	// One sign-in at a time: requests that find no credential while the
	// hub is back all wait for the same sign-in instead of each making
	// (and revoking) one.
	select {
	case l.signing <- struct{}{}:
		defer func() { <-l.signing }()
	case <-ctx.Done():
		return ctx.Err()
	}
	l.mu.Lock()
	tok, exp := l.token, l.expires
	l.mu.Unlock()
	if tok != "" && time.Until(exp) > l.renewBefore() {
		return nil // another caller just signed in
	}
	err := l.signInAs(ctx, false)
	var he *hubError
	if errors.As(err, &he) && he.code == "unknown_device" {
		err = l.signInAs(ctx, true)
	}
	if err != nil {
		l.setErr(err.Error())
		if errors.As(err, &he) && he.status < 500 {
			l.mu.Lock()
			l.refusal, l.refusedAt = err, time.Now()
			l.mu.Unlock()
		}
		l.metrics.signIns.WithLabelValues("failed").Inc()
		return err
	}
	l.mu.Lock()
	l.refusal = nil
	l.mu.Unlock()
	l.metrics.signIns.WithLabelValues("ok").Inc()
	return nil
}

// refusalHold is how long requests take the hub's refusal of a sign-in
// as the answer instead of asking again.
const refusalHold = 5 * time.Second

func (l *Link) signInAs(ctx context.Context, enroll bool) error {
	resp, err := l.signInOnce(ctx, enroll, nil)
	if err == nil && resp.Activation != nil {
		// A TPM enrollment: prove that the AK lives in the TPM of the EK,
		// then enroll again with the recovered secret.
		if l.o.Activate == nil {
			return errors.New("the hub sent a credential activation challenge, but the device key is not in a TPM")
		}
		secret, aerr := l.o.Activate(resp.Activation.CredentialBlob, resp.Activation.Secret)
		if aerr != nil {
			return fmt.Errorf("answering the hub's credential activation challenge: %w", aerr)
		}
		resp, err = l.signInOnce(ctx, enroll, secret)
		if err == nil && resp.Activation != nil {
			err = errors.New("the hub sent a second credential activation challenge")
		}
	}
	if err != nil {
		return err
	}
	id := l.o.Key.ID()
	if resp.Token == "" || resp.DeviceID != id {
		return errors.New("the hub's sign-in answer has no credential for this device")
	}
	l.mu.Lock()
	first := !l.haveSeq
	l.token, l.expires, l.tenant = resp.Token, resp.ExpiresAt, resp.TenantName
	l.ttl = time.Until(resp.ExpiresAt)
	l.acked, l.haveSeq = resp.AuditSeq, true
	l.lastErr = ""
	l.mu.Unlock()
	if enroll || first {
		l.o.Log.Info("signed in to the hub", "hub", l.base.Host, "device", id, "tenant", resp.TenantName, "enrolled", enroll, "attested", resp.Attested, "audit_seq", resp.AuditSeq)
	}
	return nil
}

// signInOnce makes one enrollment or sign-in request with a fresh nonce;
// a TPM key attests for it. activation is the answer to the hub's
// credential activation challenge (enrollment only).
func (l *Link) signInOnce(ctx context.Context, enroll bool, activation []byte) (*hub.SignInResponse, error) {
	var nr hub.NonceResponse
	if err := l.postJSON(ctx, hub.PathNonce, struct{}{}, &nr); err != nil {
		return nil, fmt.Errorf("getting a nonce from the hub: %w", err)
	}
	purpose, path := hub.PurposeSession, hub.PathSession
	if enroll {
		purpose, path = hub.PurposeEnroll, hub.PathEnroll
	}
	id := l.o.Key.ID()
	sig, err := l.o.Key.Sign(rand.Reader, hub.Digest(purpose, nr.Nonce, id, l.o.Hub.URL), crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing with the device key: %w", err)
	}
	req := hub.SignInRequest{DeviceID: id, Nonce: nr.Nonce, Signature: sig, HubURL: l.o.Hub.URL}
	if enroll {
		der, err := marshalPublic(l.o.Key.Public())
		if err != nil {
			return nil, err
		}
		req.PublicKey, req.Kind, req.Token, req.Name, req.Labels = der, l.o.Key.Kind(), l.o.Hub.EnrollToken, l.o.Hub.Name, l.o.Hub.Labels
		req.Activation = activation
	}
	if l.o.Key.Kind() == "tpm" {
		// Every enrollment and sign-in of a TPM device carries a fresh
		// attestation: the hub checks the AK and the PCR values each time.
		att, err := l.o.Attest(nr.Nonce)
		if err != nil {
			return nil, fmt.Errorf("attesting the device key: %w", err)
		}
		req.Attestation = att
	}
	var resp hub.SignInResponse
	if err := l.postJSON(ctx, path, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// postJSON posts v as JSON to the hub (unauthenticated) and decodes the
// answer into out, or returns the hub's refusal as a *hubError.
func (l *Link) postJSON(ctx context.Context, path string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base.String()+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the hub's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return decodeRefusal(resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("the hub's answer to %s is not what an mcpedge hub sends: %v", path, err)
	}
	return nil
}

func decodeRefusal(status int, raw []byte) *hubError {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
		msg := strings.TrimSpace(string(raw))
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return &hubError{status: status, code: "http_" + fmt.Sprint(status), msg: msg}
	}
	return &hubError{status: status, code: e.Error.Code, msg: e.Error.Message}
}

// ---- telemetry

func (l *Link) telemetryLoop(ctx context.Context) {
	t := time.NewTicker(l.o.Hub.TelemetryInterval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.takeSnapshot()
		l.mu.Lock()
		tok, ok := l.token, l.haveSeq
		l.mu.Unlock()
		if tok == "" || !ok {
			continue // not signed in: the snapshot waits in the ring
		}
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := l.sendAll(callCtx, tok); err != nil && ctx.Err() == nil {
			l.o.Log.Debug("telemetry not sent; kept for the next attempt", "err", err.Error())
			l.setErr("telemetry: " + err.Error())
		}
		cancel()
	}
}

// takeSnapshot adds the current metrics to the ring, dropping the oldest
// snapshot when it is full.
func (l *Link) takeSnapshot() {
	s, err := Snapshot(l.o.Gatherer, time.Now())
	if err != nil {
		l.o.Log.Warn("gathering metrics for the hub", "err", err.Error())
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) >= l.o.Hub.TelemetryBuffer {
		n := len(l.ring) - l.o.Hub.TelemetryBuffer + 1
		l.ring = append(l.ring[:0], l.ring[n:]...)
		l.dropped += int64(n)
		l.metrics.dropped.Add(float64(n))
	}
	l.ring = append(l.ring, s)
}

// maxPostsPerTick bounds how many posts one tick sends to work off an
// audit backlog.
const maxPostsPerTick = 20

// sendAll sends the buffered snapshots and the audit entries after the
// hub's sequence number, in batches, until the backlog is sent.
func (l *Link) sendAll(ctx context.Context, tok string) error {
	for range maxPostsPerTick {
		more, err := l.sendOne(ctx, tok)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Flush sends everything pending now (tests and shutdown).
func (l *Link) Flush(ctx context.Context) error {
	l.takeSnapshot()
	tok, err := l.currentToken(ctx)
	if err != nil {
		return err
	}
	return l.sendAll(ctx, tok)
}

func (l *Link) sendOne(ctx context.Context, tok string) (more bool, err error) {
	l.mu.Lock()
	from := l.acked
	snaps := append([]hub.Snapshot(nil), l.ring...)
	dropped := l.dropped
	l.mu.Unlock()
	if len(snaps) > hub.MaxSnapshots {
		snaps = snaps[len(snaps)-hub.MaxSnapshots:]
	}
	entries, err := l.o.Audit.ListAudit(ctx, store.AuditFilter{AfterSeq: from, Limit: l.o.Hub.TelemetryBatch})
	if err != nil {
		return false, fmt.Errorf("reading the audit log: %w", err)
	}
	// Only the contiguous run after from: the hub refuses gaps.
	for i := range entries {
		if entries[i].Seq != from+int64(i)+1 {
			entries = entries[:i]
			break
		}
	}
	if len(snaps) == 0 && len(entries) == 0 {
		return false, nil
	}
	b := hub.Batch{DeviceID: l.o.Key.ID(), SentAt: time.Now().UTC(), Snapshots: snaps, DroppedSnapshots: dropped, AuditFrom: from, Audit: entries}
	raw, err := json.Marshal(b)
	if err != nil {
		return false, err
	}
	body := l.enc.EncodeAll(raw, nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base.String()+hub.PathTelemetry, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "zstd")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := l.client.Do(req)
	if err != nil {
		l.metrics.posts.WithLabelValues("unreachable").Inc()
		return false, err
	}
	defer resp.Body.Close()
	ans, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusOK:
		var tr hub.TelemetryResponse
		if err := json.Unmarshal(ans, &tr); err != nil {
			return false, fmt.Errorf("the hub's telemetry answer: %v", err)
		}
		l.mu.Lock()
		l.acked = tr.AuditSeq
		// The sent snapshots leave the ring; newer ones stay.
		if n := len(snaps); n <= len(l.ring) {
			l.ring = append(l.ring[:0], l.ring[n:]...)
		}
		l.lastSent = time.Now()
		l.mu.Unlock()
		l.metrics.posts.WithLabelValues("ok").Inc()
		l.metrics.bytes.Add(float64(len(body)))
		return len(entries) == l.o.Hub.TelemetryBatch, nil
	case http.StatusConflict:
		var c struct {
			AuditSeq int64 `json:"audit_seq"`
		}
		if err := json.Unmarshal(ans, &c); err != nil {
			return false, fmt.Errorf("the hub's conflict answer: %v", err)
		}
		l.mu.Lock()
		l.acked = c.AuditSeq
		l.mu.Unlock()
		l.metrics.posts.WithLabelValues("resync").Inc()
		return true, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		l.invalidate(tok)
		l.metrics.posts.WithLabelValues("refused").Inc()
		return false, decodeRefusal(resp.StatusCode, ans)
	default:
		l.metrics.posts.WithLabelValues("refused").Inc()
		return false, decodeRefusal(resp.StatusCode, ans)
	}
}

// Snapshot flattens the registry's metrics into series -> value:
// counters, gauges and untyped metrics as they are, histograms and
// summaries as name_count and name_sum (buckets and quantiles stay home).
func Snapshot(g prometheus.Gatherer, at time.Time) (hub.Snapshot, error) {
	fams, err := g.Gather()
	if err != nil && len(fams) == 0 {
		return hub.Snapshot{}, err
	}
	s := hub.Snapshot{At: at.UTC(), Series: map[string]float64{}}
	for _, f := range fams {
		name := f.GetName()
		for _, m := range f.GetMetric() {
			if len(s.Series) >= hub.MaxSeriesPerSnapshot {
				break
			}
			labels := seriesLabels(m.GetLabel())
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				s.Series[name+labels] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.Series[name+labels] = m.GetGauge().GetValue()
				if name == "mcpedge_queue_entries" {
					for _, lp := range m.GetLabel() {
						if lp.GetName() == "state" && (lp.GetValue() == "pending" || lp.GetValue() == "delivering") {
							s.QueueDepth += int64(m.GetGauge().GetValue())
						}
					}
				}
			case dto.MetricType_UNTYPED:
				s.Series[name+labels] = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				s.Series[name+"_count"+labels] = float64(m.GetHistogram().GetSampleCount())
				s.Series[name+"_sum"+labels] = m.GetHistogram().GetSampleSum()
			case dto.MetricType_SUMMARY:
				s.Series[name+"_count"+labels] = float64(m.GetSummary().GetSampleCount())
				s.Series[name+"_sum"+labels] = m.GetSummary().GetSampleSum()
			}
		}
	}
	return s, nil
}

func seriesLabels(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
