-- Queries of the e-licensing capability. Only repository.py runs them.
-- The refresh is set-based: a constant number of statements whatever the number of children.

-- name: fetch_reads
-- Everything the reads of a group of (report version, invoice type) need, in one statement:
-- where each invoice lives, the local copy with its fees, payments and adjustments (money as
-- text, never a float), whether tether knows the copy is stale, and whether the shared circuit
-- is open (or closed: a refresh need not ask the breaker) right now. A read is a group of one.
-- A read before a forced refresh (with_items false) skips the children unless the circuit is
-- open (then it answers from this copy): a refresh that succeeds answers with the copy after it.
SELECT w.report_version_id, w.invoice_type,
       t.invoice_number, tco.client_object_id AS target_client_object_id,
       i.id, co.client_object_id, i.due_date, i.outstanding_balance, i.invoice_fee_balance,
       i.invoice_interest_balance, i.is_void, i.last_refreshed,
       s.reason AS stale_reason, s.detail AS stale_detail, s.stale_since, s.last_attempt,
       clock_timestamp() AS db_now,
       coalesce((cb.state = 'open' AND cb.open_until > clock_timestamp())
                OR (cb.state = 'half_open' AND cb.probe_until > clock_timestamp()), false)
           AS circuit_open,
       coalesce(cb.state = 'closed', false) AS circuit_closed,
       CASE WHEN w.with_items
                 OR (cb.state = 'open' AND cb.open_until > clock_timestamp())
                 OR (cb.state = 'half_open' AND cb.probe_until > clock_timestamp()) THEN
       (SELECT coalesce(json_agg(json_build_object(
                   'object_id', li.object_id, 'guid', li.guid, 'fee_date', li.fee_date,
                   'description', li.description, 'base_amount', li.base_amount::text,
                   'line_item_type', li.line_item_type,
                   'payments', (
                       SELECT coalesce(json_agg(json_build_object(
                                  'payment_object_id', p.payment_object_id,
                                  'receipt_number', p.receipt_number,
                                  'received_date', p.received_date,
                                  'deposit_date', p.deposit_date, 'amount', p.amount::text,
                                  'method', p.method, 'reference_number', p.reference_number)
                              ORDER BY p.received_date NULLS LAST, p.payment_object_id), '[]')
                       FROM elicensing.payment p WHERE p.line_item_id = li.id),
                   'adjustments', (
                       SELECT coalesce(json_agg(json_build_object(
                                  'adjustment_object_id', a.adjustment_object_id,
                                  'amount', a.amount::text, 'adjustment_date', a.adjustment_date,
                                  'reason', a.reason, 'type', a.type, 'comment', a.comment)
                              ORDER BY a.adjustment_date NULLS LAST, a.adjustment_object_id),
                              '[]')
                       FROM elicensing.adjustment a WHERE a.line_item_id = li.id))
               ORDER BY li.fee_date, li.object_id), '[]')
        FROM elicensing.line_item li WHERE li.invoice_id = i.id) END AS line_items
FROM (
    SELECT compliance_report_version_id, 'obligation' AS invoice_type, client_operator_id,
           invoice_number
    FROM elicensing.obligation
    UNION ALL
    SELECT compliance_report_version_id, penalty_type, client_operator_id, invoice_number
    FROM elicensing.penalty
) t
JOIN unnest(%(report_version_ids)s::bigint[], %(invoice_types)s::text[],
            %(with_items)s::bool[])
     AS w(report_version_id, invoice_type, with_items)
  ON t.compliance_report_version_id = w.report_version_id AND t.invoice_type = w.invoice_type
JOIN elicensing.client_operator tco ON tco.id = t.client_operator_id
LEFT JOIN elicensing.invoice i ON i.invoice_number = t.invoice_number
LEFT JOIN elicensing.client_operator co ON co.id = i.client_operator_id
LEFT JOIN elicensing.invoice_stale s ON s.invoice_number = t.invoice_number
LEFT JOIN tether.circuit_breaker cb ON cb.name = %(circuit)s
WHERE t.invoice_number IS NOT NULL

-- name: fetch_refresh_state
-- The outcome of the latest refresh of an invoice (a refresh in another process just ended).
SELECT i.last_refreshed, s.reason AS stale_reason, s.detail AS stale_detail, s.last_attempt
FROM (SELECT 1) one
LEFT JOIN elicensing.invoice i ON i.invoice_number = %(invoice_number)s
LEFT JOIN elicensing.invoice_stale s ON s.invoice_number = %(invoice_number)s

