package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
	"github.com/mcpedge/mcpedge/internal/webhook"
)

// openWebhooks is the webhook service over st with the [webhooks]
// settings; nil (and why, logged) when webhooks are off or the store has
// no key ring to seal endpoint secrets with.
func openWebhooks(cfg *config.Config, st store.Store, log *slog.Logger) *webhook.Service {
	w := cfg.Webhooks
	if !w.Enabled {
		return nil
	}
	box, err := open.SecretBox(st)
	if err != nil {
		log.Warn("webhooks unavailable", "error", err.Error())
		return nil
	}
	svc, err := webhook.New(webhook.Options{
		Store: st, Box: box, AllowPrivate: w.AllowPrivate, Timeout: w.Timeout.D(), RetryFor: w.RetryFor.D(),
		BackoffMin: w.BackoffMin.D(), BackoffMax: w.BackoffMax.D(), Workers: int(w.Workers), PollInterval: w.PollInterval.D(),
		Retention: w.Retention.D(), SecretOverlap: w.SecretOverlap.D(), Log: log,
	})
	if err != nil {
		log.Warn("webhooks unavailable", "error", err.Error())
		return nil
	}
	return svc
}

// events is where the stack's event sources publish: the webhook service,
// or nil (a nil interface, not a nil pointer in one) when there is none.
func (s *securityStack) events() events.Publisher {
	if s.Webhooks == nil {
		return nil
	}
	return s.Webhooks
}

// queueFailedEvents wraps a queue OnDone so that an entry that failed for
// good publishes events.QueueEntryFailed to pub (nil: next alone).
func queueFailedEvents(pub events.Publisher, log *slog.Logger, next func(queue.Entry)) func(queue.Entry) {
	if pub == nil {
		return next
	}
	return func(e queue.Entry) {
		if next != nil {
			next(e)
		}
		if e.State != queue.Failed {
			return
		}
		ev := events.Event{ID: events.DerivedID(events.QueueEntryFailed, e.ID, e.DoneAt.String()), Type: events.QueueEntryFailed, TenantID: e.Tenant, Time: e.DoneAt,
			Data: map[string]any{"entry_id": e.ID, "upstream": e.Target, "tool": e.Tool, "attempts": e.Attempts, "error": e.LastError}}
		// OnDone runs on the delivery loop: publish beside it.
		go func() {
			if err := pub.Publish(context.Background(), ev); err != nil {
				log.Warn("publishing a queue failure event failed", "entry", e.ID, "error", err)
			}
		}()
	}
}

// webhookFlags are the values of the webhook commands' flags.
type webhookFlags struct {
	url, events, description, overlap, state string
	limit                                    int
	allTenants                               bool
}

