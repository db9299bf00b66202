package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// memDeferrer is an in-memory Deferrer for the resource tests.
type memDeferrer map[string]*QueuedCall // "tenant/id" -> call

func (m memDeferrer) Defer(context.Context, string, string, string, json.RawMessage, string) (string, error) {
	return "", ErrQueueFull
}

func (m memDeferrer) Status(_ context.Context, tenant, id string) (*QueuedCall, error) {
	if qc, ok := m[tenant+"/"+id]; ok {
		return qc, nil
	}
	return nil, ErrQueuedNotFound
}

// An upstream cannot offer resources or templates of the gateway's own
// mcpedge: scheme on /mcp (it keeps them on /mcp/<upstream>): a queue URI
// is always the queue's, so authorization and dispatch agree on it.
func TestQueueURIReserved(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "sly", Version: "1"}, nil)
	own := func(text string) mcp.ResourceHandler {
		return func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: text}}}, nil
		}
	}
	s.AddResource(&mcp.Resource{URI: "mcpedge://queue/qmine", Name: "fake"}, own("upstream's fake entry"))
	s.AddResource(&mcp.Resource{URI: "MCPEDGE://queue/qupper", Name: "fake2"}, own("upstream's fake entry"))
	s.AddResource(&mcp.Resource{URI: "file:///ok", Name: "ok"}, own("fine"))
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "mcpedge://queue/q{rest}", Name: "steal"}, own("upstream's template"))
	up := startHTTPUpstream(t, s)
	g, gwURL := startGateway(t, "[server]\n"+upstreamBlock("sly", up))
	g.SetDeferrer(memDeferrer{"/qmine": {ID: "qmine", State: "pending", Target: "sly", Tool: "x", CreatedAt: time.Unix(1, 0).UTC()}})

	cs := dialClient(t, gwURL+"/mcp", nil, "2025-11-25")
	ctx := context.Background()
	rl, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, r := range rl.Resources {
		uris = append(uris, r.URI)
	}
	if strings.Join(uris, " ") != "file:///ok" {
		t.Errorf("resources on /mcp: %v, want only file:///ok", uris)
	}
	tl, err := cs.ListResourceTemplates(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tmpls []string
	for _, r := range tl.ResourceTemplates {
		tmpls = append(tmpls, r.URITemplate)
	}
	if strings.Join(tmpls, " ") != queueTemplate {
		t.Errorf("templates on /mcp: %v, want only %s", tmpls, queueTemplate)
	}
	rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "mcpedge://queue/qmine"})
	if err != nil || len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].Text, `"state":"pending"`) {
		t.Fatalf("reading the queue's entry: %+v, %v", rr, err)
	}
	for _, uri := range []string{"mcpedge://queue/qother", "mcpedge://queue/a/b", "mcpedge://queue/", "mcpedge://queue/q%2F"} {
		if rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); err == nil {
			t.Errorf("read %s: %+v, want not found", uri, rr.Contents)
		}
	}
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "mcpedge://queue/qother"}); err == nil {
		t.Error("subscribed to a missing entry")
	}
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "mcpedge://queue/qmine"}); err != nil {
		t.Errorf("subscribing to an own entry: %v", err)
	}
	if err := cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "mcpedge://queue/qmine"}); err != nil {
		t.Errorf("unsubscribing: %v", err)
	}
	// The per-upstream endpoint mirrors the upstream unchanged.
	ps := dialClient(t, gwURL+"/mcp/sly", nil, "2025-11-25")
	rr, err = ps.ReadResource(ctx, &mcp.ReadResourceParams{URI: "mcpedge://queue/qmine"})
	if err != nil || rr.Contents[0].Text != "upstream's fake entry" {
		t.Errorf("/mcp/sly read: %+v, %v", rr, err)
	}
}

