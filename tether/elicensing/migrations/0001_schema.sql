-- E-licensing: local copies of invoices mastered in the e-licensing finance system, and the
-- compliance objects (report versions, obligations, penalties) that point at them.
--
-- Natural keys are e-licensing object ids and carry unique constraints, so a refresh can upsert
-- by them and a duplicate can never creep in. Payments and adjustments are unique per fee: one
-- e-licensing payment can be distributed over several fees and then appears under each.
CREATE SCHEMA elicensing;

CREATE TABLE elicensing.operator (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    legal_name text NOT NULL,
    cra_business_number text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE elicensing.client_operator (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator_id bigint NOT NULL UNIQUE REFERENCES elicensing.operator (id),
    client_object_id text NOT NULL UNIQUE,
    client_guid uuid NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE elicensing.invoice (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_operator_id bigint NOT NULL REFERENCES elicensing.client_operator (id),
    invoice_number text NOT NULL UNIQUE,
    due_date date,
    outstanding_balance numeric(14, 2) NOT NULL,
    invoice_fee_balance numeric(14, 2) NOT NULL,
    invoice_interest_balance numeric(14, 2) NOT NULL,
    is_void boolean NOT NULL DEFAULT false,
    -- bookkeeping of the refresh (not history-worthy):
    last_refreshed timestamptz,
    last_refresh_attempt timestamptz,
    last_refresh_error_reason text,
    last_refresh_error text
);
CREATE INDEX ON elicensing.invoice (client_operator_id);

CREATE TABLE elicensing.line_item (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id bigint NOT NULL REFERENCES elicensing.invoice (id) ON DELETE CASCADE,
    object_id text NOT NULL UNIQUE,
    guid uuid NOT NULL UNIQUE,
    business_area_code text,
    fee_date date NOT NULL,
    description text NOT NULL,
    base_amount numeric(14, 2) NOT NULL,
    tax_total numeric(14, 2) NOT NULL,
    adjustment_total numeric(14, 2) NOT NULL,
    tax_adjustment_total numeric(14, 2) NOT NULL,
    payment_base_amount numeric(14, 2) NOT NULL,
    payment_total numeric(14, 2) NOT NULL,
    line_item_type text NOT NULL DEFAULT 'Fee'
);
CREATE INDEX ON elicensing.line_item (invoice_id);

CREATE TABLE elicensing.payment (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_item_id bigint NOT NULL REFERENCES elicensing.line_item (id) ON DELETE CASCADE,
    payment_object_id text NOT NULL,
    receipt_number text,
    received_date date,
    deposit_date date,
    amount numeric(14, 2) NOT NULL,
    method text,
    cash_handling_area text,
    reference_number text,
    UNIQUE (line_item_id, payment_object_id)
);

CREATE TABLE elicensing.adjustment (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_item_id bigint NOT NULL REFERENCES elicensing.line_item (id) ON DELETE CASCADE,
    adjustment_object_id text NOT NULL,
    adjustment_total numeric(14, 2) NOT NULL,
    amount numeric(14, 2) NOT NULL,
    adjustment_date date,
    reason text,
    type text,
    comment text,
    UNIQUE (line_item_id, adjustment_object_id)
);

SELECT tether.enable_history(
    'elicensing.invoice',
    ARRAY['last_refreshed', 'last_refresh_attempt', 'last_refresh_error_reason', 'last_refresh_error']
);
SELECT tether.enable_history('elicensing.line_item');
SELECT tether.enable_history('elicensing.payment');
SELECT tether.enable_history('elicensing.adjustment');

CREATE TABLE elicensing.compliance_report_version (
    id bigint PRIMARY KEY,
    operator_id bigint NOT NULL REFERENCES elicensing.operator (id),
    reporting_year integer NOT NULL,
    status text NOT NULL DEFAULT 'submitted',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The obligation keeps the invoice number (not only a foreign key) so the link to its invoice
-- survives a first refresh that failed before the invoice row existed.
CREATE TABLE elicensing.obligation (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    compliance_report_version_id bigint NOT NULL UNIQUE
        REFERENCES elicensing.compliance_report_version (id),
    obligation_id text NOT NULL UNIQUE,
    fee_amount numeric(14, 2) NOT NULL,
    client_operator_id bigint NOT NULL REFERENCES elicensing.client_operator (id),
    invoice_number text UNIQUE
);

CREATE TABLE elicensing.penalty (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    compliance_report_version_id bigint NOT NULL
        REFERENCES elicensing.compliance_report_version (id),
    penalty_type text NOT NULL CHECK (penalty_type IN ('automatic_overdue', 'late_submission')),
    penalty_amount numeric(14, 2) NOT NULL,
    client_operator_id bigint NOT NULL REFERENCES elicensing.client_operator (id),
    invoice_number text UNIQUE,
    UNIQUE (compliance_report_version_id, penalty_type)
);
