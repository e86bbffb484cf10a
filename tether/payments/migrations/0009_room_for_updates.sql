-- Order and case rows are written with room on their page for the versions their updates make.
--
-- An order row is updated three times within a second or so of its insert (claimed, sent,
-- answered) and a case row twice a message (its order in flight, then freed). At the default
-- fillfactor of 100 the insert filled the page, so nearly every new version went to another
-- page: PostgreSQL then logs the whole new row (about 700 bytes for an order), and a case's
-- updates could not be HOT (no index touched) for want of room. With half of each page left to
-- updates, a new version lands beside the old one, where the WAL record holds only the bytes
-- that changed (the row's unchanged head and tail are left out), and page pruning reclaims
-- the dead versions for the next ones. An order's updates still add index entries (they change
-- state, send_due_at and sent_at, which the due and waiting indexes read).
-- Measured with the payments benchmark (HTTP, 5,000 cases): 15.0 KB of WAL a message -> 13.4.
-- The cost is disk: a finished order's row (about 700 bytes; its XML is out of line) and a
-- case's row take twice the heap space. Applies to pages written from now on.
ALTER TABLE pay.oppdrag SET (fillfactor = 50);
ALTER TABLE pay.sak SET (fillfactor = 50);
