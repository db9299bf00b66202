package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mcpedge/mcpedge/internal/billing"
	"github.com/mcpedge/mcpedge/internal/changebus"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/store"
)

// billingWebhookPath is where Stripe's webhooks are received.
const billingWebhookPath = "/api/billing/stripe"

// billingSettle is how long after an hour ends its usage counts are
// final: a replica adds its counts every [metering] flush_interval, and
// five minutes more cover a slow flush.
func billingSettle(cfg *config.Config) time.Duration {
	return cfg.Metering.FlushInterval.D() + 5*time.Minute
}

// openBilling makes the billing service of [billing.stripe] (nil when it
// is absent).
func openBilling(cfg *config.Config, sec *securityStack, log *slog.Logger, audit func(context.Context, *store.AuditEntry)) (*billing.Service, error) {
	if !cfg.Billing.Stripe.Enabled {
		return nil, nil
	}
	o := billing.Options{Config: cfg.Billing.Stripe, Store: sec.Store, Audit: audit, Settle: billingSettle(cfg), Log: log}
	if pub := sec.events(); pub != nil {
		o.Notifier = invoiceEvents{pub: pub, st: sec.Store, log: log}
	}
	if sec.Policy != nil {
		// A plan billing changed applies on this replica at once, and on
		// the others at once with Redis (else at their next poll).
		o.PlanChanged = func(ctx context.Context) {
			if err := sec.Policy.Load(ctx); err != nil {
				log.Warn("reloading the policy after a billing plan change failed; the next poll applies it", "error", err)
			}
			sec.Changes.Announce(ctx, changebus.TopicPolicy)
		}
	}
	svc, err := billing.New(o)
	if err != nil {
		return nil, err
	}
	return svc, nil
}

// withBillingWebhook serves Stripe's webhooks at billingWebhookPath
// beside the admin API (they carry no gateway credential: the Stripe
// signature is what authenticates them), and nudges billing after the API
// created a tenant or changed one.
func withBillingWebhook(api http.Handler, svc *billing.Service) http.Handler {
	if svc == nil {
		return api
	}
	hook := svc.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == billingWebhookPath {
			hook.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
		// A tenant created, or its plan changed: subscribe it now
		// rather than at the next report_interval.
		if (r.Method == http.MethodPost && r.URL.Path == "/api/tenants") ||
			(r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/api/tenants/") && !strings.Contains(strings.TrimPrefix(r.URL.Path, "/api/tenants/"), "/")) {
			svc.Nudge()
		}
	})
}

// billingCmd is `mcpedge billing`.
func (a *app) billingCmd() *cobra.Command {
	jsonF := func(f *pflag.FlagSet, c *adminCtx) { f.BoolVar(&c.json, "json", false, "print JSON instead of text") }
	return group("billing", "Show the Stripe billing state; sync customers and report usage now",
		a.adminCommand(adminSpec{use: "status", short: "Show each billed tenant's subscription, plan, grace period and unreported calls", raw: true,
			long: `Show what the store holds of billing ([billing.stripe], docs/platform.md):
each billed tenant's Stripe customer and subscription, the subscription's
status as Stripe's webhooks last told it, the tenant's plan and the paid
plan, when a grace period after a failed payment ends, the usage watermark
and the tool calls counted and not yet reported to Stripe. Needs no Stripe
key.`,
			flags: jsonF, run: runBillingStatus}),
		a.adminCommand(adminSpec{use: "sync", short: "Make billable tenants Stripe customers and report usage now",
			long: `Make every billable tenant (on a plan with a [billing.stripe.prices] price,
not an operator) without a Stripe customer one, with a subscription to its
plan's price; move subscriptions of tenants whose plan changed to the new
price; then, unless a running gateway holds the report lease, report the
tool calls counted since the last report and apply the subscriptions' states
to the tenants' plans (the grace period). A running gateway does all this
every report_interval by itself. Safe to repeat: every Stripe call carries an
idempotency key.`,
			flags: jsonF, run: runBillingSync}),
	)
}

func runBillingStatus(c *adminCtx, _ []string) error {
	if !c.cfg.Billing.Stripe.Enabled {
		fmt.Fprintln(c.stderr, "note: billing is not configured ([billing.stripe]); showing what the store holds")
	}
	sts, err := billing.Status(c.ctx, c.st, c.cfg.Billing.Stripe.GracePeriod.D(), time.Now())
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(sts)
	}
	if len(sts) == 0 {
		fmt.Fprintln(c.stdout, "no billed tenants")
		return nil
	}
	rows := make([][]string, 0, len(sts))
	for _, s := range sts {
		grace := "-"
		if !s.GraceEnds.IsZero() {
			grace = s.GraceEnds.Format(time.RFC3339)
		}
		plan := s.Plan
		if s.Degraded {
			plan += " (degraded from " + s.BillingAccount.Plan + ")"
		}
		rows = append(rows, []string{s.Tenant, plan, s.Status, grace, s.CustomerID, s.SubscriptionID, s.ReportedThrough.Format(time.RFC3339), fmt.Sprint(s.Unreported)})
	}
	return c.table("TENANT\tPLAN\tSTATUS\tGRACE ENDS\tCUSTOMER\tSUBSCRIPTION\tREPORTED THROUGH\tUNREPORTED", rows)
}

func runBillingSync(c *adminCtx, _ []string) error {
	if !c.cfg.Billing.Stripe.Enabled {
		return fmt.Errorf("billing is not configured: add [billing.stripe] (docs/platform.md, \"Billing with Stripe\")")
	}
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := openBilling(c.cfg, &securityStack{Store: c.st}, log, c.audit.Record)
	if err != nil {
		return err
	}
	res, err := svc.SyncNow(c.ctx)
	if c.json {
		if perr := c.printJSON(res); perr != nil {
			return perr
		}
		return err
	}
	for _, n := range res.Created {
		fmt.Fprintf(c.stdout, "subscribed %s\n", n)
	}
	for _, n := range res.Repriced {
		fmt.Fprintf(c.stdout, "repriced %s\n", n)
	}
	if res.LeaseHeld {
		fmt.Fprintln(c.stdout, "usage: not reported here: a running gateway holds the report lease and reports it every report_interval")
	} else {
		fmt.Fprintf(c.stdout, "usage: %d calls reported in %d meter events\n", res.Calls, res.Events)
	}
	return err
}

// invoiceEvents publishes billing's invoice events (invoice.paid,
// invoice.payment_failed) as webhook events of the tenant; billing's other
// notices (subscription and plan changes) are in the audit log.
type invoiceEvents struct {
	pub events.Publisher
	st  store.Store
	log *slog.Logger
}

func (n invoiceEvents) Notify(ctx context.Context, kind, tenant string, data any) {
	if !strings.HasPrefix(kind, events.InvoicePrefix) {
		return
	}
	t, err := n.st.GetTenantByName(ctx, tenant)
	if err != nil {
		n.log.Warn("billing: the invoice event's tenant was not found; no webhook event", "tenant", tenant, "event", kind, "err", err)
		return
	}
	m, _ := data.(map[string]any)
	if err := n.pub.Publish(ctx, events.Event{Type: kind, TenantID: t.ID, Data: m}); err != nil {
		n.log.Warn("billing: publishing the invoice event failed", "tenant", tenant, "event", kind, "err", err)
	}
}
