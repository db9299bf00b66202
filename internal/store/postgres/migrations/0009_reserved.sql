-- Version 9 belongs to another branch merged beside billing (0010): this
-- file only keeps the versions without a gap on the billing branch and
-- is dropped when the two are merged.
SELECT 1;
