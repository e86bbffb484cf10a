-- Queries of the accounting point capability. Run only by repository.py.

-- name: upsert_grid_areas
-- The seed catalogue (reference.py) at start: only what is missing; operators' changes stay.
INSERT INTO ap.metering_grid_area (business_id, name)
SELECT * FROM unnest(%(business_ids)s::text[], %(names)s::text[])
ON CONFLICT (business_id) DO NOTHING

-- name: upsert_energy_suppliers
INSERT INTO ap.energy_supplier (business_id, name)
SELECT * FROM unnest(%(business_ids)s::text[], %(names)s::text[])
ON CONFLICT (business_id) DO NOTHING

-- name: list_energy_suppliers
SELECT business_id, name, verified, retired_at FROM ap.energy_supplier
WHERE %(all)s OR retired_at IS NULL ORDER BY business_id

-- name: list_grid_areas
SELECT business_id, name, verified, retired_at FROM ap.metering_grid_area
WHERE %(all)s OR retired_at IS NULL ORDER BY business_id

-- name: add_energy_suppliers
-- An operator's add: named, verified, and active again if it was retired.
INSERT INTO ap.energy_supplier (business_id, name)
SELECT * FROM unnest(%(business_ids)s::text[], %(names)s::text[])
ON CONFLICT (business_id) DO UPDATE SET name = EXCLUDED.name, verified = true, retired_at = NULL
RETURNING business_id, name, verified, retired_at

-- name: add_grid_areas
INSERT INTO ap.metering_grid_area (business_id, name)
SELECT * FROM unnest(%(business_ids)s::text[], %(names)s::text[])
ON CONFLICT (business_id) DO UPDATE SET name = EXCLUDED.name, verified = true, retired_at = NULL
RETURNING business_id, name, verified, retired_at

-- name: retire_energy_supplier
UPDATE ap.energy_supplier SET retired_at = coalesce(retired_at, now())
WHERE business_id = %(business_id)s
RETURNING business_id, name, verified, retired_at

-- name: retire_grid_area
UPDATE ap.metering_grid_area SET retired_at = coalesce(retired_at, now())
WHERE business_id = %(business_id)s
RETURNING business_id, name, verified, retired_at

-- name: accept_unknown_parties
-- TETHER_AP_UNKNOWN_PARTY=accept_unverified: parties a sync names that we do not know are added,
-- flagged unverified (named by their id) for an operator to confirm, before the merge judges.
WITH answers AS (SELECT jsonb_array_elements(%(data)s::jsonb) AS d), suppliers AS (
    INSERT INTO ap.energy_supplier (business_id, name, verified)
    SELECT DISTINCT e->>'business_id', e->>'business_id', false
    FROM answers, jsonb_array_elements(answers.d->'energy_supplier') e
    ON CONFLICT (business_id) DO NOTHING
)
INSERT INTO ap.metering_grid_area (business_id, name, verified)
SELECT DISTINCT e->>'business_id', e->>'business_id', false
FROM answers, jsonb_array_elements(answers.d->'metering_grid_area') e
ON CONFLICT (business_id) DO NOTHING

