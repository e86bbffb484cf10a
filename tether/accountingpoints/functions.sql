-- Every ap.* function as it runs in a fully migrated database: read this, not migrations
-- 0001 -> 0004. tests/accountingpoints/test_functions_file.py fails when this file and the
-- migrated database disagree, so a migration that changes a function changes this file too.
-- The composite types ap.timeline_period and ap.timeline_step are in migration 0005.
--
-- How one sync is merged (ap.apply_sync_batch, in this order):
--   ap.lock_sync_batch        create unknown APs, lock their sync rows (in id order: no deadlock)
--   ap.judge_sync_batch       per item: ok, claim_lost or unknown_reference (the latter two are
--                             left untouched and only reported)
--   ap.merge_location         coordinates when both are given, unknown when one is (0008)
--   ap.upsert_end_users       end users are created on demand
--   ap.merge_<kind>_timeline  per timeline: its incoming periods and stored rows, compared by
--                             the one shared ap.merge_timeline, then written
--   ap.record_sync_success    the sync row: version, errors cleared, next due time
-- ap.apply_sync is a batch of one that raises what it reports (HINT = the reason).
--
-- Planner settings, on ap.apply_sync_batch only. PL/pgSQL caches one plan per statement and
-- connection. A plan made while a table was nearly empty (a fresh install, a demo) would keep
-- scanning it whole as it grows, since nothing invalidates the plan. So every table access is an
-- `= ANY(<ids of this batch>)` or a join on an indexed column, and the merge runs with
--   plan_cache_mode = force_generic_plan  one plan, made once per connection, never re-planned
--                                         per call (re-planning was half the cost of a sync);
--   enable_seqscan = off                  that one plan is an index scan over the batch's rows,
--                                         whatever the table held when it was made.
-- The step functions it calls run inside it and plan under these settings; they are not meant
-- to be called on their own (a SET clause on each of them measurably slowed a one-AP sync:
-- every call saves and restores the settings).

-- Why four ap.merge_<kind>_timeline functions and not one: a PL/pgSQL statement cannot take its
-- table or column as a parameter. A single generic function would need EXECUTE format(...), and
-- PostgreSQL would parse and plan its statements on every call, which is what migration 0002
-- removed to halve the cost of a sync. So the decision (what to delete, shrink, change, insert)
-- is made once, by ap.merge_timeline over plain rows, and each timeline's function only reads
-- its rows and writes the decided steps: no dynamic SQL anywhere.

-- A new AP gets its sync row (due at once) in the same transaction.
CREATE OR REPLACE FUNCTION ap.create_sync_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ap.accounting_point_sync (accounting_point_id) VALUES (NEW.id);
    RETURN NEW;
END;
$$;

-- Keeps ap.accounting_point_sync.has_controllable_unit equal to "some controllable unit points
-- at this AP" (the claim's partial index holds only those rows; see migration 0003).
CREATE OR REPLACE FUNCTION ap.track_controllable_unit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE ap.accounting_point_sync SET has_controllable_unit = true
        WHERE accounting_point_id = NEW.accounting_point_id AND NOT has_controllable_unit;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE ap.accounting_point_sync s SET has_controllable_unit = false
        WHERE s.accounting_point_id = OLD.accounting_point_id AND s.has_controllable_unit
          AND NOT EXISTS (SELECT 1 FROM ap.controllable_unit cu
                          WHERE cu.accounting_point_id = OLD.accounting_point_id);
    END IF;
    RETURN NULL;
END;
$$;

-- Merge many adapter answers in one transaction. p_items: [{"gsrn", "started_at", "data"}];
-- started_at is when the item's claim began (NULL for a lookup). Returns one row per GSRN
-- (the last item wins if one comes twice), in AP id order: outcome ok, claim_lost or
-- unknown_reference, with a message for the latter two.
CREATE OR REPLACE FUNCTION ap.apply_sync_batch(p_items jsonb, p_resync interval, p_actor text)
RETURNS TABLE (gsrn text, accounting_point_id bigint, outcome text, message text)
LANGUAGE plpgsql
-- generic plans + index scans over the batch's rows, at any table size (see the top of the file)
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    -- every item, for the answer
    v_gsrns text[];
    v_ids bigint[];
    v_outcomes text[];
    v_messages text[];
    -- the accepted ones, for the merge
    v_ok bigint[];
    v_data jsonb[];
    v_started timestamptz[];
