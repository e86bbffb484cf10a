-- The estimation settings a run was made with (TETHER_ACCRUALS_PROFILE_DAYS, HISTORY_DAYS,
-- MIN_CONTRIBUTORS, MAX_CONTRIBUTORS, SCALAR_MIN, SCALAR_MAX), fixed when it is submitted.
-- Every executor prices with these, not with its own environment, and a re-run of the run
-- date reuses them, so the figures do not depend on which process ran a step or a chunk.
-- NULL: a run from before this column; its next attempt stores the submitter's settings.
ALTER TABLE acc.run ADD COLUMN settings jsonb;
