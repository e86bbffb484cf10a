-- Queries of tether.core.locking: mutual exclusion over session-level advisory locks.

-- name: try_lock
-- Take the key if nobody holds it; session-level, so no transaction stays open.
SELECT pg_try_advisory_lock(%(key)s) AS acquired

-- name: unlock
-- Give the key back.
SELECT pg_advisory_unlock(%(key)s) AS released

