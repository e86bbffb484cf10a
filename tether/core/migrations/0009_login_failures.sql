-- Failed sign-ins at /login per client key (core/throttle.py), shared by every API process: a
-- count kept in each process's memory let `tether serve --workers N` take N times the failures,
-- and a restart forgot them. One small row per key (an IPv4 address, an IPv6 /64, or the one
-- shared 'invalid' key), until its window ends; each failure deletes a bounded batch of
-- expired rows, so the table holds about one window of failing keys.
CREATE TABLE tether.login_failure (
    client text PRIMARY KEY CHECK (length(client) <= 64),  -- throttle.client_key(): short
    failures int NOT NULL CHECK (failures > 0),
    window_ends timestamptz NOT NULL  -- the first failure + the window at that time
);

CREATE INDEX login_failure_window_ends ON tether.login_failure (window_ends);
