-- Named queries of the operator console (tether/accruals/console.py).

-- name: accruals_overview
-- The latest runs with their progress: chunks priced of all, accounts that failed.
SELECT r.period_end, r.status, r.attempt, r.started_at, r.finished_at,
       (SELECT count(*) FROM acc.run_chunk c
        WHERE c.period_end = r.period_end AND c.status = 'done') AS chunks_done,
       (SELECT count(*) FROM acc.run_chunk c WHERE c.period_end = r.period_end) AS chunks,
       (SELECT count(*) FROM acc.run_failure f WHERE f.period_end = r.period_end) AS failed
FROM acc.run r
ORDER BY r.period_end DESC
LIMIT %(runs)s
