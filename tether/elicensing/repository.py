"""The only module that runs e-licensing SQL. Every function takes the caller's connection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tether.core import db
from tether.core.errors import Conflict
from tether.core.sql import load_queries
from tether.elicensing.errors import InvalidElicensingPayload
from tether.elicensing.models import (
    InvoiceType,
    ObligationLink,
    ObligationLinkVersion,
    RefreshState,
    RemoteInvoice,
    Snapshot,
)

queries = load_queries("tether.elicensing")


CIRCUIT = "elicensing"  # the name of e-licensing's shared circuit breaker


def _text(value: object) -> str | None:
    return None if value is None else str(value)


async def fetch_read(
    conn: db.Connection, *, report_version_id: int, invoice_type: InvoiceType
) -> Snapshot | None:
    """Target, local copy and state of a report version's invoice; ``None``: no such invoice."""
    row = await db.fetch_optional(
        conn,
        queries["fetch_read"],
        {
            "report_version_id": report_version_id,
            "invoice_type": invoice_type.value,
            "circuit": CIRCUIT,
        },
    )
    return None if row is None else Snapshot.from_row(row, report_version_id, invoice_type)


async def fetch_refresh_state(conn: db.Connection, *, invoice_number: str) -> RefreshState:
    row = await db.fetch_one(
        conn, queries["fetch_refresh_state"], {"invoice_number": invoice_number}
    )
    return RefreshState.from_row(row)


async def claim_refresh(
    conn: db.Connection, *, invoice_number: str, holder: uuid.UUID, lease: timedelta
) -> tuple[bool, RefreshState]:
    """Lead the refresh unless a lease is running; and the outcome of the latest refresh."""
    row = await db.fetch_one(
        conn,
        queries["claim_refresh"],
        {"invoice_number": invoice_number, "holder": holder, "lease": lease},
    )
    return bool(row["leading"]), RefreshState.from_row(row)


async def release_refresh(conn: db.Connection, *, invoice_number: str, holder: uuid.UUID) -> None:
    await db.execute(
        conn, queries["release_refresh"], {"invoice_number": invoice_number, "holder": holder}
    )


async def refresh_leased(conn: db.Connection, *, invoice_number: str) -> bool:
    row = await db.fetch_one(conn, queries["refresh_leased"], {"invoice_number": invoice_number})
    return bool(row["leased"])


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


async def save_refresh(
    conn: db.Connection,
    *,
    client_object_id: str,
    remote: RemoteInvoice,
    requested_at: datetime,
    holder: uuid.UUID,
) -> None:
    """Make the local invoice and its children equal the answer and end the refresh lease, in
    one transaction of its own on an autocommit connection, in two round trips: BEGIN with the
    invoice, then the rest and COMMIT.

    Upserts by e-licensing object ids and deletes what the answer no longer lists, in nine
    set-based statements whatever the number of children. Values the database refuses (a
    constraint, a value out of a column's range) raise ``InvalidElicensingPayload``: the answer
    passed the client's checks, but it still is data tether cannot keep.
    """
    with _refused(remote):
        try:
            async with conn.pipeline(), conn.transaction():
                await _apply_refresh(conn, client_object_id, remote, requested_at)
                await release_refresh(conn, invoice_number=remote.invoice_number, holder=holder)
        except psycopg.Error:
            await conn.rollback()  # an error that surfaced at the pipeline's end: leave no tx
            raise


@contextmanager
def _refused(remote: RemoteInvoice) -> Iterator[None]:
    try:
        yield
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        raise InvalidElicensingPayload(
            f"the database refused e-licensing invoice {remote.invoice_number}: "
            f"{exc.diag.message_primary} ({exc.diag.sqlstate})"
        ) from exc


async def _apply_refresh(
    conn: db.Connection, client_object_id: str, remote: RemoteInvoice, requested_at: datetime
) -> int:
    """The statements of a refresh, on a connection in pipeline mode (the caller's)."""
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
    fee_ids = [f["object_id"] for f in fees]
    statements = [
        ("upsert_line_items", {**params, "fees": Jsonb(fees)}),
        ("delete_missing_line_items", {**params, "fee_ids": fee_ids}),
        ("upsert_payments", {**params, "payments": Jsonb(payments)}),
        ("delete_missing_payments", {**params, "payments": Jsonb(payments)}),
        ("upsert_adjustments", {**params, "adjustments": Jsonb(adjustments)}),
        ("delete_missing_adjustments", {**params, "adjustments": Jsonb(adjustments)}),
        ("clear_stale", {"invoice_number": remote.invoice_number, "requested_at": requested_at}),
    ]
    for name, values in statements:
        await db.execute(conn, queries[name], values)
    return invoice_id


