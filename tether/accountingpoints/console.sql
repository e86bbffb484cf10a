-- Named queries of the operator console and /metrics (tether/accountingpoints/console.py).

-- name: sync_overview
-- One statement for the whole panel over the sync rows of the APs kept in sync (those with a
-- controllable unit): counts, the backlog and its lag in one aggregate pass, and failures grouped
-- by reason with a few GSRNs each (oldest failures first; only failing rows meet their AP), and
-- the datahub's shared circuit (no row: never called, so closed).
WITH counts AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE last_synced_at IS NOT NULL AND last_error IS NULL) AS synced,
           count(*) FILTER (WHERE next_sync_at <= now()) AS due,
           count(*) FILTER (WHERE last_error IS NOT NULL) AS failing,
           count(*) FILTER (WHERE last_synced_at IS NULL) AS never_synced,
           count(*) FILTER (WHERE location_partial) AS location_partial,
           min(last_synced_at) AS oldest_synced_at,
           extract(epoch FROM now() - min(next_sync_at) FILTER (
               WHERE next_sync_at <= now() AND next_sync_at > '-infinity')) AS due_lag_s
    FROM ap.accounting_point_sync
    WHERE has_controllable_unit
),
failing AS (
    SELECT coalesce(s.last_error_reason, 'unknown') AS reason, count(*) AS n,
           (array_agg(a.gsrn ORDER BY s.last_error_at NULLS LAST, a.gsrn))[1:%(examples)s]
               AS gsrns
    FROM ap.accounting_point_sync s
    JOIN ap.accounting_point a ON a.id = s.accounting_point_id
    WHERE s.has_controllable_unit AND s.last_error IS NOT NULL
    GROUP BY 1
)
SELECT counts.*,
       cb.state AS circuit_state, cb.failures AS circuit_failures,
       cb.open_until AS circuit_open_until, cb.last_failure AS circuit_last_failure,
       cb.opened_at AS circuit_opened_at,
       coalesce((SELECT jsonb_agg(jsonb_build_object('reason', reason, 'count', n,
                                                     'gsrns', to_jsonb(gsrns))
                                  ORDER BY n DESC, reason)
                 FROM failing), '[]'::jsonb) AS failures
FROM counts
LEFT JOIN tether.circuit_breaker cb ON cb.name = %(circuit)s
