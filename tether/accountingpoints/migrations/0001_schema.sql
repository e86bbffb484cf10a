-- Accounting point capability: reference data, accounting points, their timelines, controllable
-- units and the sync state. Timelines keep history; the sync state deliberately does not.
CREATE SCHEMA ap;

CREATE TABLE ap.metering_grid_area (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_id text NOT NULL UNIQUE CHECK (business_id ~ '^[0-9]{2}Y[0-9A-Z\-]{13}$'),
    name text NOT NULL
);

CREATE TABLE ap.energy_supplier (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_id text NOT NULL UNIQUE CHECK (business_id ~ '^[1-9][0-9]{12}$'),
    name text NOT NULL
);

-- End users are created on demand by the sync. Person ids are personal data: never logged.
CREATE TABLE ap.end_user (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_id text NOT NULL UNIQUE CHECK (business_id ~ '^[1-9][0-9]{8}$|^[0-9]{11}$'),
    entity_type text CHECK (entity_type IN ('person', 'organisation'))
);

CREATE TABLE ap.accounting_point (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gsrn text NOT NULL UNIQUE CHECK (gsrn ~ '^[1-9][0-9]{17}$'),
    latitude double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude double precision CHECK (longitude BETWEEN -180 AND 180),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);
SELECT tether.enable_history('ap.accounting_point');

-- Every timeline: merge key (accounting_point_id, valid_from); periods of one AP never overlap.
-- int8range(id, id, '[]') WITH = stands in for btree_gist, which embedded servers lack.
CREATE TABLE ap.accounting_point_end_user (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    accounting_point_id bigint NOT NULL REFERENCES ap.accounting_point (id) ON DELETE CASCADE,
    end_user_id bigint NOT NULL REFERENCES ap.end_user (id),
    valid_from timestamptz NOT NULL,
    valid_to timestamptz CHECK (valid_to > valid_from),
    UNIQUE (accounting_point_id, valid_from),
    EXCLUDE USING gist (
        int8range(accounting_point_id, accounting_point_id, '[]') WITH =,
        tstzrange(valid_from, valid_to, '[)') WITH &&
    )
);
SELECT tether.enable_history('ap.accounting_point_end_user');

CREATE TABLE ap.accounting_point_energy_supplier (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    accounting_point_id bigint NOT NULL REFERENCES ap.accounting_point (id) ON DELETE CASCADE,
    energy_supplier_id bigint NOT NULL REFERENCES ap.energy_supplier (id),
    valid_from timestamptz NOT NULL,
    valid_to timestamptz CHECK (valid_to > valid_from),
    UNIQUE (accounting_point_id, valid_from),
    EXCLUDE USING gist (
        int8range(accounting_point_id, accounting_point_id, '[]') WITH =,
        tstzrange(valid_from, valid_to, '[)') WITH &&
    )
);
SELECT tether.enable_history('ap.accounting_point_energy_supplier');

CREATE TABLE ap.accounting_point_metering_grid_area (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    accounting_point_id bigint NOT NULL REFERENCES ap.accounting_point (id) ON DELETE CASCADE,
    metering_grid_area_id bigint NOT NULL REFERENCES ap.metering_grid_area (id),
    valid_from timestamptz NOT NULL,
    valid_to timestamptz CHECK (valid_to > valid_from),
    UNIQUE (accounting_point_id, valid_from),
    EXCLUDE USING gist (
        int8range(accounting_point_id, accounting_point_id, '[]') WITH =,
        tstzrange(valid_from, valid_to, '[)') WITH &&
    )
);
SELECT tether.enable_history('ap.accounting_point_metering_grid_area');

CREATE TABLE ap.accounting_point_energy_direction (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    accounting_point_id bigint NOT NULL REFERENCES ap.accounting_point (id) ON DELETE CASCADE,
    direction text[] NOT NULL CHECK (
        cardinality(direction) BETWEEN 1 AND 2
        AND direction <@ ARRAY['production', 'consumption']
    ),
    valid_from timestamptz NOT NULL,
    valid_to timestamptz CHECK (valid_to > valid_from),
    UNIQUE (accounting_point_id, valid_from),
    EXCLUDE USING gist (
        int8range(accounting_point_id, accounting_point_id, '[]') WITH =,
        tstzrange(valid_from, valid_to, '[)') WITH &&
    )
);
SELECT tether.enable_history('ap.accounting_point_energy_direction');

CREATE TABLE ap.controllable_unit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    business_id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    accounting_point_id bigint NOT NULL REFERENCES ap.accounting_point (id),
    start_date date,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX controllable_unit_accounting_point_idx ON ap.controllable_unit (accounting_point_id);

