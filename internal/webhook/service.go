package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpedge/mcpedge/internal/egress"
	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Defaults of [Options].
const (
	DefaultTimeout       = 10 * time.Second
	DefaultRetryFor      = 24 * time.Hour
	DefaultBackoffMin    = 5 * time.Second
	DefaultBackoffMax    = time.Hour
	DefaultWorkers       = 4
	DefaultPollInterval  = 2 * time.Second
	DefaultRetention     = 30 * 24 * time.Hour
	DefaultSecretOverlap = 24 * time.Hour

	// MaxResponseBytes is how much of an endpoint's answer is read (and
	// then dropped): an endpoint answering gigabytes costs nothing more.
	MaxResponseBytes = 64 << 10
	// maxErrorText bounds an attempt's stored error.
	maxErrorText = 500
	// claimBatch is how many deliveries one poll claims.
	claimBatch = 64
)

// Options configure [New]. Zero values take the defaults above.
type Options struct {
	// Store holds endpoints and deliveries (Tenants: to tell operator
	// tenants). Required.
	Store interface {
		store.Webhooks
		store.Tenants
	}
	// Box seals endpoint secrets (the store's key ring). Required.
	Box *sealbox.Box
	// AllowPrivate are address ranges endpoints may be reached at
	// although they are not public ([webhooks] allow_private).
	AllowPrivate []netip.Prefix
	// Timeout bounds one attempt: connecting, sending, the answer.
	Timeout time.Duration
	// RetryFor is how long after its event a delivery is retried before
	// it is dead-lettered.
	RetryFor time.Duration
	// BackoffMin and BackoffMax bound the wait between attempts: it
	// doubles from BackoffMin up to BackoffMax, with jitter.
	BackoffMin, BackoffMax time.Duration
	// Workers is how many deliveries one process attempts at once.
	Workers int
	// PollInterval is how often due deliveries are looked for (a publish
	// in this process wakes the loop at once).
	PollInterval time.Duration
	// Retention keeps delivered and dead deliveries this long.
	Retention time.Duration
	// SecretOverlap is how long a rotated-out secret keeps signing.
	SecretOverlap time.Duration
	// Owner names this process in leases; "" makes a random one.
	Owner string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Jitter returns a number in [0, 1); nil means math/rand.
	Jitter func() float64
	// Log, if nil, is slog.Default().
	Log *slog.Logger
	// Transport, if set, replaces the egress-checked transport (tests of
	// the backoff only; never in the gateway).
	Transport http.RoundTripper
}

// Service publishes events as deliveries and delivers them. It implements
// [events.Publisher]. Safe for concurrent use.
type Service struct {
	o      Options
	client *http.Client
	policy *egress.Policy
	log    *slog.Logger
	wake   chan struct{}
	now    func() time.Time
	jitter func() float64
}

