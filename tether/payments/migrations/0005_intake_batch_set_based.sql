-- pay.intake_batch, set-based: three statements for the whole batch instead of two per message
-- (the broker's fetched batches are tens of messages; a batch of one has pay.intake_one). The
-- same rows as 0003 for the same input:
-- 1. lock (or create) every case of the batch in key order (as 0003 and the receipt batches);
-- 2. log every message in arrival order (ORDER BY ord: seq follows it) by original key; a key
--    seen before, or earlier in this batch, is not logged again (ON CONFLICT DO NOTHING skips
--    a row that conflicts with one this statement inserted); a message whose case has an order
--    in flight is logged 'waiting';
-- 3. one row per message: logged is true for the first of its key, if that one was inserted;
--    seen_hash otherwise; the case's first message of the batch carries active_uids and the
--    confirmed state (uid -> data; '{}' unless the payment system accepted an order before and
--    nothing is in flight), its later ones NULL.
-- VOLATILE plpgsql: statements 2 and 3 take their snapshots after statement 1 holds the locks,
-- so they read what a receipt booked while this batch waited for a case (see 0002).
CREATE OR REPLACE FUNCTION pay.intake_batch(p_fagsystem text, p_keys text[], p_hashes text[],
                                            p_saks text[], p_bodies bytea[])
RETURNS TABLE (ord int, logged boolean, seen_hash text, active_uids text[],
               has_order_before boolean, inflight_order uuid, confirmed jsonb)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    inserted text[];
    cases int;
BEGIN
    WITH locked AS (
        INSERT INTO pay.sak AS q (fagsystem, sak_id)
        SELECT DISTINCT p_fagsystem, x FROM unnest(p_saks) AS x WHERE x IS NOT NULL ORDER BY 2
        ON CONFLICT (fagsystem, sak_id) DO UPDATE SET updated_at = q.updated_at
        RETURNING 1
    )
    SELECT count(*) INTO cases FROM locked;

    WITH logged AS (
        INSERT INTO pay.inbound (original_key, content_hash, fagsystem, sak_id, body, dryrun,
                                 state)
        SELECT m.k, m.h, CASE WHEN m.s IS NULL THEN NULL ELSE p_fagsystem END, m.s, m.b, false,
               CASE WHEN c.inflight_order IS NOT NULL THEN 'waiting' ELSE 'done' END
        FROM unnest(p_keys, p_hashes, p_saks, p_bodies) WITH ORDINALITY AS m(k, h, s, b, n)
        LEFT JOIN pay.sak c ON c.fagsystem = p_fagsystem AND c.sak_id = m.s
        ORDER BY m.n
        ON CONFLICT (original_key) DO NOTHING
        RETURNING original_key
    )
    SELECT coalesce(array_agg(original_key), '{}') INTO inserted FROM logged;

    RETURN QUERY
    WITH m AS (
        SELECT x.k, x.s, x.n::int AS n,
               x.n = min(x.n) OVER (PARTITION BY x.k) AS first_of_key,
               x.s IS NOT NULL AND x.n = min(x.n) OVER (PARTITION BY x.s) AS first_of_case
        FROM unnest(p_keys, p_saks) WITH ORDINALITY AS x(k, s, n)
    )
    SELECT m.n,
           m.first_of_key AND m.k = ANY(inserted),
           CASE WHEN m.first_of_key AND m.k = ANY(inserted) THEN NULL
                ELSE (SELECT i.content_hash FROM pay.inbound i WHERE i.original_key = m.k) END,
           CASE WHEN m.first_of_case THEN c.active_uids END,
           coalesce(c.has_order_before, false),
           c.inflight_order,
           CASE WHEN NOT m.first_of_case THEN NULL
                WHEN c.inflight_order IS NULL AND c.has_order_before THEN
                    (SELECT coalesce(jsonb_object_agg(u.uid, u.data), '{}'::jsonb)
                     FROM pay.utbetaling u
                     WHERE u.fagsystem = p_fagsystem AND u.sak_id = m.s)
                ELSE '{}'::jsonb END
    FROM m LEFT JOIN pay.sak c ON c.fagsystem = p_fagsystem AND c.sak_id = m.s
    ORDER BY m.n;
END
$$;
