-- Billing with Stripe (internal/billing, docs/design/billing.md).
--
-- The same tables as the SQLite migration 0010, in native types:
-- billing_accounts links a tenant to its Stripe customer and subscription
-- and keeps the subscription's state as Stripe's webhooks told it;
-- reported_through is the usage watermark (hours before it are final and
-- reported). billing_usage_reports holds the reports of the hours not
-- final yet: pending > reported is a report written ahead of sending it.
-- billing_events are the Stripe event ids handled (replays are ignored);
-- billing_lease is the one replica that reports usage.
CREATE TABLE billing_accounts (
	tenant_id        TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	customer_id      TEXT COLLATE "C" NOT NULL UNIQUE,
	subscription_id  TEXT COLLATE "C" NOT NULL,
	plan             TEXT COLLATE "C" NOT NULL,
	price_id         TEXT COLLATE "C" NOT NULL,
	status           TEXT COLLATE "C" NOT NULL,
	state_at         TIMESTAMPTZ,
	past_due_since   TIMESTAMPTZ,
	degraded         BOOLEAN NOT NULL DEFAULT false,
	reported_through TIMESTAMPTZ,
	updated_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE billing_usage_reports (
	tenant_id TEXT COLLATE "C" NOT NULL REFERENCES billing_accounts (tenant_id) ON DELETE CASCADE,
	hour      TIMESTAMPTZ NOT NULL,
	reported  BIGINT NOT NULL,
	pending   BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, hour)
);

CREATE TABLE billing_events (
	id          TEXT COLLATE "C" PRIMARY KEY,
	kind        TEXT COLLATE "C" NOT NULL,
	received_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX billing_events_received ON billing_events (received_at);

CREATE TABLE billing_lease (
	name       TEXT COLLATE "C" PRIMARY KEY,
	holder     TEXT COLLATE "C" NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL
);
