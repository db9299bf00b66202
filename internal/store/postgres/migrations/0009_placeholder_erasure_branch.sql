-- Placeholder on the erasure branch only: another branch owns migration 0009.
-- The coordinator deletes this file when merging (the real 0009 takes its place).
SELECT 1;
