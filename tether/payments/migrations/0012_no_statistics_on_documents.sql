-- ANALYZE skips the columns that hold documents: no statement filters, joins, groups or sorts by
-- them, so the planner never reads their statistics.
--
-- Autoanalyze samples 30,000 rows of a table and, for each column, sorts the sample's values
-- to find the most common ones and a histogram. For a jsonb body, an order's details or a
-- candidate's data that is a sort of 30,000 documents compared byte by byte: 0.4-0.5 s of one
-- core per table (pay.status, pay.candidate, pay.utbetaling), about 1.5 s for the pay tables
-- together each time they grow by a tenth. At 1,000 messages/s that came every 20 s or so and
-- took a tenth of a 2-core machine for some seconds: the intake's p99 rose from about 40 to
-- 100-190 ms in those seconds (bench/RESULTS.md). The key, state and time columns keep theirs.
ALTER TABLE pay.sak ALTER COLUMN active_uids SET STATISTICS 0;

ALTER TABLE pay.utbetaling
    ALTER COLUMN periods SET STATISTICS 0,
    ALTER COLUMN last_line SET STATISTICS 0,
    ALTER COLUMN data SET STATISTICS 0;

ALTER TABLE pay.candidate
    ALTER COLUMN periods SET STATISTICS 0,
    ALTER COLUMN last_line SET STATISTICS 0,
    ALTER COLUMN data SET STATISTICS 0;

ALTER TABLE pay.inbound ALTER COLUMN body SET STATISTICS 0;

ALTER TABLE pay.oppdrag
    ALTER COLUMN xml SET STATISTICS 0,
    ALTER COLUMN uids SET STATISTICS 0,
    ALTER COLUMN details SET STATISTICS 0,
    ALTER COLUMN last_error SET STATISTICS 0,
    ALTER COLUMN receipt_text SET STATISTICS 0;

ALTER TABLE pay.status ALTER COLUMN body SET STATISTICS 0;

ALTER TABLE pay.stray_receipt ALTER COLUMN body SET STATISTICS 0;
