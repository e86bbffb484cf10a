-- === meter data ===
-- Staging tables live for one file's transaction; the merge keeps, per NMI-channel-day (or
-- basic read), the newest UpdateDateTime (a later file wins a tie; a row delivered again
-- unchanged is not rewritten, so re-sent files cost no writes). A row the merge replaces is kept
-- in acc.*_superseded by a trigger of the same statement (0003), and a staged version older than
-- the one that won (the stored row, or a newer one of the same file) by the statement itself
-- (0004), so runs still see each as at their as-at.

-- name: md_create_stage
-- Without JIT in the file's transaction, whatever the caller's connection: the merges' estimated
-- cost (the per-row probes of their rarely run lost part) passes jit_above_cost, and compiling
-- them took about a second a file.
SET LOCAL jit = off;
CREATE TEMP TABLE md_stage_cd (
    -- fixed-width columns first, then text: the order of ingest_copy's binary rows
    day date, interval_length smallint, total float8, update_datetime timestamptz,
    msats_load_datetime timestamptz, line integer, "values" float8[], qualities text,
    nmi text, suffix text, register_id text, uom text, quality_method text, reason_code text,
    reason_description text, interval_methods jsonb
) ON COMMIT DROP;
CREATE TEMP TABLE md_stage_br (
    nmi text, register_id text, suffix text, meter_serial text, direction text,
    previous_read float8, previous_read_at timestamptz, previous_quality text,
    current_read float8, current_read_at timestamptz, current_quality text,
    current_reason_code text, quantity float8, uom text, next_scheduled_read date,
    update_datetime timestamptz, msats_load_datetime timestamptz, line integer
) ON COMMIT DROP

-- name: md_copy_channel_days
COPY md_stage_cd FROM STDIN (FORMAT binary)

-- name: md_copy_basic_reads
COPY md_stage_br FROM STDIN

-- name: md_copy_errors
COPY acc.meter_file_error (file_id, line, reason) FROM STDIN

-- name: md_insert_file
INSERT INTO acc.meter_file (file_name, format, status, rejected_reason, nmis, channel_days,
                            basic_reads, "values", error_count)
VALUES (%(file_name)s, %(format)s, %(status)s, %(rejected_reason)s, %(nmis)s,
        %(channel_days)s, %(basic_reads)s, %(values)s, %(error_count)s)
RETURNING file_id

