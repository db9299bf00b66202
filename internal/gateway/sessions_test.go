package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/policy"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/sessionstore"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// changesHub carries session announcements between the gateways of one
// test, as Redis pub/sub does between replicas (sessionstore.RedisChanges
// is tested against a real Redis in its own package).
type changesHub struct {
	mu      sync.Mutex
	members []*hubMember
	// inline delivers announcements of changes before Publish returns
	// (Redis delivers them a moment later).
	inline bool
	// mail are the replicas' mailboxes by name (sessionstore.Mailbox).
	mail map[string]func(context.Context, []byte) []byte
}

func (m *hubMember) Serve(name string, fn func(context.Context, []byte) []byte) {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	if m.hub.mail == nil {
		m.hub.mail = map[string]func(context.Context, []byte) []byte{}
	}
	m.hub.mail[name] = fn
}

func (m *hubMember) Send(ctx context.Context, to string, body []byte) ([]byte, error) {
	m.hub.mu.Lock()
	fn := m.hub.mail[to]
	m.hub.mu.Unlock()
	if fn == nil {
		return nil, sessionstore.ErrNoReplica
	}
	out := make(chan []byte, 1)
	go func() { out <- fn(ctx, append([]byte(nil), body...)) }()
	select {
	case b := <-out:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// unserve makes the replica serving name unreachable, as a stopped one is.
func (h *changesHub) unserve(name string) {
	h.mu.Lock()
	delete(h.mail, name)
	h.mu.Unlock()
}

type hubMember struct {
	hub     *changesHub
	mu      sync.Mutex
	fns     []func(string, bool)
	answers []func(string, string, []byte)
}

func (m *hubMember) PublishAnswer(_ context.Context, idHash, askID string, body []byte) error {
	m.hub.mu.Lock()
	others := append([]*hubMember{}, m.hub.members...)
	m.hub.mu.Unlock()
	for _, o := range others {
		if o == m {
			continue
		}
		o.mu.Lock()
		fns := append([]func(string, string, []byte){}, o.answers...)
		o.mu.Unlock()
		for _, f := range fns {
			go f(idHash, askID, append([]byte(nil), body...))
		}
	}
	return nil
}

func (m *hubMember) SubscribeAnswers(fn func(string, string, []byte)) {
	m.mu.Lock()
	m.answers = append(m.answers, fn)
	m.mu.Unlock()
}

func (h *changesHub) join() *hubMember {
	m := &hubMember{hub: h}
	h.mu.Lock()
	h.members = append(h.members, m)
	h.mu.Unlock()
	return m
}

func (m *hubMember) Publish(_ context.Context, idHash string, deleted bool) {
	m.hub.mu.Lock()
	others := append([]*hubMember{}, m.hub.members...)
	m.hub.mu.Unlock()
	for _, o := range others {
		if o == m {
			continue
		}
		o.mu.Lock()
		fns := append([]func(string, bool){}, o.fns...)
		o.mu.Unlock()
		for _, f := range fns {
			if m.hub.inline {
				f(idHash, deleted)
			} else {
				go f(idHash, deleted)
			}
		}
	}
}

func (m *hubMember) Subscribe(fn func(string, bool)) {
	m.mu.Lock()
	m.fns = append(m.fns, fn)
	m.mu.Unlock()
}

// subscribableUpstream is an upstream with one tool and one resource a
// client may subscribe to; subs counts its live subscriptions per URI.
func subscribableUpstream(subs *sync.Map) *mcp.Server {
	s := legacyOnly("docs", &mcp.ServerOptions{
		SubscribeHandler: func(_ context.Context, r *mcp.SubscribeRequest) error {
			v, _ := subs.LoadOrStore(r.Params.URI, new(int))
			_ = v
			return nil
		},
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
		Capabilities: &mcp.ServerCapabilities{
			Resources: &mcp.ResourceCapabilities{Subscribe: true},
			Tools:     &mcp.ToolCapabilities{},
			Logging:   &mcp.LoggingCapabilities{},
		},
	})
	secTool(s, "echo", nil)
	s.AddResource(&mcp.Resource{URI: "res://doc", Name: "doc"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "res://doc", Text: "doc"}}}, nil
	})
	return s
}

// keptReplicas starts n gateways in front of the same upstreams that keep
// their sessions in one store, announcing changes through one hub.
func keptReplicas(t *testing.T, n int, toml string, setup func(*Gateway)) (st store.Store, urls []string, gs []*Gateway) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sessions.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	hub := &changesHub{}
	for range n {
		cfg, err := config.Parse("kept.toml", []byte(toml))
		if err != nil {
			t.Fatal(err)
		}
		g, url, _ := startTestGateway(t, cfg, true, func(g *Gateway) {
			if setup != nil {
				setup(g)
			}
			m := hub.join()
			g.SetSessionKeeper(sessionstore.New(st, sessionstore.Options{Changes: m}))
			g.SetAnswerRelay(m)
			g.SetContinuationRelay(m)
		})
		urls, gs = append(urls, url), append(gs, g)
	}
	return st, urls, gs
}

