package webhook

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
)

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	st    store.Store
	clk   *clock
	svc   *Service
	owner *store.Tenant // an operator tenant
	acme  *store.Tenant
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := open.Open(ctx, "sqlite::memory:", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := open.SecretBox(st)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, clk: &clock{t: time.Now().Truncate(time.Second)}}
	f.owner = &store.Tenant{Name: "ops", Plan: "free", Operator: true}
	f.acme = &store.Tenant{Name: "acme", Plan: "free"}
	for _, tn := range []*store.Tenant{f.owner, f.acme} {
		if err := st.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{Store: st, Box: box, AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Timeout: 2 * time.Second, BackoffMin: time.Second, BackoffMax: time.Minute, RetryFor: 10 * time.Minute,
		Now: f.clk.now, Jitter: func() float64 { return 0.5 }, Owner: "test"}
	if mod != nil {
		mod(&o)
	}
	if f.svc, err = New(o); err != nil {
		t.Fatal(err)
	}
	return f
}

// receiver is a test endpoint that checks every signature and counts
// deliveries by webhook-id.
type receiver struct {
	t    *testing.T
	clk  *clock
	mu   sync.Mutex
	keys [][]byte
	down bool
	// strangers: deliveries signed with no known key are expected.
	strangers bool
	seen      map[string]int
	bodies    map[string]Message
	sigs      []string
}