// webhookCmd declares `mcpedge webhook …`: the same operations as
// /api/tenants/{tenant}/webhooks…, on the store, as an operator owner.
func (a *app) webhookCmd() *cobra.Command {
	tenantF := func(f *pflag.FlagSet, c *adminCtx) { f.StringVar(&c.tenant, "tenant", "", "the tenant's `NAME` or id") }
	jsonF := func(f *pflag.FlagSet, c *adminCtx) { f.BoolVar(&c.json, "json", false, "print JSON instead of text") }
	with := func(extra func(f *pflag.FlagSet, c *adminCtx)) func(f *pflag.FlagSet, c *adminCtx) {
		return func(f *pflag.FlagSet, c *adminCtx) {
			tenantF(f, c)
			jsonF(f, c)
			if extra != nil {
				extra(f, c)
			}
		}
	}
	needTenant := func(c *adminCtx, _ []string) error {
		if c.tenant == "" {
			return cmdline.Usagef("%s: --tenant is required", cmdName(c.cmd))
		}
		return nil
	}
	id := []string{"the endpoint's ID"}
	return group("webhook", "Subscribe endpoints to events; their delivery log; send a test event",
		a.adminCommand(adminSpec{use: "add --tenant NAME --url URL --events TYPES", short: "Subscribe an endpoint; prints its signing secret alone on the last line",
			long: `Subscribe an endpoint to events of the tenant (and, for an operator tenant,
of the whole gateway). Deliveries follow the Standard Webhooks specification:
a POST with webhook-id, webhook-timestamp and webhook-signature (v1, HMAC-SHA256
under the secret printed here). Event types: ` + strings.Join(events.Types(), ", ") + `,
invoice.<name>, or * for all. See docs/platform.md, "Webhooks".`,
			example: `  mcpedge webhook add --tenant acme --url https://hooks.example.com/mcpedge --events key.created,key.revoked,quota.warning`,
			check: func(c *adminCtx, a []string) error {
				if err := needTenant(c, a); err != nil {
					return err
				}
				if c.webhook.url == "" || c.webhook.events == "" {
					return cmdline.Usagef("webhook add: --url and --events are required")
				}
				return nil
			},
			flags: with(func(f *pflag.FlagSet, c *adminCtx) {
				f.StringVar(&c.webhook.url, "url", "", "the endpoint's `URL` (http or https)")
				f.StringVar(&c.webhook.events, "events", "", "comma-separated event `TYPES`, or * for all")
				f.StringVar(&c.webhook.description, "description", "", "a `NOTE` for people")
				f.BoolVar(&c.webhook.allTenants, "all-tenants", false, "operator tenants: deliver the events of every tenant")
			}), run: runWebhookAdd}),
		a.adminCommand(adminSpec{use: "ls --tenant NAME", short: "List a tenant's endpoints (never their secrets)", check: needTenant, flags: with(nil), run: runWebhookList}),
		a.adminCommand(adminSpec{use: "rm --tenant NAME ID", short: "Remove an endpoint and its delivery log (asks first)", args: id, check: needTenant,
			flags: with(func(f *pflag.FlagSet, c *adminCtx) {
				f.BoolVarP(&c.yes, "yes", "y", false, "do it without asking (scripts; required when stdin is not a terminal)")
			}), run: runWebhookRemove}),
		a.adminCommand(adminSpec{use: "rotate --tenant NAME ID", short: "Give an endpoint a new secret; prints it alone on the last line", args: id, check: needTenant,
			flags: with(func(f *pflag.FlagSet, c *adminCtx) {
				f.StringVar(&c.webhook.overlap, "overlap", "", "how long the old secret keeps signing (`DURATION`; default [webhooks] secret_overlap; 0s: stop at once)")
			}), run: runWebhookRotate}),
		a.adminCommand(adminSpec{use: "deliveries --tenant NAME ID", short: "An endpoint's delivery log, newest first", args: id, check: needTenant,
			flags: with(func(f *pflag.FlagSet, c *adminCtx) {
				f.StringVar(&c.webhook.state, "state", "", "only deliveries in this `STATE`: pending, delivered or dead")
				f.IntVar(&c.webhook.limit, "limit", 50, "at most `N` deliveries (up to 1000)")
			}), run: runWebhookDeliveries}),
		a.adminCommand(adminSpec{use: "retry --tenant NAME DELIVERY", short: "Send a dead-lettered delivery again (same webhook-id)", args: []string{"the DELIVERY id"}, check: needTenant,
			flags: with(nil), run: runWebhookRetry}),
		a.adminCommand(adminSpec{use: "test --tenant NAME ID", short: "Send a signed webhook.test event to an endpoint now and print the outcome", args: id, check: needTenant,
			long: `Send a signed webhook.test event to the endpoint from this process, through
the egress policy ([webhooks] allow_private), and print the outcome. A failed
test stays queued and a running gateway retries it like any delivery. The exit
status is 1 when the endpoint did not answer 2xx.`,
			flags: with(nil), run: runWebhookTest}),
	)
}

func runWebhookAdd(c *adminCtx, _ []string) error {
	nw, err := c.ops.CreateWebhook(c.ctx, c.tenant, admin.WebhookSpec{URL: c.webhook.url, Events: cmdline.SplitList(c.webhook.events),
		Description: c.webhook.description, AllTenants: c.webhook.allTenants})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(nw)
	}
	e := nw.Endpoint
	fmt.Fprintf(c.stdout, "added endpoint %s of tenant %s: %s, events %s\n", e.ID, c.tenantName(e.TenantID), e.URL, strings.Join(e.Events, ","))
	fmt.Fprintln(c.stdout, "its signing secret is shown only now; give it to the receiver:")
	fmt.Fprintln(c.stdout, nw.Secret)
	return nil
}

