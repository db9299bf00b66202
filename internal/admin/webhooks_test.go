package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
	"github.com/mcpedge/mcpedge/internal/webhook"
)

// webhookEnv is the admin API with webhooks over a sealed store, and a
// receiver on loopback (allowed explicitly).
func webhookEnv(t *testing.T) (*env, *webhook.Service, *httptest.Server, *sync.Map) {
	st, err := open.Open(context.Background(), "sqlite::memory:", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, st)
	box, err := open.SecretBox(st)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := webhook.New(webhook.Options{Store: st, Box: box, AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 2 * time.Second, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	e.ops.webhooks, e.ops.events = svc, svc
	var seen sync.Map // webhook-id -> event type
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m webhook.Message
		json.NewDecoder(r.Body).Decode(&m)
		seen.Store(r.Header.Get(webhook.HeaderID), m.Type)
	}))
	t.Cleanup(srv.Close)
	return e, svc, srv, &seen
}

func TestWebhooksREST(t *testing.T) {
	e, svc, srv, seen := webhookEnv(t)
	e.tenant("acme")
	e.tenant("other")
	admin := e.key("acme", KeySpec{Name: "adm", Role: principal.RoleAdmin})
	member := e.key("acme", KeySpec{Name: "mem", Role: principal.RoleMember})
	otherAdmin := e.key("other", KeySpec{Name: "adm", Role: principal.RoleAdmin})

	r := e.do(admin, "POST", "/api/tenants/acme/webhooks", map[string]any{"url": srv.URL + "/hook", "events": []string{events.KeyCreated, events.KeyRevoked}})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	secret, _ := r.body["secret"].(string)
	id, _ := r.body["endpoint"].(map[string]any)["id"].(string)
	if _, err := webhook.ParseSecret(secret); err != nil || id == "" {
		t.Fatalf("create answered secret %q, id %q: %v", secret, id, err)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("the secret's answer may be cached")
	}
	for _, tc := range []struct {
		p    *principal.Principal
		body map[string]any
		code string
	}{
		{member, map[string]any{"url": srv.URL, "events": []string{"*"}}, CodeForbidden},
		{otherAdmin, map[string]any{"url": srv.URL, "events": []string{"*"}}, CodeNotFound},
		{admin, map[string]any{"url": "http://10.1.2.3/", "events": []string{"*"}}, CodeInvalidArgument},
		{admin, map[string]any{"url": srv.URL, "events": []string{"nope.nope"}}, CodeInvalidArgument},
		{admin, map[string]any{"url": srv.URL, "events": []string{"*"}, "all_tenants": true}, CodeInvalidArgument},
	} {
		if r := e.do(tc.p, "POST", "/api/tenants/acme/webhooks", tc.body); r.code() != tc.code {
			t.Errorf("create %v as %s: %d %s, want %s", tc.body, tc.p.ID, r.status, r.raw, tc.code)
		}
	}
	if r := e.do(otherAdmin, "GET", "/api/tenants/acme/webhooks/"+id+"/deliveries", nil); r.status != http.StatusNotFound {
		t.Errorf("another tenant's delivery log: %d", r.status)
	}
	if r := e.do(otherAdmin, "GET", "/api/tenants/other/webhooks/"+id+"/deliveries", nil); r.status != http.StatusNotFound {
		t.Errorf("an endpoint named under the wrong tenant: %d", r.status)
	}

	// Key events are published by the admin API and delivered.
	e.key("acme", KeySpec{Name: "ci"})
	r = e.do(e.root, "DELETE", "/api/tenants/acme/keys/"+member.ID, nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if _, err := svc.RunOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	seen.Range(func(_, v any) bool { types[v.(string)]++; return true })
	if types[events.KeyCreated] != 1 || types[events.KeyRevoked] != 1 {
		t.Errorf("delivered events %v, want one key.created and one key.revoked", types)
	}

	r = e.do(admin, "POST", "/api/tenants/acme/webhooks/"+id+"/test", nil)
	if r.status != http.StatusOK || r.body["state"] != store.DeliveryDelivered {
		t.Errorf("test: %d %s", r.status, r.raw)
	}
	r = e.do(admin, "GET", "/api/tenants/acme/webhooks/"+id+"/deliveries", nil)
	ds, _ := r.body["deliveries"].([]any)
	if r.status != http.StatusOK || len(ds) != 3 {
		t.Fatalf("deliveries: %d %s", r.status, r.raw)
	}
	did := ds[0].(map[string]any)["id"].(string)
	r = e.do(admin, "GET", "/api/tenants/acme/webhook-deliveries/"+did, nil)
	if as, _ := r.body["attempts"].([]any); r.status != http.StatusOK || len(as) != 1 || r.body["payload"] == "" {
		t.Errorf("delivery: %d %s", r.status, r.raw)
	}
	if r := e.do(otherAdmin, "GET", "/api/tenants/other/webhook-deliveries/"+did, nil); r.status != http.StatusNotFound {
		t.Errorf("another tenant's delivery: %d", r.status)
	}
	if r := e.do(admin, "POST", "/api/tenants/acme/webhook-deliveries/"+did+"/retry", nil); r.status != http.StatusConflict {
		t.Errorf("retry of a delivered delivery: %d %s", r.status, r.raw)
	}

	r = e.do(admin, "POST", "/api/tenants/acme/webhooks/"+id+"/rotate?overlap=1h", nil)
	if s2, _ := r.body["secret"].(string); r.status != http.StatusOK || s2 == secret || s2 == "" {
		t.Errorf("rotate: %d %s", r.status, r.raw)
	}
	r = e.do(admin, "PATCH", "/api/tenants/acme/webhooks/"+id, map[string]any{"disabled": true})
	if r.status != http.StatusOK || r.body["disabled"] != true {
		t.Errorf("disable: %d %s", r.status, r.raw)
	}
	r = e.do(admin, "GET", "/api/tenants/acme/webhooks", nil)
	if ws, _ := r.body["webhooks"].([]any); r.status != http.StatusOK || len(ws) != 1 {
		t.Errorf("list: %d %s", r.status, r.raw)
	}
	if r := e.do(admin, "DELETE", "/api/tenants/acme/webhooks/"+id, nil); r.status != http.StatusNoContent {
		t.Errorf("delete: %d %s", r.status, r.raw)
	}
	// Operators' endpoints may take every tenant's events.
	if r := e.do(e.root, "POST", "/api/tenants/ops/webhooks", map[string]any{"url": srv.URL, "events": []string{"*"}, "all_tenants": true}); r.status != http.StatusCreated {
		t.Errorf("operator all_tenants endpoint: %d %s", r.status, r.raw)
	}
}

func TestWebhooksPerTenantBound(t *testing.T) {
	e, _, srv, _ := webhookEnv(t)
	e.tenant("acme")
	for i := range MaxWebhooksPerTenant + 1 {
		r := e.do(e.root, "POST", "/api/tenants/acme/webhooks", map[string]any{"url": srv.URL, "events": []string{"*"}})
		want := http.StatusCreated
		if i == MaxWebhooksPerTenant {
			want = http.StatusConflict
		}
		if r.status != want {
			t.Fatalf("endpoint %d: %d %s, want %d", i+1, r.status, r.raw, want)
		}
	}
}
