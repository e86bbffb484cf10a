-- Named queries of the operator console and /metrics (tether/payments/console.py).

-- name: payments_overview
-- One statement for the panel: messages queued behind an order of their case, orders at the
-- payment system without a receipt (both read through partial indexes, so the cost follows
-- the backlog, not the history), the oldest of them, and the ten oldest with their case.
SELECT
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
