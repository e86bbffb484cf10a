-- Worker processes that died (kill -9, the OOM killer, a crash), written by their `tether worker`
-- parent when it reaps one (core/workers.py): the console's Service panel and /metrics
-- (tether_worker_child_deaths_last_hour) count them, in whichever process serves them; the
-- parent itself exports nothing without --metrics-port, and a dead child's counters die with
-- it. Kept a day (pruned by each new death).
CREATE TABLE tether.worker_death (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker_id text NOT NULL,  -- host:pid of the dead process, as its tether.worker_process row
    lane text NOT NULL,
    how text NOT NULL,  -- "killed by SIGKILL", "exit code 1"
    jobs text[] NOT NULL,
    died_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_death_died_at ON tether.worker_death (died_at);
