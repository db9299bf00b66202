package gateway

// The hot path with a security layer: it authorizes and records every call
// as the SDK's way does, and serves a session only to the caller it was
// opened by.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/policy"
	"github.com/mcpedge/mcpedge/internal/principal"
	auditstage "github.com/mcpedge/mcpedge/internal/stage/audit"
	"github.com/mcpedge/mcpedge/internal/store"
)

// hotPolicyGateway starts a multi-tenant gateway with hot_path set as
// given: tenant "ta" has upstream "ua", whose tool ua__write only admins
// and keys with the scope "ua:write" may call; tenant "tb" has "ub".
// creds are its credentials (token -> principal).
func hotPolicyGateway(t *testing.T, hot bool, ua, ub string, creds map[string]*principal.Principal) (*Gateway, string, *policySec) {
	t.Helper()
	src := &policySource{
		tenants: []store.Tenant{{ID: "ta", Name: "a"}, {ID: "tb", Name: "b"}},
		vss: map[string][]store.VirtualServer{
			"ta": {{Name: "main", Upstreams: []string{"ua"}}},
			"tb": {{Name: "main", Upstreams: []string{"ub"}}},
		},
		rules: map[string][]store.Rule{"ta": {
			{Tool: "ua__write", Effect: "allow", Roles: []string{principal.RoleAdmin, principal.RoleOwner}},
			{Tool: "ua__write", Effect: "allow", Scopes: []string{"ua:write"}},
		}},
	}
	engine := policy.New(src, config.DefaultPlans(), nil)
	if err := engine.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	sec := &policySec{engine: engine, creds: creds}
	cfg, err := config.Parse("review.toml", []byte(fmt.Sprintf("[server]\nhot_path = %v\n", hot)+upstreamBlock("ua", ua)+upstreamBlock("ub", ub)))
	if err != nil {
		t.Fatal(err)
	}
	g, url, _ := startTestGateway(t, cfg, true, func(g *Gateway) { g.SetSecurity(sec) })
	waitTargetsReady(t, g, 2)
	return g, url, sec
}

// TestHotPathAuthorization: each principal's calls are allowed or refused
// on the hot path exactly as on the SDK's way — the same answer, the same
// record, and a refused call never reaches the upstream — whether the
// chain refuses them (authorize: another tenant's tool, a rule) or the
// edge does before either way (a credential without the call scope).
func TestHotPathAuthorization(t *testing.T) {
	var calls sync.Map
	ua := startHTTPUpstream(t, rolesUpstream("ua", &calls))
	ub := startHTTPUpstream(t, rolesUpstream("ub", &calls))
	key := func(id, role string, scopes ...string) *principal.Principal {
		return &principal.Principal{Kind: principal.KindKey, ID: id, KeyID: id, TenantID: "ta", TenantName: "a", Role: role, Scopes: scopes}
	}
	creds := map[string]*principal.Principal{
		"member":        key("k-member", principal.RoleMember),
		"viewer":        key("k-viewer", principal.RoleViewer),
		"list-only":     key("k-list", principal.RoleMember, principal.ScopeList),
		"viewer-call":   key("k-viewer-call", principal.RoleViewer, principal.ScopeCall),
		"member-write":  key("k-member-write", principal.RoleMember, principal.ScopeCall, "ua:write"),
		"admin":         key("k-admin", principal.RoleAdmin),
		"unknown-role":  key("k-unknown", "superuser"),
		"other-tenant":  {Kind: principal.KindKey, ID: "k-b", KeyID: "k-b", TenantID: "tb", TenantName: "b", Role: principal.RoleOwner},
		"admin-scoped":  key("k-admin-adm", principal.RoleAdmin, principal.ScopeAdminRead, principal.ScopeAdminWrite),
		"user-session":  {Kind: principal.KindUser, ID: "u1", UserID: "u1", TenantID: "ta", TenantName: "a", Role: principal.RoleMember},
		"owner-listing": key("k-owner-list", principal.RoleOwner, principal.ScopeList),
	}
	gHot, urlHot, secHot := hotPolicyGateway(t, true, ua, ub, creds)
	gSDK, urlSDK, secSDK := hotPolicyGateway(t, false, ua, ub, creds)

	var toks []string
	for tok := range creds {
		toks = append(toks, tok)
	}
	slices.Sort(toks)
	// Calls the upstream ran, calls refused by the chain (authorize, on the
	// hot path), and calls refused at the edge before either way
	// (insufficient scope, HTTP 403).
	allowed, refused, edge := 0, 0, 0
	for _, tok := range toks {
		t.Run(tok, func(t *testing.T) {
			hot := newRawClientWith(t, urlHot+"/mcp", tok, `{}`)
			sdk := newRawClientWith(t, urlSDK+"/mcp", tok, `{}`)
			for i, name := range []string{"ua__read", "ua__write", "ub__read"} {
				params := `{"name":"` + name + `","arguments":{}}`
				reached := callCount(&calls, name)
				hotBefore := hotCount(t, gHot, "hot", "")
				recHot, recSDK := len(secHot.outcomes(name)), len(secSDK.outcomes(name))
				h := hot.callTool(i, params)
				hotRan := callCount(&calls, name) - reached
				s := sdk.callTool(i, params)
				sdkRan := callCount(&calls, name) - reached - hotRan
				if h.Status != s.Status || h.Msg == nil || s.Msg == nil {
					t.Fatalf("%s: hot HTTP %d %s, sdk HTTP %d %s", name, h.Status, h.Body, s.Status, s.Body)
				}
				switch {
				case h.Status != http.StatusOK:
					edge++
					if hotCount(t, gHot, "hot", "") != hotBefore {
						t.Errorf("%s: refused at the edge (HTTP %d) and counted on the hot path", name, h.Status)
					}
				case !hotReached(t, gHot, "hot", "", hotBefore+1):
					t.Errorf("%s: not served on the hot path", name)
				case hotRan == 1:
					allowed++
				default:
					refused++
				}
				if hotCount(t, gSDK, "hot", "") != 0 {
					t.Errorf("%s: served on the hot path with hot_path = false", name)
				}
				for _, k := range []string{"result", "error"} {
					if !reflect.DeepEqual(h.decoded(k), s.decoded(k)) {
						t.Errorf("%s: %s differs:\nhot: %s\nsdk: %s", name, k, h.Body, s.Body)
					}
				}
				if hotRan != sdkRan {
					t.Errorf("%s: reached the upstream %d times on the hot path, %d on the SDK's way", name, hotRan, sdkRan)
				}
				if h.Msg["error"] != nil && hotRan != 0 {
					t.Errorf("%s: refused but run by the upstream", name)
				}
				oh, os := secHot.outcomes(name)[recHot:], secSDK.outcomes(name)[recSDK:]
				if !slices.Equal(oh, os) || len(oh) != 1 {
					t.Errorf("%s: recorded %v on the hot path, %v on the SDK's way", name, oh, os)
				}
			}
		})
	}
	if allowed == 0 || refused == 0 || edge == 0 {
		t.Errorf("%d calls allowed, %d refused on the hot path, %d at the edge: the cases do not cover each", allowed, refused, edge)
	}
}