// on returns a copy of c that sends its requests to url.
func (c *rawClient) on(url string) *rawClient {
	o := *c
	o.url = url
	return &o
}

func TestKeptSessionServedByEveryReplica(t *testing.T) {
	var subs sync.Map
	up := subscribableUpstream(&subs)
	st, urls, gs := keptReplicas(t, 3, upstreamBlock("docs", startHTTPUpstream(t, up)), nil)
	for _, g := range gs {
		waitTargetsReady(t, g, 1)
	}
	a := newRawClient(t, urls[0]+"/mcp")
	rec, err := st.GetMCPSession(t.Context(), sessionstore.IDHash(a.session))
	if err != nil {
		t.Fatalf("the session was not saved at initialize: %v", err)
	}
	if strings.Contains(string(rec.State), a.session) {
		t.Error("the saved state contains the session id")
	}

	// Every request on another replica than the one before.
	for i := range 6 {
		c := a.on(urls[i%3] + "/mcp")
		if st, _, msg := c.post(`{"jsonrpc":"2.0","id":10,"method":"tools/list"}`); st != http.StatusOK || !strings.Contains(string(mustJSON(msg)), "docs__echo") {
			t.Fatalf("tools/list on replica %d: HTTP %d %v", i%3, st, msg)
		}
		if rpcErr, res := c.call(20+i, "docs__echo", `{}`); rpcErr != nil || res == nil {
			t.Fatalf("tools/call on replica %d: %v", i%3, rpcErr)
		}
	}

	// State set on one replica is in force on the others.
	if st, _, msg := a.on(urls[1] + "/mcp").post(`{"jsonrpc":"2.0","id":30,"method":"logging/setLevel","params":{"level":"debug"}}`); st != http.StatusOK || msg["result"] == nil {
		t.Fatalf("logging/setLevel on replica 1: HTTP %d %v", st, msg)
	}
	// The event stream is on replica 0 (where the session was opened),
	// the subscription made on replica 2.
	events := a.on(urls[0] + "/mcp").stream()
	if st, _, msg := a.on(urls[2] + "/mcp").post(`{"jsonrpc":"2.0","id":31,"method":"resources/subscribe","params":{"uri":"res://doc"}}`); st != http.StatusOK || msg["result"] == nil {
		t.Fatalf("resources/subscribe on replica 2: HTTP %d %v", st, msg)
	}
	rec, err = st.GetMCPSession(t.Context(), sessionstore.IDHash(a.session))
	if err != nil {
		t.Fatal(err)
	}
	saved, err := sessionstore.DecodeState(rec.State)
	if err != nil || saved.LogLevel != "debug" || len(saved.Subscriptions) != 1 || saved.Subscriptions[0] != "res://doc" {
		t.Fatalf("saved state %+v, %v; want level debug and the subscription", saved, err)
	}
	// Replica 0 hears of the subscription and makes it its own: the
	// update reaches the stream it holds.
	got := false
	deadline := time.Now().Add(10 * time.Second)
	for !got && time.Now().Before(deadline) {
		_ = up.ResourceUpdated(t.Context(), &mcp.ResourceUpdatedNotificationParams{URI: "res://doc"})
		select {
		case ev := <-events:
			got = strings.Contains(ev, "notifications/resources/updated") && strings.Contains(ev, "res://doc")
		case <-time.After(200 * time.Millisecond):
		}
	}
	if !got {
		t.Fatal("the resource update never reached the stream on the replica where the client did not subscribe")
	}

	// DELETE on one replica ends the session on all of them.
	if code := a.on(urls[1] + "/mcp").delete(); code != http.StatusNoContent {
		t.Fatalf("DELETE: HTTP %d", code)
	}
	// At once on the replica that took the DELETE; on the others as soon as
	// its announcement arrives (the window docs/design/sessions.md names).
	if st, _, _ := a.on(urls[1] + "/mcp").post(`{"jsonrpc":"2.0","id":40,"method":"tools/list"}`); st != http.StatusNotFound {
		t.Errorf("replica 1 after its own DELETE: HTTP %d, want 404", st)
	}
	for _, i := range []int{0, 2} {
		var last int
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if last, _, _ = a.on(urls[i] + "/mcp").post(`{"jsonrpc":"2.0","id":40,"method":"tools/list"}`); last == http.StatusNotFound {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if last != http.StatusNotFound {
			t.Errorf("replica %d after DELETE: HTTP %d, want 404 within 10s", i, last)
		}
	}
	// A session id nobody issued is not found anywhere.
	ghost := a.on(urls[2] + "/mcp")
	ghost.session = "NOTASESSIONIDNOTASESSIONID"
	if st, _, _ := ghost.post(`{"jsonrpc":"2.0","id":41,"method":"tools/list"}`); st != http.StatusNotFound {
		t.Errorf("an unknown session id: HTTP %d, want 404", st)
	}
}

// TestKeptSessionBoundToCaller: a session opened by one caller is not
// served to another, nor to the same key in another tenant, on the replica
// that opened it and on those that never saw it: HTTP 404, as for a
// session that does not exist, and nothing is re-created for them.
func TestKeptSessionBoundToCaller(t *testing.T) {
	var calls sync.Map
	ua := startHTTPUpstream(t, rolesUpstream("ua", &calls))
	alice := &principal.Principal{Kind: principal.KindKey, ID: "k-alice", KeyID: "k-alice", TenantID: "ta", TenantName: "a", Role: principal.RoleMember}
	bob := &principal.Principal{Kind: principal.KindKey, ID: "k-bob", KeyID: "k-bob", TenantID: "ta", TenantName: "a", Role: principal.RoleMember}
	aliceElsewhere := &principal.Principal{Kind: principal.KindKey, ID: "k-alice", KeyID: "k-alice", TenantID: "tb", TenantName: "b", Role: principal.RoleMember}
	creds := map[string]*principal.Principal{"alice": alice, "bob": bob, "alice-elsewhere": aliceElsewhere}
	_, urls, gs := keptReplicas(t, 2, upstreamBlock("ua", ua), func(g *Gateway) {
		g.SetSecurity(&policySec{engine: testPolicyEngine(t), creds: creds})
	})
	for _, g := range gs {
		waitTargetsReady(t, g, 1)
	}
	c := newRawClientAs(t, urls[0]+"/mcp", "alice")
	const read = `{"name":"ua__read","arguments":{}}`
	for _, tok := range []string{"bob", "alice-elsewhere"} {
		for i, url := range urls {
			other := c.on(url + "/mcp")
			other.token = tok
			if a := other.callTool(2, read); a.Status != http.StatusNotFound {
				t.Errorf("%s on replica %d: HTTP %d: %s, want 404", tok, i, a.Status, a.Body)
			}
			if st, _, _ := other.post(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`); st != http.StatusNotFound {
				t.Errorf("%s tools/list on replica %d: HTTP %d, want 404", tok, i, st)
			}
		}
	}
	if _, ok := gs[1].kept.copies.Load(c.session); ok {
		t.Error("replica 1 re-created the session for another caller")
	}
	// The session's own caller, on the replica that never saw it.
	if a := c.on(urls[1]+"/mcp").callTool(4, read); a.Status != http.StatusOK || a.Msg["result"] == nil {
		t.Fatalf("alice on replica 1: HTTP %d: %s", a.Status, a.Body)
	}
	if v, _ := calls.Load("ua__read"); v == nil {
		t.Error("the call did not reach the upstream")
	}
}

// testPolicyEngine: tenant ta uses upstream ua, tenant tb upstream ub.
func testPolicyEngine(t *testing.T) *policy.Engine {
	src := &policySource{
		tenants: []store.Tenant{{ID: "ta", Name: "a"}, {ID: "tb", Name: "b"}},
		vss: map[string][]store.VirtualServer{
			"ta": {{Name: "main", Upstreams: []string{"ua"}}},
			"tb": {{Name: "main", Upstreams: []string{"ub"}}},
		},
	}
	engine := policy.New(src, config.DefaultPlans(), nil)
	if err := engine.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return engine
}

// TestKeptSessionCancelAcrossReplicas: a client's notifications/cancelled
// that reaches another replica than the one running the call cancels the
// call there, on the hot path and the SDK's way alike (the call's own POST
// stays open, so nothing else would).
func TestKeptSessionCancelAcrossReplicas(t *testing.T) {
	for _, hot := range []bool{true, false} {
		t.Run(fmt.Sprintf("hot_path=%v", hot), func(t *testing.T) {
			started, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
			up := legacyOnly("blk", nil)
			secTool(up, "block", func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				started <- struct{}{}
				select {
				case <-ctx.Done():
					cancelled <- struct{}{}
					return nil, ctx.Err()
				case <-time.After(20 * time.Second):
					return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "not cancelled"}}}, nil
				}
			})
			_, urls, gs := keptReplicas(t, 2, fmt.Sprintf("[server]\nhot_path = %v\n", hot)+upstreamBlock("blk", startHTTPUpstream(t, up)), nil)
			for _, g := range gs {
				waitTargetsReady(t, g, 1)
			}
			a := newRawClient(t, urls[0]+"/mcp")
			// The session is known on replica 1 before the call (as after
			// any earlier request of the client there).
			if st, _, _ := a.on(urls[1] + "/mcp").post(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); st != http.StatusOK {
				t.Fatalf("tools/list on replica 1: HTTP %d", st)
			}
			done := make(chan rawAnswer, 1)
			go func() { done <- a.callTool(7, `{"name":"blk__block","arguments":{}}`) }()
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("the call never reached the upstream")
			}
			if st, _, _ := a.on(urls[1] + "/mcp").post(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"changed my mind"}}`); st != http.StatusAccepted {
				t.Fatalf("notifications/cancelled on replica 1: HTTP %d", st)
			}
			select {
			case <-cancelled:
			case <-time.After(10 * time.Second):
				t.Fatal("the call running on replica 0 was not cancelled")
			}
			select {
			case <-done:
			case <-time.After(25 * time.Second):
				t.Fatal("the cancelled call's POST never ended")
			}
		})
	}
}

