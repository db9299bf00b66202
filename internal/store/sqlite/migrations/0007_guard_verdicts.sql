-- Quarantine (internal/quarantine, docs/guardrails.md): the tools,
-- prompts, resources and resource templates the description guard
-- withheld under descriptions = "quarantine", and what an operator
-- decided. One row per item of an upstream; hash is the hex SHA-256 of
-- the definition judged, rules a JSON array of rule ids.
CREATE TABLE guard_verdicts (
	upstream      TEXT NOT NULL,
	kind          TEXT NOT NULL,
	name          TEXT NOT NULL,
	hash          TEXT NOT NULL,
	rules         TEXT NOT NULL,
	rules_version TEXT NOT NULL,
	text          TEXT NOT NULL,
	state         TEXT NOT NULL,
	seen_at       INTEGER NOT NULL,
	decided_at    INTEGER,
	PRIMARY KEY (upstream, kind, name)
);
