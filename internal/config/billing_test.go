package config

import (
	"strings"
	"testing"
	"time"
)

func TestBillingOffByDefault(t *testing.T) {
	c, ps := parseT(t, "", nil)
	if ps != nil {
		t.Fatal(ps)
	}
	if c.Billing.Stripe.Enabled {
		t.Errorf("billing is on without [billing.stripe]: %+v", c.Billing)
	}
}

func TestBillingDefaults(t *testing.T) {
	c, ps := parseT(t, "[billing.stripe.prices]\npro = \"price_pro\"\n", nil)
	if ps != nil {
		t.Fatal(ps)
	}
	s := c.Billing.Stripe
	if !s.Enabled || s.SecretKeyEnv != "STRIPE_SECRET_KEY" || s.WebhookSecretEnv != "STRIPE_WEBHOOK_SECRET" || s.MeterEvent != "mcpedge_tool_calls" ||
		s.FreePlan != "free" || s.GracePeriod.D() != 72*time.Hour || s.ReportInterval.D() != 5*time.Minute || s.WebhookTolerance.D() != 5*time.Minute ||
		s.Prices["pro"] != "price_pro" || s.APIBase != "" {
		t.Errorf("[billing.stripe] defaults = %+v", s)
	}
}

func TestBillingValid(t *testing.T) {
	c, ps := parseT(t, `[billing.stripe]
secret_key_file = "${DIR}/stripe.key"
webhook_secret_env = "WHSEC"
api_base = "http://127.0.0.1:12111"
meter_event = "calls"
free_plan = "free"
grace_period = "0s"
report_interval = "30s"
webhook_tolerance = "1m"
[billing.stripe.prices]
pro = "price_pro"
enterprise = "price_ent"
`, map[string]string{"DIR": "/run/secrets"})
	if ps != nil {
		t.Fatal(ps)
	}
	s := c.Billing.Stripe
	if s.SecretKeyFile != "/run/secrets/stripe.key" || s.WebhookSecretEnv != "WHSEC" || s.APIBase != "http://127.0.0.1:12111" || s.MeterEvent != "calls" ||
		s.GracePeriod != 0 || s.ReportInterval.D() != 30*time.Second || s.WebhookTolerance.D() != time.Minute || len(s.Prices) != 2 {
		t.Errorf("[billing.stripe] = %+v", s)
	}
}

func TestBillingProblems(t *testing.T) {
	const prices = "[billing.stripe.prices]\npro = \"price_pro\"\n"
	for src, want := range map[string]string{
		"[billing.stripe]\n": `billing.stripe.prices: name the Stripe price of at least one plan`,
		"[billing.stripe.prices]\ngold = \"price_gold\"\n":          `billing.stripe.prices.gold: "gold" is not a plan (known: enterprise, free, pro)`,
		"[billing.stripe.prices]\nfree = \"price_free\"\n":          `billing.stripe.prices.free: the free plan (free_plan = "free") can not have a price`,
		"[billing.stripe.prices]\npro = \"\"\n":                     `billing.stripe.prices.pro: want a Stripe price id`,
		"[billing.stripe]\nfree_plan = \"gratis\"\n" + prices:       `billing.stripe.free_plan: "gratis" is not a plan`,
		"[billing.stripe]\nsecret_key_env = \"A-B\"\n" + prices:     `billing.stripe.secret_key_env: "A-B" is not a valid environment variable name`,
		"[billing.stripe]\napi_base = \"ftp://x\"\n" + prices:       `billing.stripe.api_base: want an http or https URL`,
		"[billing.stripe]\napi_base = \"https://u:p@x\"\n" + prices: `billing.stripe.api_base: want an http or https URL without credentials`,
		"[billing.stripe]\ngrace_period = \"2400h\"\n" + prices:     `billing.stripe.grace_period: must be between 0s and 2160h0m0s, got 2400h0m0s`,
		"[billing.stripe]\nreport_interval = \"10ms\"\n" + prices:   `billing.stripe.report_interval: must be between 1s and 1h`,
		"[billing.stripe]\nwebhook_tolerance = \"0s\"\n" + prices:   `billing.stripe.webhook_tolerance: must be between 1s and 1h`,
		"[billing.stripe]\nmeter_event = \"\"\n" + prices:           `billing.stripe.meter_event: want the event name of a Stripe meter`,
		"[billing.stripe]\nsecret_key = \"sk_live_x\"\n" + prices:   `billing.stripe.secret_key: unknown key`,
		"[billing]\npaypal = true\n":                                `billing.paypal: unknown key`,
		"[metering]\nenabled = false\n" + prices:                    `[metering] enabled must not be false`,
		"billing = 1\n":                                             `billing: expected table`,
	} {
		_, ps := parseT(t, src, nil)
		if !strings.Contains(strings.Join(ps, "\n"), want) {
			t.Errorf("%q: problems %q, want one containing %q", src, ps, want)
		}
	}
}

func TestBillingNeedsRestart(t *testing.T) {
	a, _ := parseT(t, "[billing.stripe.prices]\npro = \"price_pro\"\n", nil)
	b, _ := parseT(t, "[billing.stripe.prices]\npro = \"price_pro2\"\n", nil)
	if keys := RestartKeys(a, b); len(keys) != 1 || keys[0] != "billing.stripe.prices" {
		t.Errorf("RestartKeys = %v, want [billing.stripe.prices]", keys)
	}
}