-- name: md_merge_channel_days
-- Times arrive as -infinity for "none" (fixed-width binary COPY) and become NULL here.
-- merged: what the upsert stored (returned rows only: inserted or replaced). lost: every other
-- staged version, the file's winner refused as older or identical and a file's own older rows,
-- with the version that beat it (w: the row stored now, else the stored one, read as of the
-- statement's start: a key only a concurrent ingest stored has none, and its version is kept).
-- Kept: a version older than w (by UpdateDateTime as the merge, and by version time as the
-- snapshot), once per key and version time (the file's last row, as the merge would have kept),
-- unless identical to the stored one (the trigger keeps that when it is replaced) or to one
-- already kept. When every staged row was stored (a first load) the one-time filter on
-- %(staged)s skips lost entirely; otherwise only lost rows look up the stored and kept rows
-- (OFFSET 0: an index probe per row, never a join over the tables).
WITH merged AS (
    INSERT INTO acc.channel_day AS t (
        nmi, suffix, day, register_id, uom, interval_length, "values", qualities,
        quality_method, reason_code, reason_description, interval_methods, total,
        update_datetime, msats_load_datetime, file_id, line)
    SELECT DISTINCT ON (nmi, suffix, day)
           nmi, suffix, day, register_id, uom, interval_length, "values", qualities,
           quality_method, reason_code, reason_description, interval_methods, total,
           nullif(update_datetime, '-infinity'), nullif(msats_load_datetime, '-infinity'),
           %(file_id)s, line
    FROM md_stage_cd
    ORDER BY nmi, suffix, day, update_datetime DESC NULLS LAST, line DESC
    ON CONFLICT (nmi, suffix, day) DO UPDATE SET
        register_id = excluded.register_id, uom = excluded.uom,
        interval_length = excluded.interval_length, "values" = excluded."values",
        qualities = excluded.qualities, quality_method = excluded.quality_method,
        reason_code = excluded.reason_code, reason_description = excluded.reason_description,
        interval_methods = excluded.interval_methods, total = excluded.total,
        update_datetime = excluded.update_datetime,
        msats_load_datetime = excluded.msats_load_datetime,
        file_id = excluded.file_id, line = excluded.line
    WHERE coalesce(excluded.update_datetime, '-infinity')
            > coalesce(t.update_datetime, '-infinity')
       OR (coalesce(excluded.update_datetime, '-infinity')
             = coalesce(t.update_datetime, '-infinity')
           AND (excluded."values", excluded.qualities, excluded.quality_method, excluded.uom,
                excluded.register_id, excluded.reason_code, excluded.interval_methods)
               IS DISTINCT FROM (t."values", t.qualities, t.quality_method, t.uom,
                                 t.register_id, t.reason_code, t.interval_methods))
    RETURNING nmi, suffix, day, line, update_datetime, msats_load_datetime),
lost AS (
    SELECT DISTINCT ON (s.nmi, s.suffix, s.day, v.ud, v.ms)
           s.nmi, s.suffix, s.day, s.register_id, s.uom, s.interval_length, s."values",
           s.qualities, s.quality_method, s.reason_code, s.reason_description,
           s.interval_methods, s.total, v.ud, v.ms, s.line
    FROM md_stage_cd s
    LEFT JOIN merged m ON (m.nmi, m.suffix, m.day) = (s.nmi, s.suffix, s.day)
    CROSS JOIN LATERAL (SELECT nullif(s.update_datetime, '-infinity') AS ud,
                               nullif(s.msats_load_datetime, '-infinity') AS ms) v
    LEFT JOIN LATERAL (
        SELECT c.update_datetime AS ud, c.msats_load_datetime AS ms FROM acc.channel_day c
        WHERE m.nmi IS NULL AND (c.nmi, c.suffix, c.day) = (s.nmi, s.suffix, s.day)
        OFFSET 0) c ON true
    CROSS JOIN LATERAL (
        SELECT CASE WHEN m.nmi IS NULL THEN c.ud ELSE m.update_datetime END AS ud,
               CASE WHEN m.nmi IS NULL THEN c.ms ELSE m.msats_load_datetime END AS ms) w
    WHERE (SELECT count(*) FROM merged) < %(staged)s
      AND m.line IS DISTINCT FROM s.line
      AND coalesce(v.ud, v.ms) IS NOT NULL
      AND (coalesce(w.ud, w.ms) IS NULL
           OR (coalesce(v.ud, '-infinity') < coalesce(w.ud, '-infinity')
               AND coalesce(v.ud, v.ms) < coalesce(w.ud, w.ms)))
    ORDER BY s.nmi, s.suffix, s.day, v.ud, v.ms, s.line DESC)
INSERT INTO acc.channel_day_superseded (
    nmi, suffix, day, register_id, uom, interval_length, "values", qualities, quality_method,
    reason_code, reason_description, interval_methods, total, update_datetime,
    msats_load_datetime, file_id, line)
SELECT l.nmi, l.suffix, l.day, l.register_id, l.uom, l.interval_length, l."values", l.qualities,
       l.quality_method, l.reason_code, l.reason_description, l.interval_methods, l.total, l.ud,
       l.ms, %(file_id)s, l.line
FROM lost l
WHERE NOT EXISTS (
          SELECT FROM acc.channel_day k
          WHERE (k.nmi, k.suffix, k.day) = (l.nmi, l.suffix, l.day)
            AND (k.update_datetime, k.msats_load_datetime, k."values", k.qualities,
                 k.quality_method, k.uom, k.register_id, k.reason_code, k.interval_methods)
                IS NOT DISTINCT FROM (l.ud, l.ms, l."values", l.qualities, l.quality_method,
                                      l.uom, l.register_id, l.reason_code, l.interval_methods)
          OFFSET 0)
  AND NOT EXISTS (
          SELECT FROM acc.channel_day_superseded k
          WHERE (k.nmi, k.suffix, k.day) = (l.nmi, l.suffix, l.day)
            AND (k.update_datetime, k.msats_load_datetime, k."values", k.qualities,
                 k.quality_method, k.uom, k.register_id, k.reason_code, k.interval_methods)
                IS NOT DISTINCT FROM (l.ud, l.ms, l."values", l.qualities, l.quality_method,
                                      l.uom, l.register_id, l.reason_code, l.interval_methods)
          OFFSET 0)

-- name: md_merge_basic_reads
-- As md_merge_channel_days (merged, lost, kept), per NMI, suffix, register and read time.
WITH merged AS (
    INSERT INTO acc.basic_read AS t (
        nmi, register_id, suffix, meter_serial, direction, previous_read, previous_read_at,
        previous_quality, current_read, current_read_at, current_quality, current_reason_code,
        quantity, uom, next_scheduled_read, update_datetime, msats_load_datetime, source,
        file_id, line)
    SELECT DISTINCT ON (nmi, suffix, register_id, current_read_at)
           nmi, register_id, suffix, meter_serial, direction, previous_read, previous_read_at,
           previous_quality, current_read, current_read_at, current_quality,
           current_reason_code, quantity, uom, next_scheduled_read, update_datetime,
           msats_load_datetime, 'file', %(file_id)s, line
    FROM md_stage_br
    ORDER BY nmi, suffix, register_id, current_read_at, update_datetime DESC NULLS LAST,
             line DESC
    ON CONFLICT (nmi, suffix, register_id, current_read_at) DO UPDATE SET
        meter_serial = excluded.meter_serial, direction = excluded.direction,
        previous_read = excluded.previous_read, previous_read_at = excluded.previous_read_at,
        previous_quality = excluded.previous_quality, current_read = excluded.current_read,
        current_quality = excluded.current_quality,
        current_reason_code = excluded.current_reason_code, quantity = excluded.quantity,
        uom = excluded.uom, next_scheduled_read = excluded.next_scheduled_read,
        update_datetime = excluded.update_datetime,
        msats_load_datetime = excluded.msats_load_datetime,
        source = excluded.source, file_id = excluded.file_id, line = excluded.line
    WHERE coalesce(excluded.update_datetime, '-infinity')
            > coalesce(t.update_datetime, '-infinity')
       OR (coalesce(excluded.update_datetime, '-infinity')
             = coalesce(t.update_datetime, '-infinity')
           AND (excluded.meter_serial, excluded.direction, excluded.previous_read,
                excluded.previous_read_at, excluded.previous_quality, excluded.current_read,
                excluded.current_quality, excluded.current_reason_code, excluded.quantity,
                excluded.uom, excluded.next_scheduled_read, excluded.source)
               IS DISTINCT FROM (t.meter_serial, t.direction, t.previous_read,
                                 t.previous_read_at, t.previous_quality, t.current_read,
                                 t.current_quality, t.current_reason_code, t.quantity, t.uom,
                                 t.next_scheduled_read, t.source))
    RETURNING nmi, suffix, register_id, current_read_at, line, update_datetime,
              msats_load_datetime),
lost AS (
    SELECT DISTINCT ON (s.nmi, s.suffix, s.register_id, s.current_read_at, s.update_datetime,
                        s.msats_load_datetime) s.*
    FROM md_stage_br s
    LEFT JOIN merged m
        ON (m.nmi, m.suffix, m.register_id, m.current_read_at)
         = (s.nmi, s.suffix, s.register_id, s.current_read_at)
    LEFT JOIN LATERAL (
        SELECT b.update_datetime AS ud, b.msats_load_datetime AS ms FROM acc.basic_read b
        WHERE m.nmi IS NULL
          AND (b.nmi, b.suffix, b.register_id, b.current_read_at)
            = (s.nmi, s.suffix, s.register_id, s.current_read_at)
        OFFSET 0) b ON true
    CROSS JOIN LATERAL (
        SELECT CASE WHEN m.nmi IS NULL THEN b.ud ELSE m.update_datetime END AS ud,
               CASE WHEN m.nmi IS NULL THEN b.ms ELSE m.msats_load_datetime END AS ms) w
    WHERE (SELECT count(*) FROM merged) < %(staged)s
      AND m.line IS DISTINCT FROM s.line
      AND coalesce(s.update_datetime, s.msats_load_datetime) IS NOT NULL
      AND (coalesce(w.ud, w.ms) IS NULL
           OR (coalesce(s.update_datetime, '-infinity') < coalesce(w.ud, '-infinity')
               AND coalesce(s.update_datetime, s.msats_load_datetime)
                   < coalesce(w.ud, w.ms)))
    ORDER BY s.nmi, s.suffix, s.register_id, s.current_read_at, s.update_datetime,
             s.msats_load_datetime, s.line DESC)
INSERT INTO acc.basic_read_superseded (
    nmi, register_id, suffix, meter_serial, direction, previous_read, previous_read_at,
    previous_quality, current_read, current_read_at, current_quality, current_reason_code,
    quantity, uom, next_scheduled_read, update_datetime, msats_load_datetime, source, file_id,
    line)
SELECT l.nmi, l.register_id, l.suffix, l.meter_serial, l.direction, l.previous_read,
       l.previous_read_at, l.previous_quality, l.current_read, l.current_read_at,
       l.current_quality, l.current_reason_code, l.quantity, l.uom, l.next_scheduled_read,
       l.update_datetime, l.msats_load_datetime, 'file', %(file_id)s, l.line
FROM lost l
WHERE NOT EXISTS (
          SELECT FROM acc.basic_read k
          WHERE (k.nmi, k.suffix, k.register_id, k.current_read_at)
              = (l.nmi, l.suffix, l.register_id, l.current_read_at)
            AND (k.update_datetime, k.msats_load_datetime, k.meter_serial, k.direction,
                 k.previous_read, k.previous_read_at, k.previous_quality, k.current_read,
                 k.current_quality, k.current_reason_code, k.quantity, k.uom,
                 k.next_scheduled_read, k.source)
                IS NOT DISTINCT FROM (l.update_datetime, l.msats_load_datetime, l.meter_serial,
                    l.direction, l.previous_read, l.previous_read_at, l.previous_quality,
                    l.current_read, l.current_quality, l.current_reason_code, l.quantity, l.uom,
                    l.next_scheduled_read, 'file')
          OFFSET 0)
  AND NOT EXISTS (
          SELECT FROM acc.basic_read_superseded k
          WHERE (k.nmi, k.suffix, k.register_id, k.current_read_at)
              = (l.nmi, l.suffix, l.register_id, l.current_read_at)
            AND (k.update_datetime, k.msats_load_datetime, k.meter_serial, k.direction,
                 k.previous_read, k.previous_read_at, k.previous_quality, k.current_read,
                 k.current_quality, k.current_reason_code, k.quantity, k.uom,
                 k.next_scheduled_read, k.source)
                IS NOT DISTINCT FROM (l.update_datetime, l.msats_load_datetime, l.meter_serial,
                    l.direction, l.previous_read, l.previous_read_at, l.previous_quality,
                    l.current_read, l.current_quality, l.current_reason_code, l.quantity, l.uom,
                    l.next_scheduled_read, 'file')
          OFFSET 0)

-- name: md_channel_days_of_nmi
SELECT nmi, suffix, register_id, uom, interval_length, day, "values", qualities, quality_method,
       total, update_datetime
FROM acc.channel_day
WHERE nmi = %(nmi)s AND day BETWEEN %(date_from)s AND %(date_to)s
ORDER BY suffix, day

-- name: md_basic_reads_of_nmi
SELECT nmi, register_id, suffix, direction, previous_read_at, current_read_at, quantity, uom,
       current_quality, update_datetime, source
FROM acc.basic_read
-- the window's dates are market dates: AEST (UTC+10, no daylight saving, as Brisbane)
WHERE nmi = %(nmi)s
  AND current_read_at >= %(date_from)s::date::timestamp AT TIME ZONE 'Australia/Brisbane'
  AND previous_read_at < (%(date_to)s::date + 1)::timestamp AT TIME ZONE 'Australia/Brisbane'
ORDER BY suffix, register_id, current_read_at

-- === retention of superseded versions (0006, retention.py) ===
-- A purge records its horizon before it deletes, under this lock, exclusive. A run checks the
-- latest horizon under it, shared, in the transaction that starts its attempt (so a run that
-- starts while a purge begins either is seen by it as running, its as-at bounding the horizon,
-- or sees its horizon), and again in each pricing transaction: a resubmit is not marked running,
-- so the purge cannot hold back for it; instead its pricing waits for a purge's start, or sees
-- its horizon, and a purge starting meanwhile waits for the pricing to commit.

-- name: retention_lock
SELECT pg_advisory_xact_lock(hashtext('tether.accruals.superseded_purge'))

-- name: retention_lock_shared
SELECT pg_advisory_xact_lock_shared(hashtext('tether.accruals.superseded_purge'))

-- name: purged_before
SELECT max(horizon) AS horizon FROM acc.superseded_purge

-- name: purge_horizon
-- Versions kept before this went out of every snapshot as at it or later (a replacement's
-- version time is at or before its load). A run still under way holds it back to its as-at:
-- held_by names it (a run left 'running' by a dead workflow holds it back until re-run)
SELECT least(a.by_age, h.as_at) AS horizon, h.period_end AS held_by
FROM (SELECT now() - make_interval(days => %(days)s) AS by_age) a
LEFT JOIN LATERAL (
    SELECT r.period_end, r.as_at FROM acc.run r
    WHERE r.status = 'running' AND r.as_at < a.by_age
    ORDER BY r.as_at, r.period_end LIMIT 1) h ON true

-- name: purge_begin
INSERT INTO acc.superseded_purge (horizon, retention_days) VALUES (%(horizon)s, %(days)s)
RETURNING purge_id

-- name: purge_count
SELECT (SELECT count(*) FROM acc.channel_day_superseded
        WHERE superseded_at < %(horizon)s) AS channel_days,
       (SELECT count(*) FROM acc.basic_read_superseded
        WHERE superseded_at < %(horizon)s) AS basic_reads

-- name: purge_channel_days
-- One bounded batch (its own transaction): the oldest first, found by superseded_at's index.
DELETE FROM acc.channel_day_superseded WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM acc.channel_day_superseded WHERE superseded_at < %(horizon)s
    ORDER BY superseded_at LIMIT %(batch)s))

