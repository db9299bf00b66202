package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// TestLastOperatorTenant: the last operator tenant can not be removed,
// through the API or as the command line; with a second one it can.
func TestLastOperatorTenant(t *testing.T) {
	e := newEnv(t, nil)
	cli := CLIContext(e.ctx)
	err := e.ops.DeleteTenant(cli, "ops")
	if err == nil || AsError(err).Code != CodeConflict || !strings.Contains(err.Error(), "last operator tenant") {
		t.Fatalf("deleting the last operator tenant as the CLI: %v", err)
	}
	if err := e.ops.CanDeleteTenant(cli, "ops"); err == nil || !strings.Contains(err.Error(), "last operator tenant") {
		t.Errorf("CanDeleteTenant of the last operator tenant: %v", err)
	}
	if _, err := e.ops.GetTenant(cli, "ops"); err != nil {
		t.Fatalf("the operator tenant is gone: %v", err)
	}
	// Through the API, by an owner of a second operator tenant: allowed
	// then, as the first is no longer the last.
	if _, err := e.ops.CreateTenant(cli, TenantSpec{Name: "ops2", Operator: true}); err != nil {
		t.Fatal(err)
	}
	owner2 := e.key("ops2", KeySpec{Name: "o", Role: principal.RoleOwner})
	want(t, "delete ops with another operator tenant", e.do(owner2, "DELETE", "/api/tenants/ops", nil), 204)
	r := e.do(owner2, "DELETE", "/api/tenants/ops2", nil)
	want(t, "delete own tenant", r, 409, CodeConflict)
	if err := e.ops.DeleteTenant(cli, "ops2"); err == nil || !strings.Contains(err.Error(), "last operator tenant") {
		t.Errorf("deleting the now last operator tenant: %v", err)
	}
	// An ordinary tenant goes.
	e.tenant("acme")
	if err := e.ops.CanDeleteTenant(cli, "acme"); err != nil {
		t.Errorf("CanDeleteTenant(acme): %v", err)
	}
	if err := e.ops.DeleteTenant(cli, "acme"); err != nil {
		t.Errorf("deleting an ordinary tenant: %v", err)
	}
}

// TestKeyScopesChecked: a key's scopes come from the known set (custom
// ones only beside a known one), with the same message through the API
// and the command line.
func TestKeyScopesChecked(t *testing.T) {
	e := newEnv(t, nil)
	cli := CLIContext(e.ctx)
	for _, tc := range []struct {
		scopes []string
		msg    string
	}{
		{[]string{"nope"}, "grant nothing"},
		{[]string{"mcp:calls"}, `scope "mcp:calls" is not one of mcp:list, mcp:call, admin:read, admin:write`},
		{[]string{"admin:all", "mcp:call"}, `scope "admin:all" is not one of`},
		{[]string{"team:ml"}, "grant nothing"},
	} {
		_, err := e.ops.CreateKey(cli, "ops", KeySpec{Scopes: tc.scopes})
		if err == nil || AsError(err).Code != CodeInvalidArgument || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("CLI key with scopes %v: %v, want %q", tc.scopes, err, tc.msg)
		}
		r := e.do(e.root, "POST", "/api/tenants/ops/keys", map[string]any{"scopes": tc.scopes})
		want(t, "API key with scopes "+strings.Join(tc.scopes, ","), r, 400, CodeInvalidArgument)
		if m, _ := r.body["error"].(map[string]any)["message"].(string); err != nil && m != AsError(err).Message {
			t.Errorf("scopes %v: the API says %q, the CLI %q", tc.scopes, m, AsError(err).Message)
		}
	}
	for _, ok := range [][]string{{"mcp:call"}, {"mcp:list", "team:ml"}, nil} {
		if _, err := e.ops.CreateKey(cli, "ops", KeySpec{Scopes: ok}); err != nil {
			t.Errorf("scopes %v refused: %v", ok, err)
		}
	}
}

