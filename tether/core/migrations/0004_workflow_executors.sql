-- Heartbeats of durable-workflow executors (core/workflows.py): a live worker re-enqueues the
-- pending workflows of an executor silent for too long. Here, not in the workflow library's own
-- schema, so that a data-only role never needs DDL to run a worker.
CREATE TABLE tether.workflow_executor (
    executor_id text PRIMARY KEY,
    seen_at timestamptz NOT NULL
);