-- name: purge_basic_reads
DELETE FROM acc.basic_read_superseded WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM acc.basic_read_superseded WHERE superseded_at < %(horizon)s
    ORDER BY superseded_at LIMIT %(batch)s))

-- name: purge_end
UPDATE acc.superseded_purge
SET finished_at = now(), channel_days = %(channel_days)s, basic_reads = %(basic_reads)s
WHERE purge_id = %(purge_id)s

-- === run ===
-- Every run query is keyed by the period end (the run's identity). "Snapshot" = meter data as
-- at the run's as-at, read only through acc.channel_day_at / acc.basic_read_at (0003: per key,
-- the newest version whose UpdateDateTime, else MSATS load time, is at or before it, current
-- or superseded), invoices issued at or before it; accounts and tariffs are reference data
-- (current rows; tariffs by date).

-- name: run_get
SELECT period_end, as_at, attempt, workflow_id, status, chunks, started_at, finished_at, totals,
       settings
FROM acc.run WHERE period_end = %(period_end)s

-- name: run_list
SELECT period_end, as_at, attempt, workflow_id, status, chunks, started_at, finished_at, totals,
       settings
FROM acc.run ORDER BY period_end DESC

-- name: run_begin
-- A new attempt of a period end: the previous attempt's rows go (cascade), the run row stays;
-- settings: the estimation settings its submit fixed (every executor prices with them).
INSERT INTO acc.run (period_end, as_at, attempt, workflow_id, status, settings)
VALUES (%(period_end)s, %(as_at)s, %(attempt)s, %(workflow_id)s, 'running', %(settings)s)
ON CONFLICT (period_end) DO UPDATE SET as_at = excluded.as_at, attempt = excluded.attempt,
    workflow_id = excluded.workflow_id, status = 'running', chunks = 0, started_at = now(),
    finished_at = NULL, totals = '{}', settings = excluded.settings