// TestUnknownUpstreamsWarned: a tenant asking for upstreams the
// configuration does not define is created with a warning naming them.
func TestUnknownUpstreamsWarned(t *testing.T) {
	e := newEnv(t, nil)
	e.ops.upstreams = func() []string { return []string{"github", "fs"} }
	cli := CLIContext(e.ctx)
	_, warnings, err := e.ops.CreateTenantWarn(cli, TenantSpec{Name: "acme", Upstreams: []string{"github", "doesnotexist"}})
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "doesnotexist is not configured (configured: github, fs)") {
		t.Fatalf("CreateTenantWarn: %v %q", err, warnings)
	}
	r := e.do(e.root, "POST", "/api/tenants", map[string]any{"name": "beta", "upstreams": []string{"nope", "zilch"}})
	want(t, "create with unknown upstreams", r, 201)
	ws, _ := r.body["warnings"].([]any)
	if len(ws) != 1 || !strings.Contains(ws[0].(string), "nope, zilch are not configured") {
		t.Errorf("API warnings: %s", r.raw)
	}
	if r := e.do(e.root, "POST", "/api/tenants", map[string]any{"name": "gamma", "upstreams": []string{"*"}}); r.body["warnings"] != nil {
		t.Errorf("warnings for *: %s", r.raw)
	}
	// A virtual server naming an unknown upstream is saved with a warning,
	// on create and on update; one naming configured upstreams has none.
	r = e.do(e.root, "POST", "/api/tenants/gamma/virtual-servers", map[string]any{"name": "vs", "upstreams": []string{"github", "gitlub"}})
	want(t, "virtual server with an unknown upstream", r, 201)
	if ws, _ := r.body["warnings"].([]any); len(ws) != 1 || !strings.Contains(ws[0].(string), "gitlub is not configured") || r.body["id"] == nil {
		t.Errorf("virtual server warnings: %s", r.raw)
	}
	id, _ := r.body["id"].(string)
	r = e.do(e.root, "PUT", "/api/tenants/gamma/virtual-servers/"+id, map[string]any{"name": "vs", "upstreams": []string{"github"}})
	want(t, "virtual server fixed", r, 200)
	if r.body["warnings"] != nil {
		t.Errorf("warnings for a configured upstream: %s", r.raw)
	}
}

// TestPlanLimitsInRange: limits are 0 to MaxPlanLimit, the same check
// for the command line (PlanLimits.Validate) and the API.
func TestPlanLimitsInRange(t *testing.T) {
	e := newEnv(t, nil)
	big, neg := int64(MaxPlanLimit+1), int64(-1)
	for _, l := range []PlanLimits{{KeyPerMinute: &neg}, {MonthlyQuota: &big}} {
		verr := l.Validate()
		if verr == nil {
			t.Fatalf("%+v: valid", l)
		}
		r := e.do(e.root, "PUT", "/api/plans/x", l)
		want(t, "plan "+verr.Error(), r, 400, CodeInvalidArgument)
		if m := r.body["error"].(map[string]any)["message"]; m != AsError(verr).Message {
			t.Errorf("the API says %q, Validate %q", m, AsError(verr).Message)
		}
	}
	if (&PlanLimits{}).Empty() != true {
		t.Error("empty limits are not Empty")
	}
}

func TestKeyState(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		k    store.APIKey
		want string
	}{
		{store.APIKey{}, "active"},
		{store.APIKey{ExpiresAt: now.Add(time.Hour)}, "active"},
		{store.APIKey{ExpiresAt: now}, "expired"},
		{store.APIKey{RotatedTo: "k2"}, "rotated"},
		{store.APIKey{RevokedAt: now, RotatedTo: "k2", ExpiresAt: now}, "revoked"},
	} {
		if got := KeyState(&tc.k, now); got != tc.want {
			t.Errorf("KeyState(%+v) = %s, want %s", tc.k, got, tc.want)
		}
	}
}