-- name: claim_refreshes
-- Lead the refresh of each invoice of a group unless another caller's lease is still running;
-- with the outcome of each one's latest refresh, so a leader can see that another process
-- refreshed it meanwhile. Rows are locked in invoice number order (no deadlock between groups).
WITH wanted AS (
    SELECT * FROM unnest(%(invoice_numbers)s::text[], %(holders)s::uuid[])
        AS w(invoice_number, holder)
), claim AS (
    INSERT INTO elicensing.refresh_lease AS l (invoice_number, holder, leased_until)
    SELECT invoice_number, holder, clock_timestamp() + %(lease)s
    FROM wanted ORDER BY invoice_number
    ON CONFLICT (invoice_number) DO UPDATE
    SET holder = excluded.holder, leased_until = excluded.leased_until
    WHERE l.leased_until <= clock_timestamp()
    RETURNING invoice_number
)
SELECT w.invoice_number, c.invoice_number IS NOT NULL AS leading,
       i.last_refreshed, s.reason AS stale_reason, s.detail AS stale_detail, s.last_attempt
FROM wanted w
LEFT JOIN claim c ON c.invoice_number = w.invoice_number
LEFT JOIN elicensing.invoice i ON i.invoice_number = w.invoice_number
LEFT JOIN elicensing.invoice_stale s ON s.invoice_number = w.invoice_number

-- name: release_refreshes
-- The leaders are done (in the transaction that saved their outcome, or on their own).
DELETE FROM elicensing.refresh_lease l
USING unnest(%(invoice_numbers)s::text[], %(holders)s::uuid[]) AS r(invoice_number, holder)
WHERE l.invoice_number = r.invoice_number AND l.holder = r.holder

-- name: refresh_leased
-- Is someone refreshing the invoice right now (a lease that has not expired)?
SELECT EXISTS (
    SELECT 1 FROM elicensing.refresh_lease
    WHERE invoice_number = %(invoice_number)s AND leased_until > clock_timestamp()
) AS leased

-- name: save_invoices
-- The invoices of a group of answers, keyed by number (locked in number order); each marked
-- refreshed successfully.
INSERT INTO elicensing.invoice AS i (
    client_operator_id, invoice_number, due_date, outstanding_balance, invoice_fee_balance,
    invoice_interest_balance, is_void, last_refreshed, last_refresh_attempt
)
SELECT co.id, r.invoice_number, r.due_date, r.outstanding_balance, r.fee_balance,
       r.interest_balance, false, clock_timestamp(), clock_timestamp()
FROM jsonb_to_recordset(%(invoices)s::jsonb) AS r(
    invoice_number text, client_object_id text, due_date date, outstanding_balance numeric,
    fee_balance numeric, interest_balance numeric
)
JOIN elicensing.client_operator co ON co.client_object_id = r.client_object_id
ORDER BY r.invoice_number
ON CONFLICT (invoice_number) DO UPDATE
SET client_operator_id = excluded.client_operator_id,
    due_date = excluded.due_date,
    outstanding_balance = excluded.outstanding_balance,
    invoice_fee_balance = excluded.invoice_fee_balance,
    invoice_interest_balance = excluded.invoice_interest_balance,
    is_void = false,
    last_refreshed = excluded.last_refreshed,
    last_refresh_attempt = excluded.last_refresh_attempt,
    last_refresh_error_reason = NULL,
    last_refresh_error = NULL

-- name: save_line_items
-- Every fee of the group's answers, keyed by its e-licensing object id (unchanged ones untouched).
INSERT INTO elicensing.line_item AS li (
    invoice_id, object_id, guid, business_area_code, fee_date, description, base_amount,
    tax_total, adjustment_total, tax_adjustment_total, payment_base_amount, payment_total,
    line_item_type
)
SELECT i.id, f.fee_object_id, f.fee_guid, f.business_area_code, f.fee_date, f.description,
       f.base_amount, f.tax_total, f.adjustment_total, f.tax_adjustment_total,
       f.payment_base_amount, f.payment_total, coalesce(f.fee_type, 'Fee')
