package gateway

// Security review of the multi-tenant request path (authenticate → admit →
// authzMiddleware → handlers) with a fake Security: two tenants, each
// allowed one upstream. Every test here is about tenant B reaching, or
// learning about, tenant A's upstream.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// secFake is a Security with fixed credentials: token → principal, and
// tenant → the upstreams it may use. "mcpedge" (the status tool) is for
// operators only, as in internal/policy.
type secFake struct {
	creds map[string]*principal.Principal
	ups   map[string]map[string]bool

	mu      sync.Mutex
	records []CallRecord
}

func (f *secFake) Authenticate(r *http.Request) (*principal.Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p, found := f.creds[tok]; ok && found {
		return p, nil
	}
	return nil, &AuthError{Status: http.StatusUnauthorized, Code: "invalid_token", Message: "unknown credential"}
}

func (f *secFake) Admit(*http.Request, http.Header, *principal.Principal, string) *Denial { return nil }

func (f *secFake) Allowed(p *principal.Principal, up, kind, name string) bool {
	if p == nil {
		return false
	}
	if up == "mcpedge" {
		return p.Operator && p.AtLeast(principal.RoleAdmin)
	}
	return f.ups[p.TenantID][up]
}

func (f *secFake) Record(_ context.Context, _ *principal.Principal, c CallRecord) {
	f.mu.Lock()
	f.records = append(f.records, c)
	f.mu.Unlock()
}

func (f *secFake) ResourceMetadataURL(*http.Request) string {
	return "http://gw.example/.well-known/oauth-protected-resource/mcp"
}

func (f *secFake) ProtectedResourceMetadata() http.Handler { return http.NotFoundHandler() }

const (
	secTokA = "token-of-tenant-a"
	secTokB = "token-of-tenant-b"
)

// newSecFake: tenant "ta" may use upstream "ua", tenant "tb" upstream "ub".
func newSecFake() *secFake {
	return &secFake{
		creds: map[string]*principal.Principal{
			secTokA: {Kind: principal.KindKey, ID: "key-a", TenantID: "ta", TenantName: "a", Role: principal.RoleMember},
			secTokB: {Kind: principal.KindKey, ID: "key-b", TenantID: "tb", TenantName: "b", Role: principal.RoleMember},
		},
		ups: map[string]map[string]bool{"ta": {"ua": true}, "tb": {"ub": true}},
	}
}

// secGateway is startGateway with sec installed (and optional builtins).
func secGateway(t *testing.T, toml string, sec Security, builtins map[string]*mcp.Server) (*Gateway, string) {
	t.Helper()
	cfg, err := config.Parse("review.toml", []byte(toml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g, url, _ := startTestGateway(t, cfg, true, func(g *Gateway) {
		for name, s := range builtins {
			g.AddBuiltin(name, s)
		}
		g.SetSecurity(sec)
	})
	return g, url
}

type secBearer struct{ tok string }

func (b secBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

func withToken(tok string) func(*mcp.StreamableClientTransport) {
	return func(tr *mcp.StreamableClientTransport) {
		tr.HTTPClient = &http.Client{Transport: secBearer{tok}}
	}
}

// legacyOnly is a 2025-11-25 upstream (so the gateway talks to it with
// resources/subscribe and server-sent notifications).
func legacyOnly(name string, opts *mcp.ServerOptions) *mcp.Server {
	if opts == nil {
		opts = &mcp.ServerOptions{}
	}
	opts.SupportedProtocolVersions = []string{"2025-11-25"}
	return mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, opts)
}

func secTool(s *mcp.Server, name string, h mcp.ToolHandler) {
	if h == nil {
		h = func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil
		}
	}
	s.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)}, h)
}