-- name: run_clear
-- Deletes everything the run date owns except the run row (its own estimates included).
WITH s AS (DELETE FROM acc.run_step WHERE period_end = %(period_end)s),
     a AS (DELETE FROM acc.run_account WHERE period_end = %(period_end)s),
     c AS (DELETE FROM acc.run_chunk WHERE period_end = %(period_end)s),
     p AS (DELETE FROM acc.run_profile WHERE period_end = %(period_end)s),
     f AS (DELETE FROM acc.run_fix_log WHERE period_end = %(period_end)s),
     m AS (DELETE FROM acc.run_scalar WHERE period_end = %(period_end)s),
     r AS (DELETE FROM acc.run_estimated_read WHERE period_end = %(period_end)s),
     d AS (DELETE FROM acc.run_estimated_day WHERE period_end = %(period_end)s),
     x AS (DELETE FROM acc.run_result WHERE period_end = %(period_end)s),
     l AS (DELETE FROM acc.run_line WHERE period_end = %(period_end)s),
     e AS (DELETE FROM acc.run_failure WHERE period_end = %(period_end)s)
DELETE FROM acc.run_export WHERE period_end = %(period_end)s

-- name: step_begin
INSERT INTO acc.run_step (period_end, step, ordinal, status)
VALUES (%(period_end)s, %(step)s, %(ordinal)s, 'running')
ON CONFLICT (period_end, step) DO UPDATE SET status = 'running', started_at = now(),
    finished_at = NULL

-- name: step_end
UPDATE acc.run_step SET status = %(status)s, finished_at = now(), detail = %(detail)s
WHERE period_end = %(period_end)s AND step = %(step)s

-- name: run_steps
SELECT step, ordinal, status, started_at, finished_at, detail
FROM acc.run_step WHERE period_end = %(period_end)s ORDER BY ordinal

