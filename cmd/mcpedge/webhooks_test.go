package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
	"github.com/mcpedge/mcpedge/internal/webhook"
)

// hookReceiver is a webhook endpoint on loopback that verifies every
// signature with the secrets it was given, counts deliveries by webhook-id
// and can go away (its port refuses connections) and come back.
type hookReceiver struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	keys [][]byte
	ln   net.Listener
	srv  *http.Server
	seen map[string]int    // webhook-id -> deliveries accepted
	typ  map[string]string // webhook-id -> event type
	bad  int               // deliveries whose signature did not verify
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{t: t, seen: map[string]int{}, typ: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *hookReceiver) serve(ln net.Listener) {
	r.ln = ln
	r.srv = &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
}

func (r *hookReceiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	id, ts, sig := req.Header.Get(webhook.HeaderID), req.Header.Get(webhook.HeaderTimestamp), req.Header.Get(webhook.HeaderSignature)
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := false
	for _, k := range r.keys {
		if webhook.Verify(k, id, ts, sig, body, time.Now(), 5*time.Minute) == nil {
			ok = true
		}
	}
	if !ok {
		r.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m webhook.Message
	if err := json.Unmarshal(body, &m); err != nil {
		r.t.Errorf("delivery %s: %v", id, err)
	}
	r.seen[id]++
	r.typ[id] = m.Type
	w.WriteHeader(http.StatusOK)
}

func (r *hookReceiver) addSecret(s string) {
	k, err := webhook.ParseSecret(s)
	if err != nil {
		r.t.Fatalf("secret %q: %v", s, err)
	}
	r.mu.Lock()
	r.keys = append(r.keys, k)
	r.mu.Unlock()
}

// down closes the listener: connections are refused until up.
func (r *hookReceiver) down() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

func (r *hookReceiver) up() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("listening again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

// counts returns the event types seen and how often each webhook-id came.
func (r *hookReceiver) counts() (byType map[string]int, dup []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	byType = map[string]int{}
	for id, n := range r.seen {
		byType[r.typ[id]]++
		if n != 1 {
			dup = append(dup, id)
		}
	}
	return byType, dup
}

// TestWebhooksEndToEnd: an endpoint subscribed with the CLI gets a signed
// test event; then it goes down, while keys are created and revoked (CLI
// and API) and a tenant uses its whole monthly quota; the gateway is
// restarted meanwhile; when the endpoint is back every event arrives,
// each exactly once by webhook-id, signed; the delivery log shows the
// failed attempts. A private address is refused.
func TestWebhooksEndToEnd(t *testing.T) {
	env := secEnv(t)
	rcv := newHookReceiver(t)
	cfgPath := writeConfig(t, `[webhooks]
allow_private = ["127.0.0.1/32"]
timeout = "2s"
backoff_min = "200ms"
backoff_max = "1s"
poll_interval = "200ms"
retry_for = "10m"

[plans.tiny]
monthly_quota = 5
`+everythingBlock(t, "ev"))
	p := startServe(t, env, "--config", cfgPath)
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "ev", "--plan", "tiny")
	out := cli(t, env, "webhook", "add", "--config", cfgPath, "--tenant", "acme", "--url", "http://"+rcv.addr+"/hook?token=t0k3n", "--events", "*")
	rcv.addSecret(lastLine(out))
	var eps []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(cli(t, env, "webhook", "ls", "--config", cfgPath, "--tenant", "acme", "--json")), &eps); err != nil || len(eps) != 1 {
		t.Fatalf("webhook ls: %v %v", eps, err)
	}
	ep := eps[0].ID
	if out := cli(t, env, "webhook", "test", "--config", cfgPath, "--tenant", "acme", ep); !strings.Contains(out, "delivered test event") {
		t.Fatalf("webhook test: %s", out)
	}
	if out, err := cliErr(env, "webhook", "add", "--config", cfgPath, "--tenant", "acme", "--url", "http://10.1.2.3/hook", "--events", "*"); err == nil || !strings.Contains(out, "allow_private") {
		t.Errorf("a private address was accepted: %v %s", err, out)
	}

	rcv.down()
	member := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "member"))
	var victim struct {
		Key struct {
			ID string `json:"id"`
		} `json:"key"`
	}
	if err := json.Unmarshal([]byte(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--name", "victim", "--json")), &victim); err != nil {
		t.Fatal(err)
	}
	p.waitReadyAuth(t, testAdminKey, "ev")
	if code, b := apiDo(t, http.MethodDelete, p.URL+"/api/tenants/acme/keys/"+victim.Key.ID, testAdminKey, ""); code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", code, b)
	}
	cs, err := connectAs(t, p.URL+"/mcp", member, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "hi"}})
		if (err == nil) != (i < 5) {
			t.Fatalf("call %d of a quota of 5: %v", i+1, err)
		}
	}
	_ = cs.Close()
	// The endpoint is down: deliveries are retried and logged.
	var log []struct {
		State     string `json:"state"`
		Attempts  int    `json:"attempts"`
		LastError string `json:"last_error"`
		EventType string `json:"event_type"`
	}
	waitFor(t, 30*time.Second, "failed attempts in the delivery log", func() bool {
		log = nil
		if json.Unmarshal([]byte(cli(t, env, "webhook", "deliveries", "--config", cfgPath, "--tenant", "acme", ep, "--state", "pending", "--json")), &log) != nil {
			return false
		}
		tried := 0
		for _, d := range log {
			if d.Attempts >= 2 && d.LastError != "" {
				tried++
			}
		}
		return len(log) == 5 && tried == 5
	})
	if strings.Contains(log[0].LastError, "t0k3n") {
		t.Errorf("an attempt's error shows the endpoint's query: %s", log[0].LastError)
	}

	// A restart while the endpoint is still down: the queue is in the store.
	stopGateway(t, p)
	p = startServe(t, env, "--config", cfgPath)
	rcv.up()
	want := map[string]int{"webhook.test": 1, "key.created": 2, "key.revoked": 1, "quota.warning": 1, "quota.exhausted": 1}
	waitFor(t, 60*time.Second, "every event delivered", func() bool {
		got, _ := rcv.counts()
		for typ, n := range want {
			if got[typ] != n {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // a duplicate, if there were one, would arrive by now
	got, dup := rcv.counts()
	if len(dup) != 0 || len(got) != len(want) {
		t.Errorf("events %v, sent more than once: %v", got, dup)
	}
	rcv.mu.Lock()
	if rcv.bad != 0 {
		t.Errorf("%d deliveries were not signed with the endpoint's secret", rcv.bad)
	}
	rcv.mu.Unlock()
	if out := cli(t, env, "webhook", "deliveries", "--config", cfgPath, "--tenant", "acme", ep, "--state", "pending"); strings.Count(out, "\n") != 1 {
		t.Errorf("deliveries still pending:\n%s", out)
	}
	code, b := apiDo(t, http.MethodGet, p.URL+"/api/tenants/acme/webhooks/"+ep+"/deliveries?state=delivered", testAdminKey, "")
	if code != 200 || strings.Count(string(b), `"state":"delivered"`) != 6 {
		t.Errorf("GET deliveries: %d %s", code, b)
	}

	// Rotation: the next test event carries both signatures; a receiver
	// that knows only the new secret accepts it.
	newSecret := lastLine(cli(t, env, "webhook", "rotate", "--config", cfgPath, "--tenant", "acme", ep, "--overlap", "1h"))
	rcv.mu.Lock()
	rcv.keys = nil
	rcv.mu.Unlock()
	rcv.addSecret(newSecret)
	if out := cli(t, env, "webhook", "test", "--config", cfgPath, "--tenant", "acme", ep); !strings.Contains(out, "delivered test event") {
		t.Errorf("test after rotation: %s", out)
	}
	cli(t, env, "webhook", "rm", "--config", cfgPath, "--tenant", "acme", ep, "--yes")
	if out := cli(t, env, "webhook", "ls", "--config", cfgPath, "--tenant", "acme"); strings.Contains(out, ep) {
		t.Errorf("removed endpoint still listed: %s", out)
	}
	stopGateway(t, p)
}

// TestWebhooksReplicas: two gateways on one PostgreSQL store share the
// delivery queue; events published on either (keys created through both
// APIs while the endpoint is down) are each delivered exactly once when it
// is back, whichever replica claims them.
func TestWebhooksReplicas(t *testing.T) {
	pg := storetest.PostgresURL(t)
	rcv := newHookReceiver(t)
	cfgPath := writeConfig(t, fmt.Sprintf(`[store]
url = %q
[webhooks]
allow_private = ["127.0.0.1/32"]
backoff_min = "100ms"
backoff_max = "500ms"
poll_interval = "100ms"
workers = 8
`, pg))
	env := []string{"MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_ADMIN_PASSWORD=correct horse battery staple",
		"MCPEDGE_STORE_KEY=c3RvcmUta2V5LW9mLXRoZS13ZWJob29rLXRlc3QhISE="}
	p1 := startServe(t, env, "--config", cfgPath)
	p2 := startServe(t, env, "--config", cfgPath)
	p1.waitReadyAuth(t, testAdminKey, "lattice")
	p2.waitReadyAuth(t, testAdminKey, "lattice")
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "lattice")
	rcv.addSecret(lastLine(cli(t, env, "webhook", "add", "--config", cfgPath, "--tenant", "acme", "--url", "http://"+rcv.addr+"/hook", "--events", "key.created")))
	rcv.down()
	const keys = 30
	for i := range keys {
		base := p1.URL
		if i%2 == 1 {
			base = p2.URL
		}
		if code, b := apiDo(t, http.MethodPost, base+"/api/tenants/acme/keys", testAdminKey, fmt.Sprintf(`{"name":"k%d"}`, i)); code != http.StatusCreated {
			t.Fatalf("key %d: %d %s", i, code, b)
		}
	}
	time.Sleep(time.Second) // both replicas try, and fail, meanwhile
	rcv.up()
	waitFor(t, 60*time.Second, "every key.created delivered", func() bool {
		got, _ := rcv.counts()
		return got["key.created"] == keys
	})
	time.Sleep(time.Second)
	got, dup := rcv.counts()
	if got["key.created"] != keys || len(dup) != 0 {
		t.Errorf("delivered %v; more than once: %v", got, dup)
	}
	stopGateway(t, p1)
	stopGateway(t, p2)
}

// TestWebhookDeviceEnrolled: a device enrolling with this hub for the
// first time is an event of its tenant; enrolling again is not.
func TestWebhookDeviceEnrolled(t *testing.T) {
	env := secEnv(t)
	rcv := newHookReceiver(t)
	cfgPath := writeConfig(t, "[webhooks]\nallow_private = [\"127.0.0.1/32\"]\npoll_interval = \"100ms\"\n")
	p := startServe(t, env, "--config", cfgPath)
	base := p.URL
	cli(t, env, "tenant", "create", "edges", "--config", cfgPath, "--upstreams", "*")
	rcv.addSecret(lastLine(cli(t, env, "webhook", "add", "--config", cfgPath, "--tenant", "edges", "--url", "http://"+rcv.addr+"/hook", "--events", "device.enrolled")))
	tok := lastLine(cli(t, env, "hub", "token", "create", "--config", cfgPath, "--tenant", "edges"))
	d := newTestDevice(t)
	for i := range 2 {
		token := tok
		if i == 1 {
			token = "" // enrolled already: again without a token
		}
		if code, b := apiDo(t, http.MethodPost, base+hub.PathEnroll, "", d.enrollBody(t, base, hubNonce(t, base), token, nil)); code != 200 {
			t.Fatalf("enrollment %d: %d %s", i+1, code, b)
		}
	}
	waitFor(t, 30*time.Second, "device.enrolled delivered", func() bool {
		got, _ := rcv.counts()
		return got["device.enrolled"] == 1
	})
	time.Sleep(500 * time.Millisecond)
	if got, dup := rcv.counts(); got["device.enrolled"] != 1 || len(dup) != 0 {
		t.Errorf("events %v (repeated: %v), want one device.enrolled", got, dup)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for id, typ := range rcv.typ {
		if typ == "device.enrolled" && rcv.seen[id] != 1 {
			t.Errorf("device.enrolled %s seen %d times", id, rcv.seen[id])
		}
	}
}

// capturePub records what is published (for the wiring's own helpers).
type capturePub struct {
	mu sync.Mutex
	ev []events.Event
}

func (c *capturePub) Publish(_ context.Context, e events.Event) error {
	c.mu.Lock()
	c.ev = append(c.ev, e)
	c.mu.Unlock()
	return nil
}

// TestQueueFailedEvents: the queue's OnDone publishes queue.entry_failed
// for an entry that failed for good, nothing for one that was delivered,
// and still calls the announcement it wraps.
func TestQueueFailedEvents(t *testing.T) {
	var c capturePub
	announced := 0
	on := queueFailedEvents(&c, slog.New(slog.DiscardHandler), func(queue.Entry) { announced++ })
	on(queue.Entry{ID: "q1", Tenant: "t1", Target: "fs", Tool: "write", State: queue.Done})
	on(queue.Entry{ID: "q2", Tenant: "t1", Target: "fs", Tool: "write", State: queue.Failed, Attempts: 10, LastError: "unreachable", DoneAt: time.Now()})
	waitFor(t, 5*time.Second, "the event", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.ev) > 0 })
	time.Sleep(100 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if announced != 2 || len(c.ev) != 1 {
		t.Fatalf("announced %d, events %+v", announced, c.ev)
	}
	e := c.ev[0]
	if e.Type != events.QueueEntryFailed || e.TenantID != "t1" || e.Data["entry_id"] != "q2" || e.Data["error"] != "unreachable" || e.ID == "" {
		t.Errorf("event %+v", e)
	}
	if queueFailedEvents(nil, nil, nil) != nil {
		t.Error("without a publisher the OnDone is not left as it was")
	}
}
