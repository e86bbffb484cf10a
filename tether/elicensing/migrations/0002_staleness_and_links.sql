-- E-licensing 0002: staleness that outlives a request, and obligation links operators manage.
--
-- elicensing.invoice_stale holds one row per invoice whose local copy tether knows is not
-- current: the last refresh attempt failed, or a write changed e-licensing and no refresh has
-- succeeded since. A successful refresh deletes the row (unless a write happened after the
-- refresh's request went out). It is keyed by invoice number, not by the invoice row, so an
-- attempt on an invoice never retrieved is recorded too. Bookkeeping only: no history.
CREATE TABLE elicensing.invoice_stale (
    invoice_number text PRIMARY KEY,
    reason text NOT NULL,
    detail text,
    stale_since timestamptz NOT NULL,      -- first failure (or write) since the last success
    last_attempt timestamptz NOT NULL,
    upstream_changed_at timestamptz        -- the latest write to e-licensing of this invoice
);

-- Operators register, list and unlink obligations through the API and CLI: who changed which
-- link, and when, is kept.
SELECT tether.enable_history('elicensing.obligation');
SELECT tether.enable_history('elicensing.client_operator');
SELECT tether.enable_history('elicensing.operator');
SELECT tether.enable_history('elicensing.compliance_report_version');