// TestSecuritySubscriptionsListenBypassesAuthz: tenant B may not
// subscribe to tenant A's resource with resources/subscribe (the control
// below), but the 2026-07-28 subscriptions/listen request carries the URIs
// in params.notifications.resourceSubscriptions, reaches authzMiddleware's
// catch-all (which only asks for CanList) and the SDK server then calls the
// gateway's SubscribeHandler directly, past the middleware. B is subscribed
// upstream at A's upstream and receives A's resources/updated notifications.
func TestSecuritySubscriptionsListenBypassesAuthz(t *testing.T) {
	const secret = "res://a/secret-report"
	var mu sync.Mutex
	var subscribed []string
	ua := legacyOnly("ua", &mcp.ServerOptions{
		SubscribeHandler: func(_ context.Context, r *mcp.SubscribeRequest) error {
			mu.Lock()
			subscribed = append(subscribed, r.Params.URI)
			mu.Unlock()
			return nil
		},
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	ua.AddResource(&mcp.Resource{URI: secret, Name: "secret"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: secret, Text: "for A only"}}}, nil
	})
	ub := legacyOnly("ub", nil)
	secTool(ub, "b_tool", nil)
	_, url := secGateway(t, "[server]\n"+upstreamBlock("ua", startHTTPUpstream(t, ua))+upstreamBlock("ub", startHTTPUpstream(t, ub)), newSecFake(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	// Control: the 2025 method is refused, exactly like a missing URI.
	legacyB := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken(secTokB))
	if err := legacyB.Subscribe(ctx, &mcp.SubscribeParams{URI: secret}); err == nil {
		t.Fatal("control: resources/subscribe of A's resource by B succeeded")
	}

	updates := make(chan string, 8)
	newB := dialClient(t, url+"/mcp", &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) { updates <- r.Params.URI },
	}, "2026-07-28", withToken(secTokB))
	_ = newB.Subscribe(ctx, &mcp.SubscribeParams{URI: secret}) // subscriptions/listen
	waitFor(t, "upstream subscribe", 3*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(subscribed) > 0
	})
	_ = ua.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: secret})
	select {
	case uri := <-updates:
		t.Fatalf("tenant B subscribed to tenant A's resource through subscriptions/listen and received its update (%s)", uri)
	case <-time.After(1500 * time.Millisecond):
	}
	mu.Lock()
	if len(subscribed) > 0 {
		mu.Unlock()
		t.Fatalf("tenant B's subscriptions/listen subscribed at tenant A's upstream: %v", subscribed)
	}
	mu.Unlock()

	// A itself subscribes the same way and gets its update.
	updatesA := make(chan string, 8)
	newA := dialClient(t, url+"/mcp", &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) { updatesA <- r.Params.URI },
	}, "2026-07-28", withToken(secTokA))
	_ = newA.Subscribe(ctx, &mcp.SubscribeParams{URI: secret})
	if !waitFor(t, "upstream subscribe", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(subscribed) > 0
	}) {
		t.Fatal("A's own subscriptions/listen never reached its upstream")
	}
	_ = ua.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: secret})
	select {
	case <-updatesA:
	case <-time.After(5 * time.Second):
		t.Fatal("A did not receive the update of its own resource")
	}
}

// TestSecurityTemplateOrderReadsOtherTenantsResource: on /mcp the
// authorization of resources/read asks ownerOf, which tries templates in
// config order, but the SDK server dispatches the read to the first
// matching template in sorted order. With B's upstream first in the config
// and a broad template ("res://{+path}") and A's narrower one sorting
// before it ("res://data/{name}"), the check sees B's upstream (allowed)
// and the read goes to A's.
func TestSecurityTemplateOrderReadsOtherTenantsResource(t *testing.T) {
	ua := legacyOnly("ua", nil)
	ua.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "res://data/{name}", Name: "a-data"},
		func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: "A's private data"}}}, nil
		})
	ub := legacyOnly("ub", nil)
	ub.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "res://{+path}", Name: "b-any"},
		func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: "B's data"}}}, nil
		})
	// ub first: "earlier upstreams win" is what ownerOf implements.
	_, url := secGateway(t, "[server]\n"+upstreamBlock("ub", startHTTPUpstream(t, ub))+upstreamBlock("ua", startHTTPUpstream(t, ua)), newSecFake(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	csB := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken(secTokB))
	// The SDK server dispatches this URI to A's template, so B must get
	// "not found" (never A's contents).
	if res, err := csB.ReadResource(ctx, &mcp.ReadResourceParams{URI: "res://data/one"}); err == nil {
		for _, c := range res.Contents {
			if strings.Contains(c.Text, "A's") {
				t.Fatalf("tenant B read tenant A's resource: %q", c.Text)
			}
		}
	}
	// B's own URIs still work.
	if res, err := csB.ReadResource(ctx, &mcp.ReadResourceParams{URI: "res://elsewhere/x"}); err != nil || len(res.Contents) == 0 || res.Contents[0].Text != "B's data" {
		t.Fatalf("B reads its own resource: %+v %v", res, err)
	}
	// And A, whose upstream is not B's, must not be routed to B's.
	csA := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken(secTokA))
	if res, err := csA.ReadResource(ctx, &mcp.ReadResourceParams{URI: "res://data/one"}); err != nil || len(res.Contents) == 0 || res.Contents[0].Text != "A's private data" {
		t.Fatalf("A reads its own resource: %+v %v", res, err)
	}
}

