-- Queries of tether.core.locking: single-flight over session-level advisory locks.

-- name: try_lock
-- Become the leader for a key if nobody is; session-level, so no transaction stays open.
SELECT pg_try_advisory_lock(%(key)s) AS acquired

-- name: unlock
-- Give the key back.
SELECT pg_advisory_unlock(%(key)s) AS released

-- name: probe_lock
-- Is the key free? Takes it and gives it back in one statement (CASE fixes the order).
SELECT CASE WHEN pg_try_advisory_lock(%(key)s) THEN pg_advisory_unlock(%(key)s) ELSE false END
    AS free
