-- Intake in one round trip: lock (or create) the case, log the message, and read the confirmed
-- state the message is planned against. A plpgsql function (VOLATILE): each statement takes a
-- fresh snapshot, so the utbetaling read comes after the case lock is held and sees every
-- receipt committed before it (one SQL statement with CTEs would read a snapshot taken before
-- waiting for the lock: a lost update).
--
-- logged = false: the key was logged before (the caller answers from what is stored).
-- confirmed: uid -> data of the case's confirmed utbetalinger, read only when the message is
-- planned now (logged, no order in flight) and the payment system ever accepted an order.
CREATE FUNCTION pay.intake(p_fagsystem text, p_sak_id text, p_key text, p_hash text,
                           p_body bytea)
RETURNS TABLE (logged boolean, active_uids text[], has_order_before boolean,
               inflight_order uuid, confirmed jsonb)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s pay.sak;
BEGIN
    INSERT INTO pay.sak AS k (fagsystem, sak_id) VALUES (p_fagsystem, p_sak_id)
    ON CONFLICT (fagsystem, sak_id) DO UPDATE SET updated_at = k.updated_at
    RETURNING k.* INTO s;
    INSERT INTO pay.inbound (original_key, content_hash, fagsystem, sak_id, body, dryrun, state)
    VALUES (p_key, p_hash, p_fagsystem, p_sak_id, p_body, false,
            CASE WHEN s.inflight_order IS NULL THEN 'done' ELSE 'waiting' END)
    ON CONFLICT (original_key) DO NOTHING;
    logged := FOUND;
    active_uids := s.active_uids;
    has_order_before := s.has_order_before;
    inflight_order := s.inflight_order;
    confirmed := '{}'::jsonb;
    IF logged AND s.inflight_order IS NULL AND s.has_order_before THEN
        SELECT coalesce(jsonb_object_agg(u.uid, u.data), '{}'::jsonb) INTO confirmed
        FROM pay.utbetaling u WHERE u.fagsystem = p_fagsystem AND u.sak_id = p_sak_id;
    END IF;
    RETURN NEXT;
END
$$;
