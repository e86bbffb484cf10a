-- Intake of a batch of one (a lone HTTP request, the usual case below saturation): what
-- pay.intake_batch returns for one message, without its arrays, its DISTINCT over the batch's
-- cases and its second read of the case row (the lock's RETURNING already holds active_uids).
-- The same lock (INSERT .. ON CONFLICT DO UPDATE on the case), the same log row, the same
-- fresh-snapshot read of the confirmed state after the lock (VOLATILE plpgsql, see 0002), the
-- same row shape (ord = 1). p_sak_id NULL: a message that could not be read, logged without
-- a case. confirmed is read only when the message is logged (an unlogged one is answered as a
-- duplicate or a reused key and never planned).
CREATE FUNCTION pay.intake_one(p_fagsystem text, p_key text, p_hash text, p_sak_id text,
                               p_body bytea)
RETURNS TABLE (ord int, logged boolean, seen_hash text, active_uids text[],
               has_order_before boolean, inflight_order uuid, confirmed jsonb)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s pay.sak;
BEGIN
    ord := 1;
    IF p_sak_id IS NOT NULL THEN
        INSERT INTO pay.sak AS q (fagsystem, sak_id) VALUES (p_fagsystem, p_sak_id)
        ON CONFLICT (fagsystem, sak_id) DO UPDATE SET updated_at = q.updated_at
        RETURNING q.* INTO s;
    END IF;
    INSERT INTO pay.inbound (original_key, content_hash, fagsystem, sak_id, body, dryrun, state)
    VALUES (p_key, p_hash, CASE WHEN p_sak_id IS NULL THEN NULL ELSE p_fagsystem END, p_sak_id,
            p_body, false, CASE WHEN s.inflight_order IS NULL THEN 'done' ELSE 'waiting' END)
    ON CONFLICT (original_key) DO NOTHING;
    logged := FOUND;
    seen_hash := NULL;
    IF NOT logged THEN
        SELECT i.content_hash INTO seen_hash FROM pay.inbound i WHERE i.original_key = p_key;
    END IF;
    active_uids := NULL;
    has_order_before := false;
    inflight_order := NULL;
    confirmed := NULL;
    IF p_sak_id IS NOT NULL THEN
        active_uids := s.active_uids;
        has_order_before := s.has_order_before;
        inflight_order := s.inflight_order;
        confirmed := '{}'::jsonb;
        IF logged AND s.inflight_order IS NULL AND s.has_order_before THEN
            SELECT coalesce(jsonb_object_agg(u.uid, u.data), '{}'::jsonb) INTO confirmed
            FROM pay.utbetaling u WHERE u.fagsystem = p_fagsystem AND u.sak_id = p_sak_id;
        END IF;
    END IF;
    RETURN NEXT;
END
$$;
