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
-- order ('{}' otherwise; NULL on the case's later messages).
-- A message whose case has an order in flight is logged 'waiting'; the others 'done' (the
-- caller marks 'waiting' those that end up behind an order planned in this same batch).
CREATE FUNCTION pay.intake_batch(p_fagsystem text, p_keys text[], p_hashes text[],
                                 p_saks text[], p_bodies bytea[])
RETURNS TABLE (ord int, logged boolean, seen_hash text, active_uids text[],
               has_order_before boolean, inflight_order uuid, confirmed jsonb)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    cases pay.sak[];
    logged_keys text[];
BEGIN
    WITH locked AS (
        INSERT INTO pay.sak AS k (fagsystem, sak_id)
        SELECT DISTINCT p_fagsystem, s FROM unnest(p_saks) AS s WHERE s IS NOT NULL ORDER BY 2
        ON CONFLICT (fagsystem, sak_id) DO UPDATE SET updated_at = k.updated_at
        RETURNING k.*
    )
    SELECT coalesce(array_agg(locked), '{}') INTO cases FROM locked;

    WITH ins AS (
        INSERT INTO pay.inbound (original_key, content_hash, fagsystem, sak_id, body, dryrun,
                                 state)
        SELECT m.key, m.hash, CASE WHEN m.sak IS NULL THEN NULL ELSE p_fagsystem END, m.sak,
               m.body, false, CASE WHEN c.inflight_order IS NULL THEN 'done' ELSE 'waiting' END
        FROM unnest(p_keys, p_hashes, p_saks, p_bodies) WITH ORDINALITY AS m(key, hash, sak,
                                                                              body, ord)
        LEFT JOIN unnest(cases) AS c ON c.sak_id = m.sak
        ORDER BY m.ord
        ON CONFLICT (original_key) DO NOTHING
        RETURNING original_key
    )
    SELECT coalesce(array_agg(original_key), '{}') INTO logged_keys FROM ins;

    RETURN QUERY
    WITH m AS (
        SELECT x.key, x.sak, x.ord::int AS ord,
               x.ord = min(x.ord) OVER (PARTITION BY x.key) AS first_of_key,
               x.ord = min(x.ord) OVER (PARTITION BY x.sak) AS first_of_case
        FROM unnest(p_keys, p_saks) WITH ORDINALITY AS x(key, sak, ord)
    )
    SELECT m.ord,
           m.first_of_key AND m.key = ANY(logged_keys),
           CASE WHEN NOT (m.first_of_key AND m.key = ANY(logged_keys)) THEN
               (SELECT i.content_hash FROM pay.inbound i WHERE i.original_key = m.key)
           END,
           c.active_uids, coalesce(c.has_order_before, false), c.inflight_order,
           CASE WHEN m.sak IS NULL OR NOT m.first_of_case THEN NULL
                WHEN c.inflight_order IS NOT NULL OR NOT c.has_order_before THEN '{}'::jsonb
                ELSE (SELECT coalesce(jsonb_object_agg(u.uid, u.data), '{}'::jsonb)
                      FROM pay.utbetaling u
                      WHERE u.fagsystem = p_fagsystem AND u.sak_id = m.sak)
           END
    FROM m LEFT JOIN unnest(cases) AS c ON c.sak_id = m.sak
    ORDER BY m.ord;
END
$$;

-- The single-message intake function is replaced by the batch one (a batch of one).
DROP FUNCTION pay.intake(text, text, text, text, bytea);

-- When a message was logged: the clock at its INSERT, not the start of its transaction (a
-- batch's transaction starts before its messages are read).
ALTER TABLE pay.inbound ALTER COLUMN received_at SET DEFAULT clock_timestamp();
