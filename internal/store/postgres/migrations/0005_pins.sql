-- Tool pinning (internal/pin, docs/guardrails.md): the definition of each
-- tool, prompt and resource template of an upstream that the gateway
-- pinned, and the changed definition the upstream offers, if any.
--
-- The same table as the SQLite migration 0005, in native types.
-- Definitions are canonical JSON, kept as bytes; hashes are hex SHA-256.
CREATE TABLE pins (
	upstream           TEXT COLLATE "C" NOT NULL,
	kind               TEXT COLLATE "C" NOT NULL,
	name               TEXT COLLATE "C" NOT NULL,
	hash               TEXT NOT NULL,
	definition         BYTEA NOT NULL,
	pinned_at          TIMESTAMPTZ NOT NULL,
	offered_hash       TEXT NOT NULL DEFAULT '',
	offered_definition BYTEA,
	offered_at         TIMESTAMPTZ,
	rejected           BOOLEAN NOT NULL DEFAULT false,
	PRIMARY KEY (upstream, kind, name)
);