// TestHotPathSessionOfAnotherCaller: a session opened by one caller is not
// served to another, on the hot path as on the SDK's way (the SDK's
// handler answers 403), and an expired credential of the session's own
// caller is refused as the SDK's handler refuses it.
func TestHotPathSessionOfAnotherCaller(t *testing.T) {
	var calls sync.Map
	ua := startHTTPUpstream(t, rolesUpstream("ua", &calls))
	ub := startHTTPUpstream(t, rolesUpstream("ub", &calls))
	alice := &principal.Principal{Kind: principal.KindKey, ID: "k-alice", KeyID: "k-alice", TenantID: "ta", TenantName: "a", Role: principal.RoleMember}
	bob := &principal.Principal{Kind: principal.KindKey, ID: "k-bob", KeyID: "k-bob", TenantID: "ta", TenantName: "a", Role: principal.RoleMember}
	aliceElsewhere := &principal.Principal{Kind: principal.KindKey, ID: "k-alice", KeyID: "k-alice", TenantID: "tb", TenantName: "b", Role: principal.RoleMember}
	aliceExpired := *alice
	aliceExpired.ExpiresAt = time.Now().Add(-time.Minute)
	creds := map[string]*principal.Principal{"alice": alice, "bob": bob, "alice-elsewhere": aliceElsewhere, "alice-expired": &aliceExpired}
	g, url, _ := hotPolicyGateway(t, true, ua, ub, creds)
	const read = `{"name":"ua__read","arguments":{}}`

	c := newRawClientWith(t, url+"/mcp", "alice", `{}`)
	if a := c.callTool(1, read); a.Status != http.StatusOK || a.Msg["result"] == nil || !hotReached(t, g, "hot", "", 1) {
		t.Fatalf("control: HTTP %d (hot %v): %s", a.Status, hotCount(t, g, "hot", ""), a.Body)
	}
	for _, tc := range []struct {
		tok    string
		status int
	}{{"bob", http.StatusForbidden}, {"alice-elsewhere", http.StatusForbidden}, {"alice-expired", http.StatusUnauthorized}} {
		t.Run(tc.tok, func(t *testing.T) {
			other := *c
			other.token = tc.tok
			before, reached := hotCount(t, g, "sdk", "credential"), callCount(&calls, "ua__read")
			a := other.callTool(2, read)
			if a.Status != tc.status || a.Msg["result"] != nil {
				t.Errorf("HTTP %d: %s, want %d", a.Status, a.Body, tc.status)
			}
			if hotCount(t, g, "sdk", "credential") != before+1 {
				t.Error("not counted as sdk/credential")
			}
			if callCount(&calls, "ua__read") != reached {
				t.Error("the call reached the upstream")
			}
		})
	}
	if a := c.callTool(3, read); a.Status != http.StatusOK || a.Msg["result"] == nil || !hotReached(t, g, "hot", "", 2) {
		t.Errorf("the session's own caller afterwards: HTTP %d: %s", a.Status, a.Body)
	}
}

