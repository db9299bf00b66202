-- Webhooks (internal/webhook, docs/design/webhooks.md): endpoints tenants
-- subscribed to events, one delivery per event and endpoint (the durable
-- queue of what is to be sent, leased to one process at a time), and the
-- log of each delivery's attempts.
--
-- secrets is a ciphertext (sealbox, the store's key ring) made by the
-- caller; events is a JSON list of event types. Times are Unix
-- microseconds (UTC); NULL is "not set".
CREATE TABLE webhook_endpoints (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	url         TEXT NOT NULL,
	description TEXT NOT NULL,
	events      TEXT NOT NULL,
	all_tenants INTEGER NOT NULL,
	disabled    INTEGER NOT NULL,
	secrets     BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at);

CREATE TABLE webhook_deliveries (
	id              TEXT PRIMARY KEY,
	endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
	tenant_id       TEXT NOT NULL,
	event_id        TEXT NOT NULL,
	event_type      TEXT NOT NULL,
	payload         BLOB NOT NULL,
	state           TEXT NOT NULL,
	attempts        INTEGER NOT NULL,
	next_at         INTEGER,
	lease_owner     TEXT NOT NULL,
	lease_until     INTEGER,
	last_status     INTEGER NOT NULL,
	last_error      TEXT NOT NULL,
	last_attempt_at INTEGER,
	created_at      INTEGER NOT NULL,
	done_at         INTEGER,
	UNIQUE (endpoint_id, event_id)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, created_at);
CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries (tenant_id, created_at);

CREATE TABLE webhook_attempts (
	delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
	n           INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	status      INTEGER NOT NULL,
	error       TEXT NOT NULL,
	duration_ms INTEGER NOT NULL,
	PRIMARY KEY (delivery_id, n)
) STRICT;
