-- A status body in the spec's shape (status, detaljer, error, simulering), written once for the
-- statements that build one from an order's details: the intake's MOTTATT, the sender's
-- HOS_OPPDRAG, a receipt's final status, and the VENTER a status read shows (codec._body is
-- its twin for the statuses planned in Python). One SQL expression, STABLE as
-- jsonb_build_object is, so the planner inlines it: no call per row.
CREATE FUNCTION pay.status_body(p_status text, p_details jsonb, p_error jsonb)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object('status', p_status, 'detaljer', p_details, 'error', p_error,
                              'simulering', false)
$$;
