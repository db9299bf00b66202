-- Tool pinning (internal/pin, docs/guardrails.md): the definition of each
-- tool, prompt and resource template of an upstream that the gateway
-- pinned, and the changed definition the upstream offers, if any.
-- Definitions are canonical JSON, kept as bytes; hashes are hex SHA-256.
CREATE TABLE pins (
	upstream           TEXT NOT NULL,
	kind               TEXT NOT NULL,
	name               TEXT NOT NULL,
	hash               TEXT NOT NULL,
	definition         BLOB NOT NULL,
	pinned_at          INTEGER NOT NULL,
	offered_hash       TEXT NOT NULL DEFAULT '',
	offered_definition BLOB,
	offered_at         INTEGER,
	rejected           INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (upstream, kind, name)
);