// auditLog is an audit recorder keeping its records.
type auditLog struct {
	mu      sync.Mutex
	records []auditstage.Record
}

func (l *auditLog) Record(_ context.Context, _ *principal.Principal, r auditstage.Record) {
	l.mu.Lock()
	l.records = append(l.records, r)
	l.mu.Unlock()
}

func (l *auditLog) since(n int) []auditstage.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.records[n:])
}

func (l *auditLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.records)
}

// TestHotPathAuditSingleUser: in single-user mode the audit recorder gets
// one record per hot-path call, the same as for the SDK's way: the tool,
// the upstream, the name the client used, the arguments, the outcome and
// the upstream's error.
func TestHotPathAuditSingleUser(t *testing.T) {
	up := startHTTPUpstream(t, catalogueUpstream())
	logHot, logSDK := &auditLog{}, &auditLog{}
	gHot, urlHot := hotGateway(t, upstreamBlock("cat", up), true, func(g *Gateway) { g.SetCallAudit(logHot) }, HTTPOptions{})
	gSDK, urlSDK := hotGateway(t, upstreamBlock("cat", up), false, func(g *Gateway) { g.SetCallAudit(logSDK) }, HTTPOptions{})
	waitTargetsReady(t, gHot, 1)
	waitTargetsReady(t, gSDK, 1)
	for _, ep := range []struct{ path, prefix string }{{"/mcp", "cat__"}, {"/mcp/cat", ""}} {
		hot := newRawClientWith(t, urlHot+ep.path, "", `{}`)
		sdk := newRawClientWith(t, urlSDK+ep.path, "", `{}`)
		for i, tc := range []struct{ tool, args, outcome string }{
			{"text", `{"a":1}`, auditstage.OutcomeOK},
			{"fails", `{}`, auditstage.OutcomeError},
			{"rpcerror", `{"b":[true]}`, auditstage.OutcomeError},
			{"echo", `{"s":"é"}`, auditstage.OutcomeOK},
		} {
			t.Run(ep.path+"/"+tc.tool, func(t *testing.T) {
				params := `{"name":"` + ep.prefix + tc.tool + `","arguments":` + tc.args + `}`
				nh, ns, before := logHot.len(), logSDK.len(), hotCount(t, gHot, "hot", "")
				hot.callTool(i, params)
				sdk.callTool(i, params)
				if !hotReached(t, gHot, "hot", "", before+1) {
					t.Error("not served on the hot path")
				}
				rh, rs := logHot.since(nh), logSDK.since(ns)
				if len(rh) != 1 || len(rs) != 1 {
					t.Fatalf("records: hot %+v, sdk %+v; want one each", rh, rs)
				}
				h, s := rh[0], rs[0]
				if h.Upstream != "cat" || h.Tool != tc.tool || h.Name != ep.prefix+tc.tool || h.Outcome != tc.outcome || h.Latency <= 0 || h.RequestID == "" {
					t.Errorf("hot record %+v", h)
				}
				if tc.tool == "rpcerror" && h.Error == "" {
					t.Errorf("hot record without the upstream's error: %+v", h)
				}
				var ha, sa any
				if err := jsonUnmarshalBoth(h.Arguments, s.Arguments, &ha, &sa); err != nil || !reflect.DeepEqual(ha, sa) {
					t.Errorf("arguments: hot %s, sdk %s (%v)", h.Arguments, s.Arguments, err)
				}
				h.Latency, s.Latency, h.RequestID, s.RequestID, h.Arguments, s.Arguments = 0, 0, "", "", nil, nil
				if !reflect.DeepEqual(h, s) {
					t.Errorf("records differ:\nhot %+v\nsdk %+v", h, s)
				}
			})
		}
	}
}

func jsonUnmarshalBoth(a, b []byte, va, vb any) error {
	if err := json.Unmarshal(a, va); err != nil {
		return err
	}
	return json.Unmarshal(b, vb)
}
