package config

import (
	"net/url"
	"slices"
	"time"
)

// Billing configures billing (toml [billing]); see docs/platform.md,
// "Billing with Stripe", and docs/design/billing.md. Read once at start:
// a change needs a restart.
type Billing struct {
	// Stripe bills tenants through Stripe (toml [billing.stripe]). Absent:
	// billing is off.
	Stripe BillingStripe
}

// BillingStripe is [billing.stripe].
type BillingStripe struct {
	// Enabled is true when [billing.stripe] is present.
	Enabled bool
	// SecretKeyEnv names the environment variable holding the Stripe
	// secret key (toml "secret_key_env", default STRIPE_SECRET_KEY);
	// SecretKeyFile, if set, is a file holding it instead (toml
	// "secret_key_file"). The key itself is never in the config file.
	SecretKeyEnv, SecretKeyFile string
	// WebhookSecretEnv and WebhookSecretFile say where the webhook
	// endpoint's signing secret ("whsec_…") is, the same way (toml
	// "webhook_secret_env", default STRIPE_WEBHOOK_SECRET, and
	// "webhook_secret_file").
	WebhookSecretEnv, WebhookSecretFile string
	// APIBase is the Stripe API's base URL (toml "api_base"); "" is
	// Stripe's own. Tests point it at stripe-mock.
	APIBase string
	// MeterEvent is the event name of the Stripe meter the tool calls are
	// reported to (toml "meter_event", default "mcpedge_tool_calls").
	MeterEvent string
	// Prices maps a plan to the Stripe price of its subscription (toml
	// [billing.stripe.prices], plan = "price_…"). Tenants on a plan with
	// a price are billed; the others (the free plan, operators) are not.
	Prices map[string]string
	// FreePlan is the plan a tenant falls to when its subscription ends
	// or stays unpaid past the grace period (toml "free_plan", default
	// "free"). It must have no price.
	FreePlan string
	// GracePeriod is how long a tenant keeps its plan after a payment
	// failed (toml "grace_period", default 72h; 0: none).
	GracePeriod Duration
	// ReportInterval is how often usage is reported to Stripe and
	// tenants without a customer are synced (toml "report_interval",
	// default 5m).
	ReportInterval Duration
	// WebhookTolerance is how old a webhook's signed timestamp may be
	// (toml "webhook_tolerance", default 5m, Stripe's own default).
	WebhookTolerance Duration
}

// Billing defaults.
const (
	DefaultStripeSecretKeyEnv     = "STRIPE_SECRET_KEY"
	DefaultStripeWebhookSecretEnv = "STRIPE_WEBHOOK_SECRET"
	DefaultStripeMeterEvent       = "mcpedge_tool_calls"
	DefaultBillingFreePlan        = "free"
	DefaultBillingGracePeriod     = Duration(72 * time.Hour)
	DefaultBillingReportInterval  = Duration(5 * time.Minute)
	DefaultStripeWebhookTolerance = Duration(5 * time.Minute)
	// MaxBillingGracePeriod bounds grace_period (90 days).
	MaxBillingGracePeriod = Duration(90 * 24 * time.Hour)
)

var (
	billingKeys       = []string{"stripe"}
	billingStripeKeys = []string{"secret_key_env", "secret_key_file", "webhook_secret_env", "webhook_secret_file", "api_base", "meter_event", "prices", "free_plan", "grace_period", "report_interval", "webhook_tolerance"}
)

// billingMeta locates [billing.stripe]'s keys for validation.
type billingMeta struct{ t, prices *table }

func (m billingMeta) loc(key string) loc { return metaLoc(m.t, "billing.stripe", key) }

