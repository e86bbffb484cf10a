-- Circuit breakers shared by every tether process: one row per protected external system.
--
-- closed: calls go through; consecutive failures are counted.
-- open: calls are refused until open_until; then one caller may probe.
-- half_open: one probe holds a lease until probe_until; its outcome closes or re-opens the circuit.
CREATE TABLE tether.circuit_breaker (
    name text PRIMARY KEY,
    state text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    failures integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    opened_at timestamptz,
    open_until timestamptz,
    probe_until timestamptz,
    last_failure text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