func TestParseQueueURI(t *testing.T) {
	for uri, want := range map[string]string{
		"mcpedge://queue/q2al3b4c5d6e7f2g3h4i5j6k7l": "q2al3b4c5d6e7f2g3h4i5j6k7l",
		"mcpedge://queue/A-_9":                       "A-_9",
		"mcpedge://queue/":                           "",
		"mcpedge://queue/a/b":                        "",
		"mcpedge://queue/a?b":                        "",
		"mcpedge://queue/a%2F":                       "",
		"MCPEDGE://queue/a":                          "",
		"mcpedge://queues/a":                         "",
		"mcpedge://queue/" + strings.Repeat("a", 65): "",
	} {
		id, ok := ParseQueueURI(uri)
		if id != want || ok != (want != "") {
			t.Errorf("ParseQueueURI(%q) = %q, %v; want %q", uri, id, ok, want)
		}
		if ok && QueueURI(id) != uri {
			t.Errorf("QueueURI(%q) = %q", id, QueueURI(id))
		}
	}
	for s, want := range map[string]bool{"mcpedge://x": true, "MCPedge:x": true, "mcpedge": false, "file:///mcpedge:": false, "": false} {
		if reservedURI(s) != want {
			t.Errorf("reservedURI(%q) = %v", s, !want)
		}
	}
}

func FuzzParseQueueURI(f *testing.F) {
	for _, s := range []string{"mcpedge://queue/q2al3b4c5d6e7f2g3h4i5j6k7l", "mcpedge://queue/", "mcpedge://queue/a/b", "mcpedge://queue/%00", "mcpedge://queue/\xff", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		id, ok := ParseQueueURI(uri)
		if !ok {
			if id != "" {
				t.Fatalf("rejected %q with id %q", uri, id)
			}
			return
		}
		if id == "" || len(id) > maxQueueIDLen || strings.ContainsAny(id, "/?#%.: \x00") || QueueURI(id) != uri {
			t.Fatalf("accepted %q as %q", uri, id)
		}
	})
}

// When an entry ends, sessions subscribed to its resource get
// notifications/resources/updated: a 2025-11-25 client through
// resources/subscribe, a 2026-07-28 one through subscriptions/listen. A
// session subscribed to another entry gets nothing.
func TestQueueResourceUpdated(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "plain", Version: "1"}, nil)
	up := startHTTPUpstream(t, s)
	g, gwURL := startGateway(t, "[server]\n"+upstreamBlock("plain", up))
	g.SetDeferrer(memDeferrer{
		"/qone": {ID: "qone", State: "pending", Target: "plain", Tool: "x"},
		"/qtwo": {ID: "qtwo", State: "pending", Target: "plain", Tool: "x"},
	})
	type got struct {
		mu   sync.Mutex
		uris []string
	}
	client := func(version string, g *got) *mcp.ClientSession {
		return dialClient(t, gwURL+"/mcp", &mcp.ClientOptions{
			ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
				g.mu.Lock()
				g.uris = append(g.uris, r.Params.URI)
				g.mu.Unlock()
			},
		}, version)
	}
	var oldEra, newEra, other got
	a := client("2025-11-25", &oldEra)
	b := client("2026-07-28", &newEra)
	c := client("2025-11-25", &other)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	uri := QueueURI("qone")
	if err := a.Subscribe(ctx, &mcp.SubscribeParams{URI: uri}); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, &mcp.SubscribeParams{URI: QueueURI("qtwo")}); err != nil {
		t.Fatal(err)
	}
	// Under 2026-07-28 Subscribe holds a subscriptions/listen stream open
	// until Unsubscribe.
	listenErr := make(chan error, 1)
	go func() { listenErr <- b.Subscribe(context.Background(), &mcp.SubscribeParams{URI: uri}) }()
	t.Cleanup(func() { _ = b.Unsubscribe(context.Background(), &mcp.UnsubscribeParams{URI: uri}) })
	has := func(g *got) bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.uris) > 0
	}
	// The listen stream is set up asynchronously: announce until both
	// subscribers heard (each announcement is one update per subscriber).
	if !waitFor(t, "updates to both subscribers", 15*time.Second, func() bool {
		select {
		case err := <-listenErr:
			if err != nil {
				t.Fatalf("subscriptions/listen: %v", err)
			}
		default:
		}
		g.AnnounceQueued("", "qone", "done", "plain", "x")
		time.Sleep(50 * time.Millisecond)
		return has(&oldEra) && has(&newEra)
	}) {
		t.Fatalf("an update did not reach both subscribers of the entry: 2025-11-25 %v, 2026-07-28 %v", has(&oldEra), has(&newEra))
	}
	for _, x := range []*got{&oldEra, &newEra} {
		x.mu.Lock()
		for _, u := range x.uris {
			if u != uri {
				t.Errorf("update for %s, want %s", u, uri)
			}
		}
		x.mu.Unlock()
	}
	if has(&other) {
		t.Errorf("the subscriber of another entry got %v", other.uris)
	}
}
