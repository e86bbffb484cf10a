-- Named queries of the operator console and /metrics (tether/payments/console.py).

-- name: payments_overview
-- One statement for the panel: messages queued behind an order of their case, orders at the
-- payment system without a receipt (both read through partial indexes, so the cost follows
-- the backlog, not the history), the oldest of them, and the ten oldest with their case; and
-- the statuses the publisher has not put on NATS yet, by its cursor (migration 0008): those
-- not visible in its done snapshot (an index range from its xmax, a probe per transaction open
-- in it), less those of the current window already paged out (all of it once exhausted)
WITH unpublished AS (
    SELECT st.created_at
    FROM pay.status_cursor c
    CROSS JOIN LATERAL (
        SELECT s.txid, s.id, s.created_at FROM pay.status s
        WHERE s.txid >= pg_snapshot_xmax(c.done)
        UNION ALL
        SELECT s.* FROM pg_snapshot_xip(c.done) AS open(txid)
        CROSS JOIN LATERAL (  -- OFFSET 0 keeps it a probe per open transaction, not a scan
            SELECT p.txid, p.id, p.created_at FROM pay.status p WHERE p.txid = open.txid OFFSET 0
        ) s
    ) st
    WHERE NOT (pg_visible_in_snapshot(st.txid, c.upto)
               AND (c.exhausted OR (st.txid, st.id) <= (c.last_txid, c.last_id)))
)
SELECT
    (SELECT count(*) FROM unpublished) AS statuses_unpublished,
    (SELECT min(created_at) FROM unpublished) AS oldest_unpublished,
    (SELECT count(*) FROM pay.inbound WHERE state = 'waiting') AS queued,
    (SELECT count(*) FROM pay.oppdrag WHERE state = 'MOTTATT') AS unsent,
    (SELECT count(*) FROM pay.oppdrag WHERE state = 'HOS_OPPDRAG') AS at_payment_system,
    (SELECT min(created_at) FROM pay.oppdrag WHERE state IN ('MOTTATT', 'HOS_OPPDRAG'))
        AS oldest_waiting,
    coalesce((SELECT jsonb_agg(jsonb_build_object(
                  'sak_id', sak_id, 'state', state, 'original_key', original_key,
                  'created_at', created_at) ORDER BY created_at)
              FROM (SELECT sak_id, state, original_key, created_at FROM pay.oppdrag
                    WHERE state IN ('MOTTATT', 'HOS_OPPDRAG')
                    ORDER BY created_at LIMIT %(examples)s) w), '[]'::jsonb) AS waiting
