package config

import (
	"net/netip"
	"time"
)

// Webhooks configures the delivery of events to subscribed endpoints
// (toml [webhooks], docs/platform.md "Webhooks").
type Webhooks struct {
	// Enabled runs the delivery loop in `mcpedge serve` and publishes
	// events (default true; endpoints are added through the API or CLI).
	Enabled bool
	// AllowPrivate are address ranges endpoints may be reached at
	// although they are not public (private, loopback, …), as an
	// upstream's allow_private.
	AllowPrivate []netip.Prefix
	// Timeout bounds one attempt.
	Timeout Duration
	// RetryFor is how long a delivery is retried before it is
	// dead-lettered.
	RetryFor Duration
	// BackoffMin and BackoffMax bound the wait between attempts.
	BackoffMin, BackoffMax Duration
	// Workers is how many deliveries a replica attempts at once.
	Workers int64
	// PollInterval is how often a replica looks for due deliveries.
	PollInterval Duration
	// Retention keeps delivered and dead deliveries (the delivery log).
	Retention Duration
	// SecretOverlap is how long a rotated-out secret keeps signing.
	SecretOverlap Duration
}

// Webhooks defaults.
const (
	DefaultWebhookTimeout       = Duration(10 * time.Second)
	DefaultWebhookRetryFor      = Duration(24 * time.Hour)
	DefaultWebhookBackoffMin    = Duration(5 * time.Second)
	DefaultWebhookBackoffMax    = Duration(time.Hour)
	DefaultWebhookWorkers       = 4
	DefaultWebhookPoll          = Duration(2 * time.Second)
	DefaultWebhookRetention     = Duration(30 * 24 * time.Hour)
	DefaultWebhookSecretOverlap = Duration(24 * time.Hour)
)

// webhooksKeys are [webhooks]'s keys.
var webhooksKeys = []string{"enabled", "allow_private", "timeout", "retry_for", "backoff_min", "backoff_max", "workers", "poll_interval", "retention", "secret_overlap"}

func defaultWebhooks() Webhooks {
	return Webhooks{Enabled: true, Timeout: DefaultWebhookTimeout, RetryFor: DefaultWebhookRetryFor, BackoffMin: DefaultWebhookBackoffMin,
		BackoffMax: DefaultWebhookBackoffMax, Workers: DefaultWebhookWorkers, PollInterval: DefaultWebhookPoll, Retention: DefaultWebhookRetention,
		SecretOverlap: DefaultWebhookSecretOverlap}
}

func (d *decoder) decodeWebhooks(t *table, c *Webhooks) {
	t.boolean("enabled", &c.Enabled)
	var allow []string
	if t.strList("allow_private", &allow) {
		c.AllowPrivate = make([]netip.Prefix, 0, len(allow))
		for i, s := range allow {
			p, msg := parseAllowPrivate(s)
			if msg != "" {
				l := t.loc("allow_private")
				d.add(l.pos, indexField(l.field, i), "%s", msg)
				continue
			}
			c.AllowPrivate = append(c.AllowPrivate, p)
		}
	}
	t.duration("timeout", &c.Timeout)
	t.duration("retry_for", &c.RetryFor)
	t.duration("backoff_min", &c.BackoffMin)
	t.duration("backoff_max", &c.BackoffMax)
	t.integer("workers", &c.Workers)
	t.duration("poll_interval", &c.PollInterval)
	t.duration("retention", &c.Retention)
	t.duration("secret_overlap", &c.SecretOverlap)
	t.unknown(webhooksKeys)
}

func (d *decoder) validateWebhooks(t *table, c *Webhooks) {
	bad := func(key, format string, args ...any) {
		l := metaLoc(t, "webhooks", key)
		d.add(l.pos, l.field, format, args...)
	}
	between := func(key string, v, lo, hi Duration) {
		if v < lo || v > hi {
			bad(key, "must be between %s and %s, got %s", lo, hi, v)
		}
	}
	between("timeout", c.Timeout, Duration(100*time.Millisecond), Duration(2*time.Minute))
	between("retry_for", c.RetryFor, Duration(time.Minute), Duration(30*24*time.Hour))
	between("backoff_min", c.BackoffMin, Duration(100*time.Millisecond), Duration(time.Hour))
	between("backoff_max", c.BackoffMax, c.BackoffMin, Duration(24*time.Hour))
	between("poll_interval", c.PollInterval, Duration(100*time.Millisecond), Duration(time.Minute))
	between("retention", c.Retention, Duration(time.Hour), Duration(400*24*time.Hour))
	between("secret_overlap", c.SecretOverlap, 0, Duration(30*24*time.Hour))
	if c.Workers < 1 || c.Workers > 64 {
		bad("workers", "must be between 1 and 64, got %d", c.Workers)
	}
}
