-- The sender's and the status publisher's batch statements keep one plan per session, as the
-- intake's and the receipts' do (migration 0014): claim_due_orders, mark_orders_sent and
-- claim_status_window, queries.sql's statements of before made plpgsql functions, each table
-- reached only by key, with force_generic_plan and enable_seqscan off.
-- tests/payments/test_batch_plans.py counts what their kept plans read after a burst.

-- 1. A sender's claim: the due orders in due order (the partial index oppdrag_due), stepping
-- over those claimed now, locked (SKIP LOCKED) and claimed for p_dead_s seconds. The ids come
-- as an array (an init plan), so the update reaches each order by its primary key: a plan kept
-- with "id IN (subquery)" could join the subquery with every order.
CREATE FUNCTION pay.claim_due_orders(p_limit int, p_dead_s float8)
RETURNS TABLE (id uuid, original_key text, xml text, message_id text, send_attempts int)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    UPDATE pay.oppdrag o SET claimed_until = now() + make_interval(secs => p_dead_s),
                             send_attempts = o.send_attempts + 1
    WHERE o.id = ANY(ARRAY(SELECT d.id FROM pay.oppdrag d
                           WHERE d.state = 'MOTTATT' AND d.send_due_at <= now()
                             AND (d.claimed_until IS NULL OR d.claimed_until <= now())
                           ORDER BY d.send_due_at LIMIT p_limit FOR UPDATE SKIP LOCKED))
    RETURNING o.id, o.original_key, o.xml, o.message_id, o.send_attempts;
END
$$;

-- 2. HOS_OPPDRAG for the orders still unsent (a receipt that came first is not overwritten),
-- locked in id order as a receipt batch locks them; returns how many statuses it stored. The
-- orders are reached only by their ids (the primary key): a kept plan with "state = 'MOTTATT'"
-- among their conditions walked the whole partial index oppdrag_due instead (made on an empty
-- table, 100,000 rows read a call after a burst of 50,000 orders), so the state is read from
-- the locked rows (their latest version, as FOR UPDATE returns it), not filtered in the scans.
CREATE FUNCTION pay.mark_orders_sent(p_ids uuid[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    marked bigint;
BEGIN
    WITH locked AS MATERIALIZED (
        SELECT o.id, o.state FROM pay.oppdrag o
        WHERE o.id = ANY(p_ids)
        ORDER BY o.id FOR UPDATE
    ), sent AS (
        UPDATE pay.oppdrag o SET state = 'HOS_OPPDRAG', sent_at = now(), send_due_at = NULL,
                                 claimed_until = NULL, last_error = NULL
        FROM locked WHERE o.id = ANY(p_ids) AND o.id = locked.id AND locked.state = 'MOTTATT'
        RETURNING o.original_key, o.details
    )
    INSERT INTO pay.status (original_key, status, body)
    SELECT sent.original_key, 'HOS_OPPDRAG', pay.status_body('HOS_OPPDRAG', sent.details, NULL)
    FROM sent;
    GET DIAGNOSTICS marked = ROW_COUNT;
    RETURN marked;
END
$$;

-- 3. The status publisher's next page (migration 0008 says how the window finds every
-- committed status once): queries.sql's claim_status_window of before, unchanged but for its
-- limit. Its one statement's snapshot is the one pg_current_snapshot() gives it, as before.
-- The cursor's one row has no index: with seq scans off its scan's estimate passes any
-- jit_above_cost, so the function runs with jit off (as every pooled session does, core/db.py).
CREATE FUNCTION pay.claim_status_window(p_limit int)
RETURNS TABLE (done text, upto text, txid text, id bigint, original_key text, body text)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET jit = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS (
        SELECT * FROM pay.status_cursor FOR UPDATE SKIP LOCKED
    ), w AS (
        SELECT CASE WHEN c.exhausted THEN c.upto ELSE c.done END AS done,
               CASE WHEN c.exhausted THEN pg_current_snapshot() ELSE c.upto END AS upto,
               CASE WHEN c.exhausted THEN '0'::xid8 ELSE c.last_txid END AS last_txid,
               CASE WHEN c.exhausted THEN 0 ELSE c.last_id END AS last_id
        FROM c
    ), r AS MATERIALIZED (  -- the window's bounds computed once, not per row
        SELECT w.*,
               CASE WHEN w.last_txid >= pg_snapshot_xmax(w.done) THEN w.last_txid
                    ELSE pg_snapshot_xmax(w.done) END AS from_txid,
               CASE WHEN w.last_txid >= pg_snapshot_xmax(w.done) THEN w.last_id ELSE 0 END
                   AS from_id
        FROM w
    )
    SELECT r.done::text, r.upto::text, s.txid::text, s.id, s.original_key, s.body::text
    FROM r LEFT JOIN LATERAL (
        SELECT * FROM (
            (SELECT x.* FROM pg_snapshot_xip(r.done) AS open(txid)
             CROSS JOIN LATERAL (  -- its LIMIT keeps it a probe per open transaction
                 SELECT st.txid, st.id, st.original_key, st.body FROM pay.status st
                 WHERE st.txid = open.txid AND (st.txid, st.id) > (r.last_txid, r.last_id)
                   AND pg_visible_in_snapshot(st.txid, r.upto)
                 ORDER BY st.id LIMIT p_limit) x
             ORDER BY x.txid, x.id LIMIT p_limit)
            UNION ALL
            (SELECT st.txid, st.id, st.original_key, st.body FROM pay.status st
             WHERE (st.txid, st.id) > (r.from_txid, r.from_id)
               AND st.txid < pg_snapshot_xmax(r.upto)
               AND pg_visible_in_snapshot(st.txid, r.upto)
             ORDER BY st.txid, st.id LIMIT p_limit)
        ) page ORDER BY page.txid, page.id LIMIT p_limit
    ) s ON true
    ORDER BY s.txid, s.id;
END
$$;
