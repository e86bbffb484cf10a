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

-- name: child_died
-- A parent reaped a dead child: its row goes at once (it counted as alive for 30 s more), the
-- death is kept for the panel, and deaths older than kept_s are pruned on the way.
WITH gone AS (
    DELETE FROM tether.worker_process WHERE id = %(id)s
), pruned AS (
    DELETE FROM tether.worker_death WHERE died_at < now() - make_interval(secs => %(kept_s)s)
)
INSERT INTO tether.worker_death (worker_id, lane, how, jobs)
VALUES (%(id)s, %(lane)s, %(how)s, %(jobs)s)

-- name: child_deaths
-- The Service panel: deaths of worker processes per lane within window_s, the latest's manner.
SELECT lane, count(*) AS deaths, max(died_at) AS last_at,
       (array_agg(how ORDER BY died_at DESC))[1] AS last_how, now() AS now
FROM tether.worker_death
WHERE died_at >= now() - make_interval(secs => %(window_s)s)
GROUP BY lane
ORDER BY lane
