-- Named queries of the payments capability (loaded by tether/core/sql.py).
-- Array parameters go in binary (%()b): psycopg dumps an array element by element in Python, as
-- text about 20k instructions an element (a quoting regex and escaping each), a third of it in
-- binary; a receipt batch passes six arrays of its size.

-- name: lock_cases
-- a receipt batch's cases, locked in key order as an intake batch locks them (no deadlock),
-- found by the batch's orders (migration 0014): sent right after lock_orders in the same round
-- trip (an order's case never changes, so reading it before the orders' locks are granted is
-- safe). Whether a message waits is not read here: a read of another table in this statement
-- uses the snapshot taken before the lock wait, blind to a message an intake holding the lock
-- queued (book_receipts, a later statement, reads it)
SELECT fagsystem, sak_id, active_uids, has_order_before, inflight_order
FROM pay.lock_cases(%(ids)b::uuid[]);

-- name: intake_batch
-- lock the batch's cases in key order, log its messages, read each case's confirmed state
-- (migrations 0003 and 0005): one round trip for the whole batch. The arrays go in binary (%()b): as
-- text every body would be hex-escaped, then quoted and backslash-escaped by psycopg's array
-- dumper (a regex substitution per message), 25 times the cost
SELECT ord, logged, seen_hash, active_uids, has_order_before, inflight_order, confirmed
FROM pay.intake_batch(%(fagsystem)s, %(keys)b::text[], %(hashes)b::text[], %(saks)b::text[],
                      %(bodies)b::bytea[]);

-- name: intake_one
-- intake_batch for a batch of one (migration 0004): the same row, less work
SELECT ord, logged, seen_hash, active_uids, has_order_before, inflight_order, confirmed
FROM pay.intake_one(%(fagsystem)s, %(key)s, %(hash)s, %(sak)s, %(body)s);

-- name: store_intake
-- what a batch's planning produced, in one statement (migration 0014): the orders (outbox) with
-- their candidates, each case's order in flight, the messages now queued behind an order of
-- this batch, and one status per message planned (MOTTATT, or a bare OK / FEILET), in the
-- batch's order. With claim_s (a receipt batch whose process sends), the orders are stored
-- already claimed by that process's sender for claim_s seconds (as claim_due_orders claims):
-- it sends them without a claim statement, and should it die they are due again when the
-- claim expires. An order's MOTTATT body is built there from its details (as mark_orders_sent
-- builds HOS_OPPDRAG's): sent as JSON too, it was a second copy of them to encode and parse
SELECT pay.store_intake(%(fagsystem)s, %(orders)s::jsonb, %(sak_ids)b::text[],
                        %(statuses)s::jsonb, %(waiting)b::text[], %(claim_s)s::float8);

-- name: fetch_case
SELECT fagsystem, sak_id, active_uids, has_order_before, inflight_order
FROM pay.sak WHERE fagsystem = %(fagsystem)s AND sak_id = %(sak_id)s;

-- name: fetch_utbetalinger
SELECT uid, klassekode, periods, last_line_id, last_line, data, confirmed_at
FROM pay.utbetaling WHERE fagsystem = %(fagsystem)s AND sak_id = %(sak_id)s ORDER BY uid;

-- name: fetch_inbound
SELECT seq, original_key, content_hash, fagsystem, sak_id, body, dryrun, state
FROM pay.inbound WHERE original_key = %(original_key)s;

-- name: insert_inbound
INSERT INTO pay.inbound (original_key, content_hash, fagsystem, sak_id, body, dryrun, state)
VALUES (%(original_key)s, %(content_hash)s, %(fagsystem)s, %(sak_id)s, %(body)s, %(dryrun)s,
        %(state)s)
ON CONFLICT (original_key) DO NOTHING
RETURNING seq, original_key, content_hash, fagsystem, sak_id, body, dryrun, state;