async def mark_invoice_void(
    conn: db.Connection, *, invoice_number: str, requested_at: datetime
) -> bool:
    row = await db.fetch_optional(
        conn, queries["mark_invoice_void"], {"invoice_number": invoice_number}
    )
    if row is None:
        return False
    await db.execute(
        conn,
        queries["clear_stale"],
        {"invoice_number": invoice_number, "requested_at": requested_at},
    )
    return True


async def mark_upstream_changed(conn: db.Connection, *, invoice_number: str, detail: str) -> None:
    await db.execute(
        conn,
        queries["mark_upstream_changed"],
        {"invoice_number": invoice_number, "detail": detail},
    )


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
    return (await link_client(conn, operator_id, client_object_id, client_guid))[0]


async def link_client(
    conn: db.Connection, operator_id: int, client_object_id: str, client_guid: str
) -> tuple[int, int, str]:
    """Link an operator to its client; (link id, operator id, client GUID) as they now are."""
    with _link_conflicts():
        row = await db.fetch_one(
            conn,
            queries["insert_client_operator"],
            {
                "operator_id": operator_id,
                "client_object_id": client_object_id,
                "client_guid": client_guid,
            },
        )
    return int(row["id"]), int(row["operator_id"]), str(row["client_guid"])


_CONFLICTS = {
    "client_operator_operator_id_key": "the operator is already linked to another client",
    "client_operator_client_guid_key": "the client GUID belongs to another client",
    "obligation_obligation_id_key": "the obligation id is already used by another report version",
    "obligation_invoice_number_key": "the invoice is already linked to another report version",
}


@contextmanager
def _link_conflicts() -> Iterator[None]:
    """A unique key another link already holds becomes a ``Conflict`` saying which."""
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        name = exc.diag.constraint_name or ""
        raise Conflict(_CONFLICTS.get(name, f"conflicts with an existing link ({name})")) from exc


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
    params = {
        "report_version_id": report_version_id,
        "obligation_id": obligation_id,
        "fee_amount": fee_amount,
        "client_operator_id": client_operator_id,
        "invoice_number": invoice_number,
    }
    with _link_conflicts():
        await db.execute(conn, queries["insert_obligation"], params)


# --- obligation links (operator API and CLI) ------------------------------------------------


async def set_actor(conn: db.Connection, actor: str) -> None:
    await db.fetch_one(conn, queries["set_actor"], {"actor": actor})


async def fetch_obligation_link(
    conn: db.Connection, *, report_version_id: int
) -> ObligationLink | None:
    row = await db.fetch_optional(
        conn, queries["fetch_obligation_link"], {"report_version_id": report_version_id}
    )
    return None if row is None else ObligationLink.from_row(row)


async def list_obligation_links(
    conn: db.Connection, *, after: int, limit: int
) -> list[ObligationLink]:
    rows = await db.fetch_all(
        conn, queries["list_obligation_links"], {"after": after, "limit": limit}
    )
    return [ObligationLink.from_row(r) for r in rows]


async def fetch_report_version_operator(
    conn: db.Connection, *, report_version_id: int
) -> int | None:
    row = await db.fetch_optional(
        conn, queries["fetch_report_version_operator"], {"report_version_id": report_version_id}
    )
    return None if row is None else int(row["operator_id"])


async def delete_obligation_link(conn: db.Connection, *, report_version_id: int) -> bool:
    row = await db.fetch_optional(
        conn, queries["delete_obligation_link"], {"report_version_id": report_version_id}
    )
    return row is not None


async def fetch_obligation_history(
    conn: db.Connection, *, report_version_id: int
) -> list[ObligationLinkVersion]:
    rows = await db.fetch_all(
        conn, queries["fetch_obligation_history"], {"report_version_id": report_version_id}
    )
    return [ObligationLinkVersion.from_row(r) for r in rows]