FROM jsonb_to_recordset(%(fees)s::jsonb) AS f(
    invoice_number text, fee_object_id text, fee_guid uuid, business_area_code text,
    fee_date date, description text, base_amount numeric, tax_total numeric,
    adjustment_total numeric, tax_adjustment_total numeric, payment_base_amount numeric,
    payment_total numeric, fee_type text
)
JOIN elicensing.invoice i ON i.invoice_number = f.invoice_number
ORDER BY f.fee_object_id
ON CONFLICT (object_id) DO UPDATE
SET invoice_id = excluded.invoice_id,
    guid = excluded.guid,
    business_area_code = excluded.business_area_code,
    fee_date = excluded.fee_date,
    description = excluded.description,
    base_amount = excluded.base_amount,
    tax_total = excluded.tax_total,
    adjustment_total = excluded.adjustment_total,
    tax_adjustment_total = excluded.tax_adjustment_total,
    payment_base_amount = excluded.payment_base_amount,
    payment_total = excluded.payment_total,
    line_item_type = excluded.line_item_type
WHERE (li.invoice_id, li.guid, li.business_area_code, li.fee_date, li.description,
       li.base_amount, li.tax_total, li.adjustment_total, li.tax_adjustment_total,
       li.payment_base_amount, li.payment_total, li.line_item_type)
      IS DISTINCT FROM
      (excluded.invoice_id, excluded.guid, excluded.business_area_code, excluded.fee_date,
       excluded.description, excluded.base_amount, excluded.tax_total, excluded.adjustment_total,
       excluded.tax_adjustment_total, excluded.payment_base_amount, excluded.payment_total,
       excluded.line_item_type)

-- name: delete_missing_line_items
-- Fees the group's answers no longer list on their invoices (payments and adjustments cascade).
DELETE FROM elicensing.line_item li
USING elicensing.invoice i
WHERE li.invoice_id = i.id AND i.invoice_number = ANY(%(invoice_numbers)s::text[])
  AND li.object_id <> ALL(%(fee_ids)s::text[])

-- name: save_payments
-- Every payment of the group's answers, keyed by (fee, payment object id).
INSERT INTO elicensing.payment AS p (
    line_item_id, payment_object_id, receipt_number, received_date, deposit_date, amount, method,
    cash_handling_area, reference_number
)
SELECT li.id, r.payment_object_id, r.receipt_number, r.received_date, r.deposit_date, r.amount,
       r.method, r.cash_handling_area, r.reference_number
FROM jsonb_to_recordset(%(payments)s::jsonb) AS r(
    invoice_number text, fee_object_id text, payment_object_id text, receipt_number text,
    received_date date, deposit_date date, amount numeric, method text,
    cash_handling_area text, reference_number text
)
JOIN elicensing.invoice i ON i.invoice_number = r.invoice_number
JOIN elicensing.line_item li ON li.object_id = r.fee_object_id AND li.invoice_id = i.id
ORDER BY li.id, r.payment_object_id
ON CONFLICT (line_item_id, payment_object_id) DO UPDATE
SET receipt_number = excluded.receipt_number,
    received_date = excluded.received_date,
    deposit_date = excluded.deposit_date,
    amount = excluded.amount,
    method = excluded.method,
    cash_handling_area = excluded.cash_handling_area,
    reference_number = excluded.reference_number
WHERE (p.receipt_number, p.received_date, p.deposit_date, p.amount, p.method,
       p.cash_handling_area, p.reference_number)
      IS DISTINCT FROM
      (excluded.receipt_number, excluded.received_date, excluded.deposit_date, excluded.amount,
       excluded.method, excluded.cash_handling_area, excluded.reference_number)

-- name: delete_missing_payments
-- Payments the group's answers no longer list under their fee.
DELETE FROM elicensing.payment p
USING elicensing.line_item li, elicensing.invoice i
WHERE li.id = p.line_item_id AND li.invoice_id = i.id
  AND i.invoice_number = ANY(%(invoice_numbers)s::text[])
  AND (li.object_id, p.payment_object_id) NOT IN (
      SELECT r.fee_object_id, r.payment_object_id
      FROM jsonb_to_recordset(%(payments)s::jsonb) AS r(fee_object_id text, payment_object_id text)
  )

