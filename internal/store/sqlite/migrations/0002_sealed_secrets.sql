-- Secrets sealed at rest (internal/sealbox, AES-256-GCM).
--
-- secrets.sealed is 1 when value is a sealbox ciphertext, 0 for a value an
-- earlier mcpedge wrote in the clear; a store opened with its master key
-- seals those in place. seal_keys is the sealbox key ring: ids, salts,
-- check values and message counts, no key material (the data keys are
-- derived from the master key, which never enters the database).
ALTER TABLE secrets ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1));

CREATE TABLE seal_keys (
	id          INTEGER PRIMARY KEY CHECK (id > 0 AND id <= 4294967295),
	salt        BLOB NOT NULL,
	check_value BLOB NOT NULL,
	used        INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
	created_at  INTEGER NOT NULL
) STRICT;
