-- Queries of tether.core.workflows: the heartbeats of durable-workflow executors
-- (tether.workflow_executor, core migration 0004) and the library's workflow_status table in
-- the schema tether_dbos (workflows.SCHEMA).

-- name: beat_executor
-- The executor is alive (every 2 s).
INSERT INTO tether.workflow_executor VALUES (%(executor_id)s, now())
ON CONFLICT (executor_id) DO UPDATE SET seen_at = now()

-- name: forget_dead_executors
-- Executors silent for too long: their pending workflows are resumed by the caller.
DELETE FROM tether.workflow_executor
WHERE seen_at < now() - make_interval(secs => %(dead_after_s)s)
RETURNING executor_id

-- name: release_executor
-- A clean stop: forget the executor unless workflows it was running are still pending, which
-- a live worker then resumes once the row has been silent long enough. How many are pending.
WITH pending AS (
    SELECT count(*) AS n FROM tether_dbos.workflow_status
    WHERE executor_id = %(executor_id)s AND status = 'PENDING'
      AND application_version = %(app_version)s
), released AS (
    DELETE FROM tether.workflow_executor
    WHERE executor_id = %(executor_id)s AND (SELECT n FROM pending) = 0
)
SELECT n FROM pending
