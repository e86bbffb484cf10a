-- Named queries of the operator console and /metrics (tether/accountingpoints/console.py).

-- name: sync_overview
-- One statement for the whole panel: counts of the APs that are kept in sync (those with a
-- controllable unit), the backlog and its lag, and failures grouped by reason with a few GSRNs
-- each (the oldest failures first).
WITH tracked AS (
    SELECT s.*, a.gsrn
    FROM ap.accounting_point_sync s
    JOIN ap.accounting_point a ON a.id = s.accounting_point_id
    WHERE s.has_controllable_unit
),
failing AS (
    SELECT coalesce(last_error_reason, 'unknown') AS reason, count(*) AS n,
           (array_agg(gsrn ORDER BY last_error_at NULLS LAST, gsrn))[1:%(examples)s] AS gsrns,
           min(last_error_at) AS since
    FROM tracked WHERE last_error IS NOT NULL
    GROUP BY 1
)
SELECT
    (SELECT count(*) FROM tracked) AS total,
    (SELECT count(*) FROM tracked WHERE last_synced_at IS NOT NULL AND last_error IS NULL)
        AS synced,
    (SELECT count(*) FROM tracked WHERE next_sync_at <= now()) AS due,
    (SELECT count(*) FROM tracked WHERE last_error IS NOT NULL) AS failing,
    (SELECT count(*) FROM tracked WHERE last_synced_at IS NULL) AS never_synced,
    (SELECT min(last_synced_at) FROM tracked) AS oldest_synced_at,
    (SELECT extract(epoch FROM now() - min(next_sync_at)) FROM tracked
     WHERE next_sync_at <= now() AND next_sync_at > '-infinity') AS due_lag_s,
    (SELECT count(*) FROM tracked WHERE next_sync_at = '-infinity') AS waiting_first_sync,
    coalesce((SELECT jsonb_agg(jsonb_build_object(
                  'reason', reason, 'count', n, 'gsrns', to_jsonb(gsrns), 'since', since)
                  ORDER BY n DESC, reason)
              FROM failing), '[]'::jsonb) AS failures