// TestSecurityUpstreamLogsReachOtherTenants: a shared upstream
// connection's log messages go to every session of /mcp (sink.Log), and a
// logging/setLevel on /mcp is forwarded to every upstream
// (levelMiddleware), whatever the caller may use. Tenant B sets "debug" and
// reads what tenant A's upstream logs while serving A.
func TestSecurityUpstreamLogsReachOtherTenants(t *testing.T) {
	ua := legacyOnly("ua", &mcp.ServerOptions{Capabilities: &mcp.ServerCapabilities{Logging: &mcp.LoggingCapabilities{}, Tools: &mcp.ToolCapabilities{}}})
	secTool(ua, "a_tool", func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		_ = r.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "debug", Logger: "ua", Data: "A's customer record 4711"})
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
	})
	ub := legacyOnly("ub", nil)
	secTool(ub, "b_tool", nil)
	_, url := secGateway(t, "[server]\n"+upstreamBlock("ua", startHTTPUpstream(t, ua))+upstreamBlock("ub", startHTTPUpstream(t, ub)), newSecFake(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	logsB := make(chan string, 16)
	csB := dialClient(t, url+"/mcp", &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			b, _ := json.Marshal(r.Params.Data)
			logsB <- string(b)
		},
	}, "2025-11-25", withToken(secTokB))
	if err := csB.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	logsA := make(chan string, 16)
	csA := dialClient(t, url+"/mcp", &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			b, _ := json.Marshal(r.Params.Data)
			logsA <- string(b)
		},
	}, "2025-11-25", withToken(secTokA))
	if res, err := csA.CallTool(ctx, &mcp.CallToolParams{Name: "ua__a_tool", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("A calls its tool: %+v %v", res, err)
	}
	select {
	case m := <-logsB:
		t.Fatalf("tenant B received a log message of tenant A's upstream: %s", m)
	case <-time.After(time.Second):
	}

	// A, which may use ua, gets its logs once it asks for them.
	if err := csA.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	// The level reaches the upstream asynchronously; on a loaded machine
	// allow several calls for it.
	gotA := false
	for deadline := time.Now().Add(10 * time.Second); !gotA && time.Now().Before(deadline); {
		if res, err := csA.CallTool(ctx, &mcp.CallToolParams{Name: "ua__a_tool", Arguments: map[string]any{}}); err != nil || res.IsError {
			t.Fatalf("A calls its tool: %+v %v", res, err)
		}
		select {
		case m := <-logsA:
			if !strings.Contains(m, "4711") {
				t.Fatalf("A got %s", m)
			}
			gotA = true
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !gotA {
		t.Fatal("A did not receive its own upstream's log message")
	}
	select {
	case m := <-logsB:
		t.Fatalf("tenant B received a log message of tenant A's upstream: %s", m)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestSecurityControls: the defences that hold. B neither sees nor
// calls A's tool (and the refusal looks like a missing tool and is
// recorded), nor connects to /mcp/ua; the status tool is hidden from
// non-operators; a client's own io.mcpedge/principal _meta never reaches a
// built-in server; and a session id made with A's credential is refused to
// B's.
func TestSecurityControls(t *testing.T) {
	ua := legacyOnly("ua", nil)
	secTool(ua, "a_tool", nil)
	ub := legacyOnly("ub", nil)
	secTool(ub, "b_tool", nil)
	seen := make(chan *principal.Meta, 4)
	lat := mcp.NewServer(&mcp.Implementation{Name: "lattice", Version: "1"}, nil)
	secTool(lat, "whoami", func(_ context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		seen <- principal.FromMeta(r.Params.Meta)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
	})
	sec := newSecFake()
	sec.ups["tb"]["lattice"] = true
	g, url := secGateway(t, "[server]\n"+upstreamBlock("ua", startHTTPUpstream(t, ua))+upstreamBlock("ub", startHTTPUpstream(t, ub)), sec, map[string]*mcp.Server{"lattice": lat})
	g.WaitAttempted(context.Background(), 10*time.Second)
	waitFor(t, "builtin ready", 5*time.Second, func() bool { return g.PerUpstream("lattice") != nil })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	csB := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken(secTokB))
	names := map[string]bool{}
	for tool, err := range csB.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		names[tool.Name] = true
	}
	if names["ua__a_tool"] || names[builtinStatus] || !names["ub__b_tool"] {
		t.Fatalf("B lists %v", names)
	}
	_, errA := csB.CallTool(ctx, &mcp.CallToolParams{Name: "ua__a_tool", Arguments: map[string]any{}})
	_, errNone := csB.CallTool(ctx, &mcp.CallToolParams{Name: "ua__nonesuch", Arguments: map[string]any{}})
	_, errStatus := csB.CallTool(ctx, &mcp.CallToolParams{Name: builtinStatus, Arguments: map[string]any{}})
	if errA == nil || errNone == nil || errStatus == nil ||
		strings.ReplaceAll(errA.Error(), "ua__a_tool", "X") != strings.ReplaceAll(errNone.Error(), "ua__nonesuch", "X") {
		t.Fatalf("refusals: %v / %v / %v", errA, errNone, errStatus)
	}
	sec.mu.Lock()
	denied := 0
	for _, r := range sec.records {
		if r.Outcome == "denied" {
			denied++
		}
	}
	sec.mu.Unlock()
	if denied < 3 {
		t.Errorf("%d denied calls recorded, want 3", denied)
	}

	// /mcp/ua does not exist for B.
	req, _ := http.NewRequest(http.MethodPost, url+"/mcp/ua", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+secTokB)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("B on /mcp/ua: %d", resp.StatusCode)
	}

	// A forged principal in _meta is replaced by the real one.
	forged := mcp.Meta{"io.mcpedge/principal": map[string]any{"tenant_id": "ta", "tenant": "a", "operator": true, "role": "owner", "id": "key-a", "kind": "key"}}
	if _, err := csB.CallTool(ctx, &mcp.CallToolParams{Meta: forged, Name: "lattice__whoami", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if pm := <-seen; pm == nil || pm.TenantID != "tb" || pm.Operator || pm.ID != "key-b" {
		t.Fatalf("the built-in server saw %+v", pm)
	}

	// A's session id is useless with B's credential.
	csA := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken(secTokA))
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`
	req, _ = http.NewRequest(http.MethodPost, url+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Mcp-Session-Id", csA.ID())
	req.Header.Set("Authorization", "Bearer "+secTokB)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("B used A's session id: HTTP %d", resp.StatusCode)
	}
}

// TestSecurityCompletionChecksOneUpstreamAsksAnother: for a
// completion/complete resource reference on /mcp the check asks ownerOf
// (resources, then the first template whose pattern matches the reference
// string), but complete() routes by the exact template string. B's broad
// template "res://{+path}" matches the text of A's literal template
// "res://~fixed" and sorts before it, so the check sees B's upstream and
// the request goes to A's.
func TestSecurityCompletionChecksOneUpstreamAsksAnother(t *testing.T) {
	complete := func(who string) func(context.Context, *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
		return func(context.Context, *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{who}}}, nil
		}
	}
	read := func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "x", Text: "x"}}}, nil
	}
	ua := legacyOnly("ua", &mcp.ServerOptions{CompletionHandler: complete("A-private-completion")})
	ua.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "res://~fixed", Name: "a"}, read)
	ub := legacyOnly("ub", &mcp.ServerOptions{CompletionHandler: complete("B-completion")})
	ub.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "res://{+path}", Name: "b"}, read)
	_, url := secGateway(t, "[server]\n"+upstreamBlock("ub", startHTTPUpstream(t, ub))+upstreamBlock("ua", startHTTPUpstream(t, ua)), newSecFake(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	csB := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken(secTokB))
	ask := func(uri string) (*mcp.CompleteResult, error) {
		return csB.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/resource", URI: uri}, Argument: mcp.CompleteParamsArgument{Name: "path", Value: ""}})
	}
	if res, err := ask("res://{+path}"); err != nil || len(res.Completion.Values) != 1 || res.Completion.Values[0] != "B-completion" {
		t.Fatalf("B completes its own template: %+v %v", res, err)
	}
	if res, err := ask("res://~fixed"); err == nil {
		t.Fatalf("tenant B's completion was answered by tenant A's upstream: %v", res.Completion.Values)
	}
}

// TestSecuritySessionBoundToTenant: sdkAuth bound a session to
// Kind:ID only. An identity-provider subject is the same in every tenant
// its tokens name ("oidc:<sub>"), so a token of that subject for tenant B
// could use the session opened with its token for tenant A — and with it
// A's per-session upstream connections (isolation = "session"), whose
// state belongs to A. A session must be bound to the tenant too.
func TestSecuritySessionBoundToTenant(t *testing.T) {
	ub := legacyOnly("ub", nil)
	secTool(ub, "b_tool", nil)
	sec := newSecFake()
	sec.creds["idp-token-for-a"] = &principal.Principal{Kind: principal.KindOIDC, ID: "oidc:alice", TenantID: "ta", TenantName: "a", Role: principal.RoleMember}
	sec.creds["idp-token-for-b"] = &principal.Principal{Kind: principal.KindOIDC, ID: "oidc:alice", TenantID: "tb", TenantName: "b", Role: principal.RoleMember}
	_, url := secGateway(t, "[server]\n"+upstreamBlock("ub", startHTTPUpstream(t, ub)), sec, nil)

	csA := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken("idp-token-for-a"))
	req, _ := http.NewRequest(http.MethodPost, url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Mcp-Session-Id", csA.ID())
	req.Header.Set("Authorization", "Bearer idp-token-for-b")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("a token for tenant B used the session opened with a token for tenant A (same subject)")
	}
}
