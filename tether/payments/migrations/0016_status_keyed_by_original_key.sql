-- pay.status keeps two indexes, not three: its primary key becomes (original_key, id), the
-- index every read by key already used (a key's latest status, a case's statuses), and the
-- index on id alone goes with the old key. No statement looked a status up by its id alone;
-- each of a message's three statuses wrote an entry in every index: 3 of the 30 B-tree inserts
-- a message (pg_waldump), and their share of vacuum. The id still comes from its sequence only,
-- so it stays unique: it orders a key's statuses and names each on NATS (status-<id>).
ALTER TABLE pay.status DROP CONSTRAINT status_pkey;
ALTER TABLE pay.status ADD CONSTRAINT status_pkey PRIMARY KEY (original_key, id);
DROP INDEX pay.status_key;
