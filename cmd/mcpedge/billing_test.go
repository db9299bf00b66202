package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpedge/mcpedge/internal/billing/billingtest"
)

const (
	e2eStripeKey   = "sk_test_e2eKeyThatMustNeverBeLogged0123456789"
	e2eStripeWhsec = "whsec_e2e_signing_secret_abcdef0123456789"
)

func billingConfig(t *testing.T, apiBase, grace string) string {
	return fmt.Sprintf(`[metering]
flush_interval = "1s"

[plans.free]
monthly_quota = 3

[billing.stripe]
api_base = %q
report_interval = "1s"
grace_period = %q

[billing.stripe.prices]
pro = "price_pro"
`, apiBase, grace) + everythingBlock(t, "ev")
}

// tenantPlan reads a tenant's plan through the CLI.
func tenantPlan(t *testing.T, env []string, cfgPath, name string) string {
	t.Helper()
	var ts []struct{ Name, Plan string }
	out := cli(t, env, "tenant", "ls", "--config", cfgPath, "--json")
	if err := json.Unmarshal([]byte(out), &ts); err != nil {
		t.Fatalf("tenant ls --json: %v\n%s", err, out)
	}
	for _, tn := range ts {
		if tn.Name == name {
			return tn.Plan
		}
	}
	t.Fatalf("no tenant %s in %s", name, out)
	return ""
}

// stripeWebhook posts a Stripe-signed event to the gateway.
func stripeWebhook(t *testing.T, base string, payload []byte, signedAt time.Time) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/billing/stripe", strings.NewReader(string(payload)))
	req.Header.Set("Stripe-Signature", billingtest.Signature(payload, e2eStripeWhsec, signedAt))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// meterTotal sums the meter events sent under distinct idempotency keys
// (what Stripe bills: a key sent again is the same event).
func meterTotal(t *testing.T, rec *billingtest.Recorder) (total int64, sends, keys int) {
	t.Helper()
	seen := map[string]string{}
	calls := rec.Calls("/v1/billing/meter_events")
	for _, c := range calls {
		if prev, ok := seen[c.IdempotencyKey]; ok {
			if prev != c.Form.Encode() {
				t.Errorf("key %s sent with other parameters", c.IdempotencyKey)
			}
			continue
		}
		seen[c.IdempotencyKey] = c.Form.Encode()
		n, _ := strconv.ParseInt(c.Form.Get("payload[value]"), 10, 64)
		total += n
	}
	return total, len(calls), len(seen)
}

