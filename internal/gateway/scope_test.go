package gateway

// Scopes answered as the MCP authorization spec says: a caller whose role
// or scopes allow no call of a method at all gets HTTP 403 with
// WWW-Authenticate: Bearer error="insufficient_scope", scope="…" on the
// hot path, the SDK's way and the stateless era, before admission; a
// caller who may call tools but not the one it names still gets the
// answer of a missing tool. Real principals, the real policy engine.

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// admitCounter is a policySec that records the methods it admitted.
type admitCounter struct {
	*policySec
	mu       sync.Mutex
	admitted []string
}

func (s *admitCounter) Admit(_ *http.Request, _ http.Header, _ *principal.Principal, method string) *Denial {
	s.mu.Lock()
	s.admitted = append(s.admitted, method)
	s.mu.Unlock()
	return nil
}

func (s *admitCounter) admits(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.admitted {
		if m == method {
			n++
		}
	}
	return n
}

const scopeMetadata = `resource_metadata="http://gw.example/.well-known/oauth-protected-resource/mcp"`

func TestScopeChallenge(t *testing.T) {
	var calls sync.Map
	ua := startHTTPUpstream(t, rolesUpstream("ua", &calls))
	ub := startHTTPUpstream(t, rolesUpstream("ub", &calls))
	key := func(id, role string, scopes ...string) *principal.Principal {
		return &principal.Principal{Kind: principal.KindKey, ID: id, KeyID: id, TenantID: "ta", TenantName: "a", Role: role, Scopes: scopes}
	}
	who := map[string]*principal.Principal{
		"viewer":           key("k-viewer", principal.RoleViewer),
		"viewer mcp:call":  key("k-viewer-call", principal.RoleViewer, principal.ScopeCall),
		"owner mcp:list":   key("k-owner-list", principal.RoleOwner, principal.ScopeList),
		"admin admin:read": key("k-admin-read", principal.RoleAdmin, principal.ScopeAdminRead),
		"member":           key("k-member", principal.RoleMember),
		"member mcp:call":  key("k-member-call", principal.RoleMember, principal.ScopeCall),
	}

	for _, era := range []struct{ name, server string }{
		{"hot path", "[server]\n"},
		{"sdk path", "[server]\nhot_path = false\n"},
		{"stateless", "[server]\n"},
	} {
		t.Run(era.name, func(t *testing.T) {
			sec := &admitCounter{policySec: &policySec{engine: rolesEngine(t), creds: map[string]*principal.Principal{}}}
			for _, p := range who {
				sec.creds["tok-"+p.ID] = p
			}
			g, url := secGateway(t, era.server+upstreamBlock("ua", ua)+upstreamBlock("ub", ub), sec, nil)
			waitTargetsReady(t, g, 2)
			client := func(name, path string) *rawClient {
				tok := "tok-" + who[name].ID
				if era.name == "stateless" {
					return &rawClient{t: t, url: url + path, token: tok, version: "2026-07-28"}
				}
				return newRawClientAs(t, url+path, tok)
			}

			reachedBefore := map[string]int{}
			for _, name := range []string{"ua__read", "ub__read"} {
				reachedBefore[name] = callCount(&calls, name)
			}

			// Refused whatever they name: the same answer for a tool the
			// caller could see, one it could not, and one that does not
			// exist.
			for _, tc := range []scopeCase{
				{"viewer", "tools/call", `{"name":"ua__read","arguments":{}}`, "mcp:call",
					"calling tools needs the member role or higher (this credential's role: viewer)"},
				{"viewer", "tools/call", `{"name":"ub__read","arguments":{}}`, "mcp:call",
					"calling tools needs the member role or higher (this credential's role: viewer)"},
				{"viewer", "tools/call", `{"name":"nonesuch","arguments":{}}`, "mcp:call",
					"calling tools needs the member role or higher (this credential's role: viewer)"},
				{"viewer mcp:call", "tools/call", `{"name":"ua__read"}`, "mcp:call",
					"calling tools needs the member role or higher (this credential's role: viewer)"},
				{"owner mcp:list", "tools/call", `{"name":"ua__read","arguments":{"x":1}}`, "mcp:call",
					"calling tools needs the mcp:call scope (this credential's scopes: mcp:list)"},
				{"admin admin:read", "tools/call", `{"name":"ua__read","arguments":{}}`, "mcp:call",
					"calling tools needs the mcp:call scope (this credential's scopes: admin:read)"},
				{"admin admin:read", "prompts/get", `{"name":"ua__greet"}`, "mcp:list",
					"getting prompts, reading resources and completing needs the mcp:list or mcp:call scope (this credential's scopes: admin:read)"},
				{"admin admin:read", "resources/read", `{"uri":"mem://ua/doc"}`, "mcp:list",
					"getting prompts, reading resources and completing needs the mcp:list or mcp:call scope (this credential's scopes: admin:read)"},
				{"admin admin:read", "completion/complete", `{"ref":{"type":"ref/prompt","name":"ua__greet"},"argument":{"name":"x","value":""}}`, "mcp:list",
					"getting prompts, reading resources and completing needs the mcp:list or mcp:call scope (this credential's scopes: admin:read)"},
			} {
				for _, path := range []string{"/mcp", "/mcp/ua"} {
					c := client(tc.who, path)
					admitted := sec.admits(tc.method)
					denied := len(sec.outcomes(tc.nameIn()))
					st, h, msg := c.post(`{"jsonrpc":"2.0","id":"req-7","method":"` + tc.method + `","params":` + tc.params + `}`)
					wantHdr := `Bearer realm="mcpedge", ` + scopeMetadata + `, error="insufficient_scope", scope="` + tc.scope + `", error_description="` + tc.why + `"`
					if st != http.StatusForbidden || h.Get("WWW-Authenticate") != wantHdr || len(h.Values("WWW-Authenticate")) != 1 {
						t.Errorf("%s %s %s on %s: HTTP %d\n WWW-Authenticate %q\nwant %q", tc.who, tc.method, tc.params, path, st, h.Values("WWW-Authenticate"), wantHdr)
					}
					if h.Get("Content-Type") != "application/json" {
						t.Errorf("Content-Type %q", h.Get("Content-Type"))
					}
					e, _ := msg["error"].(map[string]any)
					data, _ := e["data"].(map[string]any)
					if msg["id"] != "req-7" || e["code"] != float64(-32600) || e["message"] != "insufficient scope: "+tc.why ||
						data["reason"] != "insufficient_scope" || data["scope"] != tc.scope {
						t.Errorf("%s %s: body %v", tc.who, tc.method, msg)
					}
					if sec.admits(tc.method) != admitted {
						t.Errorf("%s %s: the refused request was admitted (rate limits, quota)", tc.who, tc.method)
					}
					if tc.method == "tools/call" {
						if got := sec.outcomes(tc.nameIn())[denied:]; !slices.Equal(got, []string{"denied"}) {
							t.Errorf("%s tools/call %s recorded %v, want [denied]", tc.who, tc.params, got)
						}
					}
				}
			}
			for name, before := range reachedBefore {
				if n := callCount(&calls, name) - before; n != 0 {
					t.Errorf("refused calls of %s reached its upstream %d times", name, n)
				}
			}
			if era.name == "stateless" {
				return // what follows needs the 2026 era's per-request _meta; the other eras show it
			}

			// What the caller may do is answered as always: a viewer reads,
			// a member calls; a tool a rule or another tenant keeps from a
			// member who may call tools is an unknown tool (HTTP 200),
			// exactly like one that does not exist.
			ok := func(name, method, params string) map[string]any {
				t.Helper()
				st, h, msg := client(name, "/mcp").post(`{"jsonrpc":"2.0","id":3,"method":"` + method + `","params":` + params + `}`)
				if st != http.StatusOK || h.Get("WWW-Authenticate") != "" {
					t.Errorf("%s %s %s: HTTP %d, WWW-Authenticate %q: %v", name, method, params, st, h.Get("WWW-Authenticate"), msg)
				}
				return msg
			}
			if msg := ok("viewer", "prompts/get", `{"name":"ua__greet"}`); msg["result"] == nil {
				t.Errorf("a viewer's prompts/get: %v", msg)
			}
			for _, name := range []string{"member", "member mcp:call"} {
				hot := counterValue(t, g.edgeMetrics.hot.WithLabelValues("tools/call", "hot", ""))
				if msg := ok(name, "tools/call", `{"name":"ua__read","arguments":{}}`); msg["result"] == nil {
					t.Errorf("%s calls ua__read: %v", name, msg)
				}
				if tookHot := counterValue(t, g.edgeMetrics.hot.WithLabelValues("tools/call", "hot", "")) > hot; tookHot != (era.name == "hot path") {
					t.Errorf("%s's call took the hot path: %v", name, tookHot)
				}
				var unknown []string
				for _, tool := range []string{"ua__write", "ub__read", "ua__nonesuch"} {
					e, _ := ok(name, "tools/call", `{"name":"`+tool+`","arguments":{}}`)["error"].(map[string]any)
					unknown = append(unknown, strings.ReplaceAll(jsonString(e), tool, "X"))
				}
				if unknown[0] != unknown[2] || unknown[1] != unknown[2] || !strings.Contains(unknown[2], `unknown tool \"X\"`) {
					t.Errorf("%s: forbidden tools do not look like a missing one: %v", name, unknown)
				}
			}
		})
	}
}

