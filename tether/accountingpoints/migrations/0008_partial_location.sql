-- A location is both coordinates or none. An answer with only one of them (a latitude without
-- a longitude) used to be dropped silently, keeping whatever location was stored before, which
-- may be a place the AP has since left. Now it is stored as unknown (both NULL) and the sync row
-- says so (location_partial), until an answer comes with a whole location or none. The parser
-- (client.py) turns the lone coordinate into "location_partial": true in the merged payload and
-- counts it in tether_ap_partial_locations_total; the console shows the flagged APs.
ALTER TABLE ap.accounting_point_sync
    ADD COLUMN location_partial boolean NOT NULL DEFAULT false;

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
