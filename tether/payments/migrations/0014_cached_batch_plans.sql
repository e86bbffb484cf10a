-- The hot batch statements are plpgsql functions whose plans are made once per session: each
-- table is reached only by key, so the one plan is right for a table of any size, analyzed or not.
--
-- Planned for each call (migration 0006, repository.CACHE_PLANS), the intake and receipt
-- batches spent over a quarter of their statements' time planning (1.5 ms of 5.3 a batch of 11
-- messages and its receipts, 20,000 cases), and more parsing them; with the plans kept the
-- backend runs 20.8M instructions a batch instead of 29.1M (a batch of one 3.6M instead of
-- 10.1M, of 40 72.1M instead of 81.2M: bench/payments_statement_cost.py under callgrind).
-- A cached plan was not safe: made while a table was small it scanned the table whole, and
-- kept doing so as the table grew, until autovacuum next analyzed it (1.8 ms a message against
-- 0.15: with seq scans disabled, a scan of the whole case index on its second column,
-- fagsystem = $1, planned on an empty table never analyzed, materialized and joined).
-- So here every read of a pay table is a probe of an index by its leading columns:
-- - a case's state comes from the lock itself (INSERT .. ON CONFLICT DO UPDATE .. RETURNING:
--   the row as locked, the same a read after the lock gives), never from a join with pay.sak;
-- - a table joined with a batch is also restricted by "key = ANY(the batch's keys)" on its
--   index's leading column: no path over that table lacks it;
-- - a lookup per row is a correlated subquery or a LATERAL fenced with OFFSET 0;
-- and each function runs with enable_seqscan off: for a tiny table a sequential scan is the
-- cheaper plan, and that plan would then be kept. force_generic_plan: the one plan at once (auto
-- compares it, after five custom plans, to their cost, and with its guessed row counts may keep
-- planning for ever). tests/payments/test_batch_plans.py counts what the kept plans read.

-- 1. The intake batch: the cases' rows come back from the lock (a pay.sak[]), the messages are
-- logged and answered against them; the same rows as 0005 for the same input.
CREATE OR REPLACE FUNCTION pay.intake_batch(p_fagsystem text, p_keys text[], p_hashes text[],
                                            p_saks text[], p_bodies bytea[])
RETURNS TABLE (ord int, logged boolean, seen_hash text, active_uids text[],
               has_order_before boolean, inflight_order uuid, confirmed jsonb)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    cases pay.sak[];
    inserted text[];
BEGIN
    WITH locked AS (
        INSERT INTO pay.sak AS q (fagsystem, sak_id)
        SELECT DISTINCT p_fagsystem, x FROM unnest(p_saks) AS x WHERE x IS NOT NULL ORDER BY 2
        ON CONFLICT (sak_id, fagsystem) DO UPDATE SET updated_at = q.updated_at
        RETURNING q
    )
    SELECT coalesce(array_agg(locked.q), '{}') INTO cases FROM locked;

    WITH logged AS (
        INSERT INTO pay.inbound (original_key, content_hash, fagsystem, sak_id, body, dryrun,
                                 state)
        SELECT m.k, m.h, CASE WHEN m.s IS NULL THEN NULL ELSE p_fagsystem END, m.s, m.b, false,
               CASE WHEN c.inflight_order IS NOT NULL THEN 'waiting' ELSE 'done' END
        FROM unnest(p_keys, p_hashes, p_saks, p_bodies) WITH ORDINALITY AS m(k, h, s, b, n)
        LEFT JOIN unnest(cases) AS c ON c.sak_id = m.s
        ORDER BY m.n
        ON CONFLICT (original_key) DO NOTHING
        RETURNING original_key
    )
    SELECT coalesce(array_agg(logged.original_key), '{}') INTO inserted FROM logged;

    RETURN QUERY
    WITH m AS (
        SELECT x.k, x.s, x.n::int AS n,
               x.n = min(x.n) OVER (PARTITION BY x.k) AS first_of_key,
               x.s IS NOT NULL AND x.n = min(x.n) OVER (PARTITION BY x.s) AS first_of_case
        FROM unnest(p_keys, p_saks) WITH ORDINALITY AS x(k, s, n)
    )
    SELECT m.n,
           m.first_of_key AND m.k = ANY(inserted),
           CASE WHEN m.first_of_key AND m.k = ANY(inserted) THEN NULL
                ELSE (SELECT i.content_hash FROM pay.inbound i WHERE i.original_key = m.k) END,
           CASE WHEN m.first_of_case THEN c.active_uids END,
           coalesce(c.has_order_before, false),
           c.inflight_order,
           CASE WHEN NOT m.first_of_case THEN NULL
                WHEN c.inflight_order IS NULL AND c.has_order_before THEN
                    (SELECT coalesce(jsonb_object_agg(u.uid, u.data), '{}'::jsonb)
                     FROM pay.utbetaling u
                     WHERE u.sak_id = m.s AND u.fagsystem = p_fagsystem)
                ELSE '{}'::jsonb END
    FROM m LEFT JOIN unnest(cases) AS c ON c.sak_id = m.s
    ORDER BY m.n;
