package admin

import (
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// TestEndpoints walks every admin endpoint's happy path as the operator
// owner; every answer is also checked against the OpenAPI document.
func TestEndpoints(t *testing.T) {
	testEndpoints(t, newEnv(t, nil))
}

func testEndpoints(t *testing.T, e *env) {
	root := e.root

	r := e.do(root, "GET", "/api/me", nil)
	want(t, "me", r, 200)
	if r.body["tenant_name"] != "ops" || r.body["role"] != "owner" || r.body["operator"] != true || r.body["kind"] != "key" {
		t.Errorf("me: %s", r.raw)
	}

	// Tenants.
	r = e.do(root, "POST", "/api/tenants", map[string]any{"name": "acme", "plan": "pro", "upstreams": []string{"github", "everything"}, "ip_allowlist": []string{"203.0.113.9", "2001:db8::/32"}})
	want(t, "create tenant", r, 201)
	acmeID := r.body["id"].(string)
	if r.header.Get("Location") != "/api/tenants/"+acmeID || r.body["plan"] != "pro" {
		t.Errorf("create tenant: %v %s", r.header, r.raw)
	}
	if got := r.body["ip_allowlist"].([]any); len(got) != 2 || got[0] != "203.0.113.9/32" {
		t.Errorf("allowlist not normalised: %v", got)
	}
	want(t, "duplicate tenant", e.do(root, "POST", "/api/tenants", map[string]any{"name": "acme"}), 409, CodeConflict)
	want(t, "bad tenant name", e.do(root, "POST", "/api/tenants", map[string]any{"name": "Acme!"}), 400, CodeInvalidArgument)
	want(t, "unknown plan", e.do(root, "POST", "/api/tenants", map[string]any{"name": "x", "plan": "gold"}), 400, CodeInvalidArgument)
	want(t, "bad cidr", e.do(root, "POST", "/api/tenants", map[string]any{"name": "x", "ip_allowlist": []string{"10.0.0.0/33"}}), 400, CodeInvalidArgument)
	r = e.do(root, "GET", "/api/tenants", nil)
	want(t, "list tenants", r, 200)
	if n := len(r.body["tenants"].([]any)); n != 2 {
		t.Errorf("list tenants: %d, want 2: %s", n, r.raw)
	}
	want(t, "get tenant by name", e.do(root, "GET", "/api/tenants/acme", nil), 200)
	r = e.do(root, "GET", "/api/tenants/"+acmeID, nil)
	want(t, "get tenant by id", r, 200)
	if r.body["name"] != "acme" {
		t.Errorf("get by id: %s", r.raw)
	}
	r = e.do(root, "PATCH", "/api/tenants/acme", map[string]any{"plan": "enterprise", "ip_allowlist": []string{}, "disabled": true})
	want(t, "patch tenant", r, 200)
	if r.body["plan"] != "enterprise" || r.body["disabled"] != true || len(r.body["ip_allowlist"].([]any)) != 0 {
		t.Errorf("patch tenant: %s", r.raw)
	}
	want(t, "re-enable", e.do(root, "PATCH", "/api/tenants/acme", map[string]any{"disabled": false}), 200)
	want(t, "empty patch", e.do(root, "PATCH", "/api/tenants/acme", map[string]any{}), 400, CodeInvalidArgument)

	// The new tenant has its virtual server "all".
	r = e.do(root, "GET", "/api/tenants/acme/virtual-servers", nil)
	want(t, "list virtual servers", r, 200)
	vss := r.body["virtual_servers"].([]any)
	if len(vss) != 1 || vss[0].(map[string]any)["name"] != "all" || !slices.Equal(strs(vss[0].(map[string]any)["upstreams"]), []string{"github", "everything"}) {
		t.Errorf("virtual servers of a new tenant: %s", r.raw)
	}
	r = e.do(root, "POST", "/api/tenants/acme/virtual-servers", map[string]any{"name": "gh-read", "upstreams": []string{"github"}, "tools": []string{"github__get_*"}})
	want(t, "create virtual server", r, 201)
	vsID := r.body["id"].(string)
	want(t, "bad glob", e.do(root, "POST", "/api/tenants/acme/virtual-servers", map[string]any{"name": "bad", "upstreams": []string{"github"}, "tools": []string{"github__[get"}}), 400, CodeInvalidArgument)
	want(t, "no upstreams", e.do(root, "POST", "/api/tenants/acme/virtual-servers", map[string]any{"name": "bad", "upstreams": []string{}}), 400, CodeInvalidArgument)
	r = e.do(root, "PUT", "/api/tenants/acme/virtual-servers/"+vsID, map[string]any{"upstreams": []string{"*"}})
	want(t, "update virtual server", r, 200)
	if !slices.Equal(strs(r.body["upstreams"]), []string{"*"}) || len(r.body["tools"].([]any)) != 0 {
		t.Errorf("update virtual server: %s", r.raw)
	}
	want(t, "rename virtual server", e.do(root, "PUT", "/api/tenants/acme/virtual-servers/gh-read", map[string]any{"name": "other", "upstreams": []string{"*"}}), 400)
	want(t, "delete virtual server", e.do(root, "DELETE", "/api/tenants/acme/virtual-servers/gh-read", nil), 204)
	want(t, "delete it again", e.do(root, "DELETE", "/api/tenants/acme/virtual-servers/"+vsID, nil), 404, CodeNotFound)

	// Users.
	r = e.do(root, "POST", "/api/tenants/acme/users", map[string]any{"name": "alice", "role": "owner", "password": "correct horse battery"})
	want(t, "create user", r, 201)
	aliceID := r.body["id"].(string)
	if strings.Contains(string(r.raw), "password") || strings.Contains(string(r.raw), "argon") {
		t.Errorf("user answer shows the password: %s", r.raw)
	}
	want(t, "short password", e.do(root, "POST", "/api/tenants/acme/users", map[string]any{"name": "bob", "password": "short"}), 400, CodeInvalidArgument)
	want(t, "bad role", e.do(root, "POST", "/api/tenants/acme/users", map[string]any{"name": "bob", "role": "god"}), 400, CodeInvalidArgument)
	r = e.do(root, "POST", "/api/tenants/acme/users", map[string]any{"name": "bob"})
	want(t, "create user without password", r, 201)
	if r.body["role"] != "member" {
		t.Errorf("default role: %s", r.raw)
	}
	want(t, "duplicate user", e.do(root, "POST", "/api/tenants/acme/users", map[string]any{"name": "bob"}), 409, CodeConflict)
	r = e.do(root, "GET", "/api/tenants/acme/users", nil)
	want(t, "list users", r, 200)
	if n := len(r.body["users"].([]any)); n != 2 {
		t.Errorf("list users: %s", r.raw)
	}
	r = e.do(root, "PATCH", "/api/tenants/acme/users/bob", map[string]any{"role": "admin", "password": "a new long password"})
	want(t, "patch user", r, 200)
	if r.body["role"] != "admin" {
		t.Errorf("patch user: %s", r.raw)
	}
	tok, err := e.auth.Login(e.ctx, "acme", "alice", "correct horse battery", testIP)
	if err != nil {
		t.Fatalf("alice logs in: %v", err)
	}
	want(t, "disable alice", e.do(root, "PATCH", "/api/tenants/acme/users/"+aliceID, map[string]any{"disabled": true}), 409, CodeLastOwner)
	want(t, "promote bob", e.do(root, "PATCH", "/api/tenants/acme/users/bob", map[string]any{"role": "owner"}), 200)
	want(t, "disable alice", e.do(root, "PATCH", "/api/tenants/acme/users/"+aliceID, map[string]any{"disabled": true}), 200)
	if _, err := e.auth.Refresh(e.ctx, tok.RefreshToken, testIP); err == nil {
		t.Error("disabling a user left their session alive")
	}
	want(t, "delete user", e.do(root, "DELETE", "/api/tenants/acme/users/alice", nil), 204)
	want(t, "delete unknown user", e.do(root, "DELETE", "/api/tenants/acme/users/alice", nil), 404, CodeNotFound)

	// Keys.
	r = e.do(root, "POST", "/api/tenants/acme/keys", map[string]any{"name": "ci", "role": "member", "scopes": []string{"mcp:call", "mcp:list"}, "expires_in": "720h"})
	want(t, "create key", r, 201)
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("create key: Cache-Control %q", r.header.Get("Cache-Control"))
	}
	secret := r.body["secret"].(string)
	k := r.body["key"].(map[string]any)
	keyID := k["id"].(string)
	if !strings.HasPrefix(secret, k["prefix"].(string)) || k["expires_at"] == nil {
		t.Errorf("create key: %s", r.raw)
	}
	p := e.authn(secret)
	if p.TenantName != "acme" || p.Role != "member" {
		t.Errorf("the new key authenticates as %+v", p)
	}
	want(t, "bad expiry", e.do(root, "POST", "/api/tenants/acme/keys", map[string]any{"expires_in": "soon"}), 400, CodeInvalidArgument)
	want(t, "bad scope", e.do(root, "POST", "/api/tenants/acme/keys", map[string]any{"scopes": []string{"has space"}}), 400, CodeInvalidArgument)
	r = e.do(root, "GET", "/api/tenants/acme/keys", nil)
	want(t, "list keys", r, 200)
	if strings.Contains(string(r.raw), secret) || strings.Contains(string(r.raw), secret[len(k["prefix"].(string)):]) || strings.Contains(string(r.raw), "hash") || strings.Contains(string(r.raw), "secret") {
		t.Errorf("the key list shows a secret: %s", r.raw)
	}
	r = e.do(root, "POST", "/api/tenants/acme/keys/"+keyID+"/rotate", nil)
	want(t, "rotate key", r, 200)
	if r.header.Get("Cache-Control") != "no-store" || r.body["replaces"] != keyID || r.body["secret"] == secret {
		t.Errorf("rotate: %v %s", r.header, r.raw)
	}
	next := r.body["key"].(map[string]any)
	e.authn(r.body["secret"].(string))
	want(t, "rotate again", e.do(root, "POST", "/api/tenants/acme/keys/"+keyID+"/rotate", nil), 409, CodeConflict)
	want(t, "revoke by prefix", e.do(root, "DELETE", "/api/tenants/acme/keys/"+next["prefix"].(string), nil), 204)
	want(t, "revoke again", e.do(root, "DELETE", "/api/tenants/acme/keys/"+next["id"].(string), nil), 204)
	if _, err := e.auth.Authenticate(e.ctx, r.body["secret"].(string), testIP); err == nil {
		t.Error("a revoked key still authenticates")
	}

	// Plans.
	r = e.do(root, "GET", "/api/plans", nil)
	want(t, "list plans", r, 200)
	if n := len(r.body["plans"].([]any)); n != 3 {
		t.Errorf("plans: %s", r.raw)
	}
	r = e.do(root, "PUT", "/api/plans/startup", map[string]any{"key_per_minute": 200, "monthly_quota": 5000})
	want(t, "put plan", r, 200)
	if r.body["source"] != "store" || r.body["key_per_minute"] != float64(200) || r.body["configured"] != false {
		t.Errorf("put plan: %s", r.raw)
	}
	r = e.do(root, "PUT", "/api/plans/free", map[string]any{"key_per_minute": 30})
	want(t, "override free", r, 200)
	if r.body["key_per_minute"] != float64(30) || r.body["key_burst"] != float64(20) {
		t.Errorf("override keeps the other limits: %s", r.raw)
	}
	want(t, "negative limit", e.do(root, "PUT", "/api/plans/free", map[string]any{"key_burst": -1}), 400)
	want(t, "use startup", e.do(root, "PATCH", "/api/tenants/acme", map[string]any{"plan": "startup"}), 200)
	want(t, "delete used plan", e.do(root, "DELETE", "/api/plans/startup", nil), 409, CodeConflict)
	want(t, "delete override", e.do(root, "DELETE", "/api/plans/free", nil), 204)
	want(t, "delete configured plan", e.do(root, "DELETE", "/api/plans/free", nil), 404)

	// Rules.
	r = e.do(root, "POST", "/api/tenants/acme/rules", map[string]any{"tool": "*__delete_*", "effect": "deny", "roles": []string{"viewer", "member"}, "priority": 10})
	want(t, "create rule", r, 201)
	ruleID := r.body["id"].(string)
	want(t, "bad effect", e.do(root, "POST", "/api/tenants/acme/rules", map[string]any{"tool": "*", "effect": "maybe"}), 400)
	want(t, "bad rule role", e.do(root, "POST", "/api/tenants/acme/rules", map[string]any{"tool": "*", "effect": "allow", "roles": []string{"king"}}), 400)
	r = e.do(root, "GET", "/api/tenants/acme/rules", nil)
	want(t, "list rules", r, 200)
	if n := len(r.body["rules"].([]any)); n != 1 {
		t.Errorf("rules: %s", r.raw)
	}
	want(t, "delete rule", e.do(root, "DELETE", "/api/tenants/acme/rules/"+ruleID, nil), 204)
	want(t, "delete rule again", e.do(root, "DELETE", "/api/tenants/acme/rules/"+ruleID, nil), 404)

	// Audit.
	r = e.do(root, "GET", "/api/audit?tenant=acme&action=user.", nil)
	want(t, "audit", r, 200)
	var actions []string
	for _, x := range r.body["entries"].([]any) {
		actions = append(actions, x.(map[string]any)["action"].(string))
	}
	if !slices.Contains(actions, "user.create") || !slices.Contains(actions, "user.delete") || slices.ContainsFunc(actions, func(a string) bool { return !strings.HasPrefix(a, "user.") }) {
		t.Errorf("audit actions: %v", actions)
	}
	r = e.do(root, "GET", "/api/audit?limit=2", nil)
	want(t, "audit page", r, 200)
	if len(r.body["entries"].([]any)) != 2 {
		t.Fatalf("audit limit: %s", r.raw)
	}
	after := r.body["next_after"].(float64)
	r = e.do(root, "GET", "/api/audit?limit=1&after="+itoa(int64(after)), nil)
	if first := r.body["entries"].([]any)[0].(map[string]any)["seq"].(float64); first != after+1 {
		t.Errorf("next page starts at %v, want %v", first, after+1)
	}
	want(t, "audit bad since", e.do(root, "GET", "/api/audit?since=yesterday", nil), 400)
	want(t, "audit unknown parameter", e.do(root, "GET", "/api/audit?tenantt=acme", nil), 400)

	// Deleting the tenant.
	want(t, "delete tenant", e.do(root, "DELETE", "/api/tenants/acme", nil), 204)
	want(t, "get deleted tenant", e.do(root, "GET", "/api/tenants/acme", nil), 404)
	want(t, "delete own tenant", e.do(root, "DELETE", "/api/tenants/ops", nil), 409)

	// Every change was audited with the caller, the address and an outcome.
	for _, a := range []string{"tenant.create", "tenant.update", "tenant.delete", "user.create", "user.update", "user.delete", "key.create", "key.rotate", "key.revoke", "plan.put", "plan.delete", "virtual_server.create", "virtual_server.update", "virtual_server.delete", "rule.create", "rule.delete"} {
		es := e.auditEntries(store.AuditFilter{Action: a, Actor: root.ID})
		if len(es) == 0 {
			t.Errorf("no audit entry %s by the root key", a)
			continue
		}
		for _, x := range es {
			if x.ActorKind != principal.KindKey || x.Outcome == "" {
				t.Errorf("%s: %+v", a, x)
			}
			if strings.HasPrefix(a, "key.") {
				continue // recorded by auth, which has no client address
			}
			if x.ClientIP != testIP {
				t.Errorf("%s: client ip %q", a, x.ClientIP)
			}
		}
	}
	for _, x := range e.auditEntries(store.AuditFilter{}) {
		if strings.Contains(string(x.Detail), secret) || strings.Contains(string(x.Detail), "correct horse") || strings.Contains(string(x.Detail), "long password") {
			t.Errorf("audit entry %d holds a secret: %s", x.Seq, x.Detail)
		}
	}
}