-- name: snapshot_accounts
-- The run's accounts and their billed-to dates as at the snapshot; chunks group accounts of
-- similar windows (billed-to order), so a chunk's day axis stays short. Never billed: the day
-- before the first meter data; no data up to the period end either: nothing to accrue, the
-- account is left out (counted: no_data). Set-based: one aggregate over the invoices, first
-- days only for the never-billed NMIs. Returns (accounts taken, accounts left out).
WITH billed AS MATERIALIZED (
    SELECT account_id, max(period_to) AS billed_to FROM acc.invoice
    WHERE issued_at <= %(as_at)s GROUP BY account_id),
fresh AS MATERIALIZED (
    SELECT a.nmi FROM acc.account a LEFT JOIN billed b USING (account_id)
    WHERE b.account_id IS NULL),
first_day AS (
    SELECT nmi, min(first) AS first FROM (
        SELECT c.nmi, min(c.day) AS first FROM acc.channel_day_at(%(as_at)s) c
        WHERE c.nmi IN (SELECT nmi FROM fresh)
        GROUP BY c.nmi
        UNION ALL
        SELECT b.nmi, min((b.previous_read_at AT TIME ZONE 'Australia/Brisbane')::date) + 1
        FROM acc.basic_read_at(%(as_at)s) b
        WHERE b.nmi IN (SELECT nmi FROM fresh) AND b.source = 'file'
        GROUP BY b.nmi) x
    GROUP BY nmi),
accounts AS MATERIALIZED (
    SELECT a.*, b.billed_to IS NULL AS never_billed, b.billed_to IS NULL
               AND coalesce(f.first > %(period_end)s::date, true) AS no_data,
           coalesce(b.billed_to, f.first - 1) AS billed_to
    FROM acc.account a
    LEFT JOIN billed b USING (account_id)
    LEFT JOIN first_day f ON f.nmi = a.nmi),
taken AS (
    INSERT INTO acc.run_account (period_end, account_id, nmi, customer_class, jurisdiction,
        distributor, tariff_id, meter_type, billed_to, never_billed, billed_past, chunk)
    SELECT %(period_end)s, account_id, nmi, customer_class, jurisdiction, distributor,
           tariff_id, meter_type, billed_to, never_billed, billed_to > %(period_end)s::date,
           (row_number() OVER (ORDER BY billed_to, account_id) - 1) / %(chunk_size)s
    FROM accounts WHERE NOT no_data
    RETURNING 1)
SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM accounts WHERE no_data)

-- name: make_chunks
INSERT INTO acc.run_chunk (period_end, chunk, status, accounts)
SELECT period_end, chunk, 'queued', count(*) FROM acc.run_account
WHERE period_end = %(period_end)s GROUP BY period_end, chunk

-- name: run_set_chunks
UPDATE acc.run SET chunks = (SELECT count(*) FROM acc.run_chunk
                             WHERE period_end = %(period_end)s)
WHERE period_end = %(period_end)s RETURNING chunks

-- name: run_accounts
SELECT account_id, nmi, customer_class, jurisdiction, distributor, tariff_id, meter_type,
       billed_to, never_billed, billed_past, chunk
FROM acc.run_account WHERE period_end = %(period_end)s ORDER BY account_id

-- name: run_accounts_of
SELECT account_id, nmi, customer_class, jurisdiction, distributor, tariff_id, meter_type,
       billed_to, never_billed, billed_past, chunk
FROM acc.run_account WHERE period_end = %(period_end)s AND account_id = ANY(%(ids)s)
ORDER BY account_id

-- name: profile_days
-- Channel-days in the profile window of the accounts at positions %(pos)s (account_id order)
-- with NMIs %(nmis)s; the caller picks at most MAX_CONTRIBUTORS NMIs per distributor segment
-- (the first by account id): enough for a mean shape, and the cost stays bounded however many
-- accounts there are. Every quality is sent: the caller keeps an account's day of a kind only
-- if each of the kind's channels read it, all actual (A/F), and adds the channels up. One row
-- per account, kind, interval length and channel, in that order, with the channel's suffix
-- (columns.fetch).
-- The LATERAL subquery (OFFSET 0: not flattened) keeps the plan an index lookup per NMI; as a
-- plain join the planner hashes the NMIs against every channel-day of the window instead.
SELECT ra.a, c.k,
       array_agg((c.day - %(d0)s::date)::int ORDER BY c.day),
       array_agg(c."values" ORDER BY c.day),
       string_agg(c.qualities, '' ORDER BY c.day),
       c.suffix
FROM unnest(%(nmis)s::text[], %(pos)s::int[]) AS ra (nmi, a)
CROSS JOIN LATERAL (
    SELECT acc.channel_kind(c.suffix) AS k, c.suffix, c.day, c."values", c.qualities,
           c.interval_length
    FROM acc.channel_day_at(%(as_at)s) c
    WHERE c.nmi = ra.nmi AND c.day BETWEEN %(d0)s AND %(period_end)s
      AND c.uom = 'kWh' AND acc.channel_kind(c.suffix) >= 0
    OFFSET 0) c
GROUP BY ra.a, c.k, c.interval_length, c.suffix
ORDER BY ra.a, c.k, c.interval_length, c.suffix

-- name: window_days
-- Channel-days of one chunk's accounts from d0 to the period end; a = index in the chunk list.
-- Half-hours are sent only where they are priced or split: accounts with a time-of-use tariff,
-- and days of mixed quality; any other day is sent as its total and its one quality letter.
-- One row per account, kind, day width and channel, with the channel's suffix (columns.fetch):
-- an account may read two channels of one kind (E1 and 11), each estimated under its own.
WITH ra AS MATERIALIZED (
    SELECT r.nmi, (u.pos - 1)::int AS a,
           EXISTS (SELECT 1 FROM acc.tariff_rate t WHERE t.tariff_id = r.tariff_id
                   AND t.component = 'tou') AS tou
    FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS u (account_id, pos)
    JOIN acc.run_account r ON r.account_id = u.account_id AND r.period_end = %(period_end)s),