BEGIN
    PERFORM set_config('lock_timeout', '1s', true);
    PERFORM set_config('tether.actor', p_actor, true);

    SELECT array_agg(j.gsrn ORDER BY j.accounting_point_id),
           array_agg(j.accounting_point_id ORDER BY j.accounting_point_id),
           array_agg(j.outcome ORDER BY j.accounting_point_id),
           array_agg(j.message ORDER BY j.accounting_point_id),
           coalesce(array_agg(j.accounting_point_id ORDER BY j.accounting_point_id)
                    FILTER (WHERE j.outcome = 'ok'), '{}'),
           coalesce(array_agg(j.data ORDER BY j.accounting_point_id)
                    FILTER (WHERE j.outcome = 'ok'), '{}'),
           coalesce(array_agg(j.started_at ORDER BY j.accounting_point_id)
                    FILTER (WHERE j.outcome = 'ok'), '{}')
    INTO v_gsrns, v_ids, v_outcomes, v_messages, v_ok, v_data, v_started
    FROM ap.judge_sync_batch(p_items, ap.lock_sync_batch(p_items)) j;

    PERFORM ap.merge_location(v_ok, v_data);
    PERFORM ap.upsert_end_users(v_data);
    PERFORM ap.merge_end_user_timeline(v_ok, v_data);
    PERFORM ap.merge_energy_supplier_timeline(v_ok, v_data);
    PERFORM ap.merge_metering_grid_area_timeline(v_ok, v_data);
    PERFORM ap.merge_energy_direction_timeline(v_ok, v_data);
    PERFORM ap.record_sync_success(v_ok, v_data, v_started, p_resync);

    RETURN QUERY SELECT * FROM unnest(v_gsrns, v_ids, v_outcomes, v_messages);
END;
$$;