-- name: save_adjustments
-- Every adjustment of the group's answers, keyed by (fee, adjustment object id).
INSERT INTO elicensing.adjustment AS a (
    line_item_id, adjustment_object_id, adjustment_total, amount, adjustment_date, reason, type,
    comment
)
SELECT li.id, r.adjustment_object_id, r.adjustment_total, r.amount, r.date, r.reason, r.type,
       r.comment
FROM jsonb_to_recordset(%(adjustments)s::jsonb) AS r(
    invoice_number text, fee_object_id text, adjustment_object_id text,
    adjustment_total numeric, amount numeric, date date, reason text, type text, comment text
)
JOIN elicensing.invoice i ON i.invoice_number = r.invoice_number
JOIN elicensing.line_item li ON li.object_id = r.fee_object_id AND li.invoice_id = i.id
ORDER BY li.id, r.adjustment_object_id
ON CONFLICT (line_item_id, adjustment_object_id) DO UPDATE
SET adjustment_total = excluded.adjustment_total,
    amount = excluded.amount,
    adjustment_date = excluded.adjustment_date,
    reason = excluded.reason,
    type = excluded.type,
    comment = excluded.comment
WHERE (a.adjustment_total, a.amount, a.adjustment_date, a.reason, a.type, a.comment)
      IS DISTINCT FROM
      (excluded.adjustment_total, excluded.amount, excluded.adjustment_date, excluded.reason,
       excluded.type, excluded.comment)

-- name: delete_missing_adjustments
-- Adjustments the group's answers no longer list under their fee.
DELETE FROM elicensing.adjustment a
USING elicensing.line_item li, elicensing.invoice i
WHERE li.id = a.line_item_id AND li.invoice_id = i.id
  AND i.invoice_number = ANY(%(invoice_numbers)s::text[])
  AND (li.object_id, a.adjustment_object_id) NOT IN (
      SELECT r.fee_object_id, r.adjustment_object_id
      FROM jsonb_to_recordset(%(adjustments)s::jsonb)
           AS r(fee_object_id text, adjustment_object_id text)
  )

-- name: mark_invoice_void
-- E-licensing no longer knows the invoice: keep it and its children, flagged void.
UPDATE elicensing.invoice
SET is_void = true, last_refreshed = clock_timestamp(), last_refresh_attempt = clock_timestamp(),
    last_refresh_error_reason = NULL, last_refresh_error = NULL
WHERE invoice_number = %(invoice_number)s
RETURNING id

-- name: record_refresh_failure
-- A failed refresh touches only the bookkeeping, never the data or last_refreshed; the copy is
-- stale from the first failure on until a refresh succeeds.
WITH invoice AS (
    UPDATE elicensing.invoice
    SET last_refresh_attempt = clock_timestamp(), last_refresh_error_reason = %(reason)s,
        last_refresh_error = %(error)s
    WHERE invoice_number = %(invoice_number)s
)
INSERT INTO elicensing.invoice_stale AS s (
    invoice_number, reason, detail, stale_since, last_attempt
)
VALUES (%(invoice_number)s, %(reason)s, %(error)s, clock_timestamp(), clock_timestamp())
ON CONFLICT (invoice_number) DO UPDATE
SET reason = excluded.reason, detail = excluded.detail, last_attempt = excluded.last_attempt

-- name: mark_upstream_changed
-- A write to e-licensing is about to go out, or has just been answered: the local copy is stale
-- until a refresh whose request went out after this moment succeeds.
INSERT INTO elicensing.invoice_stale AS s (
    invoice_number, reason, detail, stale_since, last_attempt, upstream_changed_at
)
VALUES (%(invoice_number)s, 'upstream_changed', %(detail)s, clock_timestamp(),
        clock_timestamp(), clock_timestamp())
ON CONFLICT (invoice_number) DO UPDATE
SET reason = excluded.reason, detail = excluded.detail,
    upstream_changed_at = excluded.upstream_changed_at

-- name: clear_stale
-- Refreshes succeeded: each copy is current, unless a write went out after its request left.
DELETE FROM elicensing.invoice_stale s
USING unnest(%(invoice_numbers)s::text[], %(requested_at)s::timestamptz[])
      AS r(invoice_number, requested_at)
WHERE s.invoice_number = r.invoice_number
  AND (s.upstream_changed_at IS NULL OR s.upstream_changed_at < r.requested_at)

