-- Tenant data export and erasure (docs/design/erasure.md).
--
-- audit: entries written from this version on commit to their personal
-- fields (actor, target, client_ip, detail) through pii_digest, a SHA-256
-- over a random per-entry pii_salt and those fields, and the chain hash
-- (format "mcpedge-audit-v2") covers the digest instead of the fields.
-- Erasing an entry clears the fields and the salt and sets erased; the
-- digest stays, so the chain still verifies. Older entries (no salt, no
-- digest) keep their v1 hash.
ALTER TABLE audit ADD COLUMN pii_salt BLOB;
ALTER TABLE audit ADD COLUMN pii_digest BLOB;
ALTER TABLE audit ADD COLUMN erased INTEGER NOT NULL DEFAULT 0 CHECK (erased IN (0, 1));

-- tenant_keys: each tenant's data key (32 random bytes), wrapped (sealed)
-- with the store's master key through the secrets' key ring. It seals
-- the tenant's personal fields and payloads outside this database (the
-- offline queue's entries). Deleting the row (with the tenant) destroys
-- the key: what it sealed can no longer be opened (crypto-shredding).
CREATE TABLE tenant_keys (
	tenant_id  TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	wrapped    BLOB NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

-- tenant_erasures: which tenants were erased, when, and how much; no
-- personal data.
CREATE TABLE tenant_erasures (
	tenant_id     TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	erased_at     INTEGER NOT NULL,
	audit_entries INTEGER NOT NULL
) STRICT;
CREATE INDEX tenant_erasures_name ON tenant_erasures (name);
