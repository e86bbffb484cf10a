-- Retention of superseded versions (docs/accruals.md, "Retention").
--
-- `tether accruals purge-superseded` deletes, in bounded batches, the versions kept
-- before its horizon (superseded_at: when a version was replaced, or found older than the
-- stored one). This index finds each batch without reading the rest; superseded_at is now() at
-- insert, so its entries are appended at the right edge (cheap for the ingest that pays it).
CREATE INDEX channel_day_superseded_at_idx ON acc.channel_day_superseded (superseded_at);
CREATE INDEX basic_read_superseded_at_idx ON acc.basic_read_superseded (superseded_at);

-- One row per purge. A snapshot as at a time before the latest horizon may have lost versions,
-- so a run (or re-run) with such an as-at is refused (tether/accruals/retention.py).
CREATE TABLE acc.superseded_purge (
    purge_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    horizon        timestamptz NOT NULL,
    retention_days int NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    channel_days   bigint NOT NULL DEFAULT 0,
    basic_reads    bigint NOT NULL DEFAULT 0
);
