-- A channel-day the run filled only in part (some intervals read, some missing: N or gaps) is
-- exported as a V day whose 400 rows tell the read intervals from the filled ones. read_methods
-- keeps that per half-hour: the QualityMethod the meter data gave the interval (A, E52, S14...),
-- NULL where the run filled it. The column is NULL for a whole-day estimate, the common case, so
-- those rows store nothing more.
ALTER TABLE acc.run_estimated_day ADD COLUMN read_methods text[];

-- NOT VALID: the rows already there are all NULL (nothing to scan for); new rows are checked.
ALTER TABLE acc.run_estimated_day ADD CONSTRAINT run_estimated_day_read_methods_check
    CHECK (read_methods IS NULL OR cardinality(read_methods) = cardinality(vals)) NOT VALID;
