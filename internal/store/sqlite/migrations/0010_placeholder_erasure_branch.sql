-- Placeholder on the erasure branch only: another branch owns migration 0010.
-- The coordinator deletes this file when merging (the real 0010 takes its place).
SELECT 1;
