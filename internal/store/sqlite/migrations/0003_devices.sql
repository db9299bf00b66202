-- Edge gateways enrolled with this gateway as their hub (internal/hub).
--
-- devices.id is derived from the device's public key (one key, one
-- device). metrics is the latest snapshot the device sent, opaque JSON.
-- enroll_tokens keep only a hash of the token; hub_nonces only a hash of
-- each nonce, deleted when it is used.
CREATE TABLE devices (
	id           TEXT PRIMARY KEY,
	tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name         TEXT NOT NULL DEFAULT '',
	kind         TEXT NOT NULL,
	public_key   BLOB NOT NULL,
	ak           BLOB,
	attested     INTEGER NOT NULL DEFAULT 0,
	labels       TEXT NOT NULL DEFAULT '[]',
	cred_key_id  TEXT,
	enrolled_at  INTEGER NOT NULL,
	last_contact INTEGER,
	last_addr    TEXT NOT NULL DEFAULT '',
	audit_seq    INTEGER NOT NULL DEFAULT 0,
	metrics      BLOB,
	metrics_at   INTEGER
) STRICT;
CREATE INDEX devices_tenant ON devices (tenant_id, id);
CREATE INDEX devices_cred ON devices (cred_key_id);

CREATE TABLE enroll_tokens (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name       TEXT NOT NULL DEFAULT '',
	hash       BLOB NOT NULL UNIQUE,
	uses       INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX enroll_tokens_tenant ON enroll_tokens (tenant_id, created_at);

CREATE TABLE hub_nonces (
	hash       BLOB PRIMARY KEY,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX hub_nonces_expiry ON hub_nonces (expires_at);