END
$$;

-- The batch of one: its statements reach their tables by key already (ON CONFLICT, unique keys);
-- its plans were cached with seq scans allowed, so a small table's scan was kept as it grew.
ALTER FUNCTION pay.intake_one(text, text, text, text, bytea)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION pay.intake_one(text, text, text, text, bytea) SET enable_seqscan = off;

-- 2. What an intake batch (or a receipt batch's drain) planned: queries.sql's store_intake of
-- before, its cases restricted by their keys' array (it was a semi-join with the unnested keys).
CREATE FUNCTION pay.store_intake(p_fagsystem text, p_orders jsonb, p_sak_ids text[],
                                 p_statuses jsonb, p_waiting text[], p_claim_s float8)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    WITH o AS (
        SELECT * FROM jsonb_to_recordset(p_orders)
            AS o(ord int, id uuid, sak_id text, original_key text, xml text, sha256 text,
                 uids text[], details jsonb, candidates jsonb)
    ), oppdrag AS (
        INSERT INTO pay.oppdrag (id, fagsystem, sak_id, original_key, xml, sha256, uids, details,
                                 state, message_id, send_due_at, claimed_until, send_attempts)
        SELECT o.id, p_fagsystem, o.sak_id, o.original_key, o.xml, o.sha256, o.uids, o.details,
               'MOTTATT', o.id::text, now(), now() + make_interval(secs => p_claim_s),
               CASE WHEN p_claim_s IS NULL THEN 0 ELSE 1 END
        FROM o
        RETURNING id
    ), candidates AS (
        -- a candidate comes as its entry's data (ConfirmedUtbetaling.to_json); the other
        -- columns are parts of it (the last line as a period's JSON), not sent twice
        INSERT INTO pay.candidate (oppdrag_id, uid, klassekode, periods, last_line_id,
                                   last_line, data)
        SELECT o.id, d->>'uid', d->>'klassekode', d->'perioder', d->>'lastLineId',
               jsonb_build_object('fom', d->'lastLineFom', 'tom', d->'lastLineTom',
                                  'beløp', d->'lastLineSats',
                                  'vedtakssats', d->'lastLineVedtakssats'),
               d
        FROM o, jsonb_array_elements(o.candidates) AS d
        WHERE o.id IN (SELECT oppdrag.id FROM oppdrag)
    ), inflight AS (
        UPDATE pay.sak s SET inflight_order = o.id, updated_at = now()
        FROM o WHERE s.sak_id = ANY(p_sak_ids) AND s.fagsystem = p_fagsystem
                 AND s.sak_id = o.sak_id
    ), waiting AS (
        UPDATE pay.inbound i SET state = 'waiting' WHERE i.original_key = ANY(p_waiting)
    )
    INSERT INTO pay.status (original_key, status, body)
    SELECT planned.original_key, planned.status, planned.body FROM (
        SELECT o.ord, o.original_key, 'MOTTATT' AS status,
               pay.status_body('MOTTATT', o.details, NULL) AS body
        FROM o
        UNION ALL
        SELECT s.ord, s.original_key, s.status, s.body
        FROM jsonb_to_recordset(p_statuses)
             AS s(ord int, original_key text, status text, body jsonb)
    ) planned
    ORDER BY planned.ord;
END
$$;

-- 3. A receipt batch's locks: its orders in id order, then their cases in key order (two
-- calls sent together, as the two statements were). The cases are restricted by their sak ids'
-- array (an init plan), so none is reached but by its key.
CREATE FUNCTION pay.lock_orders(p_ids uuid[])
RETURNS TABLE (id uuid, fagsystem text, sak_id text, original_key text, uids text[],
               state text)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    SELECT o.id, o.fagsystem, o.sak_id, o.original_key, o.uids, o.state
    FROM pay.oppdrag o WHERE o.id = ANY(p_ids) ORDER BY o.id FOR UPDATE;
END
$$;

CREATE FUNCTION pay.lock_cases(p_ids uuid[])
RETURNS TABLE (fagsystem text, sak_id text, active_uids text[], has_order_before boolean,
               inflight_order uuid)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    SELECT s.fagsystem, s.sak_id, s.active_uids, s.has_order_before, s.inflight_order
    FROM pay.sak s
    WHERE s.sak_id = ANY(ARRAY(SELECT o.sak_id FROM pay.oppdrag o WHERE o.id = ANY(p_ids)))
      AND (s.sak_id, s.fagsystem) IN (SELECT o.sak_id, o.fagsystem FROM pay.oppdrag o
                                      WHERE o.id = ANY(p_ids))
    ORDER BY s.fagsystem, s.sak_id
    FOR UPDATE OF s;
END
$$;

-- 4. A receipt batch's bookings: queries.sql's book_receipts of before, its cases restricted by
-- their keys' array (it was a semi-join with the unnested keys). Returns the free cases a
-- message may wait on.
CREATE FUNCTION pay.book_receipts(p_receipts jsonb, p_ids uuid[], p_sak_ids text[],
                                  p_free_sak_ids text[])
RETURNS TABLE (fagsystem text, sak_id text)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH r AS (
        SELECT * FROM jsonb_to_recordset(p_receipts)
            AS r(ord int, id uuid, ok boolean, fagsystem text, sak_id text, uids text[],
                 state text, code text, text text, original_key text, hos boolean, error jsonb)
    ), confirmed AS (
        INSERT INTO pay.utbetaling (uid, fagsystem, sak_id, klassekode, periods, last_line_id,
                                    last_line, data, confirmed_at)
        SELECT c.uid, r.fagsystem, r.sak_id, c.klassekode, c.periods, c.last_line_id,
               c.last_line, c.data, now()
        -- per order its own candidates by key (OFFSET 0 keeps the subquery a lookup per
        -- order): joined whole, the planner hashed every candidate ever stored
        FROM r CROSS JOIN LATERAL (SELECT * FROM pay.candidate c WHERE c.oppdrag_id = r.id
                                   OFFSET 0) c
        WHERE r.ok
        ON CONFLICT (uid) DO UPDATE SET klassekode = EXCLUDED.klassekode,
            periods = EXCLUDED.periods, last_line_id = EXCLUDED.last_line_id,
            last_line = EXCLUDED.last_line, data = EXCLUDED.data,
            confirmed_at = EXCLUDED.confirmed_at
    ), cases AS (
        UPDATE pay.sak s
        SET active_uids = CASE WHEN r.ok THEN r.uids ELSE s.active_uids END,
            has_order_before = s.has_order_before OR r.ok,
            inflight_order = CASE WHEN r.ok OR s.inflight_order = r.id THEN NULL
                                  ELSE s.inflight_order END,
            updated_at = now()
        FROM r WHERE s.sak_id = ANY(p_sak_ids) AND s.fagsystem = r.fagsystem
                 AND s.sak_id = r.sak_id
    ), finished AS (
        UPDATE pay.oppdrag o
        SET state = r.state,
            receipt_at = CASE WHEN r.code IS NULL THEN NULL ELSE now() END,
            receipt_code = r.code,
            receipt_text = CASE WHEN r.code IS NULL THEN NULL ELSE r.text END,
            last_error = CASE WHEN r.code IS NULL THEN r.text ELSE o.last_error END,
            sent_at = CASE WHEN r.code IS NULL THEN o.sent_at
                           ELSE coalesce(o.sent_at, now()) END,
            send_due_at = NULL,
            claimed_until = NULL
        FROM r WHERE o.id = ANY(p_ids) AND o.id = r.id
        RETURNING r.ord, r.original_key, r.hos, r.state, r.error, o.details
    ), booked AS (
        INSERT INTO pay.status (original_key, status, body)
        SELECT f.original_key, v.status, pay.status_body(v.status, f.details, v.error)
        FROM finished f CROSS JOIN LATERAL (VALUES (0, 'HOS_OPPDRAG', NULL::jsonb),
                                                   (1, f.state, f.error)) AS v(step, status, error)
        WHERE f.hos OR v.step = 1
        ORDER BY f.ord, v.step
    )
    -- one scan of the small partial index inbound_waiting by the free sak ids; read after
    -- the cases' locks are held (lock_cases' snapshot predates them)
    SELECT DISTINCT i.fagsystem, i.sak_id FROM pay.inbound i
    WHERE i.sak_id = ANY(p_free_sak_ids) AND i.state = 'waiting';
END
$$;
