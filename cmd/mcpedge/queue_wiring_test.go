package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/faultproxy"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// queueClient is an MCP session of one tenant's key that records the
// queue's announcements and resource updates it receives.
type queueClient struct {
	cs        *mcp.ClientSession
	mu        sync.Mutex
	updated   []string          // notifications/resources/updated URIs
	announced map[string]string // notifications/message of mcpedge.queue: id -> state
}

func newQueueClient(t *testing.T, url, token string) *queueClient {
	t.Helper()
	qc := &queueClient{announced: map[string]string{}}
	c := mcp.NewClient(&mcp.Implementation{Name: "queue-test", Version: "1"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
			qc.mu.Lock()
			qc.updated = append(qc.updated, r.Params.URI)
			qc.mu.Unlock()
		},
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			if r.Params.Logger != "mcpedge.queue" {
				return
			}
			b, _ := json.Marshal(r.Params.Data)
			var d struct{ ID, State, URI string }
			_ = json.Unmarshal(b, &d)
			qc.mu.Lock()
			qc.announced[d.ID] = d.State + " " + d.URI
			qc.mu.Unlock()
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hc := http.DefaultClient
	if token != "" {
		hc = &http.Client{Transport: bearer{token: token, base: http.DefaultTransport}}
	}
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	qc.cs = cs
	return qc
}

func (qc *queueClient) updates() []string {
	qc.mu.Lock()
	defer qc.mu.Unlock()
	return append([]string(nil), qc.updated...)
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// queueAnswer returns the id and URI of a queued answer.
func queueAnswer(t *testing.T, what string, res *mcp.CallToolResult, err error) (id, uri string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v, want a queued answer", what, err)
	}
	m, _ := res.Meta[gateway.MetaQueued].(map[string]any)
	id, _ = m["id"].(string)
	uri, _ = m["uri"].(string)
	if id == "" || uri != "mcpedge://queue/"+id {
		t.Fatalf("%s: _meta %v, want %s = {id, uri: mcpedge://queue/<id>}", what, res.Meta, gateway.MetaQueued)
	}
	return id, uri
}

// metricValue reads one sample of a /metrics scrape as the operator; -1
// when it is absent.
func metricValue(t *testing.T, base, name string, labels ...string) float64 {
	t.Helper()
	code, body := apiDo(t, http.MethodGet, base+"/metrics", testAdminKey, "")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	return -1
}

// deferrableEv is the config of the upstream "ev" at url, whose tools
// named in deferrable (a TOML string list's items) are queued while its
// breaker, opened by one failure, is open.
func deferrableEv(url, deferrable string) string {
	return `
[[upstreams]]
name = "ev"
transport = "http"
url = "` + url + `"
timeout = "5s"
retries = 0
deferrable = [` + deferrable + `]

[upstreams.breaker]
failures = 1
open_for = "500ms"
`
}

// TestQueueWiringEndToEnd runs the real binary, multi-tenant, with the
// [queue] settings, in front of the real everything server behind a fault
// proxy: queued answers name the entry's resource; a tenant reads and
// subscribes to its own entry's resource and REST endpoints, another
// tenant's id is "not found" everywhere; the tenant bound and the call
// size bound refuse with clear errors; /metrics, /readyz and
// mcpedge__status show the queue; when the upstream is back the entries
// are delivered, the subscriber gets notifications/resources/updated and
// the metrics count the deliveries.
func TestQueueWiringEndToEnd(t *testing.T) {
	px, evURL := nodeclient.StartEverythingProxied(t)
	env := secEnv(t)
	cfgPath := writeConfig(t, `
[queue]
tenant_max_entries = 2
max_call_bytes = 2048
max_attempts = 1000
backoff_min = "200ms"
backoff_max = "1s"
`+deferrableEv(evURL, `"echo"`))
	p := startServe(t, env, "--config", cfgPath)
	p.waitReadyAuth(t, testAdminKey, "ev")
	// The enterprise plan: the test polls more often than the free
	// plan's key rate allows.
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "ev", "--plan", "enterprise")
	cli(t, env, "tenant", "create", "beta", "--config", cfgPath, "--upstreams", "ev", "--plan", "enterprise")
	keyA := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "member"))
	keyB := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "beta", "--role", "member"))
	a := newQueueClient(t, p.URL+"/mcp", keyA)
	b := newQueueClient(t, p.URL+"/mcp", keyB)

	// The template is listed for a tenant.
	tl, err := a.cs.ListResourceTemplates(tctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, rt := range tl.ResourceTemplates {
		listed = listed || rt.URITemplate == "mcpedge://queue/{id}"
	}
	if !listed {
		t.Errorf("mcpedge://queue/{id} not listed: %+v", tl.ResourceTemplates)
	}

	px.Set(faultproxy.Reset())
	echo := func(qc *queueClient, msg string) (*mcp.CallToolResult, error) {
		return qc.cs.CallTool(tctx(t), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": msg}})
	}
	res, err := echo(a, "a-one")
	idA, uriA := queueAnswer(t, "acme's first call", res, err)
	if sc, _ := json.Marshal(res.StructuredContent); !strings.Contains(string(sc), uriA) {
		t.Errorf("the queued answer does not name the resource: %s", sc)
	}
	res, err = echo(b, "b-one")
	idB, uriB := queueAnswer(t, "beta's call", res, err)
	res, err = echo(a, "a-two")
	idA2, _ := queueAnswer(t, "acme's second call", res, err)

	// acme's share is 2 entries: the third is refused, saying so.
	_, err = echo(a, "a-three")
	if err == nil || !strings.Contains(err.Error(), `tenant`) || !strings.Contains(err.Error(), "2 of 2 entries") {
		t.Errorf("acme's third call: %v, want a tenant-full refusal", err)
	}
	// A call larger than max_call_bytes is not queued: the upstream's
	// unavailability, with why.
	_, err = echo(b, strings.Repeat("x", 4096))
	if err == nil || !strings.Contains(err.Error(), "not queued") {
		t.Errorf("an oversized call: %v, want 'not queued'", err)
	}

	// Resources: own entry readable, another tenant's and malformed ones
	// not found.
	read := func(qc *queueClient, uri string) (map[string]any, error) {
		rr, err := qc.cs.ReadResource(tctx(t), &mcp.ReadResourceParams{URI: uri})
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if len(rr.Contents) != 1 || rr.Contents[0].URI != uri || json.Unmarshal([]byte(rr.Contents[0].Text), &m) != nil {
			t.Fatalf("read %s: %+v", uri, rr.Contents)
		}
		return m, nil
	}
	if m, err := read(a, uriA); err != nil || m["id"] != idA || (m["state"] != "pending" && m["state"] != "delivering") || m["target"] != "ev" || m["tool"] != "echo" {
		t.Errorf("acme reads its entry: %v, %v", m, err)
	}
	_, errOther := read(a, uriB)
	_, errMissing := read(a, "mcpedge://queue/q2222222222222222222222222")
	for what, err := range map[string]error{"another tenant's": errOther, "a missing": errMissing} {
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("acme reads %s entry: %v, want resource not found", what, err)
		}
	}
	if _, err := read(a, "mcpedge://queue/q..%2F"); err == nil {
		t.Error("a malformed queue URI was read")
	}
	// Subscriptions: own entry yes, another tenant's no.
	if err := a.cs.Subscribe(tctx(t), &mcp.SubscribeParams{URI: uriA}); err != nil {
		t.Fatalf("acme subscribes to its entry: %v", err)
	}
	if err := b.cs.Subscribe(tctx(t), &mcp.SubscribeParams{URI: uriA}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("beta subscribes to acme's entry: %v, want not found", err)
	}
	if err := b.cs.Subscribe(tctx(t), &mcp.SubscribeParams{URI: uriB}); err != nil {
		t.Fatalf("beta subscribes to its entry: %v", err)
	}

	// REST: own entry, another tenant's 404, bad id 400, listing.
	code, body := apiDo(t, http.MethodGet, p.URL+"/api/queue/"+idA, keyA, "")
	if code != 200 || !strings.Contains(string(body), `"uri":"`+uriA+`"`) {
		t.Errorf("GET /api/queue/%s as acme: %d %s", idA, code, body)
	}
	if code, body := apiDo(t, http.MethodGet, p.URL+"/api/queue/"+idB, keyA, ""); code != 404 {
		t.Errorf("GET beta's entry as acme: %d %s", code, body)
	}
	if code, body := apiDo(t, http.MethodGet, p.URL+"/api/queue/not%2Fan%2Fid", keyA, ""); code != 400 && code != 404 {
		t.Errorf("GET a bad id: %d %s", code, body)
	}
	if code, body := apiDo(t, http.MethodGet, p.URL+"/api/queue/"+strings.Repeat("q", 100), keyA, ""); code != 400 {
		t.Errorf("GET an over-long id: %d %s", code, body)
	}
	code, body = apiDo(t, http.MethodGet, p.URL+"/api/queue?state=pending", keyA, "")
	if code != 200 || !strings.Contains(string(body), idA) || !strings.Contains(string(body), idA2) || strings.Contains(string(body), idB) {
		t.Errorf("GET /api/queue as acme: %d %s", code, body)
	}
	if code, body := apiDo(t, http.MethodGet, p.URL+"/api/queue", "", ""); code != 401 {
		t.Errorf("GET /api/queue without a credential: %d %s", code, body)
	}

	// Readiness: the operator sees the queue, a probe only the verdict.
	rz := p.readyz(t)
	qh, _ := rz["queue"].(map[string]any)
	if rz["ready"] != true || qh["open"] != true || qh["max_entries"] != float64(100000) {
		t.Errorf("/readyz as operator: %v", rz)
	}
	waitFor(t, 15*time.Second, "/readyz counts the waiting entries", func() bool {
		qh, _ := p.readyz(t)["queue"].(map[string]any)
		w, _ := qh["waiting"].(float64)
		return w == 3
	})
	// A probe sees each component's state (the queue "open"), never what
	// the queue holds.
	code, body = apiDo(t, http.MethodGet, p.URL+"/readyz", "", "")
	var anon map[string]any
	if code != 200 || json.Unmarshal(body, &anon) != nil || anon["queue"] != nil ||
		strings.Contains(string(body), "waiting") || strings.Contains(string(body), "max_entries") {
		t.Errorf("/readyz without a credential: %d %s", code, body)
	}
	// mcpedge__status (operators) shows it too.
	op := connect(t, p.URL+"/mcp")
	st, err := op.CallTool(tctx(t), &mcp.CallToolParams{Name: "mcpedge__status", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		Queue *gateway.QueueHealth
	}
	if sc, _ := json.Marshal(st.StructuredContent); json.Unmarshal(sc, &status) != nil || status.Queue == nil || !status.Queue.Open || status.Queue.Entries != 3 {
		t.Errorf("mcpedge__status: %s", sc)
	}

	// Metrics while the upstream is down.
	waitFor(t, 15*time.Second, "queue gauges", func() bool {
		return metricValue(t, p.URL, "mcpedge_queue_entries", `target="ev"`, `state="pending"`)+
			max(0, metricValue(t, p.URL, "mcpedge_queue_entries", `target="ev"`, `state="delivering"`)) == 3
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mcpedge_queue_open", nil, 1},
		{"mcpedge_queue_enqueued_total", []string{`target="ev"`}, 3},
		{"mcpedge_queue_refused_total", []string{`reason="tenant_full"`}, 1},
		{"mcpedge_queue_refused_total", []string{`reason="too_large"`}, 1},
		{"mcpedge_queue_usage_entries", nil, 3},
		{"mcpedge_queue_limit_entries", nil, 100000},
	} {
		if got := metricValue(t, p.URL, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if age := metricValue(t, p.URL, "mcpedge_queue_oldest_pending_seconds", `target="ev"`); age <= 0 {
		t.Errorf("oldest pending age %v, want > 0", age)
	}
	if used := metricValue(t, p.URL, "mcpedge_queue_key_messages", `active="true"`); used < 3 {
		t.Errorf("active key messages %v, want >= 3 (three calls sealed)", used)
	}
	if r := metricValue(t, p.URL, "mcpedge_queue_key_usage_ratio"); r <= 0 || r >= 1 {
		t.Errorf("key usage ratio %v, want in (0, 1)", r)
	}

	// The upstream is back: everything is delivered; each subscriber is
	// told about its own entry only.
	px.Set(faultproxy.Pass())
	waitFor(t, 90*time.Second, "acme's entries delivered", func() bool {
		m, err := read(a, uriA)
		m2, err2 := a.cs.ReadResource(tctx(t), &mcp.ReadResourceParams{URI: "mcpedge://queue/" + idA2})
		return err == nil && err2 == nil && m["state"] == "done" && strings.Contains(m2.Contents[0].Text, `"state":"done"`)
	})
	m, err := read(a, uriA)
	if rb, _ := json.Marshal(m["result"]); err != nil || !strings.Contains(string(rb), "Echo: a-one") {
		t.Errorf("acme's result: %s", rb)
	}
	waitFor(t, 30*time.Second, "resource updates to the subscribers", func() bool {
		return len(a.updates()) > 0 && len(b.updates()) > 0
	})
	time.Sleep(300 * time.Millisecond) // anything else in flight arrives
	for _, u := range a.updates() {
		if u != uriA {
			t.Errorf("acme got an update for %s (subscribed to %s only)", u, uriA)
		}
	}
	for _, u := range b.updates() {
		if u != uriB {
			t.Errorf("beta got an update for %s", u)
		}
	}
	a.mu.Lock()
	ann := a.announced[idA]
	_, leaked := a.announced[idB]
	a.mu.Unlock()
	if ann != "done "+uriA || leaked {
		t.Errorf("acme's announcements: %v", a.announced)
	}
	code, body = apiDo(t, http.MethodGet, p.URL+"/api/queue/"+idA, keyA, "")
	if code != 200 || !strings.Contains(string(body), `"state":"done"`) || !strings.Contains(string(body), "Echo: a-one") {
		t.Errorf("GET /api/queue/%s after delivery: %d %s", idA, code, body)
	}

	// Counters after the deliveries.
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mcpedge_queue_delivery_attempts_total", []string{`target="ev"`, `outcome="ok"`}, 3},
		{"mcpedge_queue_ended_total", []string{`target="ev"`, `state="done"`}, 3},
		{"mcpedge_queue_delivery_latency_seconds_count", []string{`target="ev"`}, 3},
	} {
		waitFor(t, 10*time.Second, c.name, func() bool { return metricValue(t, p.URL, c.name, c.labels...) == c.want })
	}
	waitFor(t, 15*time.Second, "done gauge", func() bool {
		return metricValue(t, p.URL, "mcpedge_queue_entries", `target="ev"`, `state="done"`) == 3
	})
	if age := metricValue(t, p.URL, "mcpedge_queue_oldest_pending_seconds", `target="ev"`); age != -1 {
		t.Errorf("oldest pending age %v after everything was delivered, want absent", age)
	}
}

// TestQueueDisabled: [queue] enabled = false serves without a queue and
// says so in /readyz, /metrics and the REST API; mcpedge__queue_result is
// not offered. A bad [queue] table is refused with its problems.
func TestQueueDisabled(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "[queue]\nenabled = false\n")
	p := startServe(t, env, "--config", cfgPath)
	waitFor(t, 20*time.Second, "readyz", func() bool { return p.readyz(t)["ready"] == true })
	qh, _ := p.readyz(t)["queue"].(map[string]any)
	if qh["open"] != false || !strings.Contains(qh["error"].(string), "enabled = false") {
		t.Errorf("/readyz queue: %v", qh)
	}
	if v := metricValue(t, p.URL, "mcpedge_queue_open"); v != 0 {
		t.Errorf("mcpedge_queue_open = %v", v)
	}
	if code, body := apiDo(t, http.MethodGet, p.URL+"/api/queue", testAdminKey, ""); code != 503 || !strings.Contains(string(body), "not open") {
		t.Errorf("GET /api/queue without a queue: %d %s", code, body)
	}
	if toolNames(t, connect(t, p.URL+"/mcp"))["mcpedge__queue_result"] {
		t.Error("mcpedge__queue_result offered without a queue")
	}
	// Changing [queue] while serving: the reload says a restart is needed.
	if err := os.WriteFile(cfgPath, []byte("[queue]\nenabled = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the reload's restart warning", func() bool {
		return strings.Contains(p.stderr.String(), "[queue] changed; restart to apply them")
	})

	bad := writeConfig(t, "[queue]\nmax_entries = 0\ntenant_max_bytes = 1\nkeep_done = \"forever\"\n")
	out, err := cliErr(nil, "config", "check", "--config", bad)
	if err == nil {
		t.Fatalf("config check accepted a bad [queue]: %s", out)
	}
	for _, w := range []string{"queue.max_entries: must be between 1", "queue.tenant_max_bytes: must be between 1024", "queue.keep_done:"} {
		if !regexp.MustCompile(regexp.QuoteMeta(w)).MatchString(out) {
			t.Errorf("config check output lacks %q:\n%s", w, out)
		}
	}
}

// TestQueueAuthOff: in single-user mode (auth off) the local user's
// queued call is read through its resource and the REST API, and the
// subscription's update arrives.
func TestQueueAuthOff(t *testing.T) {
	px, evURL := nodeclient.StartEverythingProxied(t)
	env := secEnv(t)
	cfgPath := writeConfig(t, `
[auth]
mode = "off"

[queue]
backoff_min = "200ms"
backoff_max = "1s"
`+deferrableEv(evURL, `"*"`))
	p := startServe(t, env, "--config", cfgPath)
	p.waitReady(t, "ev")
	c := newQueueClient(t, p.URL+"/mcp", "")
	px.Set(faultproxy.Reset())
	res, err := c.cs.CallTool(tctx(t), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "solo"}})
	id, uri := queueAnswer(t, "the local user's call", res, err)
	if err := c.cs.Subscribe(tctx(t), &mcp.SubscribeParams{URI: uri}); err != nil {
		t.Fatal(err)
	}
	if code, body := apiDo(t, http.MethodGet, p.URL+"/api/queue/"+id, "", ""); code != 200 || !strings.Contains(string(body), `"uri":"`+uri+`"`) {
		t.Errorf("GET /api/queue/%s: %d %s", id, code, body)
	}
	if code, body := apiDo(t, http.MethodGet, p.URL+"/api/queue", "", ""); code != 200 || !strings.Contains(string(body), id) {
		t.Errorf("GET /api/queue: %d %s", code, body)
	}
	qh, _ := p.readyz(t)["queue"].(map[string]any)
	if qh["open"] != true {
		t.Errorf("/readyz queue: %v", qh)
	}
	px.Set(faultproxy.Pass())
	waitFor(t, 60*time.Second, "the update of the subscribed entry", func() bool {
		us := c.updates()
		return len(us) == 1 && us[0] == uri
	})
	rr, err := c.cs.ReadResource(tctx(t), &mcp.ReadResourceParams{URI: uri})
	if err != nil || !strings.Contains(rr.Contents[0].Text, `"state":"done"`) || !strings.Contains(rr.Contents[0].Text, "Echo: solo") {
		t.Errorf("the resource after delivery: %+v, %v", rr, err)
	}
}
