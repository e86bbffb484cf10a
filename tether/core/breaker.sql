-- Queries of tether.core.breaker: circuit breakers whose state lives in tether.circuit_breaker,
-- so every process (API workers, CLI, demo) sees the same circuit.

-- name: ensure_circuit
-- Create the circuit's row (closed) the first time a process uses it.
INSERT INTO tether.circuit_breaker (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING

-- name: acquire_circuit
-- May a call go out? The one caller that finds an expired open circuit (or an expired probe
-- lease) takes the probe lease; the row lock makes that atomic across processes.
WITH probe AS (
    UPDATE tether.circuit_breaker
    SET state = 'half_open', probe_until = clock_timestamp() + %(probe_lease)s, updated_at = now()
    WHERE name = %(name)s
      AND ((state = 'open' AND open_until <= clock_timestamp())
           OR (state = 'half_open' AND probe_until <= clock_timestamp()))
    RETURNING name
)
SELECT CASE WHEN EXISTS (SELECT 1 FROM probe) THEN 'probe'
            WHEN cb.state = 'closed' THEN 'allow'
            ELSE 'reject' END AS decision,
       cb.open_until
FROM tether.circuit_breaker cb
WHERE cb.name = %(name)s

-- name: record_circuit_success
-- The system answered: close the circuit and forget past failures.
UPDATE tether.circuit_breaker
SET state = 'closed', failures = 0, opened_at = NULL, open_until = NULL, probe_until = NULL,
    updated_at = now()
WHERE name = %(name)s AND (state <> 'closed' OR failures <> 0)

-- name: record_circuit_failure
-- The system was unavailable: count it; open at the threshold, and at once after a failed probe.
-- (SET expressions all see the old row, so the condition is repeated rather than computed once.)
UPDATE tether.circuit_breaker
SET failures = failures + 1,
    last_failure = %(error)s,
    state = CASE WHEN state = 'half_open' OR failures + 1 >= %(threshold)s
                 THEN 'open' ELSE state END,
    -- when the outage began: kept while the circuit stays open (a failed probe reopens it)
    opened_at = CASE WHEN opened_at IS NULL
                          AND (state = 'half_open' OR failures + 1 >= %(threshold)s)
                     THEN clock_timestamp() ELSE opened_at END,
    open_until = CASE WHEN state = 'half_open' OR failures + 1 >= %(threshold)s
                      THEN clock_timestamp() + %(open_for)s ELSE open_until END,
    probe_until = NULL,
    updated_at = now()
WHERE name = %(name)s
RETURNING state, failures, open_until

-- name: fetch_circuit
-- The current state of one circuit.
SELECT name, state, failures, opened_at, open_until, probe_until, last_failure, updated_at
FROM tether.circuit_breaker WHERE name = %(name)s

-- name: release_probe
-- A caller that took the probe lease and made no call gives it back: the next caller probes.
UPDATE tether.circuit_breaker SET probe_until = clock_timestamp(), updated_at = now()
WHERE name = %(name)s AND state = 'half_open'
