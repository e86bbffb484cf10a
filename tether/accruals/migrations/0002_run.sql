-- Accounts, tariffs and invoices (loaded from CSV), and everything one run date owns.
-- A run is identified by its period end; every run_* table is keyed by it, so re-running a
-- period end deletes exactly that run's rows (estimated reads included) and nothing else.
CREATE SCHEMA IF NOT EXISTS acc;

CREATE TABLE acc.account (
    account_id     text PRIMARY KEY,
    nmi            text NOT NULL UNIQUE CHECK (length(nmi) = 10),
    customer_class text NOT NULL CHECK (customer_class IN ('residential', 'business')),
    jurisdiction   text NOT NULL CHECK (jurisdiction IN ('NSW', 'VIC', 'QLD', 'SA')),
    distributor    text NOT NULL,
    tariff_id      text NOT NULL,
    billing_cycle  text NOT NULL CHECK (billing_cycle IN ('monthly', 'quarterly')),
    meter_type     text NOT NULL CHECK (meter_type IN ('interval', 'basic')),
    loaded_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per tariff version (tariff_id, effective_from) and component band; a version applies
-- from effective_from until the next version of the same tariff.
CREATE TABLE acc.tariff_rate (
    tariff_id         text NOT NULL,
    effective_from    date NOT NULL,
    component         text NOT NULL CHECK (component IN
                        ('supply', 'flat', 'block', 'tou', 'controlled_load', 'feed_in')),
    band              text NOT NULL,
    days              text NOT NULL CHECK (days IN ('weekday', 'weekend', 'all')),
    start_time        time,
    end_time          time,          -- exclusive; 24:00 allowed
    block_kwh_per_day numeric CHECK (block_kwh_per_day > 0),
    rate_cents        numeric NOT NULL CHECK (rate_cents >= 0),
    unit              text NOT NULL CHECK (unit IN ('c/day', 'c/kWh')),
    loaded_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tariff_id, effective_from, component, band, days, start_time),
    CHECK ((component = 'supply') = (unit = 'c/day')),
    CHECK ((component = 'tou') = (start_time IS NOT NULL AND end_time IS NOT NULL)),
    CHECK (component = 'block' OR block_kwh_per_day IS NULL)
);

