"""The only module that runs e-licensing SQL. Every function takes the caller's connection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

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


Target = tuple[int, InvoiceType]  # (report version id, invoice type)


async def fetch_reads(
    conn: db.Connection, targets: Sequence[Target], *, without_items: Set[Target] = frozenset()
) -> dict[Target, Snapshot]:
    """Target, local copy and state of each report version's invoice, in one statement; a
    target without an invoice is missing from the answer. The targets ``without_items`` come
    without their fees, payments and adjustments (``Snapshot.items_read`` false) unless the
    circuit is open."""
    params = {
        "report_version_ids": [version for version, _ in targets],
        "invoice_types": [kind.value for _, kind in targets],
        "with_items": [target not in without_items for target in targets],
        "circuit": CIRCUIT,
    }
    found = {}
    for row in await db.fetch_all(conn, queries["fetch_reads"], params):
        target = (int(row["report_version_id"]), InvoiceType(row["invoice_type"]))
        found[target] = Snapshot.from_row(row, *target)
    return found


async def fetch_refresh_state(conn: db.Connection, *, invoice_number: str) -> RefreshState:
    row = await db.fetch_one(
        conn, queries["fetch_refresh_state"], {"invoice_number": invoice_number}
    )
    return RefreshState.from_row(row)


Claim = tuple[str, uuid.UUID]  # (invoice number, holder)


async def claim_refreshes(
    conn: db.Connection, claims: Sequence[Claim], *, lease: timedelta
) -> list[tuple[bool, RefreshState]]:
    """Lead each refresh unless a lease is running; and the outcome of the latest refresh, per
    claim in order. Of claims of one invoice in one group only the first can lead."""
    first: dict[str, uuid.UUID] = {}
    for number, holder in claims:
        first.setdefault(number, holder)
    rows = await db.fetch_all(
        conn,
        queries["claim_refreshes"],
        {"invoice_numbers": list(first), "holders": list(first.values()), "lease": lease},
    )
    by_number = {row["invoice_number"]: row for row in rows}
    return [
        (
            bool(by_number[number]["leading"]) and first[number] == holder,
            RefreshState.from_row(by_number[number]),
        )
        for number, holder in claims
    ]


async def release_refreshes(conn: db.Connection, claims: Sequence[Claim]) -> None:
    await db.execute(
        conn,
        queries["release_refreshes"],
        {"invoice_numbers": [n for n, _ in claims], "holders": [h for _, h in claims]},
    )


async def release_refresh(conn: db.Connection, *, invoice_number: str, holder: uuid.UUID) -> None:
    await release_refreshes(conn, [(invoice_number, holder)])


async def refresh_leased(conn: db.Connection, *, invoice_number: str) -> bool:
    row = await db.fetch_one(conn, queries["refresh_leased"], {"invoice_number": invoice_number})
    return bool(row["leased"])


@dataclass(frozen=True, kw_only=True)
class Save:
    """One answer to keep: whose invoice, the answer, when its request left, its lease."""

    client_object_id: str
    remote: RemoteInvoice
    requested_at: datetime
    holder: uuid.UUID


_OWN_FIELDS: dict[type, tuple[str, ...]] = {}  # per kind of part: its fields but its children


def _fields(part: Any, **keys: str) -> dict[str, str | None]:
    """A part of an answer (its own fields, not its children) as JSON values, money and dates as
    text, never floats; named as in the save statements' records, which take what they need."""
    names = _OWN_FIELDS.get(type(part))
    if names is None:  # children are the tuple fields (fees, payments, adjustments)
        names = tuple(f.name for f in fields(part) if not isinstance(getattr(part, f.name), tuple))
        _OWN_FIELDS[type(part)] = names
    record = {name: _text(getattr(part, name)) for name in names}
    record.update(keys)
    return record


def _group(saves: Sequence[Save]) -> dict[str, Any]:
    """The answers as flat JSON arrays, each dumped once, keyed by invoice number and fee."""
    invoices, fees, payments, adjustments = [], [], [], []
    for save in saves:
        number = save.remote.invoice_number
        invoices.append(_fields(save.remote, client_object_id=save.client_object_id))
        for f in save.remote.fees:
            fees.append(_fields(f, invoice_number=number))
            keys = {"invoice_number": number, "fee_object_id": f.fee_object_id}
            payments += [_fields(p, **keys) for p in f.payments]
            adjustments += [_fields(a, **keys) for a in f.adjustments]
    return {
        "invoices": db.json_text(invoices),
        "fees": db.json_text(fees),
        "payments": db.json_text(payments),
        "adjustments": db.json_text(adjustments),
        "invoice_numbers": [s.remote.invoice_number for s in saves],
        "fee_ids": [f["fee_object_id"] for f in fees],
        "requested_at": [s.requested_at for s in saves],
        "holders": [s.holder for s in saves],
    }


async def save_refreshes(conn: db.Connection, saves: Sequence[Save]) -> None:
    """Make each local invoice and its children equal its answer and end its refresh lease:
    a group of answers in one statement (``elicensing.save_refreshes``, set-based whatever the
    number of invoices and children), so on an autocommit connection one transaction.

    Upserts by e-licensing object ids and deletes what an answer no longer lists. A value the
    database refuses fails the whole group with psycopg's error; ``save_refresh`` (a group of
    one) says which answer it was.
    """
    await db.execute(conn, queries["save_refreshes"], _group(saves))


async def save_then_read(
    conn: db.Connection, saves: Sequence[Save], targets: Sequence[Target]
) -> dict[Target, Snapshot]:
    """``save_refreshes`` and then ``fetch_reads`` of ``targets``, sent together in one pipeline
    (one round trip, one implicit transaction on an autocommit connection: the read sees the
    save, and a refused save leaves nothing and raises psycopg's error)."""
    async with conn.pipeline():  # the read's fetch sends both and waits once
        await save_refreshes(conn, saves)
        return await fetch_reads(conn, targets)


async def save_refresh(
    conn: db.Connection,
    *,
    client_object_id: str,
    remote: RemoteInvoice,
    requested_at: datetime,
    holder: uuid.UUID,
) -> None:
    """One answer, saved as a group of one. Values the database refuses (a constraint, a value
    out of a column's range) raise ``InvalidElicensingPayload``: the answer passed the client's
    checks, but it still is data tether cannot keep."""
    save = Save(
        client_object_id=client_object_id, remote=remote, requested_at=requested_at, holder=holder
    )
    with _refused(remote):
        await save_refreshes(conn, [save])


@contextmanager
def _refused(remote: RemoteInvoice) -> Iterator[None]:
    try:
        yield
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        raise InvalidElicensingPayload(
            f"the database refused e-licensing invoice {remote.invoice_number}: "
            f"{exc.diag.message_primary} ({exc.diag.sqlstate})"
        ) from exc


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
        {"invoice_numbers": [invoice_number], "requested_at": [requested_at]},
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
