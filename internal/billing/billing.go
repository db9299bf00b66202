// Package billing bills tenants through Stripe (docs/design/billing.md):
//
//   - a tenant on a plan with a price ([billing.stripe.prices]) becomes a
//     Stripe customer with a subscription to that price ([Service.Sync]);
//   - the tool calls usage metering counted (store usage_hourly) are
//     reported to a Stripe meter as meter events, idempotently
//     ([Service.Report]), by one replica at a time (a lease in the store);
//   - Stripe's webhooks ([Service.Handler], mounted at /api/billing/stripe)
//     keep the subscription's state, which sets the tenant's plan: a
//     payment failure keeps the plan for the grace period, then moves the
//     tenant to the free plan (never deleting anything); a payment moves it
//     back ([Service.Enforce]).
//
// The Stripe secret key is never logged nor put in an error: everything
// this package logs or returns passes through a redactor that knows it.
package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Kinds of the events a Notifier is told of.
const (
	EventInvoicePaid         = "invoice.paid"
	EventInvoiceFailed       = "invoice.payment_failed"
	EventSubscriptionChanged = "subscription.changed"
	EventPlanChanged         = "plan.changed"
)

// A Notifier is told of billing events (for tenants' and operators'
// webhooks). Notify must not block for long; its errors are its own.
type Notifier interface {
	Notify(ctx context.Context, kind, tenant string, data any)
}

// Store is what billing needs of the store.
type Store interface {
	store.Tenants
	store.Metering
	store.Billing
}

// Options configure a Service.
type Options struct {
	Config config.BillingStripe
	Store  Store
	// Audit records the state changes (audit.Logger.Record); nil: none.
	Audit func(context.Context, *store.AuditEntry)
	// Notifier is told of billing events; nil: nobody.
	Notifier Notifier
	// PlanChanged runs after billing changed a tenant's plan, so that
	// this replica applies it at once (policy reload); nil: the next
	// policy poll applies it.
	PlanChanged func(context.Context)
	// Settle is how long after an hour ends its usage counts are final
	// (at least the metering flush interval); 0: 15 minutes.
	Settle time.Duration
	// Holder names this process in the report lease; "": random.
	Holder string
	Log    *slog.Logger
	// HTTPClient talks to Stripe; nil: one with a 30 s timeout.
	HTTPClient *http.Client
	Now        func() time.Time
	// Getenv reads the secrets' variables; nil: os.Getenv.
	Getenv func(string) string
}

// Service is billing. Its methods are safe for concurrent use.
type Service struct {
	o         Options
	sc        *stripe.Client
	secretKey string
	whsec     string
	red       *strings.Replacer
	log       *slog.Logger
	// nudge asks Run for a round now (Nudge).
	nudge chan struct{}
}

// New returns the service. It fails when a secret can not be read; the
// error names where it was looked for, never a value.
func New(o Options) (*Service, error) {
	if !o.Config.Enabled {
		return nil, errors.New("billing is not configured ([billing.stripe])")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Settle <= 0 {
		o.Settle = 15 * time.Minute
	}
	if o.Holder == "" {
		host, _ := os.Hostname()
		var b [6]byte
		_, _ = rand.Read(b[:])
		o.Holder = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	c := o.Config
	key, err := readSecret(o.Getenv, "the Stripe secret key", "secret_key_env", c.SecretKeyEnv, "secret_key_file", c.SecretKeyFile)
	if err != nil {
		return nil, err
	}
	whsec, err := readSecret(o.Getenv, "the Stripe webhook signing secret", "webhook_secret_env", c.WebhookSecretEnv, "webhook_secret_file", c.WebhookSecretFile)
	if err != nil {
		return nil, err
	}
	s := &Service{o: o, secretKey: key, whsec: whsec, nudge: make(chan struct{}, 1)}
	s.red = strings.NewReplacer(key, "[redacted]", whsec, "[redacted]")
	s.log = slog.New(&redactingHandler{next: o.Log.Handler(), red: s.red})
	bc := &stripe.BackendConfig{
		HTTPClient:        o.HTTPClient,
		LeveledLogger:     stripeLogger{s.log},
		MaxNetworkRetries: stripe.Int64(2),
	}
	if c.APIBase != "" {
		bc.URL = stripe.String(strings.TrimRight(c.APIBase, "/"))
	}
	s.sc = stripe.NewClient(key, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))
	return s, nil
}

// readSecret reads a secret from a file (if named) or an environment
// variable. Errors name the place, never the content.
func readSecret(getenv func(string) string, what, envKey, env, fileKey, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is said below; the error text adds nothing secret
			}
			return "", fmt.Errorf("billing.stripe.%s: reading %s from %s: %v", fileKey, what, file, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("billing.stripe.%s: %s is empty", fileKey, file)
		}
		return v, nil
	}
	v := strings.TrimSpace(getenv(env))
	if v == "" {
		return "", fmt.Errorf("billing.stripe: %s is not set: set the environment variable %s (billing.stripe.%s) or billing.stripe.%s", what, env, envKey, fileKey)
	}
	return v, nil
}

// redact removes the secrets from an error's text.
func (s *Service) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if r := s.red.Replace(msg); r != msg {
		return errors.New(r)
	}
	return err
}

func (s *Service) now() time.Time { return s.o.Now().UTC() }

func (s *Service) audit(ctx context.Context, tenantID, actor, action, target, outcome string, detail map[string]any) {
	if s.o.Audit == nil {
		return
	}
	e := &store.AuditEntry{Time: s.now(), TenantID: tenantID, Actor: actor, ActorKind: "system", Action: action, Target: target, Outcome: outcome}
	if detail != nil {
		e.Detail = mustJSON(detail)
	}
	s.o.Audit(ctx, e)
}

func (s *Service) notify(ctx context.Context, kind, tenant string, data any) {
	if s.o.Notifier != nil {
		s.o.Notifier.Notify(ctx, kind, tenant, data)
	}
}
