-- Webhooks (internal/webhook, docs/design/webhooks.md): endpoints tenants
-- subscribed to events, one delivery per event and endpoint (the durable
-- queue of what is to be sent, leased to one process at a time), and the
-- log of each delivery's attempts.
--
-- The same tables as the SQLite migration 0009, in native types. secrets
-- is a ciphertext (sealbox, the store's key ring) made by the caller;
-- events is a JSON list of event types.
CREATE TABLE webhook_endpoints (
	id          TEXT COLLATE "C" PRIMARY KEY,
	tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	url         TEXT NOT NULL,
	description TEXT NOT NULL,
	events      TEXT NOT NULL,
	all_tenants BOOLEAN NOT NULL,
	disabled    BOOLEAN NOT NULL,
	secrets     BYTEA NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at);

CREATE TABLE webhook_deliveries (
	id              TEXT COLLATE "C" PRIMARY KEY,
	endpoint_id     TEXT COLLATE "C" NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
	tenant_id       TEXT COLLATE "C" NOT NULL,
	event_id        TEXT COLLATE "C" NOT NULL,
	event_type      TEXT COLLATE "C" NOT NULL,
	payload         BYTEA NOT NULL,
	state           TEXT COLLATE "C" NOT NULL,
	attempts        INTEGER NOT NULL,
	next_at         TIMESTAMPTZ,
	lease_owner     TEXT NOT NULL,
	lease_until     TIMESTAMPTZ,
	last_status     INTEGER NOT NULL,
	last_error      TEXT NOT NULL,
	last_attempt_at TIMESTAMPTZ,
	created_at      TIMESTAMPTZ NOT NULL,
	done_at         TIMESTAMPTZ,
	UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, created_at);
CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries (tenant_id, created_at);

CREATE TABLE webhook_attempts (
	delivery_id TEXT COLLATE "C" NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
	n           INTEGER NOT NULL,
	at          TIMESTAMPTZ NOT NULL,
	status      INTEGER NOT NULL,
	error       TEXT NOT NULL,
	duration_ms BIGINT NOT NULL,
	PRIMARY KEY (delivery_id, n)
);