-- name: take_waiting
-- the oldest waiting message of each given case, marked done, with the case's confirmed state
-- (uid -> data) as this transaction left it: a receipt batch drains its cases in one round
-- trip. The cases' row locks are held by the caller. Per case the first entry of the waiting
-- index (LIMIT 1), not every waiting message of the case sorted (a hot case has hundreds)
WITH nxt AS (
    SELECT w.seq
    FROM unnest(%(fagsystems)b::text[], %(sak_ids)b::text[]) AS c(fagsystem, sak_id)
    CROSS JOIN LATERAL (SELECT i.seq FROM pay.inbound i
                        WHERE i.sak_id = c.sak_id AND i.fagsystem = c.fagsystem
                          AND i.state = 'waiting'
                        ORDER BY i.seq LIMIT 1) w
), taken AS (
    UPDATE pay.inbound i SET state = 'done' FROM nxt WHERE i.seq = nxt.seq
    RETURNING i.fagsystem, i.sak_id, i.seq, i.original_key, i.body
)
SELECT t.fagsystem, t.sak_id, t.original_key, t.body,
       (SELECT coalesce(jsonb_object_agg(u.uid, u.data), '{}'::jsonb) FROM pay.utbetaling u
        WHERE u.fagsystem = t.fagsystem AND u.sak_id = t.sak_id) AS confirmed
FROM taken t
ORDER BY t.fagsystem, t.sak_id;

-- name: insert_status
INSERT INTO pay.status (original_key, status, body) VALUES (%(original_key)s, %(status)s, %(body)s);

-- name: fetch_latest_status
-- the key's latest status, else when the key was logged (a message queued behind its case's
-- order has no status yet; NULL: an unknown key): one statement, so a poll is one round trip
SELECT %(original_key)s::text AS original_key, s.status, s.body, s.created_at,
       CASE WHEN s.status IS NULL THEN (SELECT i.received_at FROM pay.inbound i
                                        WHERE i.original_key = %(original_key)s) END
           AS received_at
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (SELECT status, body, created_at FROM pay.status
                   WHERE original_key = %(original_key)s ORDER BY id DESC LIMIT 1) s ON true;

-- name: claim_due_orders
-- a claim holds an order for the dead timeout: a crashed sender's claim expires by itself. It
-- sets claimed_until, no indexed column, so it is a HOT update (migration 0010); the claim
-- walks oppdrag_due in due order and steps over the orders claimed now; it returns what the
-- sender reads (records.Outgoing). A function whose plan each session keeps (migration 0015)
SELECT id, original_key, xml, message_id, send_attempts
FROM pay.claim_due_orders(%(limit)s::int, %(dead_s)s::float8);

-- name: mark_orders_sent
-- HOS_OPPDRAG only for orders still unsent: a receipt that came first is not overwritten.
-- Rows locked in id order, as a batch of receipts locks them: the two cannot deadlock.
-- Returns how many statuses it stored (migration 0015: one plan per session)
SELECT pay.mark_orders_sent(%(ids)b::uuid[]) AS marked;

-- name: record_send_failure
UPDATE pay.oppdrag SET send_due_at = now() + make_interval(secs => %(delay_s)s),
                       claimed_until = NULL, last_error = %(error)s
WHERE id = %(id)s AND state = 'MOTTATT';

-- name: park_order
-- too large to send and perhaps already published (a second attempt the payment system does
-- not know yet: it may still be in its queue): no due time, so no sender claims it again, and
-- its receipt, should one come, is still booked; an operator decides
UPDATE pay.oppdrag SET send_due_at = NULL, claimed_until = NULL, last_error = %(error)s
WHERE id = %(id)s AND state = 'MOTTATT';

