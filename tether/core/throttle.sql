-- Queries of tether.core.throttle: failed sign-ins per client key (core migration 0009).
-- Time is the database's now(), the one clock every API process shares.

-- name: record_failure
-- One more failure of the key: a new row, or one more in its window, or a new window when the
-- old one ended (the count restarts at 1). The same statement then deletes up to a batch of
-- other keys' ended windows, so failures (the only thing that adds rows) keep the table at about
-- one window of keys. The purge reads the upsert's key, so the upsert comes first: it locks only
-- its own row, and the purge skips rows locked by others (SKIP LOCKED) instead of waiting, so a
-- failure never waits while holding a row another one waits for (no deadlock), and concurrent
-- failures do not queue behind each other's purge.
WITH counted AS (
    INSERT INTO tether.login_failure AS f (client, failures, window_ends)
    VALUES (%(client)s, 1, now() + make_interval(secs => %(window_s)s))
    ON CONFLICT (client) DO UPDATE SET
        failures = CASE WHEN f.window_ends <= now() THEN 1 ELSE f.failures + 1 END,
        window_ends = CASE
            WHEN f.window_ends <= now() THEN excluded.window_ends ELSE f.window_ends
        END
    RETURNING f.client
)
DELETE FROM tether.login_failure
WHERE client IN (
    SELECT client FROM tether.login_failure
    WHERE window_ends <= now() AND client <> (SELECT client FROM counted)
    ORDER BY window_ends
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)

-- name: blocked_for
-- Seconds until the key may try again (a fraction: the caller rounds up); no row when it may
-- now (too few failures, or the window ended).
SELECT extract(epoch FROM window_ends - now())::float8 AS left_s
FROM tether.login_failure
WHERE client = %(client)s AND failures >= %(max_failures)s AND window_ends > now()
