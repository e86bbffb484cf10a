-- Set-based sync apply: many adapter answers merged by one call, in one transaction.
--
-- ap.apply_sync ran about twenty statements per accounting point, so a worker paid twenty
-- executor start-ups and round trips of PL/pgSQL per AP and could not get past ~300 syncs/s.
-- ap.apply_sync_batch runs the same steps once for a whole batch: each statement works on every
-- AP of the batch at once. The rules are unchanged:
--   * each AP's sync row is locked first (in id order, so two batches never deadlock);
--   * an item whose claim was taken over (claim_lost) or that names an unknown supplier or grid
--     area (unknown_reference) is left untouched and reported; the others are merged;
--   * per timeline: delete vanished periods, shrink, then grow or change, then insert, so every
--     intermediate state is contained in the final one and never trips the exclusion constraint;
--     an empty list from the adapter changes nothing;
--   * location only when both coordinates are present; no-op updates write no history.
-- Plans stay bounded by the batch, whatever the table sizes: PL/pgSQL caches one generic plan
-- per statement and connection (plan_cache_mode = force_generic_plan: no re-planning per call),
-- and a plan made while a table was nearly empty (a fresh install, a demo) would keep scanning
-- it whole as it grows, since nothing invalidates the plan. So every table access carries an
-- `= ANY(<ids of this batch>)` on an indexed column and the functions run with
-- enable_seqscan = off: each scan is an index scan over the batch's rows, at any size.
-- ap.apply_sync keeps its signature and errors (the lookup flow and one-AP syncs use it) and is
-- now a batch of one, so there is a single merge path.

-- One generated function per timeline, static SQL (plans cached): merge the incoming periods of
-- every AP in p_aps. Values travel as text: a bigint reference id, or 'production,consumption'.
DO $migration$
DECLARE
    spec text[];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ['accounting_point_end_user', 'end_user_id', 'n.value::bigint'],
        ['accounting_point_energy_supplier', 'energy_supplier_id', 'n.value::bigint'],
        ['accounting_point_metering_grid_area', 'metering_grid_area_id', 'n.value::bigint'],
        ['accounting_point_energy_direction', 'direction', 'string_to_array(n.value, '','')']
    ] LOOP
        EXECUTE format($fn$
CREATE FUNCTION ap.%1$I(
    p_aps bigint[], p_from timestamptz[], p_to timestamptz[], p_value text[]
) RETURNS void LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $body$
BEGIN
    IF cardinality(p_aps) = 0 THEN
        RETURN;
    END IF;
    DELETE FROM ap.%2$I t
    WHERE t.accounting_point_id = ANY(p_aps)
      AND NOT EXISTS (SELECT 1 FROM unnest(p_aps, p_from) n(ap, valid_from)
                      WHERE n.ap = t.accounting_point_id AND n.valid_from = t.valid_from);
    UPDATE ap.%2$I t SET valid_to = n.valid_to, %3$I = %4$s
    FROM unnest(p_aps, p_from, p_to, p_value) n(ap, valid_from, valid_to, value)
    WHERE t.accounting_point_id = ANY(p_aps)
      AND t.accounting_point_id = n.ap AND t.valid_from = n.valid_from
      AND coalesce(n.valid_to, 'infinity') < coalesce(t.valid_to, 'infinity');
    UPDATE ap.%2$I t SET valid_to = n.valid_to, %3$I = %4$s
    FROM unnest(p_aps, p_from, p_to, p_value) n(ap, valid_from, valid_to, value)
    WHERE t.accounting_point_id = ANY(p_aps)
      AND t.accounting_point_id = n.ap AND t.valid_from = n.valid_from
      AND (t.valid_to, t.%3$I) IS DISTINCT FROM (n.valid_to, %4$s);
    INSERT INTO ap.%2$I (accounting_point_id, valid_from, valid_to, %3$I)
    SELECT n.ap, n.valid_from, n.valid_to, %4$s
    FROM unnest(p_aps, p_from, p_to, p_value) n(ap, valid_from, valid_to, value)
    ON CONFLICT (accounting_point_id, valid_from) DO NOTHING;
END;
$body$
$fn$, 'merge_batch_' || spec[1], spec[1], spec[2], spec[3]);
    END LOOP;
END;
$migration$;

