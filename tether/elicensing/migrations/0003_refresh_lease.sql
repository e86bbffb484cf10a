-- E-licensing 0003: refreshes hold a lease row, not a connection, while e-licensing answers.
--
-- One refresh per invoice runs at a time across every process. The leader used to hold a
-- session advisory lock, and so a database connection, for the whole upstream round trip; now it
-- claims a row here in one statement, asks e-licensing holding nothing, and deletes the row in
-- the transaction that saves the answer (or records the failure). A lease a crashed process left
-- behind expires after the call's timeouts. UNLOGGED: leases need no WAL and no crash safety
-- (after a crash the table is empty, which frees every lease).
CREATE UNLOGGED TABLE elicensing.refresh_lease (
    invoice_number text PRIMARY KEY,
    holder uuid NOT NULL,
    leased_until timestamptz NOT NULL
);
