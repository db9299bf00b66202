package gateway

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
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
}

type hubMember struct {
	hub *changesHub
	mu  sync.Mutex
	fns []func(string, bool)
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
			go f(idHash, deleted)
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
			g.SetSessionKeeper(sessionstore.New(st, sessionstore.Options{Changes: hub.join()}))
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
	for i := range 3 {
		if st, _, _ := a.on(urls[i] + "/mcp").post(`{"jsonrpc":"2.0","id":40,"method":"tools/list"}`); st != http.StatusNotFound {
			t.Errorf("replica %d after DELETE: HTTP %d, want 404", i, st)
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
