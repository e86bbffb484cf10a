-- Queries of tether.core.throttle: sign-in attempts per client key (core migrations 0009, 0010).
-- Time is the database's now(), the one clock every API process shares.

-- name: reserve
-- Count one attempt of the key before its credential is tried: a new row, or one more in its
-- window, or a new window when the old one ended (the count restarts at 1); nothing when the
-- window still runs and is full. The upsert locks the key's row and decides on its latest
-- version, so concurrent attempts of one key (from any API process) take the free places one
-- at a time: never more than max_failures of them in a window, and a refused one changes
-- nothing (the count never exceeds the limit).
-- A reserved attempt also deletes up to a batch of other keys' ended windows, so attempts (the
-- only thing that adds rows) keep the table at about one window of keys. The purge reads the
-- upsert's key, so the upsert runs first: it locks only its own row, and the purge skips rows
-- locked by others (SKIP LOCKED) instead of waiting, so an attempt never waits while holding a
-- row another one waits for (no deadlock), and concurrent attempts do not queue behind each
-- other's purge.
-- One row: reserved (and the window the place is in), or refused and the window that refused
-- it as this statement's snapshot sees it (no row when the window was created after the
-- statement began: it has just started).
WITH counted AS (
    INSERT INTO tether.login_failure AS f (client, failures, window_ends)
    VALUES (%(client)s, 1, now() + make_interval(secs => %(window_s)s))
    ON CONFLICT (client) DO UPDATE SET
        failures = CASE WHEN f.window_ends <= now() THEN 1 ELSE f.failures + 1 END,
        window_ends = CASE
            WHEN f.window_ends <= now() THEN excluded.window_ends ELSE f.window_ends
        END
    WHERE f.window_ends <= now() OR f.failures < %(max_failures)s
    RETURNING f.client, f.window_ends
),
purged AS (
    DELETE FROM tether.login_failure
    WHERE client IN (
        SELECT client FROM tether.login_failure
        WHERE window_ends <= now() AND client <> (SELECT client FROM counted)
        ORDER BY window_ends
        LIMIT %(batch)s
        FOR UPDATE SKIP LOCKED
    )
)
SELECT true AS reserved, window_ends, 0::float8 AS left_s FROM counted
UNION ALL
SELECT false, window_ends, extract(epoch FROM window_ends - now())::float8
FROM tether.login_failure
WHERE client = %(client)s AND NOT EXISTS (SELECT FROM counted)

-- name: release
-- Give back one reserved attempt whose credential was right, in the window it was reserved in
-- (once that window ended the count restarted without it). Only this attempt's place: earlier
-- failures stay until their window ends. The update locks the row and rechecks it, so
-- concurrent reservations and releases of one key each count once.
UPDATE tether.login_failure SET failures = failures - 1
WHERE client = %(client)s AND window_ends = %(window_ends)s AND failures > 0
