-- Edge gateways enrolled with this gateway as their hub (internal/hub).
--
-- The same tables as the SQLite migration 0003, in native types.
-- devices.id is derived from the device's public key (one key, one
-- device). metrics is the latest snapshot the device sent, opaque JSON
-- kept as bytes. enroll_tokens keep only a hash of the token; hub_nonces
-- only a hash of each nonce, deleted when it is used.
CREATE TABLE devices (
	id           TEXT COLLATE "C" PRIMARY KEY,
	tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name         TEXT NOT NULL DEFAULT '',
	kind         TEXT NOT NULL,
	public_key   BYTEA NOT NULL,
	ak           BYTEA,
	attested     BOOLEAN NOT NULL DEFAULT false,
	labels       JSONB NOT NULL DEFAULT '[]',
	cred_key_id  TEXT COLLATE "C",
	enrolled_at  TIMESTAMPTZ NOT NULL,
	last_contact TIMESTAMPTZ,
	last_addr    TEXT NOT NULL DEFAULT '',
	audit_seq    BIGINT NOT NULL DEFAULT 0,
	metrics      BYTEA,
	metrics_at   TIMESTAMPTZ
);
CREATE INDEX devices_tenant ON devices (tenant_id, id);
CREATE INDEX devices_cred ON devices (cred_key_id);

CREATE TABLE enroll_tokens (
	id         TEXT COLLATE "C" PRIMARY KEY,
	tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name       TEXT NOT NULL DEFAULT '',
	hash       BYTEA NOT NULL UNIQUE,
	uses       INTEGER NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX enroll_tokens_tenant ON enroll_tokens (tenant_id, created_at);

CREATE TABLE hub_nonces (
	hash       BYTEA PRIMARY KEY,
	expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX hub_nonces_expiry ON hub_nonces (expires_at);