-- name: claim_unanswered_orders
-- sent, and no receipt within the timeout: the next look is one timeout later
UPDATE pay.oppdrag o SET chase_due_at = now() + make_interval(secs => %(timeout_s)s)
WHERE o.id IN (SELECT id FROM pay.oppdrag
               WHERE state = 'HOS_OPPDRAG'
                 AND coalesce(chase_due_at, sent_at + make_interval(secs => %(timeout_s)s))
                     <= now()
               ORDER BY sent_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING o.id, o.fagsystem, o.sak_id, o.original_key, o.xml, o.sha256, o.uids, o.details,
          o.state, o.message_id, o.created_at, o.send_attempts, o.sent_at, o.receipt_code;

-- name: resend_order
-- the payment system never got it: send it again (same message id)
UPDATE pay.oppdrag SET state = 'MOTTATT', send_due_at = now(), claimed_until = NULL
WHERE id = %(id)s AND state = 'HOS_OPPDRAG';

-- name: lock_orders
-- a receipt batch's orders, locked in id order (as mark_orders_sent locks them), before any case
-- (migration 0014); what booking reads of them (records.OrderHead), not the XML stored out of
-- line nor the details (book_receipts puts them in the statuses)
SELECT id, fagsystem, sak_id, original_key, uids, state FROM pay.lock_orders(%(ids)b::uuid[]);

-- name: book_receipts
-- a receipt batch's bookings in one statement (migration 0014; the orders and cases are locked
-- by the caller, each case at most once per call): 00/04 make the order's candidates the
-- confirmed utbetalinger and its uids the case's; 08/12 only free the case; every order
-- finished; the statuses in the batch's order, HOS_OPPDRAG first where the receipt beat the
-- sender, each body built from the order's details (as mark_orders_sent builds HOS_OPPDRAG); a
-- row without a code is an order tether refused to send (Booking.refuse): no receipt, not
-- sent. Returns the cases with a waiting message among the sak ids the batch leaves free (the
-- caller keeps those of its own fagsystem and drains only these), read after the cases' locks
-- are held (lock_cases' snapshot predates them, blind to a message queued while it waited)
SELECT fagsystem, sak_id
FROM pay.book_receipts(%(receipts)s::jsonb, %(ids)b::uuid[], %(sak_ids)b::text[],
                       %(free_sak_ids)b::text[]);

-- name: insert_stray_receipt
INSERT INTO pay.stray_receipt (order_id, reason, body) VALUES (%(order_id)s, %(reason)s, %(body)s);

-- name: claim_status_window
-- the next page of the status log to publish (migration 0008) and the window it is from; no row
-- while another publisher holds the cursor (one at a time, so a key's statuses leave in order).
-- A window whose last page came back short is first moved on to what has committed since. Its
-- statuses: those of the transactions open in done (an index probe each), and those from done's
-- xmax on (one index range from the greater of done's xmax and the last page's end), visible in
-- upto. The body as the database's JSON text, published as it is (never decoded and encoded
-- again). A NULL id: nothing (more) to publish. A function whose plan each session keeps
-- (migration 0015)
SELECT done, upto, txid, id, original_key, body FROM pay.claim_status_window(%(limit)s::int);

-- name: move_status_cursor
-- after the broker acknowledged a page, in the transaction that claimed it
UPDATE pay.status_cursor
SET done = %(done)s::pg_snapshot, upto = %(upto)s::pg_snapshot, last_txid = %(last_txid)s::xid8,
    last_id = %(last_id)s, exhausted = %(exhausted)s;

-- name: fetch_orders_of_case
SELECT id, fagsystem, sak_id, original_key, xml, sha256, uids, details, state, message_id,
       created_at, send_attempts, sent_at, receipt_code
FROM pay.oppdrag WHERE fagsystem = %(fagsystem)s AND sak_id = %(sak_id)s
ORDER BY created_at, id;

-- name: fetch_statuses_of_case
-- every status of the case's messages, then the messages waiting behind its order (no status
-- row yet: VENTER, the body codec.waiting gives), each part in its order
SELECT original_key, status, body, created_at FROM (
    SELECT s.original_key, s.status, s.body, s.created_at, 0 AS part, s.id AS ord
    FROM pay.status s JOIN pay.inbound i ON i.original_key = s.original_key
    WHERE i.fagsystem = %(fagsystem)s AND i.sak_id = %(sak_id)s
    UNION ALL
    SELECT i.original_key, 'VENTER',
           pay.status_body('VENTER', NULL, NULL),
           i.received_at, 1, i.seq
    FROM pay.inbound i
    WHERE i.fagsystem = %(fagsystem)s AND i.sak_id = %(sak_id)s AND i.state = 'waiting'
) listed
ORDER BY part, ord;
