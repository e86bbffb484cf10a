-- Autovacuum works through the pay tables at a fifth of its default pace (a 10 ms pause after
-- each 200 units of page cost, PostgreSQL's default 2 ms), its CPU spread over the seconds
-- instead of taken at once.
--
-- At 1,000 messages/s on 2 cores the machine runs at 85-90 % of its cores; a vacuum of these
-- tables (each order row is updated three times, each case twice, and the insert-only logs
-- are vacuumed to mark their pages all-visible) took 10-18 % of a core for 6-8 s, and the
-- intake's p99 rose in exactly those seconds (bench/RESULTS.md: sampled CPU per process each
-- 50 ms). At 10 ms it takes 1-3 %. It still passes 20,000 cached or 1,000 dirtied pages a
-- second, more than these tables grow at that rate (about 13 KB of WAL a message). An operator
-- can set the table's own value back: ALTER TABLE ... RESET (autovacuum_vacuum_cost_delay).
ALTER TABLE pay.sak SET (autovacuum_vacuum_cost_delay = 10);
ALTER TABLE pay.utbetaling SET (autovacuum_vacuum_cost_delay = 10);
ALTER TABLE pay.inbound SET (autovacuum_vacuum_cost_delay = 10);
ALTER TABLE pay.oppdrag SET (autovacuum_vacuum_cost_delay = 10);
ALTER TABLE pay.candidate SET (autovacuum_vacuum_cost_delay = 10);
ALTER TABLE pay.status SET (autovacuum_vacuum_cost_delay = 10);