-- Sync bookkeeping, one row per AP, kept apart so it never pollutes history.
-- next_sync_at is the single "due" clock: -infinity = never synced (claimed first), a claim
-- pushes it to now() + dead-sync timeout (so a dead worker's claim expires by itself), success
-- to now() + re-sync interval, failure to now() + backoff, an event to now().
CREATE TABLE ap.accounting_point_sync (
    accounting_point_id bigint PRIMARY KEY REFERENCES ap.accounting_point (id) ON DELETE CASCADE,
    next_sync_at timestamptz NOT NULL DEFAULT '-infinity',
    last_sync_start timestamptz,
    last_synced_at timestamptz,
    version bigint NOT NULL DEFAULT 0,
    requested_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    claimed_by text,
    last_error text,
    last_error_reason text,
    last_error_at timestamptz,
    unknown_fields text[]
);
CREATE INDEX accounting_point_sync_due_idx ON ap.accounting_point_sync (next_sync_at);

CREATE FUNCTION ap.create_sync_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ap.accounting_point_sync (accounting_point_id) VALUES (NEW.id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER accounting_point_create_sync_row AFTER INSERT ON ap.accounting_point
    FOR EACH ROW EXECUTE FUNCTION ap.create_sync_row();

-- Merge one timeline of one AP. p_rows: [{"valid_from", "valid_to", "value"}] with references
-- already resolved. Order never trips the exclusion constraint: delete vanished periods, shrink,
-- then grow or change, then insert. An empty list deletes nothing (the adapter said nothing).
CREATE FUNCTION ap.merge_timeline(
    p_table text, p_column text, p_value_expr text, p_ap bigint, p_rows jsonb
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    incoming text := format(
        '(SELECT (r->>''valid_from'')::timestamptz AS valid_from, '
        '(r->>''valid_to'')::timestamptz AS valid_to, %s AS value '
        'FROM jsonb_array_elements($2) r)', p_value_expr);
BEGIN
    IF p_rows IS NULL OR jsonb_array_length(p_rows) = 0 THEN
        RETURN;
    END IF;
    EXECUTE format(
        'DELETE FROM ap.%I t WHERE t.accounting_point_id = $1 AND t.valid_from NOT IN '
        '(SELECT n.valid_from FROM %s n)', p_table, incoming) USING p_ap, p_rows;
    EXECUTE format(
        'UPDATE ap.%1$I t SET valid_to = n.valid_to, %2$I = n.value FROM %3$s n '
        'WHERE t.accounting_point_id = $1 AND t.valid_from = n.valid_from '
        'AND coalesce(n.valid_to, ''infinity'') < coalesce(t.valid_to, ''infinity'')',
        p_table, p_column, incoming) USING p_ap, p_rows;
    EXECUTE format(
        'UPDATE ap.%1$I t SET valid_to = n.valid_to, %2$I = n.value FROM %3$s n '
        'WHERE t.accounting_point_id = $1 AND t.valid_from = n.valid_from '
        'AND (t.valid_to, t.%2$I) IS DISTINCT FROM (n.valid_to, n.value)',
        p_table, p_column, incoming) USING p_ap, p_rows;
    EXECUTE format(
        'INSERT INTO ap.%1$I (accounting_point_id, valid_from, valid_to, %2$I) '
        'SELECT $1, n.valid_from, n.valid_to, n.value FROM %3$s n '
        'WHERE NOT EXISTS (SELECT 1 FROM ap.%1$I t '
        'WHERE t.accounting_point_id = $1 AND t.valid_from = n.valid_from)',
        p_table, p_column, incoming) USING p_ap, p_rows;
END;
$$;

-- Resolve business ids of one timeline to reference ids; unknown ones fail the whole sync.
CREATE FUNCTION ap.resolve_references(p_periods jsonb, p_kind text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    missing text;
    resolved jsonb;
BEGIN
    IF p_kind = 'energy_supplier' THEN
        SELECT e->>'business_id' INTO missing FROM jsonb_array_elements(p_periods) e
        WHERE NOT EXISTS (SELECT 1 FROM ap.energy_supplier s WHERE s.business_id = e->>'business_id')
        LIMIT 1;
        SELECT coalesce(jsonb_agg(jsonb_build_object('valid_from', e->'valid_from',
               'valid_to', e->'valid_to', 'value', s.id)), '[]') INTO resolved
        FROM jsonb_array_elements(p_periods) e JOIN ap.energy_supplier s
             ON s.business_id = e->>'business_id';
    ELSE
        SELECT e->>'business_id' INTO missing FROM jsonb_array_elements(p_periods) e
        WHERE NOT EXISTS (SELECT 1 FROM ap.metering_grid_area m WHERE m.business_id = e->>'business_id')
        LIMIT 1;
        SELECT coalesce(jsonb_agg(jsonb_build_object('valid_from', e->'valid_from',
               'valid_to', e->'valid_to', 'value', m.id)), '[]') INTO resolved
        FROM jsonb_array_elements(p_periods) e JOIN ap.metering_grid_area m
             ON m.business_id = e->>'business_id';
    END IF;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'unknown % %', replace(p_kind, '_', ' '), missing
            USING HINT = 'unknown_reference';
    END IF;
    RETURN resolved;
END;
$$;

-- Apply one adapter answer to one AP, atomically. p_started_at is when this sync's claim began
-- (NULL for a synchronous lookup fetch); a claim that was taken over in the meantime is refused,
-- and an event that arrived after p_started_at makes the AP due again at once.
CREATE FUNCTION ap.apply_sync(
    p_gsrn text, p_data jsonb, p_started_at timestamptz, p_resync interval, p_actor text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_ap bigint;
    v_sync ap.accounting_point_sync;
    v_end_users jsonb;
BEGIN
    PERFORM set_config('lock_timeout', '1s', true);
    PERFORM set_config('tether.actor', p_actor, true);
    INSERT INTO ap.accounting_point (gsrn) VALUES (p_gsrn) ON CONFLICT (gsrn) DO NOTHING;
    SELECT id INTO v_ap FROM ap.accounting_point WHERE gsrn = p_gsrn;
    SELECT * INTO v_sync FROM ap.accounting_point_sync WHERE accounting_point_id = v_ap FOR UPDATE;
    IF p_started_at IS NOT NULL AND v_sync.last_sync_start IS DISTINCT FROM p_started_at THEN
        RAISE EXCEPTION 'sync claim of % was taken over by another worker', p_gsrn
            USING HINT = 'claim_lost';
    END IF;

    IF jsonb_typeof(p_data->'latitude') = 'number' AND jsonb_typeof(p_data->'longitude') = 'number' THEN
        UPDATE ap.accounting_point
        SET latitude = (p_data->>'latitude')::double precision,
            longitude = (p_data->>'longitude')::double precision
        WHERE id = v_ap;
    END IF;

    INSERT INTO ap.end_user (business_id, entity_type)
    SELECT DISTINCT ON (e->>'business_id') e->>'business_id', e->>'entity_type'
    FROM jsonb_array_elements(p_data->'end_user') e
    ON CONFLICT (business_id) DO UPDATE SET entity_type = EXCLUDED.entity_type
    WHERE EXCLUDED.entity_type IS NOT NULL
      AND ap.end_user.entity_type IS DISTINCT FROM EXCLUDED.entity_type;
    SELECT coalesce(jsonb_agg(jsonb_build_object('valid_from', e->'valid_from',
           'valid_to', e->'valid_to', 'value', u.id)), '[]') INTO v_end_users
    FROM jsonb_array_elements(p_data->'end_user') e JOIN ap.end_user u
         ON u.business_id = e->>'business_id';

    PERFORM ap.merge_timeline('accounting_point_end_user', 'end_user_id',
        '(r->>''value'')::bigint', v_ap, v_end_users);
    PERFORM ap.merge_timeline('accounting_point_energy_supplier', 'energy_supplier_id',
        '(r->>''value'')::bigint', v_ap,
        ap.resolve_references(p_data->'energy_supplier', 'energy_supplier'));
    PERFORM ap.merge_timeline('accounting_point_metering_grid_area', 'metering_grid_area_id',
        '(r->>''value'')::bigint', v_ap,
        ap.resolve_references(p_data->'metering_grid_area', 'metering_grid_area'));
    PERFORM ap.merge_timeline('accounting_point_energy_direction', 'direction',
        'ARRAY(SELECT jsonb_array_elements_text(r->''value''))', v_ap,
        (SELECT coalesce(jsonb_agg(jsonb_build_object('valid_from', e->'valid_from',
                'valid_to', e->'valid_to', 'value', e->'direction')), '[]')
         FROM jsonb_array_elements(coalesce(p_data->'energy_direction', '[]')) e));

    UPDATE ap.accounting_point_sync s SET
        last_synced_at = now(),
        last_sync_start = NULL,
        claimed_by = NULL,
        version = s.version + 1,
        attempts = 0,
        last_error = NULL,
        last_error_reason = NULL,
        last_error_at = NULL,
        unknown_fields = CASE WHEN p_data ? 'unknown_fields'
            THEN ARRAY(SELECT jsonb_array_elements_text(p_data->'unknown_fields')) END,
        requested_at = CASE WHEN s.requested_at > coalesce(p_started_at, now())
            THEN s.requested_at END,
        next_sync_at = CASE WHEN s.requested_at > coalesce(p_started_at, now())
            THEN now() ELSE now() + p_resync END
    WHERE s.accounting_point_id = v_ap;
    RETURN v_ap;
END;
$$;
