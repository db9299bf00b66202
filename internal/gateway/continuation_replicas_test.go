package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// twoQuestions is a 2025-era upstream named for tenant ta's policy whose
// tool asks for roots, then elicits a colour, then answers with both.
func twoQuestions() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "ua", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	s.AddTool(&mcp.Tool{Name: "two", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			roots, err := r.Session.ListRoots(ctx, nil)
			if err != nil {
				return nil, err
			}
			el, err := r.Session.Elicit(ctx, &mcp.ElicitParams{Message: "colour?", RequestedSchema: map[string]any{
				"type": "object", "properties": map[string]any{"colour": map[string]any{"type": "string"}}}})
			if err != nil {
				return nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("root=%s colour=%v", roots.Roots[0].URI, el.Content["colour"])}}}, nil
		})
	return s
}

// bearer makes a client transport send token.
func bearer(token string) func(*mcp.StreamableClientTransport) {
	return func(tr *mcp.StreamableClientTransport) {
		tr.HTTPClient = &http.Client{Transport: headerTransport{"Authorization": "Bearer " + token}}
	}
}

type headerTransport map[string]string

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestContinuationAcrossReplicas: a 2026-07-28 client's input-required
// call started on one replica is resumed on the others, each round on
// another one (the retry is relayed to the replica running the call); an
// answer is applied once (the same retry again is refused); another
// caller cannot resume it; a finished call cannot be resumed anywhere;
// and a call whose replica stopped gets an error saying to start again.
func TestContinuationAcrossReplicas(t *testing.T) {
	ua := startHTTPUpstream(t, twoQuestions())
	alice := &principal.Principal{Kind: principal.KindKey, ID: "k-alice", KeyID: "k-alice", TenantID: "ta", TenantName: "a", Role: principal.RoleMember}
	bob := &principal.Principal{Kind: principal.KindKey, ID: "k-bob", KeyID: "k-bob", TenantID: "ta", TenantName: "a", Role: principal.RoleMember}
	creds := map[string]*principal.Principal{"alice": alice, "bob": bob}
	_, urls, gs := keptReplicas(t, 3, upstreamBlock("ua", ua), func(g *Gateway) {
		g.SetSecurity(&policySec{engine: testPolicyEngine(t), creds: creds})
	})
	for _, g := range gs {
		waitTargetsReady(t, g, 1)
	}
	manual := &mcp.ClientOptions{MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true},
		// Declares the capability; the test answers the rounds itself.
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return nil, fmt.Errorf("not used")
		}}
	var cs, bobs []*mcp.ClientSession
	for _, u := range urls {
		cs = append(cs, dialClient(t, u+"/mcp", manual, "2026-07-28", bearer("alice")))
		bobs = append(bobs, dialClient(t, u+"/mcp", manual, "2026-07-28", bearer("bob")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call := func(c *mcp.ClientSession, state string, answers mcp.InputResponseMap) (*mcp.CallToolResult, error) {
		return c.CallTool(ctx, &mcp.CallToolParams{Name: "ua__two", Arguments: map[string]any{}, RequestState: state, InputResponses: answers})
	}
	only := func(res *mcp.CallToolResult) (string, mcp.InputRequest) {
		t.Helper()
		if len(res.InputRequests) != 1 || res.RequestState == "" {
			t.Fatalf("want one input request, got %+v", res)
		}
		for id, r := range res.InputRequests {
			return id, r
		}
		return "", nil
	}

	r1, err := call(cs[0], "", nil)
	if err != nil {
		t.Fatal(err)
	}
	rootsID, q := only(r1)
	if _, ok := q.(*mcp.ListRootsParams); !ok {
		t.Fatalf("first question %T, want roots/list", q)
	}
	rootsAnswer := mcp.InputResponseMap{rootsID: &mcp.ListRootsResult{Roots: []*mcp.Root{{URI: "file:///w"}}}}

	// Another caller of the same tenant, on a replica that does not run
	// the call: the call does not exist for it, and is left alone.
	if _, err := call(bobs[1], r1.RequestState, rootsAnswer); err == nil || !strings.Contains(err.Error(), "no longer holds") {
		t.Errorf("bob resuming alice's call: %v, want refused as unknown", err)
	}

	r2, err := call(cs[1], r1.RequestState, rootsAnswer)
	if err != nil {
		t.Fatalf("round 2 on replica 1: %v", err)
	}
	elicitID, q := only(r2)
	if _, ok := q.(*mcp.ElicitParams); !ok {
		t.Fatalf("second question %T, want elicitation", q)
	}
	// The same retry again, on the third replica: applied once.
	if _, err := call(cs[2], r1.RequestState, rootsAnswer); err == nil || !strings.Contains(err.Error(), "applied already") {
		t.Errorf("the round-2 retry repeated: %v, want refused as applied already", err)
	}
	r3, err := call(cs[2], r2.RequestState, mcp.InputResponseMap{elicitID: &mcp.ElicitResult{Action: "accept", Content: map[string]any{"colour": "blue"}}})
	if err != nil {
		t.Fatalf("round 3 on replica 2: %v", err)
	}
	if r3.RequestState != "" || len(r3.Content) != 1 || r3.Content[0].(*mcp.TextContent).Text != "root=file:///w colour=blue" {
		t.Fatalf("final result %+v", r3)
	}
	if n := testutil.ToFloat64(gs[1].edgeMetrics.contRelays.WithLabelValues("relayed")) + testutil.ToFloat64(gs[2].edgeMetrics.contRelays.WithLabelValues("relayed")); n != 4 {
		// bob's, round 2, its repetition, round 3: each answered by the owner.
		t.Errorf("%v retries counted as relayed, want 4", n)
	}
	for i := range gs {
		if n := countConts(gs[i]); n != 0 {
			t.Errorf("replica %d still holds %d continuations", i, n)
		}
	}
	// Finished: nobody can resume it.
	if _, err := call(cs[1], r2.RequestState, mcp.InputResponseMap{elicitID: &mcp.ElicitResult{Action: "decline"}}); err == nil || !strings.Contains(err.Error(), "no longer holds") {
		t.Errorf("resuming a finished call: %v", err)
	}

	// The replica running a call stops being reachable: the retry that
	// lands elsewhere says so at once.
	r1, err = call(cs[0], "", nil)
	if err != nil {
		t.Fatal(err)
	}
	rootsID, _ = only(r1)
	gs[0].contRelay.(*hubMember).hub.unserve(gs[0].hot.askTag)
	if _, err := call(cs[1], r1.RequestState, mcp.InputResponseMap{rootsID: &mcp.ListRootsResult{Roots: []*mcp.Root{}}}); err == nil || !strings.Contains(err.Error(), "has stopped") {
		t.Errorf("resuming a call of a stopped replica: %v", err)
	}
	if n := testutil.ToFloat64(gs[1].edgeMetrics.contRelays.WithLabelValues("gone")); n != 1 {
		t.Errorf("%v retries counted as gone, want 1", n)
	}
}

// TestContinuationWithoutRelay: without Redis, a retry reaching another
// replica than the one running the call is refused with an error that
// says why, and the call is not resumed there.
func TestContinuationWithoutRelay(t *testing.T) {
	legacy := startHTTPUpstream(t, legacyAsker())
	_, a := startGateway(t, "[server]\n"+upstreamBlock("legacy", legacy))
	_, b := startGateway(t, "[server]\n"+upstreamBlock("legacy", legacy))
	manual := &mcp.ClientOptions{MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true}}
	ca, cb := dialClient(t, a+"/mcp", manual, "2026-07-28"), dialClient(t, b+"/mcp", manual, "2026-07-28")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := ca.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__ask", Arguments: map[string]any{}})
	if err != nil || res.RequestState == "" {
		t.Fatalf("first round: %v %+v", err, res)
	}
	answers := mcp.InputResponseMap{}
	for id := range res.InputRequests {
		answers[id] = &mcp.ListRootsResult{Roots: []*mcp.Root{}}
	}
	if _, err := cb.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__ask", Arguments: map[string]any{}, RequestState: res.RequestState, InputResponses: answers}); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("retry on the other gateway: %v, want refused as unreachable", err)
	}
	done, err := ca.CallTool(ctx, &mcp.CallToolParams{Name: "legacy__ask", Arguments: map[string]any{}, RequestState: res.RequestState, InputResponses: answers})
	if err != nil || len(done.Content) != 1 || done.Content[0].(*mcp.TextContent).Text != "done" {
		t.Fatalf("retry on the replica running the call: %v %+v", err, done)
	}
}

