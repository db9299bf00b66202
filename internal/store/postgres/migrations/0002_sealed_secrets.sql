-- Secrets sealed at rest (internal/sealbox, AES-256-GCM).
--
-- secrets.sealed is true when value is a sealbox ciphertext, false for a
-- value an earlier mcpedge wrote in the clear; a store opened with its
-- master key seals those in place. seal_keys is the sealbox key ring: ids,
-- salts, check values and message counts, no key material (the data keys
-- are derived from the master key, which never enters the database).
ALTER TABLE secrets ADD COLUMN sealed BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE seal_keys (
	id          BIGINT PRIMARY KEY CHECK (id > 0 AND id <= 4294967295),
	salt        BYTEA NOT NULL,
	check_value BYTEA NOT NULL,
	used        BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
	created_at  TIMESTAMPTZ NOT NULL
);
