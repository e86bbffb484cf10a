-- Meter data: one row per NMI-channel-day (values as an array, not a row per interval), NEM13
-- basic reads, and a log of every ingested file with its quarantined rows.
CREATE SCHEMA IF NOT EXISTS acc;

CREATE TABLE acc.meter_file (
    file_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_name       text NOT NULL,
    format          text CHECK (format IN ('NEM12', 'NEM13')),
    status          text NOT NULL CHECK (status IN ('loaded', 'partial', 'rejected')),
    rejected_reason text,
    nmis            integer NOT NULL DEFAULT 0,
    channel_days    integer NOT NULL DEFAULT 0,
    basic_reads     integer NOT NULL DEFAULT 0,
    "values"        bigint NOT NULL DEFAULT 0,
    error_count     integer NOT NULL DEFAULT 0,
    ingested_at     timestamptz NOT NULL DEFAULT now()
);

-- Quarantined rows (and, for a rejected file, the fatal one): file, line and reason.
CREATE TABLE acc.meter_file_error (
    file_id bigint NOT NULL REFERENCES acc.meter_file (file_id) ON DELETE CASCADE,
    line    integer NOT NULL,
    reason  text NOT NULL
);
CREATE INDEX meter_file_error_file_idx ON acc.meter_file_error (file_id, line);

-- values are kWh for energy channels (Wh and MWh converted), else in uom (e.g. kVArh).
-- qualities: one flag per interval (A E S F N), V days resolved by their 400 rows, whose ranges
-- are kept in interval_methods. day is the market-time (AEST) interval date.
CREATE TABLE acc.channel_day (
    nmi                 text NOT NULL,
    suffix              text NOT NULL,
    day                 date NOT NULL,
    register_id         text NOT NULL,
    uom                 text NOT NULL,
    interval_length     smallint NOT NULL CHECK (interval_length IN (5, 15, 30)),
    "values"            float8[] NOT NULL
                        CHECK (cardinality("values") = 1440 / interval_length),
    qualities           text NOT NULL CHECK (length(qualities) = 1440 / interval_length),
    quality_method      text NOT NULL,
    reason_code         text,
    reason_description  text,
    interval_methods    jsonb,
    total               float8 NOT NULL,
    update_datetime     timestamptz,
    msats_load_datetime timestamptz,
    file_id             bigint NOT NULL,  -- acc.meter_file; no FK: its per-row check was a
    line                integer NOT NULL, -- third of the merge time (bench/RESULTS.md)
    PRIMARY KEY (nmi, suffix, day)
);
CREATE INDEX channel_day_day_idx ON acc.channel_day (day);

-- NEM13 accumulation reads; quantity in kWh for energy units. source is 'file' for ingested
-- reads; other writers (the run's estimated reads) may add their own tags.
CREATE TABLE acc.basic_read (
    nmi                     text NOT NULL,
    register_id             text NOT NULL,
    suffix                  text NOT NULL,
    meter_serial            text,
    direction               text NOT NULL CHECK (direction IN ('E', 'I')),
    previous_read           float8 NOT NULL,
    previous_read_at        timestamptz NOT NULL,
    previous_quality        text NOT NULL,
    current_read            float8 NOT NULL,
    current_read_at         timestamptz NOT NULL,
    current_quality         text NOT NULL,
    current_reason_code     text,
    quantity                float8 NOT NULL,
    uom                     text NOT NULL,
    next_scheduled_read     date,
    update_datetime         timestamptz,
    msats_load_datetime     timestamptz,
    source                  text NOT NULL DEFAULT 'file',
    file_id                 bigint,  -- acc.meter_file (no FK, as for channel_day)
    line                    integer,
    PRIMARY KEY (nmi, suffix, register_id, current_read_at)
);
