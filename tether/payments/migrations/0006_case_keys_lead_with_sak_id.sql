-- Case keys lead with sak_id, and the batch intake plans its statements for the batch at hand.
--
-- Every case lookup names both columns, but the tables start empty and fill fast (a burst of
-- new cases in the first minute, before autovacuum first analyzes them). With no statistics the
-- planner takes fagsystem = $1 for a selective condition (0.5 % of rows) when it matches every
-- row, and with (fagsystem, sak_id) keys it scanned every case of the fagsystem per batch, a
-- cost that grew with the table (0.25 ms a message at 4,000 cases, 0.54 at 16,000; 0.18 flat
-- once analyzed). With sak_id first, the only index condition the planner can use is the
-- selective one. Nothing looks a case up by fagsystem alone.
ALTER TABLE pay.sak DROP CONSTRAINT sak_pkey, ADD CONSTRAINT sak_pkey PRIMARY KEY (sak_id, fagsystem);
DROP INDEX pay.utbetaling_case;
CREATE INDEX utbetaling_case ON pay.utbetaling (sak_id, fagsystem);
DROP INDEX pay.oppdrag_case;
CREATE INDEX oppdrag_case ON pay.oppdrag (sak_id, fagsystem, created_at);
DROP INDEX pay.inbound_waiting;
CREATE INDEX inbound_waiting ON pay.inbound (sak_id, fagsystem, seq) WHERE state = 'waiting';

-- A plan cached while the tables were nearly empty (PL/pgSQL keeps a generic one after five
-- calls) would scan whole tables once they are large, until an ANALYZE invalidates it: plan the
-- batch function's statements for each call, with the sizes of now (a fraction of a
-- millisecond a batch).
ALTER FUNCTION pay.intake_batch(text, text[], text[], text[], bytea[])
    SET plan_cache_mode = force_custom_plan;