// TestContinuationDropsWithdrawnQuestion: an upstream request that is
// withdrawn before the client answers it (here: sent after the tool's own
// question, by a goroutine of the tool, and cancelled when the tool
// returns a moment later) is not put to the client once the call has
// its result, and an answer to it does not fail the call. The everything
// server's roots/list, sent on its own 350 ms after it is initialized and
// taken for the call in flight, made TestGoClientBothEras fail this way.
func TestContinuationDropsWithdrawnQuestion(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "stray", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25"}})
	s.AddTool(&mcp.Tool{Name: "sample", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			res, err := r.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 5, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "q"}}}})
			if err != nil {
				return nil, err
			}
			go func() { _, _ = r.Session.ListRoots(ctx, nil) }()
			time.Sleep(20 * time.Millisecond)
			return &mcp.CallToolResult{Content: []mcp.Content{res.Content}}, nil
		})
	up := startHTTPUpstream(t, s)
	_, url := startGateway(t, "[server]\n"+upstreamBlock("stray", up))
	c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "sampled"}}, nil
		},
	})
	c.AddRoots(&mcp.Root{URI: "file:///r"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url + "/mcp", MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for i := range 5 {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stray__sample", Arguments: map[string]any{}})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "sampled" {
			t.Fatalf("call %d: %+v", i, res)
		}
	}
}
