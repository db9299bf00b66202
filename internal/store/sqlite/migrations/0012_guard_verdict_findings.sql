-- Each quarantined item keeps why it was flagged: a JSON array of
-- {"rule", "explain", "match"}, one per rule that fired
-- (docs/guardrails.md, "Quarantine"). The shadowing check's explanation
-- names the other upstream's tool, which the rule id alone does not.
ALTER TABLE guard_verdicts ADD COLUMN findings TEXT NOT NULL DEFAULT '[]';
