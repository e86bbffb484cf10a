-- Intake of a batch of messages in one round trip (the broker's fetched batch, or the HTTP
-- requests that arrived together): lock (or create) every case of the batch in key order (a
-- receipt batch locks cases in the same order, so the two cannot deadlock), log every message in
-- arrival order, and read each case's confirmed state once. VOLATILE plpgsql: each statement
-- takes a fresh snapshot, so the reads come after the case locks are held (see 0002).
--
-- One row per message (ord = its 1-based place in the batch):
-- logged = false: the key was logged before, or earlier in this batch; seen_hash is the content
-- hash stored under it (the caller answers a duplicate or refuses a reused key).
-- confirmed: uid -> data of the case's confirmed utbetalinger, on the case's first message of
-- the batch only, when nothing of the case is in flight and the payment system ever accepted an
-- order ('{}' otherwise; NULL on the case's later messages). active_uids likewise on the case's
-- first message only; has_order_before and inflight_order on every message of a case.
-- A loop of single-row statements: for the usual small batch (one HTTP request) it costs what
-- the one-message function cost (set-based statements over unnest cost more for one message).
-- A message whose case has an order in flight is logged 'waiting'; the others 'done' (the
-- caller marks 'waiting' those that end up behind an order planned in this same batch).
CREATE FUNCTION pay.intake_batch(p_fagsystem text, p_keys text[], p_hashes text[],
                                 p_saks text[], p_bodies bytea[])
RETURNS TABLE (ord int, logged boolean, seen_hash text, active_uids text[],
               has_order_before boolean, inflight_order uuid, confirmed jsonb)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    saks text[];        -- the batch's cases in key order, locked, and what the lock read says
    c_before boolean[];
    c_inflight uuid[];
    c_seen boolean[];   -- the case's first message of the batch was met
    k int;
    s pay.sak;
BEGIN
    saks := ARRAY(SELECT DISTINCT x FROM unnest(p_saks) AS x WHERE x IS NOT NULL ORDER BY 1);
    c_before := array_fill(false, ARRAY[cardinality(saks)]);
    c_inflight := array_fill(NULL::uuid, ARRAY[cardinality(saks)]);
    c_seen := array_fill(false, ARRAY[cardinality(saks)]);
    FOR s IN
        INSERT INTO pay.sak AS q (fagsystem, sak_id)
        SELECT p_fagsystem, x FROM unnest(saks) AS x ORDER BY 2
        ON CONFLICT (fagsystem, sak_id) DO UPDATE SET updated_at = q.updated_at
        RETURNING q.*
    LOOP
        k := array_position(saks, s.sak_id);
        c_before[k] := s.has_order_before;
        c_inflight[k] := s.inflight_order;
    END LOOP;
    FOR i IN 1 .. coalesce(cardinality(p_keys), 0) LOOP
        ord := i;
        k := CASE WHEN p_saks[i] IS NULL THEN NULL ELSE array_position(saks, p_saks[i]) END;
        INSERT INTO pay.inbound (original_key, content_hash, fagsystem, sak_id, body, dryrun,
                                 state)
        VALUES (p_keys[i], p_hashes[i], CASE WHEN k IS NULL THEN NULL ELSE p_fagsystem END,
                p_saks[i], p_bodies[i], false,
                CASE WHEN k IS NOT NULL AND c_inflight[k] IS NOT NULL THEN 'waiting'
                     ELSE 'done' END)
        ON CONFLICT (original_key) DO NOTHING;
        logged := FOUND;
        seen_hash := NULL;
        IF NOT logged THEN
            SELECT i2.content_hash INTO seen_hash FROM pay.inbound i2
            WHERE i2.original_key = p_keys[i];
        END IF;
        active_uids := NULL;
        has_order_before := false;
        inflight_order := NULL;
        confirmed := NULL;
        IF k IS NOT NULL THEN
            has_order_before := c_before[k];
            inflight_order := c_inflight[k];
            IF NOT c_seen[k] THEN
                c_seen[k] := true;
                SELECT q.active_uids INTO active_uids FROM pay.sak q
                WHERE q.fagsystem = p_fagsystem AND q.sak_id = p_saks[i];
                confirmed := '{}'::jsonb;
                IF c_inflight[k] IS NULL AND c_before[k] THEN
                    SELECT coalesce(jsonb_object_agg(u.uid, u.data), '{}'::jsonb) INTO confirmed
                    FROM pay.utbetaling u
                    WHERE u.fagsystem = p_fagsystem AND u.sak_id = p_saks[i];
                END IF;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- The single-message intake function is replaced by the batch one (a batch of one).
DROP FUNCTION pay.intake(text, text, text, text, bytea);

-- When a message was logged: the clock at its INSERT, not the start of its transaction (a
-- batch's transaction starts before its messages are read).
ALTER TABLE pay.inbound ALTER COLUMN received_at SET DEFAULT clock_timestamp();
