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

-- name: save_refreshes
-- Make each local invoice and its children equal its answer and end its refresh lease, for a
-- group of answers, in one statement (migration 0004); arrays and JSON built by _group().
SELECT elicensing.save_refreshes(
    %(invoices)s::jsonb, %(fees)s::jsonb, %(payments)s::jsonb, %(adjustments)s::jsonb,
    %(invoice_numbers)s::text[], %(fee_ids)s::text[], %(requested_at)s::timestamptz[],
    %(holders)s::uuid[]
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
