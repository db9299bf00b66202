-- Quarantine (internal/quarantine, docs/guardrails.md): the tools,
-- prompts, resources and resource templates the description guard
-- withheld under descriptions = "quarantine", and what an operator
-- decided.
--
-- The same table as the SQLite migration 0007, in native types. One row
-- per item of an upstream; hash is the hex SHA-256 of the definition
-- judged, rules a JSON array of rule ids.
CREATE TABLE guard_verdicts (
	upstream      TEXT COLLATE "C" NOT NULL,
	kind          TEXT COLLATE "C" NOT NULL,
	name          TEXT COLLATE "C" NOT NULL,
	hash          TEXT NOT NULL,
	rules         TEXT NOT NULL,
	rules_version TEXT NOT NULL,
	text          TEXT NOT NULL,
	state         TEXT NOT NULL,
	seen_at       TIMESTAMPTZ NOT NULL,
	decided_at    TIMESTAMPTZ,
	PRIMARY KEY (upstream, kind, name)
);