CREATE TABLE acc.invoice (
    invoice_id    text PRIMARY KEY,
    account_id    text NOT NULL REFERENCES acc.account (account_id),
    period_from   date NOT NULL,
    period_to     date NOT NULL CHECK (period_to >= period_from),
    issued_at     timestamptz NOT NULL,
    amount_ex_gst numeric NOT NULL,
    loaded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_account_idx ON acc.invoice (account_id, period_to);

-- The run: one row per period end. attempt counts re-runs (workflow id suffix).
CREATE TABLE acc.run (
    period_end   date PRIMARY KEY,
    as_at        timestamptz NOT NULL,
    attempt      int NOT NULL DEFAULT 1,
    workflow_id  text NOT NULL,
    status       text NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    chunks       int NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    totals       jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE acc.run_step (
    period_end  date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    step        text NOT NULL,
    ordinal     int NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    detail      jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (period_end, step)
);

-- The run's accounts as at the snapshot, with their unbilled window and chunk.
CREATE TABLE acc.run_account (
    period_end     date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    account_id     text NOT NULL,
    nmi            text NOT NULL,
    customer_class text NOT NULL,
    jurisdiction   text NOT NULL,
    distributor    text NOT NULL,
    tariff_id      text NOT NULL,
    meter_type     text NOT NULL,
    billed_to      date NOT NULL, -- last invoiced day (never billed: day before first data)
    never_billed   boolean NOT NULL,
    billed_past    boolean NOT NULL, -- invoiced beyond the period end: nothing unbilled
    chunk          int NOT NULL,
    PRIMARY KEY (period_end, account_id)
);
CREATE INDEX run_account_chunk_idx ON acc.run_account (period_end, chunk);

CREATE TABLE acc.run_chunk (
    period_end  date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    chunk       int NOT NULL,
    status      text NOT NULL CHECK (status IN ('queued', 'done')),
    accounts    int NOT NULL,
    failed      int NOT NULL DEFAULT 0,
    finished_at timestamptz,
    PRIMARY KEY (period_end, chunk)
);

-- Segment profiles: mean kWh per 30-min interval (market time) by month and day type.
CREATE TABLE acc.run_profile (
    period_end   date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    level        text NOT NULL CHECK (level IN ('distributor', 'jurisdiction', 'national')),
    area         text NOT NULL,       -- distributor name, state, or 'AU'
    customer_class text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('general', 'controlled', 'export')),
    month        int NOT NULL,
    weekend      boolean NOT NULL,
    contributors int NOT NULL,
    daily_kwh    float8 NOT NULL,     -- mean day total over the history window
    shape        float8[] NOT NULL,   -- 48 values
    PRIMARY KEY (period_end, level, area, customer_class, kind, month, weekend)
);

CREATE TABLE acc.run_fix_log (
    period_end date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    seq        int NOT NULL,
    segment    text NOT NULL,
    action     text NOT NULL,
    detail     text NOT NULL,
    PRIMARY KEY (period_end, seq)
);

CREATE TABLE acc.run_scalar (
    period_end   date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    account_id   text NOT NULL,
    kind         text NOT NULL,
    micro_scalar float8 NOT NULL,
    PRIMARY KEY (period_end, account_id, kind)
);

-- Estimated basic reads: the run's own, replaced on re-run (cascade with the run row).
CREATE TABLE acc.run_estimated_read (
    period_end  date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    account_id  text NOT NULL,
    nmi         text NOT NULL,
    suffix      text NOT NULL,
    from_date   date NOT NULL,
    read_date   date NOT NULL,
    kwh         float8 NOT NULL,
    method      text NOT NULL,
    PRIMARY KEY (period_end, account_id, suffix)
);

-- Estimated interval channel-days (written out as NEM12 with quality E).
CREATE TABLE acc.run_estimated_day (
    period_end date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    account_id text NOT NULL,
    nmi        text NOT NULL,
    suffix     text NOT NULL,
    day        date NOT NULL,
    vals       float8[] NOT NULL,
    PRIMARY KEY (period_end, nmi, suffix, day)
);

CREATE TABLE acc.run_result (
    period_end      date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    account_id      text NOT NULL,
    segment         text NOT NULL,
    unbilled_days   int NOT NULL,
    kwh_actual      numeric NOT NULL,
    kwh_estimated   numeric NOT NULL,
    amount_ex_gst   numeric NOT NULL,
    gst             numeric NOT NULL,
    estimate_method text NOT NULL,
    micro_scalar    numeric NOT NULL,
    flags           text NOT NULL,
    PRIMARY KEY (period_end, account_id)
);

CREATE TABLE acc.run_line (
    period_end    date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    account_id    text NOT NULL,
    month         date NOT NULL,
    charge_code   text NOT NULL,
    rate          numeric NOT NULL,
    quantity      numeric NOT NULL,
    unit          text NOT NULL,
    amount_ex_gst numeric NOT NULL,
    gst           numeric NOT NULL,
    PRIMARY KEY (period_end, account_id, month, charge_code, rate)
);

CREATE TABLE acc.run_failure (
    period_end date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    account_id text NOT NULL,
    step       text NOT NULL,
    reason     text NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (period_end, account_id)
);

CREATE TABLE acc.run_export (
    period_end date NOT NULL REFERENCES acc.run ON DELETE CASCADE,
    name       text NOT NULL,
    content    bytea NOT NULL,
    sha256     text NOT NULL,
    PRIMARY KEY (period_end, name)
);

-- 0 general consumption (E1, 11, ...), 1 controlled load (E2, 4x), 2 export (B1), -1 other.
CREATE FUNCTION acc.channel_kind(suffix text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN suffix LIKE 'B%' THEN 2
        WHEN suffix = 'E2' OR suffix LIKE '4%' THEN 1
        WHEN suffix LIKE 'E%' OR suffix ~ '^[0-9]' THEN 0
        ELSE -1 END
$$;