// gatedKeeper holds Load back while armed, until released.
type gatedKeeper struct {
	sessionstore.Keeper
	armed   atomic.Bool
	release chan struct{}
}

func (k *gatedKeeper) Load(ctx context.Context, id string) (*sessionstore.Record, error) {
	if k.armed.Load() {
		<-k.release
	}
	return k.Keeper.Load(ctx, id)
}

// TestKeptSessionChangeInForceAtOnce: a change announced by another replica
// is in force for the next request of the session on this one, even while
// this replica is still reading it from the store: the request waits for
// it. Here a level set on replica 0 must let replica 1 pass the upstream's
// log during a call on to the client.
func TestKeptSessionChangeInForceAtOnce(t *testing.T) {
	h := newHotHostile(t, map[string]hostileAnswer{
		"chatty": func(w http.ResponseWriter, msg hostileMsg, _ *hotHostile) {
			sse(w, `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"during the call"}}`,
				`{"jsonrpc":"2.0","id":`+string(msg.ID)+`,"result":{"content":[{"type":"text","text":"done"}]}}`)
		},
	})
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sessions.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	hub := &changesHub{inline: true}
	gated := &gatedKeeper{release: make(chan struct{})}
	var urls []string
	for i := range 2 {
		cfg, err := config.Parse("kept.toml", []byte(upstreamBlock("h", h.url)))
		if err != nil {
			t.Fatal(err)
		}
		g, url, _ := startTestGateway(t, cfg, true, func(g *Gateway) {
			var k sessionstore.Keeper = sessionstore.New(st, sessionstore.Options{Changes: hub.join()})
			if i == 1 {
				gated.Keeper = k
				k = gated
			}
			g.SetSessionKeeper(k)
		})
		waitTargetsReady(t, g, 1)
		urls = append(urls, url+"/mcp")
	}
	a := newRawClient(t, urls[0])
	if st, _, _ := a.on(urls[1]).post(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); st != http.StatusOK {
		t.Fatalf("tools/list on replica 1: HTTP %d", st)
	}
	gated.armed.Store(true)
	released := false
	release := func() {
		if !released {
			released = true
			gated.armed.Store(false)
			close(gated.release)
		}
	}
	defer release()
	if st, _, msg := a.post(`{"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"debug"}}`); st != http.StatusOK || msg["result"] == nil {
		t.Fatalf("logging/setLevel on replica 0: HTTP %d %v", st, msg)
	}
	type callResult struct {
		a    rawAnswer
		seen []string
	}
	done := make(chan callResult, 1)
	go func() {
		ans, seen := a.on(urls[1]).callAnswering(4, `{"name":"h__chatty","arguments":{}}`, func(string, json.RawMessage) (string, string) {
			return "error", `{"code":-32601,"message":"no"}`
		})
		done <- callResult{ans, seen}
	}()
	var r callResult
	select {
	case r = <-done:
		// Served before replica 1 could read the change: the level must
		// not have been in force, which the check below shows.
	case <-time.After(500 * time.Millisecond):
		release() // the call waits for the change; let replica 1 read it
		r = <-done
	}
	if r.a.Status != http.StatusOK || r.a.Msg["result"] == nil {
		t.Fatalf("tools/call on replica 1: HTTP %d: %s", r.a.Status, r.a.Body)
	}
	if !slices.ContainsFunc(r.seen, func(m string) bool { return strings.Contains(m, "during the call") }) {
		t.Errorf("the upstream's log during the call did not reach the client (stream: %q): the level set on replica 0 was not in force on replica 1", r.seen)
	}
}