// decodeBilling reads [billing], if any, into c.Billing.
func (d *decoder) decodeBilling(top *table, c *Config) billingMeta {
	bt := d.subTable(top, "billing")
	if bt == nil {
		return billingMeta{}
	}
	defer bt.unknown(billingKeys)
	t := d.subTable(bt, "stripe")
	if t == nil {
		return billingMeta{}
	}
	s := &c.Billing.Stripe
	*s = BillingStripe{
		Enabled:          true,
		SecretKeyEnv:     DefaultStripeSecretKeyEnv,
		WebhookSecretEnv: DefaultStripeWebhookSecretEnv,
		MeterEvent:       DefaultStripeMeterEvent,
		FreePlan:         DefaultBillingFreePlan,
		GracePeriod:      DefaultBillingGracePeriod,
		ReportInterval:   DefaultBillingReportInterval,
		WebhookTolerance: DefaultStripeWebhookTolerance,
	}
	t.str("secret_key_env", &s.SecretKeyEnv)
	if t.str("secret_key_file", &s.SecretKeyFile) {
		l := t.loc("secret_key_file")
		s.SecretKeyFile, _ = d.expand(s.SecretKeyFile, l.pos, l.field, false)
	}
	t.str("webhook_secret_env", &s.WebhookSecretEnv)
	if t.str("webhook_secret_file", &s.WebhookSecretFile) {
		l := t.loc("webhook_secret_file")
		s.WebhookSecretFile, _ = d.expand(s.WebhookSecretFile, l.pos, l.field, false)
	}
	t.str("api_base", &s.APIBase)
	t.str("meter_event", &s.MeterEvent)
	var pt *table
	if present, _ := t.strMap("prices", &s.Prices, false, false); present && t.v.fields["prices"].kind == kTable {
		pt = d.table(t.v.fields["prices"], joinField(t.field, "prices"))
	}
	t.str("free_plan", &s.FreePlan)
	t.duration("grace_period", &s.GracePeriod)
	t.duration("report_interval", &s.ReportInterval)
	t.duration("webhook_tolerance", &s.WebhookTolerance)
	t.unknown(billingStripeKeys)
	return billingMeta{t: t, prices: pt}
}

// validateBilling checks [billing.stripe] against the plans.
func (d *decoder) validateBilling(c *Config, m billingMeta) {
	s := &c.Billing.Stripe
	if !s.Enabled {
		return
	}
	bad := func(key, format string, args ...any) {
		l := m.loc(key)
		d.add(l.pos, l.field, format, args...)
	}
	for _, k := range []struct{ key, v string }{{"secret_key_env", s.SecretKeyEnv}, {"webhook_secret_env", s.WebhookSecretEnv}} {
		if !validEnvName(k.v) {
			bad(k.key, "%q is not a valid environment variable name", truncate(k.v, 64))
		}
	}
	if s.APIBase != "" {
		u, err := url.Parse(s.APIBase)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			bad("api_base", "want an http or https URL without credentials, query or fragment, got %q", truncate(s.APIBase, 128))
		}
	}
	if s.MeterEvent == "" || len(s.MeterEvent) > 100 {
		bad("meter_event", "want the event name of a Stripe meter (1 to 100 characters)")
	}
	if _, ok := c.Plans[s.FreePlan]; !ok {
		bad("free_plan", "%q is not a plan (known: %s)", truncate(s.FreePlan, 64), planNames(c.Plans))
	}
	if len(s.Prices) == 0 {
		bad("prices", "name the Stripe price of at least one plan ([billing.stripe.prices] plan = \"price_…\"): with none, nobody is billed")
	}
	for plan, price := range s.Prices {
		bad := func(_, format string, args ...any) {
			l := metaLoc(m.prices, "billing.stripe.prices", plan)
			d.add(l.pos, l.field, format, args...)
		}
		f := plan
		switch {
		case !hasPlan(c.Plans, plan):
			bad(f, "%q is not a plan (known: %s)", truncate(plan, 64), planNames(c.Plans))
		case plan == s.FreePlan:
			bad(f, "the free plan (free_plan = %q) can not have a price: it is where unpaid tenants go", s.FreePlan)
		case price == "" || len(price) > 255:
			bad(f, "want a Stripe price id (\"price_…\")")
		}
	}
	if c.Auth.Mode != AuthRequired {
		bad("prices", "billing bills tenants: it needs [auth] mode = %q (tenants with credentials), not %q", AuthRequired, c.Auth.Mode)
	}
	if !c.Metering.Enabled {
		bad("prices", "billing reports the tool calls usage metering counts: [metering] enabled must not be false")
	}
	if s.GracePeriod < 0 || s.GracePeriod > MaxBillingGracePeriod {
		bad("grace_period", "must be between 0s and %s, got %s", MaxBillingGracePeriod, s.GracePeriod)
	}
	if s.ReportInterval < Duration(time.Second) || s.ReportInterval > Duration(time.Hour) {
		bad("report_interval", "must be between 1s and 1h, got %s", s.ReportInterval)
	}
	if s.WebhookTolerance < Duration(time.Second) || s.WebhookTolerance > Duration(time.Hour) {
		bad("webhook_tolerance", "must be between 1s and 1h, got %s", s.WebhookTolerance)
	}
}

func hasPlan(plans map[string]Plan, name string) bool { _, ok := plans[name]; return ok }

func planNames(plans map[string]Plan) string {
	names := make([]string, 0, len(plans))
	for n := range plans {
		names = append(names, n)
	}
	slices.Sort(names)
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}
