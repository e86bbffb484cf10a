-- Statuses are published by a cursor over the status log instead of marking each row.
--
-- Before, the publisher locked every status it claimed (FOR UPDATE) and then set its
-- published_at: two more WAL records and a full new row version (body included, and an entry in
-- every index) for each of the three statuses of a message, and three dead rows a message for
-- autovacuum. Now a status only records the transaction that wrote it (txid), and one cursor
-- row says how far the log is published, as PgQ's ticks do:
-- - done: a snapshot; every status whose transaction is visible in it is published;
-- - upto: a later snapshot; the window being published is the statuses visible in upto and not
--   in done, paged in (txid, id) order after (last_txid, last_id); exhausted once a page came
--   back short, when the next round moves the window on (done := upto, upto := a new snapshot).
-- A window's statuses are those of done's open transactions (an index probe each) and those
-- from done's xmax on (an index range): never a scan from done's xmin, which a long transaction
-- anywhere on the server (an accruals run) holds back.
-- A transaction that was still open when a window was taken is in no earlier window, so a status
-- that commits late (its id lower than ones already published) is never skipped, as a plain
-- "id > last published id" cursor would skip it. A key's statuses are written by transactions
-- that each start after the previous one committed: in the same or a later window, and with a
-- higher txid, so they leave in their order.
ALTER TABLE pay.status ADD COLUMN txid xid8;
-- statuses not yet published join the first window: this transaction is still open in the
-- cursor's first snapshot below; published ones keep txid NULL, in no window
UPDATE pay.status SET txid = pg_current_xact_id() WHERE published_at IS NULL;
ALTER TABLE pay.status ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
CREATE INDEX status_txid ON pay.status (txid, id);
DROP INDEX pay.status_unpublished;
ALTER TABLE pay.status DROP COLUMN published_at;

CREATE TABLE pay.status_cursor (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),  -- a single row
    done      pg_snapshot NOT NULL,
    upto      pg_snapshot NOT NULL,
    last_txid xid8 NOT NULL DEFAULT '0',
    last_id   bigint NOT NULL DEFAULT 0,
    exhausted boolean NOT NULL DEFAULT true
);
-- The first snapshot must hold this transaction as in progress, for the statuses it gave its id
-- to above. A snapshot never lists its own transaction, which is in progress only while no
-- later id has completed (it is then at or past xmax): with a later commit anywhere on the
-- server in between, this one read as committed and those statuses were never published. So
-- it is put in the list. (Edited after it first shipped: it only ever ran on test and demo
-- databases, and a database that ran it keeps its cursor.)
INSERT INTO pay.status_cursor (done, upto)
SELECT first, first FROM (
    SELECT CASE WHEN me >= pg_snapshot_xmax(now) THEN now
                ELSE (pg_snapshot_xmin(now) || ':' || pg_snapshot_xmax(now) || ':'
                      || (SELECT string_agg(x::text, ',' ORDER BY x)
                          FROM (SELECT pg_snapshot_xip(now) UNION SELECT me) AS open(x))
                     )::pg_snapshot
           END AS first
    FROM (SELECT pg_current_snapshot() AS now, pg_current_xact_id() AS me) AS taken
) AS cursor;