func newReceiver(t *testing.T, clk *clock) (*receiver, *httptest.Server) {
	r := &receiver{t: t, clk: clk, seen: map[string]int{}, bodies: map[string]Message{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.down {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		id, ts, sig := req.Header.Get(HeaderID), req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderSignature)
		var okKey bool
		for _, k := range r.keys {
			if Verify(k, id, ts, sig, body, clk.now(), 5*time.Minute) == nil {
				okKey = true
			}
		}
		if !okKey {
			if r.strangers {
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
			r.t.Errorf("delivery %s: the signature %q does not verify", id, sig)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m Message
		if err := json.Unmarshal(body, &m); err != nil {
			r.t.Errorf("delivery %s: body %q: %v", id, body, err)
		}
		r.seen[id]++
		r.bodies[id] = m
		r.sigs = append(r.sigs, sig)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) setDown(b bool) { r.mu.Lock(); r.down = b; r.mu.Unlock() }
func (r *receiver) addKey(secret string) {
	k, err := ParseSecret(secret)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.keys = append(r.keys, k)
	r.mu.Unlock()
}

func (f *fixture) drain(t *testing.T) {
	t.Helper()
	for range 10 {
		n, err := f.svc.RunOnce(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func TestBackoffSchedule(t *testing.T) {
	for _, tc := range []struct {
		jitter float64
		want   []time.Duration
	}{
		// Jitter 0: half of each step; jitter ~1: all of it.
		{0, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}},
		{0.5, []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 12 * time.Second, 24 * time.Second, 45 * time.Second, 45 * time.Second, 45 * time.Second}},
	} {
		f := newFixture(t, func(o *Options) { o.Jitter = func() float64 { return tc.jitter } })
		for i, want := range tc.want {
			if got := f.svc.Backoff(i + 1); got != want {
				t.Errorf("jitter %v: Backoff(%d) = %s, want %s", tc.jitter, i+1, got, want)
			}
		}
		if got := f.svc.Backoff(1000); got > time.Minute {
			t.Errorf("Backoff(1000) = %s, beyond BackoffMax", got)
		}
	}
}

// TestDeliverAfterOutage: the endpoint is down for a while; every event is
// delivered once it is back, each exactly once by webhook-id, retried on
// the backoff schedule with the same id and body.
func TestDeliverAfterOutage(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	rcv, srv := newReceiver(t, f.clk)
	ep, secret, err := f.svc.Create(ctx, f.acme.ID, Spec{URL: srv.URL + "/hook?token=abc", Events: []string{events.KeyCreated, events.QuotaWarning}})
	if err != nil {
		t.Fatal(err)
	}
	rcv.addKey(secret)
	rcv.setDown(true)
	var ids []string
	for i := range 5 {
		e := events.Event{Type: events.KeyCreated, TenantID: f.acme.ID, Data: map[string]any{"key_id": i}}
		e.ID = events.NewID()
		ids = append(ids, e.ID)
		if err := f.svc.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Not subscribed, another tenant's: not delivered here.
	f.svc.Publish(ctx, events.Event{Type: events.UpstreamDown})
	f.svc.Publish(ctx, events.Event{Type: events.KeyCreated, TenantID: f.owner.ID})
	for range 3 {
		f.drain(t)
		f.clk.add(time.Minute)
	}
	ds, err := f.st.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{EndpointID: ep.ID})
	if err != nil || len(ds) != 5 {
		t.Fatalf("deliveries: %d, %v; want 5", len(ds), err)
	}
	for _, d := range ds {
		if d.State != store.DeliveryPending || d.Attempts != 3 || d.LastStatus != 503 {
			t.Errorf("during the outage: %+v", d)
		}
	}
	rcv.setDown(false)
	f.clk.add(time.Minute)
	f.drain(t)
	f.drain(t) // nothing left: a delivered event is not sent again
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, id := range ids {
		if rcv.seen[id] != 1 {
			t.Errorf("event %s delivered %d times, want once", id, rcv.seen[id])
		}
		if m := rcv.bodies[id]; m.Type != events.KeyCreated || m.Data["tenant_id"] != f.acme.ID {
			t.Errorf("event %s body: %+v", id, m)
		}
	}
	if len(rcv.seen) != 5 {
		t.Errorf("the receiver saw %d events, want 5", len(rcv.seen))
	}
	_, as, err := f.st.GetWebhookDelivery(ctx, f.acme.ID, ds[0].ID)
	if err != nil || len(as) != 4 || as[3].Status != 204 || as[0].Error != "answered 503 Service Unavailable" {
		t.Errorf("attempt log: %+v, %v", as, err)
	}
}

func TestDeadLetter(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	rcv, srv := newReceiver(t, f.clk)
	ep, secret, err := f.svc.Create(ctx, f.acme.ID, Spec{URL: srv.URL, Events: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	rcv.addKey(secret)
	rcv.setDown(true)
	if err := f.svc.Publish(ctx, events.Event{Type: events.QuotaExhausted, TenantID: f.acme.ID}); err != nil {
		t.Fatal(err)
	}
	// Attempts at 0, then after the backoff each time, until the next
	// one would fall past RetryFor (10m).
	for range 40 {
		f.drain(t)
		f.clk.add(30 * time.Second)
	}
	ds, _ := f.st.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{EndpointID: ep.ID})
	if len(ds) != 1 || ds[0].State != store.DeliveryDead {
		t.Fatalf("after RetryFor: %+v", ds)
	}
	// 0.75s, 1.5s, 3s, 6s, 12s, 24s, 45s, 45s… of backoff, attempts
	// every 30s of the clock at the most: bounded, and more than a few.
	if ds[0].Attempts < 8 || ds[0].Attempts > 21 {
		t.Errorf("dead after %d attempts", ds[0].Attempts)
	}
	if !ds[0].DoneAt.Before(ds[0].CreatedAt.Add(10*time.Minute + time.Second)) {
		t.Errorf("dead-lettered at %s, past RetryFor from %s", ds[0].DoneAt, ds[0].CreatedAt)
	}
	// Visible and retryable: the retry is delivered.
	rcv.setDown(false)
	if err := f.st.RetryWebhookDelivery(ctx, f.acme.ID, ds[0].ID, f.clk.now()); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	d, _, _ := f.st.GetWebhookDelivery(ctx, "", ds[0].ID)
	if d.State != store.DeliveryDelivered {
		t.Errorf("retried dead delivery: %+v", d)
	}
}

func TestRotateSignsWithBoth(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	rcv, srv := newReceiver(t, f.clk)
	ep, oldSecret, err := f.svc.Create(ctx, f.acme.ID, Spec{URL: srv.URL, Events: []string{events.KeyRevoked}})
	if err != nil {
		t.Fatal(err)
	}
	newSecret, err := f.svc.Rotate(ctx, ep, time.Hour)
	if err != nil || newSecret == oldSecret {
		t.Fatalf("Rotate: %v", err)
	}
	// A receiver that knows only the new secret accepts; so does one
	// that knows only the old.
	rcv.addKey(newSecret)
	res, err := f.svc.Test(ctx, ep)
	if err != nil || res.State != store.DeliveryDelivered || res.Status != 204 {
		t.Fatalf("Test after rotation: %+v, %v", res, err)
	}
	rcv.mu.Lock()
	sig := rcv.sigs[0]
	rcv.keys = nil
	rcv.mu.Unlock()
	if n := len(strings.Fields(sig)); n != 2 {
		t.Errorf("during the overlap %d signatures are sent, want 2", n)
	}
	rcv.addKey(oldSecret)
	if res, _ := f.svc.Test(ctx, ep); res.State != store.DeliveryDelivered {
		t.Errorf("the old secret stopped verifying during the overlap: %+v", res)
	}
	// After the overlap only the new secret signs.
	f.clk.add(2 * time.Hour)
	rcv.mu.Lock()
	rcv.strangers = true
	rcv.mu.Unlock()
	if res, _ := f.svc.Test(ctx, ep); res.Status != http.StatusUnauthorized {
		t.Errorf("the old secret still signs after the overlap: %+v", res)
	}
	// The secrets are sealed: the stored bytes show neither.
	got, _ := f.st.GetWebhookEndpoint(ctx, "", ep.ID)
	if strings.Contains(string(got.Secrets), newSecret[6:]) || strings.Contains(string(got.Secrets), "whsec_") {
		t.Error("an endpoint's secret is stored in the clear")
	}
}

func TestRouting(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	_, srv := newReceiver(t, f.clk)
	mk := func(tn *store.Tenant, all bool, evs ...string) string {
		ep, _, err := f.svc.Create(ctx, tn.ID, Spec{URL: srv.URL, Events: evs, AllTenants: all})
		if err != nil {
			t.Fatal(err)
		}
		return ep.ID
	}
	acme := mk(f.acme, false, "*")
	ops := mk(f.owner, false, "*")
	opsAll := mk(f.owner, true, events.KeyCreated)
	acmeAll := mk(f.acme, true, "*") // AllTenants means nothing for a tenant that is no operator
	for _, e := range []events.Event{
		{Type: events.KeyCreated, TenantID: f.acme.ID},
		{Type: events.UpstreamDown},
		{Type: events.KeyCreated, TenantID: f.owner.ID},
		{Type: "invoice.paid", TenantID: f.acme.ID},
	} {
		if err := f.svc.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	count := func(ep string) (n int, types []string) {
		ds, _ := f.st.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{EndpointID: ep})
		for _, d := range ds {
			types = append(types, d.EventType)
		}
		return len(ds), types
	}
	for _, tc := range []struct {
		ep   string
		want int
	}{{acme, 2}, {ops, 2}, {opsAll, 2}, {acmeAll, 2}} {
		if n, types := count(tc.ep); n != tc.want {
			t.Errorf("endpoint %s got %d deliveries %v, want %d", tc.ep, n, types, tc.want)
		}
	}
}

func TestRefusedAndBadEndpoints(t *testing.T) {
	ctx := t.Context()
	// No allow_private: loopback is refused, by address at creation, by
	// the dialler for a name.
	strict := newFixture(t, func(o *Options) { o.AllowPrivate = nil })
	if _, _, err := strict.svc.Create(ctx, strict.acme.ID, Spec{URL: "http://127.0.0.1:9/x", Events: []string{"*"}}); err == nil || !strings.Contains(err.Error(), "allow_private") {
		t.Errorf("a loopback address was accepted: %v", err)
	}
	for _, bad := range []string{"ftp://example.com/", "http://user:pw@example.com/", "http://0x7f000001/", "not a url", "http://example.com/#frag"} {
		if _, _, err := strict.svc.Create(ctx, strict.acme.ID, Spec{URL: bad, Events: []string{"*"}}); err == nil {
			t.Errorf("Create(%q) succeeded", bad)
		}
	}
	if _, _, err := strict.svc.Create(ctx, strict.acme.ID, Spec{URL: "https://example.com/", Events: []string{"key.made"}}); err == nil {
		t.Error("an unknown event type was accepted")
	}
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	ep, _, err := strict.svc.Create(ctx, strict.acme.ID, Spec{URL: byName, Events: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := strict.svc.Test(ctx, ep)
	if err != nil || res.State != store.DeliveryPending || !strings.Contains(res.Error, "refus") || hits != 0 {
		t.Errorf("a name resolving to loopback was dialled: %+v, %v (hits %d)", res, err, hits)
	}

	f := newFixture(t, func(o *Options) { o.Timeout = 300 * time.Millisecond })
	release := make(chan struct{})
	redirected := 0
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 512 { // 32 MiB, more than is ever read
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { redirected++ })
	srv2 := httptest.NewServer(mux)
	defer srv2.Close()
	defer close(release)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, tc := range []struct {
		path, url, state, errPart string
	}{
		{url: srv2.URL + "/slow", state: store.DeliveryPending, errPart: "no answer within"},
		{url: srv2.URL + "/huge", state: store.DeliveryDelivered},
		{url: srv2.URL + "/moved", state: store.DeliveryPending, errPart: "redirects are not followed"},
		{url: closedURL, state: store.DeliveryPending, errPart: "refused"},
	} {
		ep, _, err := f.svc.Create(ctx, f.acme.ID, Spec{URL: tc.url, Events: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.svc.Test(ctx, ep)
		if err != nil || res.State != tc.state || !strings.Contains(res.Error, tc.errPart) {
			t.Errorf("%s: %+v, %v; want state %s and an error with %q", tc.url, res, err, tc.state, tc.errPart)
		}
	}
	if redirected != 0 {
		t.Error("a redirect was followed")
	}
	// A disabled endpoint's delivery is dead-lettered, not sent.
	ep, _, _ = f.svc.Create(ctx, f.acme.ID, Spec{URL: srv2.URL + "/huge", Events: []string{"*"}, Disabled: true})
	res, err = f.svc.Test(ctx, ep)
	if err != nil || res.State != store.DeliveryDead || !strings.Contains(res.Error, "disabled") {
		t.Errorf("disabled endpoint: %+v, %v", res, err)
	}
}