func runWebhookList(c *adminCtx, _ []string) error {
	ws, err := c.ops.ListWebhooks(c.ctx, c.tenant)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(ws)
	}
	rows := make([][]string, len(ws))
	for i, w := range ws {
		state := "enabled"
		if w.Disabled {
			state = "disabled"
		}
		rows[i] = []string{w.ID, w.URL, strings.Join(w.Events, ","), state, fmt.Sprint(w.AllTenants), cmdline.Time(w.CreatedAt)}
	}
	return c.table("ID\tURL\tEVENTS\tSTATE\tALL TENANTS\tCREATED", rows)
}

func runWebhookRemove(c *adminCtx, pos []string) error {
	if err := c.confirm(c.cmd, fmt.Sprintf("remove webhook endpoint %s of tenant %s with its delivery log?", pos[0], c.tenant), c.yes); err != nil {
		return err
	}
	if err := c.ops.DeleteWebhook(c.ctx, c.tenant, pos[0]); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(map[string]string{"removed": pos[0]})
	}
	fmt.Fprintf(c.stdout, "removed endpoint %s\n", pos[0])
	return nil
}

func runWebhookRotate(c *adminCtx, pos []string) error {
	nw, err := c.ops.RotateWebhookSecret(c.ctx, c.tenant, pos[0], c.webhook.overlap)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(nw)
	}
	overlap := c.webhook.overlap
	if overlap == "" {
		overlap = c.cfg.Webhooks.SecretOverlap.String()
	}
	fmt.Fprintf(c.stdout, "rotated the secret of endpoint %s; the old one keeps signing for %s\n", nw.Endpoint.ID, overlap)
	fmt.Fprintln(c.stdout, "the new secret is shown only now:")
	fmt.Fprintln(c.stdout, nw.Secret)
	return nil
}

func runWebhookDeliveries(c *adminCtx, pos []string) error {
	ds, err := c.ops.WebhookDeliveries(c.ctx, c.tenant, pos[0], c.webhook.state, c.webhook.limit)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(ds)
	}
	rows := make([][]string, len(ds))
	for i, d := range ds {
		status := "-"
		if d.LastStatus != 0 {
			status = fmt.Sprint(d.LastStatus)
		}
		next := "-"
		if d.State == "pending" {
			next = cmdline.Time(d.NextAt)
		}
		rows[i] = []string{d.ID, d.EventID, d.EventType, d.State, fmt.Sprint(d.Attempts), status, next, cmdline.Time(d.CreatedAt), d.LastError}
	}
	return c.table("ID\tWEBHOOK-ID\tTYPE\tSTATE\tATTEMPTS\tSTATUS\tNEXT\tCREATED\tLAST ERROR", rows)
}

func runWebhookRetry(c *adminCtx, pos []string) error {
	if err := c.ops.RetryWebhookDelivery(c.ctx, c.tenant, pos[0]); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(map[string]string{"queued": pos[0]})
	}
	fmt.Fprintf(c.stdout, "delivery %s queued again; a running gateway sends it now\n", pos[0])
	return nil
}

func runWebhookTest(c *adminCtx, pos []string) error {
	res, err := c.ops.TestWebhook(c.ctx, c.tenant, pos[0])
	if err != nil {
		return err
	}
	if c.json {
		if err := c.printJSON(res); err != nil {
			return err
		}
	} else {
		switch {
		case res.State == "delivered":
			fmt.Fprintf(c.stdout, "delivered test event %s: the endpoint answered %d in %d ms\n", res.EventID, res.Status, res.DurationMS)
		default:
			fmt.Fprintf(c.stdout, "test event %s not delivered (%s): %s\n", res.EventID, res.State, res.Error)
		}
	}
	if res.State != "delivered" {
		return errors.New("the endpoint did not accept the test event")
	}
	return nil
}