// TestCrossTenant: whatever tenant A's admin aims at tenant B's objects
// answers 404, exactly as for something that does not exist, and is
// audited as authz.denied in A.
func TestCrossTenant(t *testing.T) {
	testCrossTenant(t, newEnv(t, nil))
}

func testCrossTenant(t *testing.T, e *env) {
	a, b := e.tenant("alpha"), e.tenant("beta")
	adminA := e.key("alpha", KeySpec{Name: "admin", Role: principal.RoleOwner})
	cli := CLIContext(e.ctx)
	bKey, err := e.ops.CreateKey(cli, "beta", KeySpec{Name: "victim"})
	if err != nil {
		t.Fatal(err)
	}
	bUser, err := e.ops.CreateUser(cli, "beta", UserSpec{Name: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	bRule, err := e.ops.CreateRule(cli, "beta", RuleSpec{Tool: "*", Effect: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	bVS, _ := e.ops.ListVirtualServers(cli, "beta")

	missing := e.do(adminA, "GET", "/api/tenants/nonexistent", nil)
	want(t, "a tenant that does not exist", missing, 404, CodeNotFound)
	cases := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/tenants/beta", nil},
		{"GET", "/api/tenants/" + b.ID, nil},
		{"PATCH", "/api/tenants/beta", map[string]any{"ip_allowlist": []string{"10.0.0.0/8"}}},
		{"DELETE", "/api/tenants/beta", nil},
		{"GET", "/api/tenants/beta/users", nil},
		{"POST", "/api/tenants/beta/users", map[string]any{"name": "mallory", "role": "owner", "password": "long enough password"}},
		{"PATCH", "/api/tenants/beta/users/" + bUser.ID, map[string]any{"role": "viewer"}},
		{"DELETE", "/api/tenants/beta/users/carol", nil},
		{"GET", "/api/tenants/beta/keys", nil},
		{"POST", "/api/tenants/beta/keys", map[string]any{"name": "mine"}},
		{"DELETE", "/api/tenants/beta/keys/" + bKey.Key.ID, nil},
		{"POST", "/api/tenants/beta/keys/" + bKey.Key.ID + "/rotate", nil},
		// B's key through A's own tenant path: found nowhere A may look.
		{"DELETE", "/api/tenants/alpha/keys/" + bKey.Key.ID, nil},
		{"DELETE", "/api/tenants/alpha/keys/" + bKey.Key.Prefix, nil},
		{"POST", "/api/tenants/alpha/keys/" + bKey.Key.ID + "/rotate", nil},
		{"GET", "/api/tenants/beta/virtual-servers", nil},
		{"POST", "/api/tenants/beta/virtual-servers", map[string]any{"name": "x", "upstreams": []string{"*"}}},
		{"PUT", "/api/tenants/beta/virtual-servers/" + bVS[0].ID, map[string]any{"upstreams": []string{"*"}}},
		{"DELETE", "/api/tenants/beta/virtual-servers/" + bVS[0].ID, nil},
		{"GET", "/api/tenants/beta/rules", nil},
		{"POST", "/api/tenants/beta/rules", map[string]any{"tool": "*", "effect": "deny"}},
		{"DELETE", "/api/tenants/beta/rules/" + bRule.ID, nil},
		{"GET", "/api/audit?tenant=beta", nil},
	}
	before := len(e.auditEntries(store.AuditFilter{Action: ActionDenied, TenantID: a.ID}))
	for _, c := range cases {
		r := e.do(adminA, c.method, c.path, c.body)
		want(t, c.method+" "+c.path, r, 404, CodeNotFound)
		// The answer is the one for a nonexistent object, word for word
		// apart from the name asked for.
		if !strings.HasSuffix(r.body["error"].(map[string]any)["message"].(string), "not found") {
			t.Errorf("%s %s: %s", c.method, c.path, r.raw)
		}
	}
	denied := e.auditEntries(store.AuditFilter{Action: ActionDenied, TenantID: a.ID})
	if got := len(denied) - before; got != len(cases) {
		t.Errorf("%d authz.denied entries for %d attempts", got, len(cases))
	}
	for _, d := range denied[before:] {
		if d.Actor != adminA.ID || d.Outcome != OutcomeDenied || d.ClientIP != testIP || detail(d)["attempted"] == nil {
			t.Errorf("authz.denied entry: %+v %s", d, d.Detail)
		}
	}
	// Nothing of B changed, and B's audit shows nothing of A's attempts.
	if _, err := e.auth.Authenticate(e.ctx, bKey.Secret, testIP); err != nil {
		t.Errorf("B's key was revoked: %v", err)
	}
	if us, _ := e.ops.ListUsers(cli, "beta"); len(us) != 2 {
		t.Errorf("B's users changed: %+v", us)
	}
	for _, x := range e.auditEntries(store.AuditFilter{TenantID: b.ID}) {
		if x.Actor == adminA.ID {
			t.Errorf("A's attempt is in B's audit log: %+v", x)
		}
	}
	// A sees only itself.
	r := e.do(adminA, "GET", "/api/tenants", nil)
	if ts := r.body["tenants"].([]any); len(ts) != 1 || ts[0].(map[string]any)["name"] != "alpha" {
		t.Errorf("A lists tenants: %s", r.raw)
	}
	r = e.do(adminA, "GET", "/api/audit", nil)
	want(t, "own audit", r, 200)
	for _, x := range r.body["entries"].([]any) {
		if x.(map[string]any)["tenant_id"] != a.ID {
			t.Errorf("A reads an entry of another tenant: %v", x)
		}
	}
}

// TestLastOwner: the last owner can not be removed, disabled or demoted.
func TestLastOwner(t *testing.T) {
	testLastOwner(t, newEnv(t, nil))
}

func testLastOwner(t *testing.T, e *env) {
	e.tenant("solo")
	owner := e.key("solo", KeySpec{Name: "owner", Role: principal.RoleOwner})
	want(t, "demote", e.do(owner, "PATCH", "/api/tenants/solo/users/boss", map[string]any{"role": "admin"}), 409, CodeLastOwner)
	want(t, "disable", e.do(owner, "PATCH", "/api/tenants/solo/users/boss", map[string]any{"disabled": true}), 409, CodeLastOwner)
	r := e.do(owner, "DELETE", "/api/tenants/solo/users/boss", nil)
	want(t, "remove", r, 409, CodeLastOwner)
	if !strings.Contains(r.body["error"].(map[string]any)["message"].(string), "owner") {
		t.Errorf("message: %s", r.raw)
	}
	es := e.auditEntries(store.AuditFilter{Action: "user.delete"})
	if len(es) != 1 || es[0].Outcome != OutcomeError || detail(es[0])["error"] != CodeLastOwner {
		t.Errorf("refused delete audit: %+v", es)
	}
	// With a second owner, the first can go.
	want(t, "second owner", e.do(owner, "POST", "/api/tenants/solo/users", map[string]any{"name": "heir", "role": "owner"}), 201)
	want(t, "remove", e.do(owner, "DELETE", "/api/tenants/solo/users/boss", nil), 204)
}

// TestOwnersOnly: admins do not create, promote, demote, change or
// remove owners, nor hand out roles above their own.
func TestOwnersOnly(t *testing.T) {
	e := newEnv(t, nil)
	e.tenant("corp")
	admin := e.key("corp", KeySpec{Name: "admin", Role: principal.RoleAdmin})
	want(t, "create owner", e.do(admin, "POST", "/api/tenants/corp/users", map[string]any{"name": "o2", "role": "owner"}), 403, CodeForbidden)
	want(t, "create admin", e.do(admin, "POST", "/api/tenants/corp/users", map[string]any{"name": "a2", "role": "admin"}), 201)
	want(t, "promote", e.do(admin, "PATCH", "/api/tenants/corp/users/a2", map[string]any{"role": "owner"}), 403, CodeForbidden)
	want(t, "demote owner", e.do(admin, "PATCH", "/api/tenants/corp/users/boss", map[string]any{"role": "member"}), 403, CodeForbidden)
	want(t, "reset owner password", e.do(admin, "PATCH", "/api/tenants/corp/users/boss", map[string]any{"password": "hijacked password"}), 403, CodeForbidden)
	want(t, "remove owner", e.do(admin, "DELETE", "/api/tenants/corp/users/boss", nil), 403, CodeForbidden)
	want(t, "owner key", e.do(admin, "POST", "/api/tenants/corp/keys", map[string]any{"role": "owner"}), 403, CodeForbidden)
	ownerKey, err := e.ops.CreateKey(CLIContext(e.ctx), "corp", KeySpec{Name: "top", Role: principal.RoleOwner})
	if err != nil {
		t.Fatal(err)
	}
	want(t, "revoke owner key", e.do(admin, "DELETE", "/api/tenants/corp/keys/"+ownerKey.Key.ID, nil), 403, CodeForbidden)
	want(t, "rotate owner key", e.do(admin, "POST", "/api/tenants/corp/keys/"+ownerKey.Key.ID+"/rotate", nil), 403, CodeForbidden)
	// Operator-only changes.
	want(t, "create tenant", e.do(admin, "POST", "/api/tenants", map[string]any{"name": "other"}), 403, CodeForbidden)
	want(t, "own plan", e.do(admin, "PATCH", "/api/tenants/corp", map[string]any{"plan": "enterprise"}), 403, CodeForbidden)
	want(t, "disable own tenant", e.do(admin, "PATCH", "/api/tenants/corp", map[string]any{"disabled": true}), 403, CodeForbidden)
	want(t, "delete own tenant", e.do(admin, "DELETE", "/api/tenants/corp", nil), 403, CodeForbidden)
	want(t, "put plan", e.do(admin, "PUT", "/api/plans/free", map[string]any{"key_per_minute": 1}), 403, CodeForbidden)
	// What a tenant admin may do to the tenant itself.
	want(t, "own allowlist", e.do(admin, "PATCH", "/api/tenants/corp", map[string]any{"ip_allowlist": []string{"198.51.100.0/24"}}), 200)
	want(t, "lock self out", e.do(admin, "PATCH", "/api/tenants/corp", map[string]any{"ip_allowlist": []string{"10.0.0.0/8"}}), 409, CodeConflict)
	want(t, "list plans", e.do(admin, "GET", "/api/plans", nil), 200)
	// Refusals are audited as the attempted action with outcome denied.
	es := e.auditEntries(store.AuditFilter{Action: "user.create", Actor: admin.ID})
	if len(es) != 2 || es[0].Outcome != OutcomeDenied || es[1].Outcome != OutcomeOK {
		t.Errorf("user.create entries: %+v", es)
	}
}

// TestViewerReadsOnly: viewers and members read their tenant, never write.
func TestViewerReadsOnly(t *testing.T) {
	e := newEnv(t, nil)
	e.tenant("shop")
	for _, role := range []string{principal.RoleViewer, principal.RoleMember} {
		p := e.key("shop", KeySpec{Name: role, Role: role})
		for _, path := range []string{"/api/tenants/shop", "/api/tenants/shop/users", "/api/tenants/shop/keys", "/api/tenants/shop/virtual-servers", "/api/tenants/shop/rules", "/api/plans", "/api/me"} {
			want(t, role+" GET "+path, e.do(p, "GET", path, nil), 200)
		}
		want(t, role+" audit", e.do(p, "GET", "/api/audit", nil), 403, CodeForbidden)
		want(t, role+" create user", e.do(p, "POST", "/api/tenants/shop/users", map[string]any{"name": "x"}), 403, CodeForbidden)
		want(t, role+" create key", e.do(p, "POST", "/api/tenants/shop/keys", map[string]any{"role": "viewer"}), 403, CodeForbidden)
		want(t, role+" revoke own key", e.do(p, "DELETE", "/api/tenants/shop/keys/"+p.KeyID, nil), 403, CodeForbidden)
		want(t, role+" rule", e.do(p, "POST", "/api/tenants/shop/rules", map[string]any{"tool": "*", "effect": "allow"}), 403, CodeForbidden)
		want(t, role+" patch tenant", e.do(p, "PATCH", "/api/tenants/shop", map[string]any{"ip_allowlist": []string{}}), 403, CodeForbidden)
	}
}

// TestScopedKeys: admin:read reads, admin:write writes, other scopes
// neither; a scoped caller hands out only its own scopes.
func TestScopedKeys(t *testing.T) {
	e := newEnv(t, nil)
	e.tenant("lab")
	reader := e.key("lab", KeySpec{Name: "reader", Role: principal.RoleAdmin, Scopes: []string{principal.ScopeAdminRead}})
	want(t, "read", e.do(reader, "GET", "/api/tenants/lab/users", nil), 200)
	want(t, "write", e.do(reader, "POST", "/api/tenants/lab/users", map[string]any{"name": "x"}), 403, CodeForbidden)
	caller := e.key("lab", KeySpec{Name: "caller", Role: principal.RoleAdmin, Scopes: []string{principal.ScopeCall}})
	want(t, "mcp scope reads", e.do(caller, "GET", "/api/tenants/lab/users", nil), 403, CodeForbidden)
	want(t, "mcp scope me", e.do(caller, "GET", "/api/me", nil), 200)
	writer := e.key("lab", KeySpec{Name: "writer", Role: principal.RoleAdmin, Scopes: []string{principal.ScopeAdminWrite, principal.ScopeCall}})
	want(t, "write", e.do(writer, "POST", "/api/tenants/lab/users", map[string]any{"name": "x"}), 201)
	want(t, "write implies read", e.do(writer, "GET", "/api/tenants/lab/users", nil), 200)
	want(t, "unscoped key", e.do(writer, "POST", "/api/tenants/lab/keys", map[string]any{"role": "member"}), 403, CodeForbidden)
	want(t, "wider key", e.do(writer, "POST", "/api/tenants/lab/keys", map[string]any{"role": "member", "scopes": []string{"mcp:call", "mcp:list"}}), 403, CodeForbidden)
	want(t, "narrower key", e.do(writer, "POST", "/api/tenants/lab/keys", map[string]any{"role": "member", "scopes": []string{"mcp:call"}}), 201)
	es := e.auditEntries(store.AuditFilter{Action: "user.create", Actor: reader.ID})
	if len(es) != 1 || es[0].Outcome != OutcomeDenied {
		t.Errorf("denied write audit: %+v", es)
	}
}

// TestBadRequests: malformed bodies are 400 (unknown fields too), other
// media types 415, large bodies 413, no principal 401, unknown routes
// 404 and wrong methods 405, all as JSON errors.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	root := e.root
	for _, c := range []struct {
		name, body, code string
	}{
		{"not json", "{name: acme}", CodeInvalidJSON},
		{"unknown field", `{"name": "acme", "tenant_id": "x"}`, CodeInvalidJSON},
		{"wrong type", `{"name": 7}`, CodeInvalidJSON},
		{"array", `["acme"]`, CodeInvalidJSON},
		{"trailing data", `{"name": "acme"} {"name": "evil"}`, CodeInvalidJSON},
		{"truncated", `{"name": "acme"`, CodeInvalidJSON},
		{"empty", ``, CodeInvalidJSON},
	} {
		want(t, c.name, e.do(root, "POST", "/api/tenants", c.body), 400, c.code)
	}
	want(t, "unknown field in a patch", e.do(root, "PATCH", "/api/tenants/ops", `{"operator": false}`), 400, CodeInvalidJSON)
	want(t, "unknown field in a key", e.do(root, "POST", "/api/tenants/ops/keys", `{"secret": "mine"}`), 400, CodeInvalidJSON)

	req := httptest.NewRequest("POST", "/api/tenants", strings.NewReader(`{"name":"acme"}`))
	req.Header.Set("Content-Type", "text/plain")
	want(t, "text/plain", e.send(root, req), 415, CodeUnsupportedMedia)
	big := `{"name": "acme", "ip_allowlist": ["` + strings.Repeat("1", DefaultMaxBodyBytes) + `"]}`
	want(t, "too large", e.do(root, "POST", "/api/tenants", big), 413, CodeBodyTooLarge)

	r := e.do(nil, "GET", "/api/tenants", nil)
	want(t, "no principal", r, 401, CodeUnauthenticated)
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	want(t, "no principal lattice", e.do(nil, "GET", "/api/lattices", nil), 401, CodeUnauthenticated)
	want(t, "lattice forwarded", e.do(root, "GET", "/api/lattices/abc/path", nil), 200)
	want(t, "openapi without principal", e.do(nil, "GET", "/api/openapi.json", nil), 200)
	want(t, "unknown route", e.do(root, "GET", "/api/nothing", nil), 404, CodeNotFound)
	r = e.do(root, "PUT", "/api/tenants", nil)
	want(t, "wrong method", r, 405, CodeMethodNotAllowed)
	if r.header.Get("Allow") != "GET, POST" {
		t.Errorf("Allow: %q", r.header.Get("Allow"))
	}
	// The tenant is never taken from a header.
	req = httptest.NewRequest("GET", "/api/tenants", nil)
	req.Header.Set("X-Tenant", "other")
	req.Header.Set("X-MCPEdge-Tenant", "other")
	tenant := e.tenant("lone")
	p := e.key("lone", KeySpec{Role: principal.RoleAdmin})
	r = e.send(p, req)
	if ts := r.body["tenants"].([]any); len(ts) != 1 || ts[0].(map[string]any)["id"] != tenant.ID {
		t.Errorf("tenant from a header: %s", r.raw)
	}
}

// TestAuthRoutes: /api/auth/… is served without a principal.
func TestAuthRoutes(t *testing.T) {
	e := newEnv(t, nil)
	e.tenant("web")
	r := e.do(nil, "POST", "/api/auth/login", map[string]any{"tenant": "web", "user": "boss", "password": "long enough password"})
	want(t, "login", r, 200)
	p := e.authn(r.body["access_token"].(string))
	want(t, "me with a session", e.do(p, "GET", "/api/me", nil), 200)
	want(t, "bad login", e.do(nil, "POST", "/api/auth/login", map[string]any{"tenant": "web", "user": "boss", "password": "wrong password!"}), 401)
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