-- name: claim_due_syncs
-- Claims up to `limit` due APs that have a controllable unit; never-synced first (-infinity),
-- then the longest overdue. The claim is committed at once; it expires by itself after the
-- dead-sync timeout, which is how a crashed worker's APs are recovered. has_controllable_unit
-- (kept by a trigger) lets it scan accounting_point_sync_claimable_idx, which skips the APs that
-- have no unit and so are never claimed.
WITH due AS (
    SELECT s.accounting_point_id
    FROM ap.accounting_point_sync s
    WHERE s.next_sync_at <= now()
      AND s.has_controllable_unit
      AND EXISTS (
          SELECT 1 FROM ap.controllable_unit cu
          WHERE cu.accounting_point_id = s.accounting_point_id
      )
    ORDER BY s.next_sync_at
    LIMIT %(limit)s
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE ap.accounting_point_sync s
SET last_sync_start = clock_timestamp(),
    next_sync_at = now() + %(dead_timeout)s,
    claimed_by = %(worker)s,
    attempts = s.attempts + 1
FROM due, ap.accounting_point a
WHERE s.accounting_point_id = due.accounting_point_id AND a.id = s.accounting_point_id
RETURNING s.accounting_point_id, a.gsrn, s.last_sync_start AS started_at, s.attempts,
    s.last_error_reason,
    (SELECT min(cu.start_date) FROM ap.controllable_unit cu
     WHERE cu.accounting_point_id = s.accounting_point_id) AS earliest_start

-- name: apply_sync
SELECT ap.apply_sync(%(gsrn)s, %(data)s, %(started_at)s, %(resync)s, %(actor)s)
    AS accounting_point_id

-- name: apply_sync_batch
-- items: [{"gsrn", "started_at", "data"}]; one verdict row per distinct GSRN.
SELECT gsrn, accounting_point_id, outcome, message
FROM ap.apply_sync_batch(%(items)s, %(resync)s, %(actor)s)

-- name: set_lock_timeout
-- For this transaction only: wait at most this long for a row lock, then fail with Busy.
SELECT set_config('lock_timeout', %(timeout)s, true)

-- name: record_sync_failures
-- Why syncs failed and when to retry (each AP due again after its backoff). Only the worker
-- still holding a claim records it.
UPDATE ap.accounting_point_sync s
SET last_sync_start = NULL,
    claimed_by = NULL,
    last_error = f.error,
    last_error_reason = f.reason,
    last_error_at = now(),
    next_sync_at = now() + f.retry_after
FROM unnest(%(gsrns)s::text[], %(started_ats)s::timestamptz[], %(errors)s::text[],
            %(reasons)s::text[], %(retry_afters)s::interval[])
         AS f(gsrn, started_at, error, reason, retry_after),
     ap.accounting_point a
WHERE a.gsrn = f.gsrn AND s.accounting_point_id = a.id
  AND s.last_sync_start IS NOT DISTINCT FROM f.started_at

-- name: request_syncs
-- A thin event: mark the APs as changed. One that is syncing right now keeps its claim; the
-- sync sees requested_at > its start and makes the AP due again, so no update is lost. One in
-- backoff after a failure (or flagged gone) is due again at most retry_base after that failure:
-- the event is news (the AP changed upstream, its cause may be mended), yet a storm of events
-- makes at most one attempt per retry_base per AP and adds none (a datahub that is down as a
-- whole is the circuit breaker's). `due`: due now or syncing; else waiting for its retry.
UPDATE ap.accounting_point_sync s
SET requested_at = now(),
    next_sync_at = CASE
        WHEN s.last_sync_start IS NOT NULL AND s.next_sync_at > now() THEN s.next_sync_at
        WHEN s.last_error_at IS NOT NULL
            THEN least(s.next_sync_at, greatest(now(), s.last_error_at + %(retry_base)s))
        ELSE least(s.next_sync_at, now())
    END
FROM ap.accounting_point a
WHERE a.id = s.accounting_point_id AND a.gsrn = ANY(%(gsrns)s::text[])
RETURNING a.gsrn, (s.last_sync_start IS NOT NULL OR s.next_sync_at <= now()) AS due

-- name: get_accounting_point
-- next_sync_at is NULL for '-infinity' (never synced, due first): Python has no such datetime.
SELECT a.id, a.gsrn, a.latitude, a.longitude, a.recorded_at,
       s.last_sync_start, s.last_synced_at, s.version,
       CASE WHEN isfinite(s.next_sync_at) THEN s.next_sync_at END AS next_sync_at, s.requested_at,
       s.attempts, s.last_error, s.last_error_reason, s.last_error_at, s.unknown_fields,
       s.location_partial
FROM ap.accounting_point a
JOIN ap.accounting_point_sync s ON s.accounting_point_id = a.id
WHERE a.gsrn = %(gsrn)s

-- name: get_timelines
-- Every timeline of one AP, with business ids, as (kind, valid_from, valid_to, value, extra).
SELECT 'end_user' AS kind, t.valid_from, t.valid_to, u.business_id AS value,
       u.entity_type AS extra
FROM ap.accounting_point_end_user t JOIN ap.end_user u ON u.id = t.end_user_id
WHERE t.accounting_point_id = %(id)s
UNION ALL
SELECT 'energy_supplier', t.valid_from, t.valid_to, s.business_id, s.name
FROM ap.accounting_point_energy_supplier t JOIN ap.energy_supplier s ON s.id = t.energy_supplier_id
WHERE t.accounting_point_id = %(id)s
UNION ALL
SELECT 'metering_grid_area', t.valid_from, t.valid_to, m.business_id, m.name
FROM ap.accounting_point_metering_grid_area t
JOIN ap.metering_grid_area m ON m.id = t.metering_grid_area_id
WHERE t.accounting_point_id = %(id)s
UNION ALL
SELECT 'energy_direction', t.valid_from, t.valid_to, array_to_string(t.direction, ','), NULL
FROM ap.accounting_point_energy_direction t
WHERE t.accounting_point_id = %(id)s
ORDER BY 1, 2

-- name: get_history
-- Replaced and deleted versions of the AP and its timelines, newest first.
SELECT 'accounting_point' AS kind, NULL::timestamptz AS valid_from, NULL::timestamptz AS valid_to,
       concat_ws(',', h.latitude, h.longitude) AS value, h.history_operation,
       lower(h.record_time) AS recorded_from, upper(h.record_time) AS recorded_to, h.replaced_by
FROM ap.accounting_point_history h WHERE h.id = %(id)s
UNION ALL
SELECT 'end_user', h.valid_from, h.valid_to, u.business_id, h.history_operation,
       lower(h.record_time), upper(h.record_time), h.replaced_by
FROM ap.accounting_point_end_user_history h JOIN ap.end_user u ON u.id = h.end_user_id
WHERE h.accounting_point_id = %(id)s
UNION ALL
SELECT 'energy_supplier', h.valid_from, h.valid_to, s.business_id, h.history_operation,
       lower(h.record_time), upper(h.record_time), h.replaced_by
FROM ap.accounting_point_energy_supplier_history h
JOIN ap.energy_supplier s ON s.id = h.energy_supplier_id
WHERE h.accounting_point_id = %(id)s
UNION ALL
SELECT 'metering_grid_area', h.valid_from, h.valid_to, m.business_id, h.history_operation,
       lower(h.record_time), upper(h.record_time), h.replaced_by
FROM ap.accounting_point_metering_grid_area_history h
JOIN ap.metering_grid_area m ON m.id = h.metering_grid_area_id
WHERE h.accounting_point_id = %(id)s
UNION ALL
SELECT 'energy_direction', h.valid_from, h.valid_to, array_to_string(h.direction, ','),
       h.history_operation, lower(h.record_time), upper(h.record_time), h.replaced_by
FROM ap.accounting_point_energy_direction_history h
WHERE h.accounting_point_id = %(id)s
ORDER BY recorded_to DESC, kind, valid_from

-- name: current_end_user
SELECT u.business_id
FROM ap.accounting_point_end_user t JOIN ap.end_user u ON u.id = t.end_user_id
WHERE t.accounting_point_id = %(id)s
  AND t.valid_from <= now() AND (t.valid_to IS NULL OR t.valid_to > now())

-- name: list_controllable_units
SELECT cu.business_id, cu.name, cu.start_date, cu.created_at, a.gsrn
FROM ap.controllable_unit cu JOIN ap.accounting_point a ON a.id = cu.accounting_point_id
WHERE cu.accounting_point_id = %(id)s
ORDER BY cu.created_at, cu.id

-- name: find_controllable_unit
SELECT cu.business_id, a.gsrn
FROM ap.controllable_unit cu JOIN ap.accounting_point a ON a.id = cu.accounting_point_id
WHERE cu.business_id = %(business_id)s

-- name: insert_controllable_unit
-- A CU with a start date makes its AP due at once: the fetch window may have to widen. Like an
-- event, it leaves a running sync its claim and sets requested_at, so that sync (which fetched
-- with the old window) makes the AP due again when it applies.
WITH cu AS (
    INSERT INTO ap.controllable_unit (name, accounting_point_id, start_date)
    SELECT %(name)s, a.id, %(start_date)s FROM ap.accounting_point a WHERE a.gsrn = %(gsrn)s
    RETURNING business_id, name, start_date, created_at, accounting_point_id
), due AS (
    UPDATE ap.accounting_point_sync s
    SET requested_at = now(),
        next_sync_at = CASE
            WHEN s.last_sync_start IS NOT NULL AND s.next_sync_at > now() THEN s.next_sync_at
            ELSE least(s.next_sync_at, now())
        END
    FROM cu WHERE s.accounting_point_id = cu.accounting_point_id AND cu.start_date IS NOT NULL
)
SELECT cu.business_id, cu.name, cu.start_date, cu.created_at, %(gsrn)s AS gsrn FROM cu

-- name: count_sync_states
SELECT count(*) FILTER (WHERE s.last_synced_at IS NULL) AS never_synced,
       count(*) FILTER (WHERE s.next_sync_at <= now()) AS due,
       count(*) FILTER (WHERE s.last_sync_start IS NOT NULL) AS syncing,
       count(*) FILTER (WHERE s.last_error IS NOT NULL) AS failing,
       count(*) AS total
FROM ap.accounting_point_sync s

-- name: any_clear_person_end_user
-- Checked before taking the lock below: once none is left none can come back (migration 0006's
-- check refuses them), so a starting process no longer locks out every running sync's merge.
SELECT EXISTS (SELECT 1 FROM ap.end_user WHERE business_id ~ '^[0-9]{11}$') AS found

-- name: lock_end_users
-- The one-time conversion of clear person ids (migration 0006): one converter at a time, and no
-- sync adds an end user meanwhile.
LOCK TABLE ap.end_user IN SHARE ROW EXCLUSIVE MODE

-- name: clear_person_end_users
SELECT id, business_id FROM ap.end_user WHERE business_id ~ '^[0-9]{11}$'

-- name: pseudonymise_end_users
UPDATE ap.end_user u SET business_id = m.pseudonym
FROM unnest(%(ids)s::bigint[], %(pseudonyms)s::text[]) AS m(id, pseudonym)
WHERE u.id = m.id

-- name: heartbeat_claims
-- A live worker keeps its claims: each stays claimed for one more lease, but never longer than
-- the dead-sync timeout after it began (a sync that hangs in a live process is still taken over).
UPDATE ap.accounting_point_sync s
SET next_sync_at = now() + %(lease)s
WHERE s.claimed_by = %(worker)s AND s.last_sync_start IS NOT NULL
  AND s.last_sync_start > now() - %(dead_timeout)s

-- name: release_claims
-- An operator frees a dead worker's claims at once; were it alive after all, its merge would be
-- refused as claim_lost (last_sync_start no longer matches), so nothing is applied twice.
UPDATE ap.accounting_point_sync s
SET last_sync_start = NULL, claimed_by = NULL, next_sync_at = now()
WHERE s.claimed_by = %(worker)s AND s.last_sync_start IS NOT NULL
