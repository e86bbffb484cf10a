-- Superseded meter data versions, so that a run date re-run after a revision still sees the
-- data as at its as-at (docs/accruals.md, "Snapshot"). When an ingest replaces a channel-day or
-- a basic read with a newer version, the replaced row is kept here (same columns, plus when and
-- in which order it was replaced); an identical re-delivery replaces nothing and adds nothing.
-- Only the key index (it ends with the order): every revision of a channel-day pays its insert.

CREATE TABLE acc.channel_day_superseded (
    LIKE acc.channel_day INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    superseded_seq bigint GENERATED ALWAYS AS IDENTITY,
    superseded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channel_day_superseded_key_idx
    ON acc.channel_day_superseded (nmi, suffix, day, superseded_seq);

CREATE TABLE acc.basic_read_superseded (
    LIKE acc.basic_read INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    superseded_seq bigint GENERATED ALWAYS AS IDENTITY,
    superseded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX basic_read_superseded_key_idx
    ON acc.basic_read_superseded (nmi, suffix, register_id, current_read_at, superseded_seq);

-- Written by the merge statement itself through a statement-level trigger: its transition table
-- holds exactly the row versions the ON CONFLICT DO UPDATE replaced (the newest committed ones,
-- even when two ingests touch the same day at once), in one set-based insert. A CTE reading
-- acc.channel_day beside the upsert would see the statement's snapshot instead, and PostgreSQL
-- 15 has no RETURNING OLD.
CREATE FUNCTION acc.keep_superseded_channel_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO acc.channel_day_superseded (
        nmi, suffix, day, register_id, uom, interval_length, "values", qualities,
        quality_method, reason_code, reason_description, interval_methods, total,
        update_datetime, msats_load_datetime, file_id, line)
    SELECT nmi, suffix, day, register_id, uom, interval_length, "values", qualities,
           quality_method, reason_code, reason_description, interval_methods, total,
           update_datetime, msats_load_datetime, file_id, line
    FROM replaced;
    RETURN NULL;
END $$;

CREATE TRIGGER channel_day_keep_superseded AFTER UPDATE ON acc.channel_day
REFERENCING OLD TABLE AS replaced
FOR EACH STATEMENT EXECUTE FUNCTION acc.keep_superseded_channel_days();

CREATE FUNCTION acc.keep_superseded_basic_reads() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO acc.basic_read_superseded (
        nmi, register_id, suffix, meter_serial, direction, previous_read, previous_read_at,
        previous_quality, current_read, current_read_at, current_quality, current_reason_code,
        quantity, uom, next_scheduled_read, update_datetime, msats_load_datetime, source,
        file_id, line)
    SELECT nmi, register_id, suffix, meter_serial, direction, previous_read, previous_read_at,
           previous_quality, current_read, current_read_at, current_quality,
           current_reason_code, quantity, uom, next_scheduled_read, update_datetime,
           msats_load_datetime, source, file_id, line
    FROM replaced;
    RETURN NULL;
END $$;

CREATE TRIGGER basic_read_keep_superseded AFTER UPDATE ON acc.basic_read
REFERENCING OLD TABLE AS replaced
FOR EACH STATEMENT EXECUTE FUNCTION acc.keep_superseded_basic_reads();

-- The snapshot rule, in one place: meter data as at `as_at`. A version's time is its
-- UpdateDateTime, else its MSATS load time. Per key: the current row when its version time is at
-- or before as_at (the fast path: most keys were never replaced), else the latest replaced
-- version that is (none: the key did not exist yet). *_at is the whole snapshot; its two parts
-- are functions too, so an aggregate can read them apart (the UNION ALL has no column
-- statistics, and the planner then sorts where it would hash; queries.sql account_daily).
-- One SELECT each, STABLE, LANGUAGE sql: the planner inlines them, so a caller's filters (nmi,
-- day) reach both tables' indexes.
CREATE FUNCTION acc.channel_day_current_at(as_at timestamptz) RETURNS SETOF acc.channel_day
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT c.* FROM acc.channel_day c
    WHERE coalesce(c.update_datetime, c.msats_load_datetime) <= as_at
$$;

CREATE FUNCTION acc.channel_day_replaced_at(as_at timestamptz) RETURNS SETOF acc.channel_day
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.nmi, s.suffix, s.day, s.register_id, s.uom, s.interval_length, s."values",
           s.qualities, s.quality_method, s.reason_code, s.reason_description,
           s.interval_methods, s.total, s.update_datetime, s.msats_load_datetime, s.file_id,
           s.line
    FROM acc.channel_day_superseded s
    WHERE coalesce(s.update_datetime, s.msats_load_datetime) <= as_at
      AND NOT EXISTS (
          SELECT FROM acc.channel_day_current_at(as_at) c
          WHERE (c.nmi, c.suffix, c.day) = (s.nmi, s.suffix, s.day))
      AND NOT EXISTS (
          SELECT FROM acc.channel_day_superseded n
          WHERE (n.nmi, n.suffix, n.day) = (s.nmi, s.suffix, s.day)
            AND n.superseded_seq > s.superseded_seq
            AND coalesce(n.update_datetime, n.msats_load_datetime) <= as_at)
$$;

CREATE FUNCTION acc.channel_day_at(as_at timestamptz) RETURNS SETOF acc.channel_day
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT * FROM acc.channel_day_current_at(as_at)
    UNION ALL
    SELECT * FROM acc.channel_day_replaced_at(as_at)
$$;

CREATE FUNCTION acc.basic_read_current_at(as_at timestamptz) RETURNS SETOF acc.basic_read
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT b.* FROM acc.basic_read b
    WHERE coalesce(b.update_datetime, b.msats_load_datetime) <= as_at
$$;

CREATE FUNCTION acc.basic_read_replaced_at(as_at timestamptz) RETURNS SETOF acc.basic_read
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.nmi, s.register_id, s.suffix, s.meter_serial, s.direction, s.previous_read,
           s.previous_read_at, s.previous_quality, s.current_read, s.current_read_at,
           s.current_quality, s.current_reason_code, s.quantity, s.uom, s.next_scheduled_read,
           s.update_datetime, s.msats_load_datetime, s.source, s.file_id, s.line
    FROM acc.basic_read_superseded s
    WHERE coalesce(s.update_datetime, s.msats_load_datetime) <= as_at
      AND NOT EXISTS (
          SELECT FROM acc.basic_read_current_at(as_at) b
          WHERE (b.nmi, b.suffix, b.register_id, b.current_read_at)
              = (s.nmi, s.suffix, s.register_id, s.current_read_at))
      AND NOT EXISTS (
          SELECT FROM acc.basic_read_superseded n
          WHERE (n.nmi, n.suffix, n.register_id, n.current_read_at)
              = (s.nmi, s.suffix, s.register_id, s.current_read_at)
            AND n.superseded_seq > s.superseded_seq
            AND coalesce(n.update_datetime, n.msats_load_datetime) <= as_at)
$$;

CREATE FUNCTION acc.basic_read_at(as_at timestamptz) RETURNS SETOF acc.basic_read
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT * FROM acc.basic_read_current_at(as_at)
    UNION ALL
    SELECT * FROM acc.basic_read_replaced_at(as_at)
$$;
