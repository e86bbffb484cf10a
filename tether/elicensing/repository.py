"""The only module that runs e-licensing SQL. Every function takes the caller's connection."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from tether.core import db
from tether.core.sql import load_queries
from tether.elicensing.models import (
    Adjustment,
    Invoice,
    InvoiceTarget,
    InvoiceType,
    LineItem,
    Payment,
    RefreshState,
    RemoteInvoice,
)

queries = load_queries("tether.elicensing")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


async def fetch_invoice_target(
    conn: db.Connection, *, report_version_id: int, invoice_type: InvoiceType
) -> InvoiceTarget | None:
    row = await db.fetch_optional(
        conn,
        queries["fetch_invoice_target"],
        {"report_version_id": report_version_id, "invoice_type": invoice_type.value},
    )
    if row is None:
        return None
    return InvoiceTarget(
        compliance_report_version_id=row["compliance_report_version_id"],
        invoice_type=InvoiceType(row["invoice_type"]),
        client_object_id=row["client_object_id"],
        invoice_number=row["invoice_number"],
    )


async def fetch_refresh_state(conn: db.Connection, *, invoice_number: str) -> RefreshState:
    row = await db.fetch_one(
        conn, queries["fetch_refresh_state"], {"invoice_number": invoice_number}
    )
    return RefreshState(
        last_refreshed=row["last_refreshed"],
        last_refresh_attempt=row["last_refresh_attempt"],
        last_refresh_error_reason=row["last_refresh_error_reason"],
        db_now=row["db_now"],
    )


async def fetch_invoice(conn: db.Connection, *, invoice_number: str) -> Invoice | None:
    """The local invoice with its fees, payments and adjustments (four queries, no N+1)."""
    row = await db.fetch_optional(
        conn, queries["fetch_invoice"], {"invoice_number": invoice_number}
    )
    if row is None:
        return None
    params = {"invoice_id": row["id"]}
    fees = await db.fetch_all(conn, queries["fetch_line_items"], params)
    payments = await db.fetch_all(conn, queries["fetch_payments"], params)
    adjustments = await db.fetch_all(conn, queries["fetch_adjustments"], params)
    line_items = tuple(
        LineItem(
            object_id=f["object_id"],
            guid=f["guid"],
            fee_date=f["fee_date"],
            description=f["description"],
            base_amount=f["base_amount"],
            line_item_type=f["line_item_type"],
            payments=tuple(
                Payment(**{k: p[k] for k in _PAYMENT_FIELDS})
                for p in payments
                if p["fee_object_id"] == f["object_id"]
            ),
            adjustments=tuple(
                Adjustment(**{k: a[k] for k in _ADJUSTMENT_FIELDS})
                for a in adjustments
                if a["fee_object_id"] == f["object_id"]
            ),
        )
        for f in fees
    )
    return Invoice(
        id=row["id"],
        invoice_number=row["invoice_number"],
        client_object_id=row["client_object_id"],
        due_date=row["due_date"],
        outstanding_balance=row["outstanding_balance"],
        fee_balance=row["invoice_fee_balance"],
        interest_balance=row["invoice_interest_balance"],
        is_void=row["is_void"],
        last_refreshed=row["last_refreshed"],
        line_items=line_items,
    )


_PAYMENT_FIELDS = (
    "payment_object_id",
    "fee_object_id",
    "receipt_number",
    "received_date",
    "deposit_date",
    "amount",
    "method",
    "reference_number",
)
_ADJUSTMENT_FIELDS = (
    "adjustment_object_id",
    "fee_object_id",
    "amount",
    "adjustment_date",
    "reason",
    "type",
    "comment",
)


def _children(remote: RemoteInvoice) -> tuple[list[Any], list[Any], list[Any]]:
    """The answer as three flat JSON arrays; money and dates travel as text, never floats."""
    fees, payments, adjustments = [], [], []
    for f in remote.fees:
        fees.append(
            {
                "object_id": f.fee_object_id,
                "guid": f.fee_guid,
                "business_area_code": f.business_area_code,
                "fee_date": f.fee_date.isoformat(),
                "description": f.description,
                "base_amount": str(f.base_amount),
                "tax_total": str(f.tax_total),
                "adjustment_total": str(f.adjustment_total),
                "tax_adjustment_total": str(f.tax_adjustment_total),
                "payment_base_amount": str(f.payment_base_amount),
                "payment_total": str(f.payment_total),
                "fee_type": f.fee_type,
            }
        )
        for p in f.payments:
            payments.append(
                {
                    "fee_object_id": f.fee_object_id,
                    "payment_object_id": p.payment_object_id,
                    "receipt_number": p.receipt_number,
                    "received_date": _text(p.received_date),
                    "deposit_date": _text(p.deposit_date),
                    "amount": str(p.amount),
                    "method": p.method,
                    "cash_handling_area": p.cash_handling_area,
                    "reference_number": p.reference_number,
                }
            )
        for a in f.adjustments:
            adjustments.append(
                {
                    "fee_object_id": f.fee_object_id,
                    "adjustment_object_id": a.adjustment_object_id,
                    "adjustment_total": str(a.adjustment_total),
                    "amount": str(a.amount),
                    "adjustment_date": _text(a.date),
                    "reason": a.reason,
                    "type": a.type,
                    "comment": a.comment,
                }
            )
    return fees, payments, adjustments


async def apply_refresh(
    conn: db.Connection, *, client_object_id: str, remote: RemoteInvoice
) -> int:
    """Make the local invoice and its children equal the answer; run inside one transaction.

    Upserts by e-licensing object ids and deletes what the answer no longer lists, in eight
    set-based statements whatever the number of children.
    """
    row = await db.fetch_one(
        conn,
        queries["upsert_invoice"],
        {
            "client_object_id": client_object_id,
            "invoice_number": remote.invoice_number,
            "due_date": remote.due_date,
            "outstanding_balance": remote.outstanding_balance,
            "fee_balance": remote.fee_balance,
            "interest_balance": remote.interest_balance,
        },
    )
    invoice_id: int = row["id"]
    fees, payments, adjustments = _children(remote)
    params = {"invoice_id": invoice_id}
    await db.execute(conn, queries["upsert_line_items"], {**params, "fees": Jsonb(fees)})
    await db.execute(
        conn,
        queries["delete_missing_line_items"],
        {**params, "fee_ids": [f["object_id"] for f in fees]},
    )
    await db.execute(conn, queries["upsert_payments"], {**params, "payments": Jsonb(payments)})
    await db.execute(
        conn, queries["delete_missing_payments"], {**params, "payments": Jsonb(payments)}
    )
    await db.execute(
        conn, queries["upsert_adjustments"], {**params, "adjustments": Jsonb(adjustments)}
    )
    await db.execute(
        conn, queries["delete_missing_adjustments"], {**params, "adjustments": Jsonb(adjustments)}
    )
    return invoice_id


async def mark_invoice_void(conn: db.Connection, *, invoice_number: str) -> bool:
    row = await db.fetch_optional(
        conn, queries["mark_invoice_void"], {"invoice_number": invoice_number}
    )
    return row is not None


async def record_refresh_failure(
    conn: db.Connection, *, invoice_number: str, reason: str, error: str
) -> None:
    await db.execute(
        conn,
        queries["record_refresh_failure"],
        {"invoice_number": invoice_number, "reason": reason, "error": error[:1000]},
    )


# --- seeding (demo, tests, benchmark) --------------------------------------------------------


async def insert_operator(conn: db.Connection, *, legal_name: str, cra_business_number: str) -> int:
    row = await db.fetch_one(
        conn,
        queries["insert_operator"],
        {"legal_name": legal_name, "cra_business_number": cra_business_number},
    )
    return int(row["id"])


async def insert_client_operator(
    conn: db.Connection, *, operator_id: int, client_object_id: str, client_guid: str
) -> int:
    row = await db.fetch_one(
        conn,
        queries["insert_client_operator"],
        {
            "operator_id": operator_id,
            "client_object_id": client_object_id,
            "client_guid": client_guid,
        },
    )
    return int(row["id"])


async def insert_report_version(
    conn: db.Connection, *, id: int, operator_id: int, reporting_year: int
) -> None:
    await db.execute(
        conn,
        queries["insert_report_version"],
        {"id": id, "operator_id": operator_id, "reporting_year": reporting_year},
    )


async def insert_obligation(
    conn: db.Connection,
    *,
    report_version_id: int,
    obligation_id: str,
    fee_amount: Decimal,
    client_operator_id: int,
    invoice_number: str | None,
) -> None:
    await db.execute(
        conn,
        queries["insert_obligation"],
        {
            "report_version_id": report_version_id,
            "obligation_id": obligation_id,
            "fee_amount": fee_amount,
            "client_operator_id": client_operator_id,
            "invoice_number": invoice_number,
        },
    )
