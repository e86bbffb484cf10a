-- The state columns' allowed values are checked by domains instead of table CHECK constraints.
--
-- PostgreSQL keeps a table's CHECK constraints as node text and, for every INSERT or UPDATE
-- statement it runs (not once a session), reads that text back into an expression tree and
-- plans it: about 37,000 backend instructions a statement for "state IN (...)", 2.8 µs each
-- on this machine. The hot functions run a dozen such statements a batch over pay.inbound,
-- pay.oppdrag and pay.status: 7-8 % of the backends' instructions a message at 30 msg/s
-- (callgrind, bench/payments_throughput), 3-5 % of the intake's and receipts' backend CPU in
-- batches of 1 to 40 (bench/payments_statement_cost). A domain's check is read and planned
-- once a session (the type cache keeps it), each statement only sets up its evaluation. The
-- same values are refused, by the same kind of error (check_violation). The column types
-- change without a rewrite (a domain without a constraint is the text it holds); the partial
-- indexes whose predicate reads a state are rebuilt (they hold only the orders and messages
-- in flight), and adding the constraints reads the rows. 20,000 rows a table: 0.6 s.
CREATE DOMAIN pay.message_state AS text;
CREATE DOMAIN pay.order_state AS text;

ALTER TABLE pay.inbound DROP CONSTRAINT inbound_state_check,
    ALTER COLUMN state TYPE pay.message_state;
ALTER TABLE pay.oppdrag DROP CONSTRAINT oppdrag_state_check,
    ALTER COLUMN state TYPE pay.order_state;
ALTER TABLE pay.status DROP CONSTRAINT status_status_check,
    ALTER COLUMN status TYPE pay.order_state;

ALTER DOMAIN pay.message_state ADD CONSTRAINT message_state_check
    CHECK (VALUE IN ('waiting', 'done'));
ALTER DOMAIN pay.order_state ADD CONSTRAINT order_state_check
    CHECK (VALUE IN ('MOTTATT', 'HOS_OPPDRAG', 'OK', 'FEILET'));

-- RETURN QUERY wants the declared types exactly: the state read as the text it is.
CREATE OR REPLACE FUNCTION pay.lock_orders(p_ids uuid[])
RETURNS TABLE (id uuid, fagsystem text, sak_id text, original_key text, uids text[],
               state text)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    SELECT o.id, o.fagsystem, o.sak_id, o.original_key, o.uids, o.state::text
    FROM pay.oppdrag o WHERE o.id = ANY(p_ids) ORDER BY o.id FOR UPDATE;
END
$$;