// New returns a Service; call [Service.Run] to deliver.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Box == nil {
		return nil, errors.New("webhook: a store and its key ring are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, DefaultTimeout)
	def(&o.RetryFor, DefaultRetryFor)
	def(&o.BackoffMin, DefaultBackoffMin)
	def(&o.BackoffMax, DefaultBackoffMax)
	def(&o.PollInterval, DefaultPollInterval)
	def(&o.Retention, DefaultRetention)
	def(&o.SecretOverlap, DefaultSecretOverlap)
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Owner == "" {
		o.Owner = "p-" + store.NewID()
	}
	s := &Service{o: o, log: o.Log, wake: make(chan struct{}, 1), now: o.Now, jitter: o.Jitter}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.jitter == nil {
		s.jitter = rand.Float64
	}
	s.policy = newPolicy(o.AllowPrivate)
	tr := o.Transport
	if tr == nil {
		tr = &http.Transport{
			// Never a proxy from the environment: the policy judges the
			// address actually dialled.
			Proxy:                 nil,
			DialContext:           s.policy.Dialer(&net.Dialer{Timeout: o.Timeout}).DialContext,
			TLSHandshakeTimeout:   o.Timeout,
			ResponseHeaderTimeout: o.Timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	s.client = &http.Client{
		Transport: tr,
		Timeout:   o.Timeout,
		// A redirect is not followed: the answer is a failed attempt.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// newPolicy is where endpoints may be dialled: public addresses, and
// allow (never loopback by default: tenants name these URLs).
func newPolicy(allow []netip.Prefix) *egress.Policy {
	return &egress.Policy{Who: "webhook endpoint", Allow: allow, AllowKey: "[webhooks] allow_private"}
}

// ---- endpoints and their secrets

// secretEntry is one signing secret of an endpoint, as sealed.
type secretEntry struct {
	Secret  string    `json:"secret"`
	Expires time.Time `json:"expires,omitzero"`
}

func secretsAD(e *store.WebhookEndpoint) sealbox.AD {
	return sealbox.AD{Tenant: e.TenantID, Record: "webhook_endpoints/" + e.ID + "/secrets"}
}

func (s *Service) seal(ctx context.Context, e *store.WebhookEndpoint, ss []secretEntry) error {
	b, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	ct, err := s.o.Box.Seal(ctx, secretsAD(e), b)
	if err != nil {
		return fmt.Errorf("webhook: sealing the endpoint's secrets: %w", err)
	}
	e.Secrets = ct
	return nil
}

func (s *Service) open(ctx context.Context, e *store.WebhookEndpoint) ([]secretEntry, error) {
	b, err := s.o.Box.Open(ctx, secretsAD(e), e.Secrets)
	if err != nil {
		return nil, fmt.Errorf("webhook: opening the secrets of endpoint %s: %w", e.ID, err)
	}
	var ss []secretEntry
	if err := json.Unmarshal(b, &ss); err != nil {
		return nil, fmt.Errorf("webhook: the secrets of endpoint %s: %w", e.ID, err)
	}
	return ss, nil
}

// keys returns the bytes of the secrets live at now, newest first.
func (s *Service) keys(ss []secretEntry, now time.Time) [][]byte {
	var out [][]byte
	for _, x := range ss {
		if !x.Expires.IsZero() && !now.Before(x.Expires) {
			continue
		}
		if k, err := ParseSecret(x.Secret); err == nil {
			out = append(out, k)
		}
	}
	return out
}

// ErrInvalid is what a refused URL or event list matches (errors.Is): the
// caller's input, not a failure of the service.
var ErrInvalid = errors.New("webhook: invalid endpoint")

type invalidError struct{ msg string }

func (e invalidError) Error() string        { return e.msg }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error { return invalidError{fmt.Sprintf(format, args...)} }

// CheckURL refuses an endpoint URL that could never be delivered to: not
// http(s), credentials in it, a host in a form resolvers disagree on, or
// an IP address the egress policy refuses. A name is judged at each
// connection, on the address it resolves to.
func (s *Service) CheckURL(raw string) error {
	if len(raw) > 2048 {
		return invalidf("the url is longer than 2048 bytes")
	}
	if err := egress.CheckURL(raw); err != nil {
		return invalidf("the url %s", err)
	}
	u, _ := url.Parse(raw)
	if u.Fragment != "" {
		return invalidf("the url must not have a fragment")
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		if c, ok := s.policy.Allowed(a); !ok {
			return invalidf("the url's address %s is %s, which webhooks may not reach; allow it with [webhooks] allow_private", a, c.Describe())
		}
	}
	return nil
}

// Spec is a new endpoint or a change of one.
type Spec struct {
	URL         string
	Description string
	Events      []string
	AllTenants  bool
	Disabled    bool
}

// CheckEvents refuses an empty list and unknown event types.
func CheckEvents(evs []string) error {
	if len(evs) == 0 {
		return invalidf(`name the events to deliver (or "*" for all)`)
	}
	if len(evs) > 64 {
		return invalidf("at most 64 event types")
	}
	for _, e := range evs {
		if !events.Known(e) {
			return invalidf("unknown event type %.64q; known: %s, invoice.<name>, or *", e, strings.Join(events.Types(), ", "))
		}
	}
	return nil
}

// Create stores a new endpoint of tenantID with a fresh secret, and
// returns it and the secret (the only time it is shown).
func (s *Service) Create(ctx context.Context, tenantID string, sp Spec) (*store.WebhookEndpoint, string, error) {
	if err := s.CheckURL(sp.URL); err != nil {
		return nil, "", err
	}
	if err := CheckEvents(sp.Events); err != nil {
		return nil, "", err
	}
	e := &store.WebhookEndpoint{ID: store.NewID(), TenantID: tenantID, URL: sp.URL, Description: sp.Description,
		Events: dedupe(sp.Events), AllTenants: sp.AllTenants, Disabled: sp.Disabled}
	secret := NewSecret()
	if err := s.seal(ctx, e, []secretEntry{{Secret: secret}}); err != nil {
		return nil, "", err
	}
	if err := s.o.Store.CreateWebhookEndpoint(ctx, e); err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// Update replaces an endpoint's URL, description, events and flags.
func (s *Service) Update(ctx context.Context, e *store.WebhookEndpoint, sp Spec) error {
	if err := s.CheckURL(sp.URL); err != nil {
		return err
	}
	if err := CheckEvents(sp.Events); err != nil {
		return err
	}
	e.URL, e.Description, e.Events, e.AllTenants, e.Disabled = sp.URL, sp.Description, dedupe(sp.Events), sp.AllTenants, sp.Disabled
	return s.o.Store.UpdateWebhookEndpoint(ctx, e)
}

// Rotate adds a fresh secret that signs from now on; the others keep
// signing for overlap (0: Options.SecretOverlap; negative: they stop at
// once), so receivers can switch without losing a delivery. It returns
// the new secret.
func (s *Service) Rotate(ctx context.Context, e *store.WebhookEndpoint, overlap time.Duration) (string, error) {
	ss, err := s.open(ctx, e)
	if err != nil {
		return "", err
	}
	now := s.now()
	if overlap == 0 {
		overlap = s.o.SecretOverlap
	}
	until := now.Add(max(overlap, 0))
	secret := NewSecret()
	next := []secretEntry{{Secret: secret}}
	for _, x := range ss {
		if !x.Expires.IsZero() && !now.Before(x.Expires) {
			continue // expired: dropped
		}
		if x.Expires.IsZero() || x.Expires.After(until) {
			x.Expires = until
		}
		if overlap > 0 {
			next = append(next, x)
		}
	}
	if len(next) > 5 {
		next = next[:5]
	}
	if err := s.seal(ctx, e, next); err != nil {
		return "", err
	}
	return secret, s.o.Store.UpdateWebhookEndpoint(ctx, e)
}

func dedupe(l []string) []string {
	out := slices.Clone(l)
	slices.Sort(out)
	return slices.Compact(out)
}

// ---- publishing

// Message is the body of a delivery (Standard Webhooks' recommended
// shape).
type Message struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

func payload(e events.Event) ([]byte, error) {
	data := map[string]any{}
	for k, v := range e.Data {
		data[k] = v
	}
	if e.TenantID != "" {
		data["tenant_id"] = e.TenantID
	}
	return json.Marshal(Message{Type: e.Type, Timestamp: e.Time.UTC().Truncate(time.Millisecond), Data: data})
}

// subscribed reports whether endpoint ep takes events of type t.
func subscribed(ep *store.WebhookEndpoint, t string) bool {
	for _, x := range ep.Events {
		if x == t || (x == "*" && t != events.Test) {
			return true
		}
	}
	return false
}

// Publish implements [events.Publisher]: it queues one delivery of e to
// every enabled endpoint subscribed to its type that may see it — the
// endpoints of e's tenant; for events of the whole gateway, the endpoints
// of operator tenants; and operator endpoints with AllTenants, for every
// tenant's events. The deliveries are in the store when it returns.
func (s *Service) Publish(ctx context.Context, e events.Event) error {
	if e.Type == "" {
		return errors.New("webhook: an event needs a type")
	}
	if e.ID == "" {
		e.ID = events.NewID()
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	eps, err := s.o.Store.ListWebhookEndpoints(ctx, "")
	if err != nil {
		return fmt.Errorf("webhook: publishing %s: %w", e.Type, err)
	}
	var operators map[string]bool
	isOperator := func(tenantID string) bool {
		if operators == nil {
			operators = map[string]bool{}
			if ts, err := s.o.Store.ListTenants(ctx); err == nil {
				for _, t := range ts {
					operators[t.ID] = t.Operator
				}
			}
		}
		return operators[tenantID]
	}
	var targets []string
	for i := range eps {
		ep := &eps[i]
		if ep.Disabled || !subscribed(ep, e.Type) {
			continue
		}
		switch {
		case e.TenantID != "" && ep.TenantID == e.TenantID:
		case e.TenantID == "" && isOperator(ep.TenantID):
		case e.TenantID != "" && ep.AllTenants && isOperator(ep.TenantID):
		default:
			continue
		}
		targets = append(targets, ep.ID)
	}
	if len(targets) == 0 {
		return nil
	}
	return s.enqueue(ctx, e, targets, nil)
}

func (s *Service) enqueue(ctx context.Context, e events.Event, endpoints []string, stored *[]store.WebhookDelivery) error {
	body, err := payload(e)
	if err != nil {
		return fmt.Errorf("webhook: encoding event %s: %w", e.Type, err)
	}
	ds := make([]store.WebhookDelivery, len(endpoints))
	for i, id := range endpoints {
		ds[i] = store.WebhookDelivery{EndpointID: id, EventID: e.ID, EventType: e.Type, Payload: body, NextAt: e.Time}
	}
	got, err := s.o.Store.EnqueueWebhookDeliveries(ctx, ds)
	if err != nil {
		return fmt.Errorf("webhook: queueing %s: %w", e.Type, err)
	}
	if stored != nil {
		*stored = got
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// ---- delivering

// Result is the outcome of one attempt.
type Result struct {
	DeliveryID string `json:"delivery_id"`
	EventID    string `json:"event_id"`
	State      string `json:"state"`
	Status     int    `json:"status,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Test queues a signed test event to endpoint e and attempts it at once,
// whatever its event list; it returns the attempt's result. A failed test
// stays queued and is retried like any delivery.
func (s *Service) Test(ctx context.Context, e *store.WebhookEndpoint) (*Result, error) {
	ev := events.Event{ID: events.NewID(), Type: events.Test, TenantID: e.TenantID, Time: s.now(),
		Data: map[string]any{"endpoint_id": e.ID, "message": "a test event sent by mcpedge webhook test"}}
	var stored []store.WebhookDelivery
	if err := s.enqueue(ctx, ev, []string{e.ID}, &stored); err != nil {
		return nil, err
	}
	if len(stored) != 1 {
		return nil, errors.New("webhook: the test delivery was not stored (was the endpoint just removed?)")
	}
	d, err := s.o.Store.ClaimWebhookDelivery(ctx, stored[0].ID, s.o.Owner, s.now(), s.lease())
	if errors.Is(err, store.ErrConflict) {
		// Another process of this store claimed it first.
		return &Result{DeliveryID: stored[0].ID, EventID: ev.ID, State: store.DeliveryPending, Error: "being delivered by another process"}, nil
	}
	if err != nil {
		return nil, err
	}
	return s.attempt(ctx, d), nil
}

// lease is how long a claimed delivery is this process's: longer than
// an attempt can take.
func (s *Service) lease() time.Duration { return 2*s.o.Timeout + 30*time.Second }

// Backoff is the wait after the n-th failed attempt (n >= 1): BackoffMin
// doubling to BackoffMax, then between half of it and all of it (jitter,
// so that endpoints coming back are not hit by every delivery at once).
func (s *Service) Backoff(n int) time.Duration {
	d := s.o.BackoffMin
	for i := 1; i < n && d < s.o.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.o.BackoffMax)
	return d/2 + time.Duration(s.jitter()*float64(d/2))
}

// RunOnce claims the deliveries due now and attempts them, Workers at a
// time; it returns how many it attempted.
func (s *Service) RunOnce(ctx context.Context) (int, error) {
	ds, err := s.o.Store.ClaimWebhookDeliveries(ctx, s.o.Owner, s.now(), s.lease(), claimBatch)
	if err != nil {
		return 0, err
	}
	sem := make(chan struct{}, s.o.Workers)
	var wg sync.WaitGroup
	for i := range ds {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.attempt(ctx, &ds[i])
		})
	}
	wg.Wait()
	return len(ds), nil
}

// Run delivers until ctx ends: due deliveries every PollInterval (at once
// after a publish in this process, and again at once after a full batch),
// and the pruning of old finished deliveries once an hour.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.o.PollInterval)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		n, err := s.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("webhook deliveries could not be claimed; retrying", "error", err)
		}
		if now := s.now(); now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			if _, err := s.o.Store.PruneWebhookDeliveries(ctx, now.Add(-s.o.Retention)); err != nil && ctx.Err() == nil {
				s.log.Warn("pruning old webhook deliveries failed", "error", err)
			}
		}
		if n == claimBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// attempt sends d once and records the outcome.
func (s *Service) attempt(ctx context.Context, d *store.WebhookDelivery) *Result {
	start := s.now()
	a := store.WebhookAttempt{DeliveryID: d.ID, N: d.Attempts + 1, At: start}
	delivered, final := false, false
	ep, err := s.o.Store.GetWebhookEndpoint(ctx, "", d.EndpointID)
	switch {
	case err != nil:
		a.Error = "the endpoint could not be read: " + err.Error()
	case ep.Disabled:
		a.Error, final = "the endpoint is disabled", true
	default:
		a.Status, err = s.send(ctx, ep, d, start)
		delivered = err == nil
		if err != nil {
			a.Error = err.Error()
		}
	}
	a.DurationMS = s.now().Sub(start).Milliseconds()
	if len(a.Error) > maxErrorText {
		a.Error = a.Error[:maxErrorText] + "…"
	}
	now := s.now()
	switch {
	case delivered:
		d.State, d.DoneAt, d.NextAt = store.DeliveryDelivered, now, time.Time{}
	default:
		next := now.Add(s.Backoff(a.N))
		if final || next.After(d.CreatedAt.Add(s.o.RetryFor)) {
			d.State, d.DoneAt, d.NextAt = store.DeliveryDead, now, time.Time{}
			s.log.Warn("webhook delivery dead-lettered", "delivery", d.ID, "endpoint", d.EndpointID, "event", d.EventID, "type", d.EventType,
				"attempts", a.N, "error", a.Error)
		} else {
			d.State, d.NextAt = store.DeliveryPending, next
		}
	}
	// The outcome is recorded even when ctx ended (shutdown), so that a
	// delivery that reached its endpoint is not sent again.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.o.Store.FinishWebhookDelivery(fctx, d, a); err != nil {
		s.log.Warn("recording a webhook attempt failed; the delivery is attempted again when its lease ends", "delivery", d.ID, "error", err)
	}
	d.Attempts, d.LastStatus, d.LastError, d.LastAttemptAt = a.N, a.Status, a.Error, a.At
	return &Result{DeliveryID: d.ID, EventID: d.EventID, State: d.State, Status: a.Status, Error: a.Error, DurationMS: a.DurationMS}
}

// send POSTs the delivery, signed with the endpoint's live secrets; a 2xx
// answer is success.
func (s *Service) send(ctx context.Context, ep *store.WebhookEndpoint, d *store.WebhookDelivery, now time.Time) (int, error) {
	ss, err := s.open(ctx, ep)
	if err != nil {
		return 0, err
	}
	keys := s.keys(ss, now)
	if len(keys) == 0 {
		return 0, errors.New("the endpoint has no live secret (rotate it)")
	}
	if err := s.CheckURL(ep.URL); err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, ep.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, errors.New("the endpoint's url does not make a request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mcpedge-webhooks")
	req.Header.Set(HeaderID, d.EventID)
	req.Header.Set(HeaderTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(HeaderSignature, SignatureHeader(keys, d.EventID, now, d.Payload))
	resp, err := s.client.Do(req)
	if err != nil {
		var re *egress.RefusedError
		switch {
		case errors.As(err, &re):
			return 0, re
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return 0, fmt.Errorf("no answer within %s", s.o.Timeout)
		}
		return 0, fmt.Errorf("sending: %s", scrub(err, ep.URL))
	}
	// Read a bounded part of the answer so the connection can be reused,
	// and no more.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp.StatusCode, fmt.Errorf("answered %s (redirects are not followed; give the final url)", resp.Status)
	}
	return resp.StatusCode, fmt.Errorf("answered %s", resp.Status)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// scrub keeps an endpoint's query (which may carry a token) out of an
// error: url.Error quotes the whole URL.
func scrub(err error, raw string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.RawQuery != "" {
		msg = strings.ReplaceAll(msg, u.RawQuery, "…")
	}
	return msg
}