days AS (
    SELECT ra.a, acc.channel_kind(c.suffix) AS k, c.suffix, c.day,
           CASE WHEN w.whole THEN c.interval_length ELSE 0 END AS width,
           CASE WHEN w.whole THEN c."values" ELSE ARRAY[c.total] END AS vals,
           CASE WHEN w.whole THEN c.qualities ELSE left(c.qualities, 1) END AS q
    FROM ra JOIN acc.channel_day_at(%(as_at)s) c ON c.nmi = ra.nmi
    CROSS JOIN LATERAL (SELECT (ra.tou AND acc.channel_kind(c.suffix) = 0)
                               OR c.qualities !~ '^(A+|E+|S+|F+)$' AS whole) w
    WHERE c.day BETWEEN %(d0)s AND %(period_end)s
      AND c.uom = 'kWh' AND acc.channel_kind(c.suffix) >= 0)
SELECT a, k, array_agg((day - %(d0)s::date)::int ORDER BY day), array_agg(vals ORDER BY day),
       string_agg(q, '' ORDER BY day), suffix
FROM days GROUP BY a, k, width, suffix

-- name: read_methods
-- The QualityMethod of each half-hour of the channel-days a run fills only in part (energy.py),
-- i = position in the arrays: an interval's own on a V day (its 400 range), else the day's; a
-- half-hour of shorter intervals takes its worst one, ranked as columns.py ranks the letters
-- (the first of equals). The nmi and day filters are constants so that they reach both tables'
-- indexes (a join clause does not enter channel_day_at's UNION ALL: it would scan them whole).
WITH p AS (
    SELECT u.i, u.nmi, u.suffix, u.day
    FROM unnest(%(nmi)s::text[], %(suffix)s::text[], %(day)s::date[]) WITH ORDINALITY
         AS u (nmi, suffix, day, i)),
c AS (
    SELECT p.i, 30 / c.interval_length AS step, c.interval_length AS len,
           c.quality_method AS qm, c.interval_methods AS ranges
    FROM p JOIN acc.channel_day_at(%(as_at)s) c
         ON c.nmi = p.nmi AND c.suffix = p.suffix AND c.day = p.day
    WHERE c.nmi = ANY(%(nmi)s::text[]) AND c.day BETWEEN %(first)s AND %(last)s
      AND c.uom = 'kWh'),
iv AS (
    SELECT DISTINCT ON (c.i, (n - 1) / c.step) c.i, (n - 1) / c.step AS h, m.m
    FROM c CROSS JOIN generate_series(1, 1440 / c.len) AS n
    LEFT JOIN jsonb_array_elements(c.ranges) AS r (e)
           ON n BETWEEN (r.e ->> 0)::int AND (r.e ->> 1)::int
    CROSS JOIN LATERAL (SELECT coalesce(r.e ->> 2, c.qm) AS m) m
    ORDER BY c.i, (n - 1) / c.step,
             CASE left(m.m, 1) WHEN 'A' THEN 0 WHEN 'F' THEN 1 WHEN 'E' THEN 2 WHEN 'S' THEN 2
                  ELSE 3 END DESC, n)
SELECT i, array_agg(m ORDER BY h) FROM iv GROUP BY i

-- name: last_suffixes
-- Per (NMI, kind) asked, i = position: the suffix the NMI's data of that kind used last before
-- d0 (its latest day; two channels that day: the lowest suffix). For the few accounts the run
-- estimates a kind of without any channel-day of it in the window (energy.py), so the estimate
-- goes out under the meter's own channel. A LATERAL lookup with a LIMIT (never flattened into
-- a join) keeps the plan an index scan per NMI, as in profile_days.
SELECT p.i, s.suffix
FROM unnest(%(nmi)s::text[], %(k)s::int[]) WITH ORDINALITY AS p (nmi, k, i)
CROSS JOIN LATERAL (
    SELECT c.suffix FROM acc.channel_day_at(%(as_at)s) c
    WHERE c.nmi = p.nmi AND c.day < %(d0)s AND c.uom = 'kWh'
      AND acc.channel_kind(c.suffix) = p.k
    ORDER BY c.day DESC, c.suffix COLLATE "C" LIMIT 1) s

-- name: delete_profiles
DELETE FROM acc.run_profile WHERE period_end = %(period_end)s

-- name: copy_profiles
COPY acc.run_profile (period_end, level, area, customer_class, kind, month, weekend,
    contributors, daily_kwh, shape) FROM STDIN

-- name: profiles
SELECT level, area, customer_class, kind, month, weekend, contributors, daily_kwh, shape
FROM acc.run_profile WHERE period_end = %(period_end)s
ORDER BY level, area, customer_class, kind, month, weekend

-- name: fix_profile
UPDATE acc.run_profile SET shape = %(shape)s
WHERE period_end = %(period_end)s AND level = %(level)s AND area = %(area)s
  AND customer_class = %(cls)s AND kind = %(kind)s AND month = %(month)s
  AND weekend = %(weekend)s

-- name: delete_fix_log
DELETE FROM acc.run_fix_log WHERE period_end = %(period_end)s

-- name: copy_fix_log
COPY acc.run_fix_log (period_end, seq, segment, action, detail) FROM STDIN

-- name: fix_log
SELECT seq, segment, action, detail FROM acc.run_fix_log
WHERE period_end = %(period_end)s ORDER BY seq

