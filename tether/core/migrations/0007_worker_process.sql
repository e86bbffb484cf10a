-- Live `tether worker` processes (core/workers.py), so an operator can see whether any runs:
-- each process upserts its row every few seconds, a clean stop deletes it, and a row silent
-- for longer than workers.DEAD_AFTER_S counts as dead (its process was killed) until the next
-- beat of any live worker prunes it. Read by the console's Service panel, /metrics
-- (tether_workers_alive) and `tether status`.
CREATE TABLE tether.worker_process (
    id text PRIMARY KEY,  -- host:pid, as in the claims' claimed_by columns
    host text NOT NULL,
    pid integer NOT NULL,
    lane text NOT NULL,  -- all, prompt or deferred (tether/worker.py)
    jobs text[] NOT NULL,
    started_at timestamptz NOT NULL,
    beat_at timestamptz NOT NULL
);