-- name: insert_operator
-- A regulated operator.
INSERT INTO elicensing.operator (legal_name, cra_business_number)
VALUES (%(legal_name)s, %(cra_business_number)s)
ON CONFLICT (cra_business_number) DO UPDATE SET legal_name = excluded.legal_name
RETURNING id

-- name: insert_client_operator
-- Link an operator to its e-licensing client (returns whose client it is now).
INSERT INTO elicensing.client_operator (operator_id, client_object_id, client_guid)
VALUES (%(operator_id)s, %(client_object_id)s, %(client_guid)s)
ON CONFLICT (client_object_id) DO UPDATE SET client_guid = excluded.client_guid
RETURNING id, operator_id, client_guid::text AS client_guid

-- name: insert_report_version
-- A compliance report version of an operator.
INSERT INTO elicensing.compliance_report_version (id, operator_id, reporting_year)
VALUES (%(id)s, %(operator_id)s, %(reporting_year)s)
ON CONFLICT (id) DO NOTHING

-- name: insert_obligation
-- The obligation of a report version and the number of its invoice.
INSERT INTO elicensing.obligation (
    compliance_report_version_id, obligation_id, fee_amount, client_operator_id, invoice_number
)
VALUES (%(report_version_id)s, %(obligation_id)s, %(fee_amount)s, %(client_operator_id)s,
        %(invoice_number)s)
ON CONFLICT (compliance_report_version_id) DO UPDATE SET invoice_number = excluded.invoice_number

-- name: set_actor
-- Who makes the changes of this transaction (kept by the history triggers).
SELECT set_config('tether.actor', %(actor)s, true)

-- name: fetch_obligation_link
-- The obligation of a report version with its invoice, client and operator.
SELECT o.compliance_report_version_id, v.reporting_year, o.obligation_id, o.fee_amount,
       o.invoice_number, co.client_object_id, co.client_guid::text AS client_guid,
       op.legal_name, op.cra_business_number, o.recorded_at, o.recorded_by
FROM elicensing.obligation o
JOIN elicensing.compliance_report_version v ON v.id = o.compliance_report_version_id
JOIN elicensing.client_operator co ON co.id = o.client_operator_id
JOIN elicensing.operator op ON op.id = co.operator_id
WHERE o.compliance_report_version_id = %(report_version_id)s

-- name: list_obligation_links
-- Registered obligations in report version order, one page after a given version.
SELECT o.compliance_report_version_id, v.reporting_year, o.obligation_id, o.fee_amount,
       o.invoice_number, co.client_object_id, co.client_guid::text AS client_guid,
       op.legal_name, op.cra_business_number, o.recorded_at, o.recorded_by
FROM elicensing.obligation o
JOIN elicensing.compliance_report_version v ON v.id = o.compliance_report_version_id
JOIN elicensing.client_operator co ON co.id = o.client_operator_id
JOIN elicensing.operator op ON op.id = co.operator_id
WHERE o.compliance_report_version_id > %(after)s
ORDER BY o.compliance_report_version_id
LIMIT %(limit)s

-- name: fetch_report_version_operator
-- Which operator a report version belongs to.
SELECT operator_id FROM elicensing.compliance_report_version WHERE id = %(report_version_id)s

-- name: delete_obligation_link
-- Unlink the obligation of a report version (its history keeps what it was).
DELETE FROM elicensing.obligation WHERE compliance_report_version_id = %(report_version_id)s
RETURNING invoice_number

-- name: fetch_obligation_history
-- Every version of a report version's obligation link, oldest first, the current one last.
SELECT h.invoice_number, h.obligation_id, h.fee_amount, co.client_object_id,
       lower(h.record_time) AS valid_from, upper(h.record_time) AS valid_until,
       h.recorded_by, h.history_operation AS ended_by, h.replaced_by
FROM elicensing.obligation_history h
LEFT JOIN elicensing.client_operator co ON co.id = h.client_operator_id
WHERE h.compliance_report_version_id = %(report_version_id)s
UNION ALL
SELECT o.invoice_number, o.obligation_id, o.fee_amount, co.client_object_id, o.recorded_at,
       NULL, o.recorded_by, NULL, NULL
FROM elicensing.obligation o
JOIN elicensing.client_operator co ON co.id = o.client_operator_id
WHERE o.compliance_report_version_id = %(report_version_id)s
ORDER BY valid_from