-- name: account_daily
-- Average daily kWh per account and kind over the history window (interval and basic meters),
-- of the accounts %(ids)s, a day's kWh being the sum of the kind's channels that day: an account
-- reading general on E1 and 11 has one day of both, not two days of one (docs/accruals.md).
-- The channel-days as at the snapshot are summed per channel in its two parts (current rows,
-- replaced versions) and then added up: over acc.channel_day_at's UNION ALL the planner has no
-- statistics and sorts (spilling) what it hashes over the table itself. A kind of one channel
-- (nearly every account) has as many days as channel-days; only a kind read on two or more
-- channels has its distinct days counted, an index lookup per such NMI (LATERAL, as in
-- profile_days). Basic meters: each register suffix's kWh per day of its read periods, summed
-- over the kind's suffixes.
WITH ch AS (
    SELECT account_id, kind, suffix, sum(kwh) AS kwh, sum(n) AS n FROM (
        SELECT ra.account_id, acc.channel_kind(c.suffix) AS kind, c.suffix, sum(c.total) AS kwh,
               count(*) AS n
        FROM acc.run_account ra JOIN acc.channel_day_current_at(%(as_at)s) c ON c.nmi = ra.nmi
        WHERE ra.period_end = %(period_end)s AND ra.account_id = ANY(%(ids)s)
          AND c.day BETWEEN %(d0)s AND %(period_end)s
          AND c.uom = 'kWh' AND acc.channel_kind(c.suffix) >= 0
        GROUP BY 1, 2, 3
        UNION ALL
        SELECT ra.account_id, acc.channel_kind(c.suffix), c.suffix, sum(c.total), count(*)
        FROM acc.run_account ra JOIN acc.channel_day_replaced_at(%(as_at)s) c ON c.nmi = ra.nmi
        WHERE ra.period_end = %(period_end)s AND ra.account_id = ANY(%(ids)s)
          AND c.day BETWEEN %(d0)s AND %(period_end)s
          AND c.uom = 'kWh' AND acc.channel_kind(c.suffix) >= 0
        GROUP BY 1, 2, 3) parts
    GROUP BY 1, 2, 3),
kinds AS (
    SELECT account_id, kind, sum(kwh) AS kwh, sum(n) AS n, count(*) AS channels
    FROM ch GROUP BY 1, 2),
days AS (
    SELECT k.account_id, k.kind, d.n
    FROM kinds k
    JOIN acc.run_account ra ON ra.period_end = %(period_end)s AND ra.account_id = k.account_id
    CROSS JOIN LATERAL (
        SELECT count(DISTINCT c.day) AS n FROM acc.channel_day_at(%(as_at)s) c
        WHERE c.nmi = ra.nmi AND c.day BETWEEN %(d0)s AND %(period_end)s
          AND c.uom = 'kWh' AND acc.channel_kind(c.suffix) = k.kind) d
    WHERE k.channels > 1)
SELECT account_id, kind, avg_kwh FROM (
    SELECT k.account_id, k.kind, k.kwh / coalesce(d.n, k.n)::float8 AS avg_kwh
    FROM kinds k LEFT JOIN days d ON d.account_id = k.account_id AND d.kind = k.kind
    UNION ALL
    SELECT account_id, kind, sum(daily) FROM (
        SELECT ra.account_id,
               CASE WHEN b.direction = 'I' THEN 2 ELSE acc.channel_kind(b.suffix) END AS kind,
               sum(b.quantity) / greatest(sum(extract(epoch FROM
                   b.current_read_at - b.previous_read_at) / 86400), 1) AS daily
        FROM acc.run_account ra JOIN acc.basic_read_at(%(as_at)s) b ON b.nmi = ra.nmi
        WHERE ra.period_end = %(period_end)s AND ra.account_id = ANY(%(ids)s)
          AND b.current_read_at >= %(d0)s::date
          AND b.current_read_at <= %(period_end)s::date + 1 AND b.uom = 'kWh'
          AND b.source = 'file'
        GROUP BY 1, 2, b.suffix) r
    GROUP BY 1, 2) x
WHERE kind >= 0
ORDER BY account_id, kind

-- name: delete_scalars
DELETE FROM acc.run_scalar WHERE period_end = %(period_end)s

-- name: copy_scalars
COPY acc.run_scalar (period_end, account_id, kind, micro_scalar) FROM STDIN

-- name: scalars
SELECT account_id, kind, micro_scalar FROM acc.run_scalar
WHERE period_end = %(period_end)s AND account_id = ANY(%(ids)s)

-- name: basic_reads
-- Basic reads of the given accounts as at the snapshot, market-time dates.
SELECT ra.account_id, b.suffix,
       CASE WHEN b.direction = 'I' THEN 2 ELSE acc.channel_kind(b.suffix) END AS kind,
       (b.previous_read_at AT TIME ZONE 'Australia/Brisbane')::date AS prev_day,
       (b.current_read_at AT TIME ZONE 'Australia/Brisbane')::date AS cur_day,
       b.quantity, b.current_quality
FROM acc.run_account ra JOIN acc.basic_read_at(%(as_at)s) b ON b.nmi = ra.nmi
WHERE ra.period_end = %(period_end)s AND ra.account_id = ANY(%(ids)s)
  AND b.uom = 'kWh' AND b.source = 'file'
ORDER BY ra.account_id, b.suffix, b.current_read_at

-- name: tariff_rates
-- Times as half-hour slots (0..48; 24:00 is 48); the loader admits only half-hours.
SELECT tariff_id, effective_from, component, band, days,
       (extract(epoch FROM start_time) / 1800)::int AS start_slot,
       (extract(epoch FROM end_time) / 1800)::int AS end_slot, block_kwh_per_day, rate_cents
FROM acc.tariff_rate ORDER BY tariff_id, effective_from, component, band, days, start_time

