-- E-licensing 0005: a fee stays on the invoice that holds it.
--
-- 0004 upserted fees by object id with `SET invoice_id = excluded.invoice_id`, so an answer for
-- invoice A that listed a fee tether keeps under invoice B moved the fee (and its payments and
-- adjustments) to A: B then showed no fees and nothing due while reported fresh. Now the fee
-- upsert never changes a fee's invoice, and a fee listed on one invoice but held by another
-- raises 23000 (integrity_constraint_violation): the whole group is refused, and a group of one
-- is InvalidElicensingPayload (repository._refused), so A is stale with
-- upstream_invalid_payload, its copy unchanged, and B is untouched. Otherwise the body is
-- 0004's, statement for statement.
CREATE OR REPLACE FUNCTION elicensing.save_refreshes(
    p_invoices jsonb, p_fees jsonb, p_payments jsonb, p_adjustments jsonb,
    p_invoice_numbers text[], p_fee_ids text[], p_requested_at timestamptz[], p_holders uuid[]
)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_fee text;
    v_listed_on text;
    v_owner text;
BEGIN
    -- The invoices of a group of answers, keyed by number (locked in number order); each marked
    -- refreshed successfully.
    INSERT INTO elicensing.invoice AS i (
        client_operator_id, invoice_number, due_date, outstanding_balance, invoice_fee_balance,
        invoice_interest_balance, is_void, last_refreshed, last_refresh_attempt
    )
    SELECT co.id, r.invoice_number, r.due_date, r.outstanding_balance, r.fee_balance,
           r.interest_balance, false, clock_timestamp(), clock_timestamp()
    FROM jsonb_to_recordset(p_invoices) AS r(
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
        last_refresh_error = NULL;

    -- Every fee of the group's answers, keyed by its e-licensing object id (unchanged ones
    -- untouched). A fee another invoice already holds is never moved (0005): the check below
    -- refuses the answer instead.
    INSERT INTO elicensing.line_item AS li (
        invoice_id, object_id, guid, business_area_code, fee_date, description, base_amount,
        tax_total, adjustment_total, tax_adjustment_total, payment_base_amount, payment_total,
        line_item_type
    )
    SELECT i.id, f.fee_object_id, f.fee_guid, f.business_area_code, f.fee_date, f.description,
           f.base_amount, f.tax_total, f.adjustment_total, f.tax_adjustment_total,
           f.payment_base_amount, f.payment_total, coalesce(f.fee_type, 'Fee')
    FROM jsonb_to_recordset(p_fees) AS f(
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
    WHERE li.invoice_id = excluded.invoice_id
      AND (li.guid, li.business_area_code, li.fee_date, li.description,
           li.base_amount, li.tax_total, li.adjustment_total, li.tax_adjustment_total,
           li.payment_base_amount, li.payment_total, li.line_item_type)
          IS DISTINCT FROM
          (excluded.guid, excluded.business_area_code, excluded.fee_date,
           excluded.description, excluded.base_amount, excluded.tax_total,
           excluded.adjustment_total,
           excluded.tax_adjustment_total, excluded.payment_base_amount, excluded.payment_total,
           excluded.line_item_type);

    -- Every listed fee must now be its invoice's. One that another invoice holds (the upsert
    -- above left it there, and its lock keeps it there) makes the whole group fail, as a
    -- constraint would: 23000 is an IntegrityError, so the answer is invalid upstream data.
    SELECT f.fee_object_id, f.invoice_number, held.invoice_number
    INTO v_fee, v_listed_on, v_owner
    FROM jsonb_to_recordset(p_fees) AS f(invoice_number text, fee_object_id text)
    JOIN elicensing.invoice i ON i.invoice_number = f.invoice_number
    JOIN elicensing.line_item li ON li.object_id = f.fee_object_id
    JOIN elicensing.invoice held ON held.id = li.invoice_id
    WHERE li.invoice_id <> i.id
    ORDER BY f.fee_object_id
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'e-licensing fee % is listed on invoice % but belongs to invoice %',
            v_fee, v_listed_on, v_owner
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;

    -- Fees the group's answers no longer list on their invoices (payments and adjustments cascade).
    DELETE FROM elicensing.line_item li
    USING elicensing.invoice i
    WHERE li.invoice_id = i.id AND i.invoice_number = ANY(p_invoice_numbers)
      AND li.object_id <> ALL(p_fee_ids);

    -- Every payment of the group's answers, keyed by (fee, payment object id).
    INSERT INTO elicensing.payment AS p (
        line_item_id, payment_object_id, receipt_number, received_date, deposit_date, amount,
        method,
        cash_handling_area, reference_number
    )
    SELECT li.id, r.payment_object_id, r.receipt_number, r.received_date, r.deposit_date, r.amount,
           r.method, r.cash_handling_area, r.reference_number
    FROM jsonb_to_recordset(p_payments) AS r(
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
           excluded.method, excluded.cash_handling_area, excluded.reference_number);

    -- Payments the group's answers no longer list under their fee.
    DELETE FROM elicensing.payment p
    USING elicensing.line_item li, elicensing.invoice i
    WHERE li.id = p.line_item_id AND li.invoice_id = i.id
      AND i.invoice_number = ANY(p_invoice_numbers)
      AND (li.object_id, p.payment_object_id) NOT IN (
          SELECT r.fee_object_id, r.payment_object_id
          FROM jsonb_to_recordset(p_payments) AS r(fee_object_id text, payment_object_id text)
      );

    -- Every adjustment of the group's answers, keyed by (fee, adjustment object id).
    INSERT INTO elicensing.adjustment AS a (
        line_item_id, adjustment_object_id, adjustment_total, amount, adjustment_date, reason, type,
        comment
    )
    SELECT li.id, r.adjustment_object_id, r.adjustment_total, r.amount, r.date, r.reason, r.type,
           r.comment
    FROM jsonb_to_recordset(p_adjustments) AS r(
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
           excluded.type, excluded.comment);

    -- Adjustments the group's answers no longer list under their fee.
    DELETE FROM elicensing.adjustment a
    USING elicensing.line_item li, elicensing.invoice i
    WHERE li.id = a.line_item_id AND li.invoice_id = i.id
      AND i.invoice_number = ANY(p_invoice_numbers)
      AND (li.object_id, a.adjustment_object_id) NOT IN (
          SELECT r.fee_object_id, r.adjustment_object_id
          FROM jsonb_to_recordset(p_adjustments)
               AS r(fee_object_id text, adjustment_object_id text)
      );

    -- Refreshes succeeded: each copy is current, unless a write went out after its request left.
    DELETE FROM elicensing.invoice_stale s
    USING unnest(p_invoice_numbers, p_requested_at)
          AS r(invoice_number, requested_at)
    WHERE s.invoice_number = r.invoice_number
      AND (s.upstream_changed_at IS NULL OR s.upstream_changed_at < r.requested_at);

    -- The leaders are done (in the transaction that saved their outcome, or on their own).
    DELETE FROM elicensing.refresh_lease l
    USING unnest(p_invoice_numbers, p_holders) AS r(invoice_number, holder)
    WHERE l.invoice_number = r.invoice_number AND l.holder = r.holder;
END;
$$;