// scopeCase is a request refused with 403: who sends it, and the scope and
// reason the challenge names.
type scopeCase struct{ who, method, params, scope, why string }

// nameIn is the tool name a case's params carry.
func (tc scopeCase) nameIn() string {
	var p struct{ Name string }
	_ = json.Unmarshal([]byte(tc.params), &p)
	return p.Name
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// The SDK client reports the 403 for that call only: its session goes on,
// and what the caller may do still works in it.
func TestScopeChallengeKeepsTheSession(t *testing.T) {
	var calls sync.Map
	ua := startHTTPUpstream(t, rolesUpstream("ua", &calls))
	viewer := &principal.Principal{Kind: principal.KindKey, ID: "k-viewer", TenantID: "ta", TenantName: "a", Role: principal.RoleViewer}
	sec := &policySec{engine: rolesEngine(t), creds: map[string]*principal.Principal{"tok-viewer": viewer}}
	_, url := secGateway(t, "[server]\n"+upstreamBlock("ua", ua), sec, nil)
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25", withToken("tok-viewer"))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for range 2 {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ua__read", Arguments: map[string]any{}})
		if err == nil || !strings.Contains(err.Error(), "insufficient scope: calling tools needs the member role") || !strings.Contains(err.Error(), "Forbidden") {
			t.Fatalf("a viewer's tools/call: %v", err)
		}
		pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "ua__greet"})
		if err != nil || len(pr.Messages) != 1 {
			t.Fatalf("then prompts/get in the same session: %v", err)
		}
	}
	if callCount(&calls, "ua__read") != 0 {
		t.Error("the refused call reached the upstream")
	}
}
