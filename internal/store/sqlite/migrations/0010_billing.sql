-- Billing with Stripe (internal/billing, docs/design/billing.md).
--
-- billing_accounts links a tenant to its Stripe customer and subscription
-- and keeps the subscription's state as Stripe's webhooks told it;
-- reported_through is the usage watermark (hours before it are final and
-- reported). billing_usage_reports holds the reports of the hours not
-- final yet: pending > reported is a report written ahead of sending it.
-- billing_events are the Stripe event ids handled (replays are ignored);
-- billing_lease is the one replica that reports usage.
--
-- Times are Unix microseconds (UTC); NULL is "not set".
CREATE TABLE billing_accounts (
	tenant_id        TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	customer_id      TEXT NOT NULL UNIQUE,
	subscription_id  TEXT NOT NULL,
	plan             TEXT NOT NULL,
	price_id         TEXT NOT NULL,
	status           TEXT NOT NULL,
	state_at         INTEGER,
	past_due_since   INTEGER,
	degraded         INTEGER NOT NULL DEFAULT 0,
	reported_through INTEGER,
	updated_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE billing_usage_reports (
	tenant_id TEXT NOT NULL REFERENCES billing_accounts (tenant_id) ON DELETE CASCADE,
	hour      INTEGER NOT NULL,
	reported  INTEGER NOT NULL,
	pending   INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, hour)
) STRICT;

CREATE TABLE billing_events (
	id          TEXT PRIMARY KEY,
	kind        TEXT NOT NULL,
	received_at INTEGER NOT NULL
) STRICT;
CREATE INDEX billing_events_received ON billing_events (received_at);

CREATE TABLE billing_lease (
	name       TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
