-- Queries of tether.core.workers: the heartbeats of worker processes (tether.worker_process).

-- name: beat_worker
-- This process is alive; rows of dead processes shown long enough are pruned on the way.
WITH pruned AS (
    DELETE FROM tether.worker_process
    WHERE beat_at < now() - make_interval(secs => %(kept_s)s) AND id <> %(id)s
)
INSERT INTO tether.worker_process (id, host, pid, lane, jobs, started_at, beat_at)
VALUES (%(id)s, %(host)s, %(pid)s, %(lane)s, %(jobs)s, %(started_at)s, now())
ON CONFLICT (id) DO UPDATE
SET host = EXCLUDED.host, pid = EXCLUDED.pid, lane = EXCLUDED.lane, jobs = EXCLUDED.jobs,
    started_at = EXCLUDED.started_at, beat_at = now()

-- name: end_worker
-- A clean stop.
DELETE FROM tether.worker_process WHERE id = %(id)s

-- name: worker_processes
-- The console's Service panel: every row, alive ones first; dead ones stay until a live
-- worker prunes them (workers.DEAD_KEPT_S), so with none alive the panel still names the last
-- ones seen.
SELECT id, lane, jobs, started_at, beat_at, now() AS now, alive,
       count(*) FILTER (WHERE alive) OVER () AS alive_count
FROM (
    SELECT *, beat_at >= now() - make_interval(secs => %(dead_after_s)s) AS alive
    FROM tether.worker_process
) w
ORDER BY alive DESC, id
LIMIT %(limit)s