CREATE FUNCTION ap.apply_sync_batch(p_items jsonb, p_resync interval, p_actor text)
RETURNS TABLE (gsrn text, accounting_point_id bigint, outcome text, message text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
    -- the batch: its GSRNs and their AP ids
    v_wanted text[];
    v_all bigint[];
    -- every item, for the answer
    v_gsrns text[];
    v_ids bigint[];
    v_outcomes text[];
    v_messages text[];
    -- the accepted ones, for the merge
    v_ok bigint[];
    v_data jsonb[];
    v_started timestamptz[];
    -- one timeline's incoming periods
    t_aps bigint[];
    t_from timestamptz[];
    t_to timestamptz[];
    t_value text[];
BEGIN
    PERFORM set_config('lock_timeout', '1s', true);
    PERFORM set_config('tether.actor', p_actor, true);

    SELECT array_agg(DISTINCT i->>'gsrn') INTO v_wanted FROM jsonb_array_elements(p_items) i;
    INSERT INTO ap.accounting_point (gsrn)
    SELECT w FROM unnest(v_wanted) w ORDER BY 1
    ON CONFLICT (gsrn) DO NOTHING;
    SELECT array_agg(a.id) INTO v_all FROM ap.accounting_point a WHERE a.gsrn = ANY(v_wanted);

    PERFORM 1 FROM ap.accounting_point_sync s
    WHERE s.accounting_point_id = ANY(v_all)
    ORDER BY s.accounting_point_id
    FOR UPDATE;

    -- The verdict on each item (the last one wins if a GSRN comes twice).
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
        JOIN ap.accounting_point a ON a.gsrn = it.gsrn AND a.id = ANY(v_all)
        JOIN ap.accounting_point_sync s
            ON s.accounting_point_id = a.id AND s.accounting_point_id = ANY(v_all)
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
    SELECT array_agg(j.gsrn ORDER BY j.id), array_agg(j.id ORDER BY j.id),
           array_agg(j.outcome ORDER BY j.id), array_agg(j.message ORDER BY j.id),
           coalesce(array_agg(j.id ORDER BY j.id) FILTER (WHERE j.outcome = 'ok'), '{}'),
           coalesce(array_agg(j.data ORDER BY j.id) FILTER (WHERE j.outcome = 'ok'), '{}'),
           coalesce(array_agg(j.started_at ORDER BY j.id) FILTER (WHERE j.outcome = 'ok'), '{}')
    INTO v_gsrns, v_ids, v_outcomes, v_messages, v_ok, v_data, v_started
    FROM judged j;

    UPDATE ap.accounting_point a
    SET latitude = (b.data->>'latitude')::double precision,
        longitude = (b.data->>'longitude')::double precision
    FROM unnest(v_ok, v_data) b(ap, data)
    WHERE a.id = ANY(v_ok) AND a.id = b.ap
      AND jsonb_typeof(b.data->'latitude') = 'number'
      AND jsonb_typeof(b.data->'longitude') = 'number'
      AND (a.latitude, a.longitude) IS DISTINCT FROM
          ((b.data->>'latitude')::double precision, (b.data->>'longitude')::double precision);

    INSERT INTO ap.end_user (business_id, entity_type)
    SELECT DISTINCT ON (e->>'business_id') e->>'business_id', e->>'entity_type'
    FROM unnest(v_data) b(data), jsonb_array_elements(b.data->'end_user') e
    ORDER BY e->>'business_id', (e->>'entity_type') IS NULL
    ON CONFLICT (business_id) DO UPDATE SET entity_type = EXCLUDED.entity_type
    WHERE EXCLUDED.entity_type IS NOT NULL
      AND ap.end_user.entity_type IS DISTINCT FROM EXCLUDED.entity_type;

    SELECT coalesce(array_agg(b.ap), '{}'), array_agg((e->>'valid_from')::timestamptz),
           array_agg((e->>'valid_to')::timestamptz), array_agg(u.id::text)
    INTO t_aps, t_from, t_to, t_value
    FROM unnest(v_ok, v_data) b(ap, data), jsonb_array_elements(b.data->'end_user') e
    JOIN ap.end_user u ON u.business_id = e->>'business_id'
    WHERE u.business_id = ANY(ARRAY(
        SELECT x->>'business_id'
        FROM unnest(v_data) d(data), jsonb_array_elements(d.data->'end_user') x));
    PERFORM ap.merge_batch_accounting_point_end_user(t_aps, t_from, t_to, t_value);

    SELECT coalesce(array_agg(b.ap), '{}'), array_agg((e->>'valid_from')::timestamptz),
           array_agg((e->>'valid_to')::timestamptz), array_agg(r.id::text)
    INTO t_aps, t_from, t_to, t_value
    FROM unnest(v_ok, v_data) b(ap, data), jsonb_array_elements(b.data->'energy_supplier') e
    JOIN ap.energy_supplier r ON r.business_id = e->>'business_id';
    PERFORM ap.merge_batch_accounting_point_energy_supplier(t_aps, t_from, t_to, t_value);

    SELECT coalesce(array_agg(b.ap), '{}'), array_agg((e->>'valid_from')::timestamptz),
           array_agg((e->>'valid_to')::timestamptz), array_agg(r.id::text)
    INTO t_aps, t_from, t_to, t_value
    FROM unnest(v_ok, v_data) b(ap, data), jsonb_array_elements(b.data->'metering_grid_area') e
    JOIN ap.metering_grid_area r ON r.business_id = e->>'business_id';
    PERFORM ap.merge_batch_accounting_point_metering_grid_area(t_aps, t_from, t_to, t_value);

    SELECT coalesce(array_agg(b.ap), '{}'), array_agg((e->>'valid_from')::timestamptz),
           array_agg((e->>'valid_to')::timestamptz),
           array_agg(array_to_string(ARRAY(SELECT jsonb_array_elements_text(e->'direction')), ','))
    INTO t_aps, t_from, t_to, t_value
    FROM unnest(v_ok, v_data) b(ap, data), jsonb_array_elements(b.data->'energy_direction') e;
    PERFORM ap.merge_batch_accounting_point_energy_direction(t_aps, t_from, t_to, t_value);

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
        requested_at = CASE WHEN s.requested_at > coalesce(b.started_at, now())
            THEN s.requested_at END,
        next_sync_at = CASE WHEN s.requested_at > coalesce(b.started_at, now())
            THEN now() ELSE now() + p_resync END
    FROM unnest(v_ok, v_data, v_started) b(ap, data, started_at)
    WHERE s.accounting_point_id = ANY(v_ok) AND s.accounting_point_id = b.ap;

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

-- The per-AP merge functions of 0001 and 0002 have no caller left.
DROP FUNCTION ap.merge_timeline(text, text, text, bigint, jsonb);
DROP FUNCTION ap.resolve_references(jsonb, text);
DROP FUNCTION ap.merge_accounting_point_end_user(bigint, jsonb);
DROP FUNCTION ap.merge_accounting_point_energy_supplier(bigint, jsonb);
DROP FUNCTION ap.merge_accounting_point_metering_grid_area(bigint, jsonb);
DROP FUNCTION ap.merge_accounting_point_energy_direction(bigint, jsonb);
