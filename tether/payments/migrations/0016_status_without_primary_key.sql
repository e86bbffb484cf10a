-- pay.status keeps two indexes, not three: its primary key (id) goes. Every status is written
-- once, never updated nor deleted by tether, and read by key (status_key: a key's latest, a
-- case's statuses) or by transaction (status_txid: the publisher's windows, the console's
-- backlog); no statement looks a status up by its id alone. Each of a message's three statuses
-- wrote an entry in each index: 3 of the 30 B-tree inserts a message (pg_waldump), and their
-- share of vacuum. The id still comes from its sequence only (no statement sets it), so it
-- stays unique: it orders a key's statuses and names each on NATS (Nats-Msg-Id status-<id>).
ALTER TABLE pay.status DROP CONSTRAINT status_pkey;