// TestBillingEndToEnd runs the real binary against stripe-mock: a tenant
// on the pro plan becomes a Stripe customer with a subscription; its
// calls are reported as meter events once (reported again by the CLI and
// after a restart: nothing new is billed); a payment failure within the
// grace period keeps the plan; past it the tenant falls to the free plan
// (whose quota then refuses calls) without losing anything, by the
// webhook or by the loop after a restart with a shorter grace period; a
// payment brings the plan back. stripe-mock is stateless: what it proves
// is that every Stripe request is valid against Stripe's API; what was
// billed is read from the requests (the recorder in front of it).
func TestBillingEndToEnd(t *testing.T) {
	rec := billingtest.NewRecorder(t, billingtest.StartStripeMock(t))
	env := append(secEnv(t), "STRIPE_SECRET_KEY="+e2eStripeKey, "STRIPE_WEBHOOK_SECRET="+e2eStripeWhsec)
	cfgPath := writeConfig(t, billingConfig(t, rec.URL, "1h"))
	cli(t, env, "tenant", "create", "acme", "--plan", "pro", "--config", cfgPath, "--upstreams", "ev")
	member := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "member"))

	p := startServe(t, env, "--config", cfgPath)
	p.waitReadyAuth(t, testAdminKey, "ev")
	waitFor(t, 30*time.Second, "acme subscribed", func() bool { return len(rec.Calls("/v1/subscriptions")) > 0 })
	if c := rec.Calls("/v1/customers")[0]; c.Form.Get("name") != "acme" || c.Status != 200 {
		t.Fatalf("customer request: %+v", c)
	}
	var status []struct {
		Tenant, Plan, Status string
		CustomerID           string `json:"customer_id"`
		Unreported           int64
	}
	out := cli(t, env, "billing", "status", "--config", cfgPath, "--json")
	if err := json.Unmarshal([]byte(out), &status); err != nil || len(status) != 1 || status[0].Tenant != "acme" || status[0].CustomerID == "" {
		t.Fatalf("billing status --json: %v\n%s", err, out)
	}
	customer := status[0].CustomerID

	cs, err := connectAs(t, p.URL+"/mcp", member, nil)
	if err != nil {
		t.Fatal(err)
	}
	var succeeded int64 // the calls that reached the tool: what is billed
	call := func() error {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "hi"}})
		if err == nil && res.IsError {
			err = fmt.Errorf("tool error: %v", res.Content)
		}
		if err == nil {
			succeeded++
		}
		return err
	}
	for range 3 {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "3 calls reported", func() bool { n, _, _ := meterTotal(t, rec); return n == 3 })
	for _, c := range rec.Calls("/v1/billing/meter_events") {
		if c.Form.Get("payload[stripe_customer_id]") != customer || c.Form.Get("event_name") != "mcpedge_tool_calls" || c.Status != 200 {
			t.Errorf("meter event %+v", c)
		}
	}
	// Reporting again (the CLI, while the gateway holds the lease):
	// nothing more is billed.
	if out := cli(t, env, "billing", "sync", "--config", cfgPath); !strings.Contains(out, "a running gateway holds the report lease") {
		t.Errorf("billing sync beside a gateway: %s", out)
	}

	// A payment failed 10 seconds ago; the grace period is an hour.
	now := time.Now()
	inv := fmt.Sprintf(`{"id":"in_1","object":"invoice","customer":%q,"status":"open"}`, customer)
	failed := billingtest.Event("evt_fail_1", "invoice.payment_failed", now.Add(-10*time.Second), inv)
	if code, body := stripeWebhook(t, p.URL, failed, now); code != 200 {
		t.Fatalf("payment_failed webhook: %d %s", code, body)
	}
	if plan := tenantPlan(t, env, cfgPath, "acme"); plan != "pro" {
		t.Fatalf("plan %s within the grace period, want pro", plan)
	}
	// Stripe's retry of the same event is acknowledged and changes nothing.
	if code, body := stripeWebhook(t, p.URL, failed, time.Now()); code != 200 || !strings.Contains(body, "already handled") {
		t.Errorf("replayed webhook: %d %s", code, body)
	}
	// A bad signature and a stale one are refused.
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/api/billing/stripe", strings.NewReader(string(failed)))
	req.Header.Set("Stripe-Signature", billingtest.Signature(failed, "whsec_wrong", time.Now()))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a wrong signature: %v %v", resp, err)
	}
	if code, _ := stripeWebhook(t, p.URL, failed, time.Now().Add(-10*time.Minute)); code != http.StatusBadRequest {
		t.Errorf("a stale signature: %d, want 400", code)
	}
	if err := call(); err != nil {
		t.Fatalf("a call within the grace period: %v", err)
	}
	waitFor(t, 30*time.Second, "4 calls reported", func() bool { n, _, _ := meterTotal(t, rec); return n == 4 })
	_ = cs.Close()
	stopGateway(t, p)

	// Reported twice: after the shutdown the CLI reports, and finds
	// nothing new.
	if out := cli(t, env, "billing", "sync", "--config", cfgPath); !strings.Contains(out, "usage: 0 calls reported") {
		t.Errorf("billing sync after the shutdown: %s", out)
	}

	// The same store restarted with a grace period of 5 s: the failure is
	// older, and the loop moves acme to the free plan.
	cfgPath2 := writeConfig(t, billingConfig(t, rec.URL, "5s"))
	p = startServe(t, env, "--config", cfgPath2)
	p.waitReadyAuth(t, testAdminKey, "ev")
	waitFor(t, 30*time.Second, "acme on the free plan", func() bool { return tenantPlan(t, env, cfgPath2, "acme") == "free" })
	// The free plan's limits apply: its quota (3) is used up.
	cs, err = connectAs(t, p.URL+"/mcp", member, nil)
	if err != nil {
		t.Fatalf("the key of a degraded tenant: %v", err)
	}
	waitFor(t, 30*time.Second, "the free plan's quota refusing calls", func() bool { return call() != nil })
	out = cli(t, env, "billing", "status", "--config", cfgPath2)
	if !strings.Contains(out, "free (degraded from pro)") || !strings.Contains(out, "past_due") {
		t.Errorf("billing status after the degrade:\n%s", out)
	}

	// Paid: pro again, and calls pass.
	paid := billingtest.Event("evt_paid_1", "invoice.paid", time.Now(), inv)
	if code, body := stripeWebhook(t, p.URL, paid, time.Now()); code != 200 {
		t.Fatalf("invoice.paid webhook: %d %s", code, body)
	}
	if plan := tenantPlan(t, env, cfgPath2, "acme"); plan != "pro" {
		t.Fatalf("plan %s after the payment, want pro", plan)
	}
	// Credentials are cached for auth.CacheTTL (1 s): then calls pass.
	waitFor(t, 30*time.Second, "calls passing after the payment", func() bool { return call() == nil })
	_ = cs.Close()
	stopGateway(t, p)
	// The last calls' counts reached the store at the shutdown, after the
	// billing loop stopped: the next report (here the CLI's) sends them.
	cli(t, env, "billing", "sync", "--config", cfgPath2)

	total, sends, keys := meterTotal(t, rec)
	if total != succeeded {
		t.Errorf("billed %d calls (%d sends, %d keys), want the %d that succeeded", total, sends, keys, succeeded)
	}
	if n := len(rec.Calls("/v1/customers")); n != 1 {
		t.Errorf("%d customers created, want 1 (the restart created none)", n)
	}
	// The audit log has the state changes and still verifies.
	aud := cli(t, env, "audit", "export", "--config", cfgPath2)
	for _, want := range []string{`"billing.subscribe"`, `"billing.status"`, `"billing.plan_change"`} {
		if !strings.Contains(aud, want) {
			t.Errorf("audit export lacks %s", want)
		}
	}
	cli(t, env, "audit", "verify", "--config", cfgPath2)
	for _, s := range []string{aud, p.stderr.String()} {
		if strings.Contains(s, e2eStripeKey) || strings.Contains(s, e2eStripeWhsec) {
			t.Error("a Stripe secret is in the audit log or the gateway's log")
		}
	}
}