-- name: chunk_ids
SELECT account_id FROM acc.run_account
WHERE period_end = %(period_end)s AND chunk = %(chunk)s ORDER BY account_id

-- name: failed_ids
SELECT account_id FROM acc.run_failure WHERE period_end = %(period_end)s ORDER BY account_id

-- name: clear_accounts
WITH r AS (DELETE FROM acc.run_result WHERE period_end = %(period_end)s
             AND account_id = ANY(%(ids)s)),
     l AS (DELETE FROM acc.run_line WHERE period_end = %(period_end)s
             AND account_id = ANY(%(ids)s)),
     e AS (DELETE FROM acc.run_estimated_read WHERE period_end = %(period_end)s
             AND account_id = ANY(%(ids)s)),
     d AS (DELETE FROM acc.run_estimated_day WHERE period_end = %(period_end)s
             AND account_id = ANY(%(ids)s))
DELETE FROM acc.run_failure WHERE period_end = %(period_end)s AND account_id = ANY(%(ids)s)

-- name: copy_results
COPY acc.run_result (period_end, account_id, segment, unbilled_days, kwh_actual, kwh_estimated,
    amount_ex_gst, gst, estimate_method, micro_scalar, flags) FROM STDIN

-- name: copy_lines
COPY acc.run_line (period_end, account_id, month, charge_code, rate, quantity, unit,
    amount_ex_gst, gst) FROM STDIN

-- name: copy_estimated_reads
COPY acc.run_estimated_read (period_end, account_id, nmi, suffix, from_date, read_date, kwh,
    method) FROM STDIN

-- name: copy_estimated_days
COPY acc.run_estimated_day (period_end, account_id, nmi, suffix, day, vals, read_methods)
FROM STDIN

-- name: copy_failures
COPY acc.run_failure (period_end, account_id, step, reason) FROM STDIN

-- name: chunk_done
UPDATE acc.run_chunk SET status = 'done', failed = %(failed)s, finished_at = now()
WHERE period_end = %(period_end)s AND chunk = %(chunk)s

-- name: chunk_progress
SELECT count(*) FILTER (WHERE status = 'done') AS done, count(*) AS total,
       coalesce(sum(accounts) FILTER (WHERE status = 'done'), 0) AS accounts_done,
       coalesce(sum(accounts), 0) AS accounts
FROM acc.run_chunk WHERE period_end = %(period_end)s

-- name: summary_rows
SELECT r.account_id, a.nmi, a.jurisdiction, r.segment, a.tariff_id, a.billed_to,
       r.unbilled_days, r.kwh_actual, r.kwh_estimated, r.amount_ex_gst, r.gst,
       r.estimate_method, r.micro_scalar, r.flags
FROM acc.run_result r JOIN acc.run_account a USING (period_end, account_id)
WHERE r.period_end = %(period_end)s ORDER BY r.account_id

-- name: line_rows
SELECT account_id, month, charge_code, quantity, unit, rate, amount_ex_gst, gst
FROM acc.run_line WHERE period_end = %(period_end)s
ORDER BY account_id, month, charge_code, rate

-- name: estimated_days
SELECT nmi, suffix, day, vals, read_methods FROM acc.run_estimated_day
WHERE period_end = %(period_end)s ORDER BY nmi, suffix, day

-- name: run_totals
SELECT count(*) AS accounts, coalesce(sum(amount_ex_gst), 0) AS amount_ex_gst,
       coalesce(sum(gst), 0) AS gst, coalesce(sum(kwh_actual), 0) AS kwh_actual,
       coalesce(sum(kwh_estimated), 0) AS kwh_estimated,
       (SELECT count(*) FROM acc.run_failure f WHERE f.period_end = %(period_end)s) AS failures,
       (SELECT count(*) FROM acc.run_line l WHERE l.period_end = %(period_end)s) AS line_items,
       (SELECT count(*) FROM acc.run_estimated_read e
         WHERE e.period_end = %(period_end)s) AS estimated_reads,
       (SELECT count(*) FROM acc.run_estimated_day e
         WHERE e.period_end = %(period_end)s) AS estimated_days
FROM acc.run_result WHERE period_end = %(period_end)s

-- name: failures
SELECT account_id, step, reason FROM acc.run_failure
WHERE period_end = %(period_end)s ORDER BY account_id

-- name: put_export
INSERT INTO acc.run_export (period_end, name, content, sha256)
VALUES (%(period_end)s, %(name)s, %(content)s, %(sha256)s)
ON CONFLICT (period_end, name) DO UPDATE SET content = excluded.content, sha256 = excluded.sha256

-- name: exports
SELECT name, sha256, length(content) AS size FROM acc.run_export
WHERE period_end = %(period_end)s ORDER BY name

-- name: export_content
SELECT content FROM acc.run_export WHERE period_end = %(period_end)s AND name = %(name)s

-- name: run_failed
-- A stage raised: the attempt is over (the next submit starts a new one).
UPDATE acc.run SET status = 'failed', finished_at = now() WHERE period_end = %(period_end)s

-- name: run_finish
UPDATE acc.run SET status = %(status)s, finished_at = now(), totals = %(totals)s
WHERE period_end = %(period_end)s

-- name: run_metrics
SELECT r.period_end, r.status,
       (SELECT count(*) FROM acc.run_chunk c WHERE c.period_end = r.period_end
          AND c.status = 'done') AS done,
       (SELECT count(*) FROM acc.run_chunk c WHERE c.period_end = r.period_end) AS total,
       (SELECT count(*) FROM acc.run_failure f WHERE f.period_end = r.period_end) AS failures
FROM acc.run r ORDER BY r.period_end DESC LIMIT 12