-- One AP: a batch of one that raises what it reports, as before (HINT = the reason).
CREATE OR REPLACE FUNCTION ap.apply_sync(
    p_gsrn text, p_data jsonb, p_started_at timestamptz, p_resync interval, p_actor text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM ap.apply_sync_batch(
        jsonb_build_array(jsonb_build_object(
            'gsrn', p_gsrn, 'started_at', p_started_at, 'data', p_data)),
        p_resync, p_actor);
    IF r.outcome <> 'ok' THEN
        RAISE EXCEPTION '%', r.message USING HINT = r.outcome;
    END IF;
    RETURN r.accounting_point_id;
END;
$$;

-- Create the APs of the batch that are new, lock every sync row of the batch (in id order, so
-- two batches never deadlock) and return the APs' ids.
CREATE OR REPLACE FUNCTION ap.lock_sync_batch(p_items jsonb) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_wanted text[];
    v_aps bigint[];
BEGIN
    SELECT array_agg(DISTINCT i->>'gsrn') INTO v_wanted FROM jsonb_array_elements(p_items) i;
    INSERT INTO ap.accounting_point (gsrn)
    SELECT w FROM unnest(v_wanted) w ORDER BY 1
    ON CONFLICT (gsrn) DO NOTHING;
    SELECT array_agg(a.id) INTO v_aps FROM ap.accounting_point a WHERE a.gsrn = ANY(v_wanted);

    PERFORM 1 FROM ap.accounting_point_sync s
    WHERE s.accounting_point_id = ANY(v_aps)
    ORDER BY s.accounting_point_id
    FOR UPDATE;
    RETURN v_aps;
END;
$$;

-- The verdict on each item of a locked batch (p_aps: its AP ids). One row per GSRN, the last
-- item winning. claim_lost: the claim was taken over since started_at; unknown_reference: the
-- answer names an energy supplier or grid area we do not know.
CREATE OR REPLACE FUNCTION ap.judge_sync_batch(p_items jsonb, p_aps bigint[])
RETURNS TABLE (
    gsrn text, accounting_point_id bigint, outcome text, message text,
    started_at timestamptz, data jsonb
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH items AS (
        SELECT DISTINCT ON (x.i->>'gsrn') x.i->>'gsrn' AS gsrn,
               (x.i->>'started_at')::timestamptz AS started_at, x.i->'data' AS data
        FROM jsonb_array_elements(p_items) WITH ORDINALITY x(i, ord)
        ORDER BY x.i->>'gsrn', x.ord DESC
    ), judged AS (
        SELECT it.gsrn, a.id, it.started_at, it.data,
               CASE WHEN it.started_at IS NOT NULL
                         AND s.last_sync_start IS DISTINCT FROM it.started_at THEN 'claim_lost'
                    WHEN missing.what IS NOT NULL THEN 'unknown_reference'
                    ELSE 'ok' END AS outcome,
               CASE WHEN it.started_at IS NOT NULL
                         AND s.last_sync_start IS DISTINCT FROM it.started_at
                    THEN format('sync claim of %s was taken over by another worker', it.gsrn)
                    WHEN missing.what IS NOT NULL THEN 'unknown ' || missing.what END AS message
        FROM items it
        JOIN ap.accounting_point a ON a.gsrn = it.gsrn AND a.id = ANY(p_aps)
        JOIN ap.accounting_point_sync s
            ON s.accounting_point_id = a.id AND s.accounting_point_id = ANY(p_aps)
        LEFT JOIN LATERAL (
            SELECT 'energy supplier ' || (e->>'business_id') AS what
            FROM jsonb_array_elements(it.data->'energy_supplier') e
            WHERE NOT EXISTS (SELECT 1 FROM ap.energy_supplier r
                              WHERE r.business_id = e->>'business_id')
            UNION ALL
            SELECT 'metering grid area ' || (e->>'business_id')
            FROM jsonb_array_elements(it.data->'metering_grid_area') e
            WHERE NOT EXISTS (SELECT 1 FROM ap.metering_grid_area r
                              WHERE r.business_id = e->>'business_id')
            LIMIT 1
        ) missing ON true
    )
    SELECT j.gsrn, j.id, j.outcome, j.message, j.started_at, j.data FROM judged j;
END;
$$;

-- Coordinates of the accepted APs: both given, they are stored; a partial answer (flagged by
-- the parser) stores the location as unknown; neither given leaves it as it is. An unchanged
-- location is not written (no history).
CREATE OR REPLACE FUNCTION ap.merge_location(p_aps bigint[], p_data jsonb[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ap.accounting_point a
    SET latitude = n.latitude, longitude = n.longitude
    FROM unnest(p_aps, p_data) b(ap, data),
         LATERAL (SELECT CASE WHEN b.data @> '{"location_partial": true}' THEN NULL
                              ELSE (b.data->>'latitude')::double precision END AS latitude,
                         CASE WHEN b.data @> '{"location_partial": true}' THEN NULL
                              ELSE (b.data->>'longitude')::double precision END AS longitude) n
    WHERE a.id = ANY(p_aps) AND a.id = b.ap
      AND (b.data @> '{"location_partial": true}'
           OR (jsonb_typeof(b.data->'latitude') = 'number'
               AND jsonb_typeof(b.data->'longitude') = 'number'))
      AND (a.latitude, a.longitude) IS DISTINCT FROM (n.latitude, n.longitude);
END;
$$;

-- End users named by the accepted answers: created on demand; a known entity type is kept
-- unless the answer gives another one.
CREATE OR REPLACE FUNCTION ap.upsert_end_users(p_data jsonb[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ap.end_user (business_id, entity_type)
    SELECT DISTINCT ON (e->>'business_id') e->>'business_id', e->>'entity_type'
    FROM unnest(p_data) b(data), jsonb_array_elements(b.data->'end_user') e
    ORDER BY e->>'business_id', (e->>'entity_type') IS NULL
    ON CONFLICT (business_id) DO UPDATE SET entity_type = EXCLUDED.entity_type
    WHERE EXCLUDED.entity_type IS NOT NULL
      AND ap.end_user.entity_type IS DISTINCT FROM EXCLUDED.entity_type;
END;
$$;

-- The one timeline merge, for every timeline: compare the stored periods of the batch's APs with
-- the incoming ones (both with the value as text) and return what to write, per period:
--   delete  a stored period whose valid_from the adapter no longer lists, of an AP the adapter
--           sent periods for (an empty list from the adapter changes nothing);
--   shrink  a kept period that now ends earlier (written before any change: it frees room);
--   change  a kept period that now ends later, or whose value changed;
--   insert  a period with a new valid_from.
-- Written in the order delete, shrink, change, insert, every intermediate state is contained
-- in the final one and never trips the exclusion constraint. An unchanged period yields no
-- step (no write, no history). The inserts come last.
-- No planner setting needed: a FULL JOIN can only be a hash or merge join, linear in the batch.
CREATE OR REPLACE FUNCTION ap.merge_timeline(
    p_stored ap.timeline_period[], p_incoming ap.timeline_period[]
) RETURNS ap.timeline_step[] LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN ARRAY(
        SELECT ROW(
            CASE WHEN t.id IS NULL THEN 'insert'
                 WHEN n.accounting_point_id IS NULL THEN 'delete'
                 WHEN coalesce(n.valid_to, 'infinity') < coalesce(t.valid_to, 'infinity')
                 THEN 'shrink'
                 ELSE 'change' END,
            t.id,
            coalesce(n.accounting_point_id, t.accounting_point_id),
            coalesce(n.valid_from, t.valid_from),
            n.valid_to,
            n.value
        )::ap.timeline_step
        FROM unnest(p_stored) t
        FULL JOIN unnest(p_incoming) n
            ON n.accounting_point_id = t.accounting_point_id AND n.valid_from = t.valid_from
        WHERE CASE WHEN t.id IS NULL THEN true
                   WHEN n.accounting_point_id IS NULL THEN t.accounting_point_id IN (
                       SELECT i.accounting_point_id FROM unnest(p_incoming) i)
                   ELSE (n.valid_to, n.value) IS DISTINCT FROM (t.valid_to, t.value) END
        ORDER BY t.id IS NULL);  -- inserts last, so a first sync's steps start with one
END;
$$;

-- The end user timeline of the accepted APs (p_aps, p_data: parallel arrays).
CREATE OR REPLACE FUNCTION ap.merge_end_user_timeline(p_aps bigint[], p_data jsonb[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_steps ap.timeline_step[];
    v_step text;
BEGIN
    v_steps := ap.merge_timeline(
        ARRAY(SELECT ROW(t.id, t.accounting_point_id, t.valid_from, t.valid_to,
                         t.end_user_id::text)::ap.timeline_period
              FROM ap.accounting_point_end_user t WHERE t.accounting_point_id = ANY(p_aps)),
        -- the `u.business_id = ANY(...)` keeps the end_user access an index scan
        ARRAY(SELECT ROW(NULL, b.ap, (e->>'valid_from')::timestamptz,
                         (e->>'valid_to')::timestamptz, u.id::text)::ap.timeline_period
              FROM unnest(p_aps, p_data) b(ap, data), jsonb_array_elements(b.data->'end_user') e
              JOIN ap.end_user u ON u.business_id = e->>'business_id'
              WHERE u.business_id = ANY(ARRAY(
                  SELECT x->>'business_id'
                  FROM unnest(p_data) d(data), jsonb_array_elements(d.data->'end_user') x))));
    IF cardinality(v_steps) = 0 THEN
        RETURN;
    END IF;
    IF (v_steps[1]).step <> 'insert' THEN  -- else only inserts: a first sync
        DELETE FROM ap.accounting_point_end_user t USING unnest(v_steps) s
        WHERE s.step = 'delete' AND t.id = s.id;
        FOREACH v_step IN ARRAY ARRAY['shrink', 'change'] LOOP  -- two statements: shrinks first
            UPDATE ap.accounting_point_end_user t
            SET valid_to = s.valid_to, end_user_id = s.value::bigint
            FROM unnest(v_steps) s WHERE s.step = v_step AND t.id = s.id;
        END LOOP;
    END IF;
    INSERT INTO ap.accounting_point_end_user
        (accounting_point_id, valid_from, valid_to, end_user_id)
    SELECT s.accounting_point_id, s.valid_from, s.valid_to, s.value::bigint
    FROM unnest(v_steps) s WHERE s.step = 'insert'
    ON CONFLICT (accounting_point_id, valid_from) DO NOTHING;
END;
$$;

-- The energy supplier timeline of the accepted APs (references known: see judge_sync_batch).
CREATE OR REPLACE FUNCTION ap.merge_energy_supplier_timeline(p_aps bigint[], p_data jsonb[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_steps ap.timeline_step[];
    v_step text;
BEGIN
    v_steps := ap.merge_timeline(
        ARRAY(SELECT ROW(t.id, t.accounting_point_id, t.valid_from, t.valid_to,
                         t.energy_supplier_id::text)::ap.timeline_period
              FROM ap.accounting_point_energy_supplier t
              WHERE t.accounting_point_id = ANY(p_aps)),
        ARRAY(SELECT ROW(NULL, b.ap, (e->>'valid_from')::timestamptz,
                         (e->>'valid_to')::timestamptz, r.id::text)::ap.timeline_period
              FROM unnest(p_aps, p_data) b(ap, data),
                   jsonb_array_elements(b.data->'energy_supplier') e
              JOIN ap.energy_supplier r ON r.business_id = e->>'business_id'));
    IF cardinality(v_steps) = 0 THEN
        RETURN;
    END IF;
    IF (v_steps[1]).step <> 'insert' THEN  -- else only inserts: a first sync
        DELETE FROM ap.accounting_point_energy_supplier t USING unnest(v_steps) s
        WHERE s.step = 'delete' AND t.id = s.id;
        FOREACH v_step IN ARRAY ARRAY['shrink', 'change'] LOOP  -- two statements: shrinks first
            UPDATE ap.accounting_point_energy_supplier t
            SET valid_to = s.valid_to, energy_supplier_id = s.value::bigint
            FROM unnest(v_steps) s WHERE s.step = v_step AND t.id = s.id;
        END LOOP;
    END IF;
    INSERT INTO ap.accounting_point_energy_supplier
        (accounting_point_id, valid_from, valid_to, energy_supplier_id)
    SELECT s.accounting_point_id, s.valid_from, s.valid_to, s.value::bigint
    FROM unnest(v_steps) s WHERE s.step = 'insert'
    ON CONFLICT (accounting_point_id, valid_from) DO NOTHING;
END;
$$;

-- The metering grid area timeline of the accepted APs (references known: see judge_sync_batch).
CREATE OR REPLACE FUNCTION ap.merge_metering_grid_area_timeline(p_aps bigint[], p_data jsonb[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_steps ap.timeline_step[];
    v_step text;
BEGIN
    v_steps := ap.merge_timeline(
        ARRAY(SELECT ROW(t.id, t.accounting_point_id, t.valid_from, t.valid_to,
                         t.metering_grid_area_id::text)::ap.timeline_period
              FROM ap.accounting_point_metering_grid_area t
              WHERE t.accounting_point_id = ANY(p_aps)),
        ARRAY(SELECT ROW(NULL, b.ap, (e->>'valid_from')::timestamptz,
                         (e->>'valid_to')::timestamptz, r.id::text)::ap.timeline_period
              FROM unnest(p_aps, p_data) b(ap, data),
                   jsonb_array_elements(b.data->'metering_grid_area') e
              JOIN ap.metering_grid_area r ON r.business_id = e->>'business_id'));
    IF cardinality(v_steps) = 0 THEN
        RETURN;
    END IF;
    IF (v_steps[1]).step <> 'insert' THEN  -- else only inserts: a first sync
        DELETE FROM ap.accounting_point_metering_grid_area t USING unnest(v_steps) s
        WHERE s.step = 'delete' AND t.id = s.id;
        FOREACH v_step IN ARRAY ARRAY['shrink', 'change'] LOOP  -- two statements: shrinks first
            UPDATE ap.accounting_point_metering_grid_area t
            SET valid_to = s.valid_to, metering_grid_area_id = s.value::bigint
            FROM unnest(v_steps) s WHERE s.step = v_step AND t.id = s.id;
        END LOOP;
    END IF;
    INSERT INTO ap.accounting_point_metering_grid_area
        (accounting_point_id, valid_from, valid_to, metering_grid_area_id)
    SELECT s.accounting_point_id, s.valid_from, s.valid_to, s.value::bigint
    FROM unnest(v_steps) s WHERE s.step = 'insert'
    ON CONFLICT (accounting_point_id, valid_from) DO NOTHING;
END;
$$;

-- The energy direction timeline of the accepted APs. Its value travels as the directions
-- joined by ',' ('production,consumption'); the column allows no other words.
CREATE OR REPLACE FUNCTION ap.merge_energy_direction_timeline(p_aps bigint[], p_data jsonb[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_steps ap.timeline_step[];
    v_step text;
BEGIN
    v_steps := ap.merge_timeline(
        ARRAY(SELECT ROW(t.id, t.accounting_point_id, t.valid_from, t.valid_to,
                         array_to_string(t.direction, ','))::ap.timeline_period
              FROM ap.accounting_point_energy_direction t
              WHERE t.accounting_point_id = ANY(p_aps)),
        ARRAY(SELECT ROW(NULL, b.ap, (e->>'valid_from')::timestamptz,
                         (e->>'valid_to')::timestamptz,
                         array_to_string(ARRAY(SELECT jsonb_array_elements_text(e->'direction')),
                                         ','))::ap.timeline_period
              FROM unnest(p_aps, p_data) b(ap, data),
                   jsonb_array_elements(b.data->'energy_direction') e));
    IF cardinality(v_steps) = 0 THEN
        RETURN;
    END IF;
    IF (v_steps[1]).step <> 'insert' THEN  -- else only inserts: a first sync
        DELETE FROM ap.accounting_point_energy_direction t USING unnest(v_steps) s
        WHERE s.step = 'delete' AND t.id = s.id;
        FOREACH v_step IN ARRAY ARRAY['shrink', 'change'] LOOP  -- two statements: shrinks first
            UPDATE ap.accounting_point_energy_direction t
            SET valid_to = s.valid_to, direction = string_to_array(s.value, ',')
            FROM unnest(v_steps) s WHERE s.step = v_step AND t.id = s.id;
        END LOOP;
    END IF;
    INSERT INTO ap.accounting_point_energy_direction
        (accounting_point_id, valid_from, valid_to, direction)
    SELECT s.accounting_point_id, s.valid_from, s.valid_to, string_to_array(s.value, ',')
    FROM unnest(v_steps) s WHERE s.step = 'insert'
    ON CONFLICT (accounting_point_id, valid_from) DO NOTHING;
END;
$$;

-- The sync rows of the merged APs: synced now, errors cleared, version + 1, and due again
-- after p_resync, or at once if an event asked for a sync after this one's claim began.
CREATE OR REPLACE FUNCTION ap.record_sync_success(
    p_aps bigint[], p_data jsonb[], p_started timestamptz[], p_resync interval
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ap.accounting_point_sync s SET
        last_synced_at = now(),
        last_sync_start = NULL,
        claimed_by = NULL,
        version = s.version + 1,
        attempts = 0,
        last_error = NULL,
        last_error_reason = NULL,
        last_error_at = NULL,
        unknown_fields = CASE WHEN b.data ? 'unknown_fields'
            THEN ARRAY(SELECT jsonb_array_elements_text(b.data->'unknown_fields')) END,
        location_partial = b.data @> '{"location_partial": true}',
        requested_at = CASE WHEN s.requested_at > coalesce(b.started_at, now())
            THEN s.requested_at END,
        next_sync_at = CASE WHEN s.requested_at > coalesce(b.started_at, now())
            THEN now() ELSE now() + p_resync END
    FROM unnest(p_aps, p_data, p_started) b(ap, data, started_at)
    WHERE s.accounting_point_id = ANY(p_aps) AND s.accounting_point_id = b.ap;
END;
$$;
