-- Tenant data export and erasure (docs/design/erasure.md). The same
-- tables and columns as the SQLite migration 0011, in native types.
--
-- audit: entries written from this version on commit to their personal
-- fields (actor, target, client_ip, detail) through pii_digest, a SHA-256
-- over a random per-entry pii_salt and those fields, and the chain hash
-- (format "mcpedge-audit-v2") covers the digest instead of the fields.
-- Erasing an entry clears the fields and the salt and sets erased; the
-- digest stays, so the chain still verifies. Older entries keep their v1
-- hash.
ALTER TABLE audit ADD COLUMN pii_salt BYTEA;
ALTER TABLE audit ADD COLUMN pii_digest BYTEA;
ALTER TABLE audit ADD COLUMN erased BOOLEAN NOT NULL DEFAULT false;

-- tenant_keys: each tenant's data key, wrapped with the store's master
-- key; deleting the row destroys the key (crypto-shredding).
CREATE TABLE tenant_keys (
	tenant_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	wrapped    BYTEA NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);

-- tenant_erasures: which tenants were erased, when, and how much.
CREATE TABLE tenant_erasures (
	tenant_id     TEXT COLLATE "C" PRIMARY KEY,
	name          TEXT COLLATE "C" NOT NULL,
	erased_at     TIMESTAMPTZ NOT NULL,
	audit_entries BIGINT NOT NULL
);
CREATE INDEX tenant_erasures_name ON tenant_erasures (name);
