-- Named queries of the operator console and /metrics (tether/elicensing/console.py).

-- name: refresh_overview
-- One statement for the whole panel: the circuit of the e-licensing client, the last successful
-- refresh, and the invoices whose last refresh failed (stale local copies), oldest first, each
-- with the report version whose page shows it.
WITH stale AS (
    SELECT i.invoice_number, i.last_refreshed, i.last_refresh_attempt,
           i.last_refresh_error_reason AS reason,
           coalesce(o.compliance_report_version_id, p.compliance_report_version_id)
               AS report_version_id
    FROM elicensing.invoice i
    LEFT JOIN elicensing.obligation o ON o.invoice_number = i.invoice_number
    LEFT JOIN elicensing.penalty p ON p.invoice_number = i.invoice_number
    WHERE i.last_refresh_error_reason IS NOT NULL
),
-- an obligation whose invoice never arrived (first read failed) is stale too
missing AS (
    SELECT o.invoice_number, o.compliance_report_version_id AS report_version_id
    FROM elicensing.obligation o
    WHERE o.invoice_number IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM elicensing.invoice i WHERE i.invoice_number = o.invoice_number)
)
SELECT
    cb.state AS circuit_state, cb.failures AS circuit_failures,
    cb.open_until AS circuit_open_until, cb.last_failure AS circuit_last_failure,
    cb.opened_at AS circuit_opened_at,
    (SELECT count(*) FROM elicensing.invoice) AS invoices,
    (SELECT max(last_refreshed) FROM elicensing.invoice) AS last_refreshed,
    (SELECT count(*) FROM stale) AS stale,
    (SELECT count(*) FROM missing) AS never_read,
    coalesce((SELECT jsonb_agg(jsonb_build_object(
                  'invoice_number', invoice_number, 'reason', reason,
                  'last_refreshed', last_refreshed, 'report_version_id', report_version_id)
                  ORDER BY last_refreshed NULLS FIRST, invoice_number)
              FROM (SELECT * FROM stale ORDER BY last_refreshed NULLS FIRST LIMIT %(examples)s) s),
             '[]'::jsonb) AS stale_invoices
FROM (SELECT 1) one
LEFT JOIN tether.circuit_breaker cb ON cb.name = %(circuit)s
