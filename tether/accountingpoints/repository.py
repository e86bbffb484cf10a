"""The only module that runs accounting point SQL. Every function takes the caller's connection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from tether.accountingpoints import reference
from tether.accountingpoints.models import Claim
from tether.core import db
from tether.core.sql import load_queries

queries = load_queries("tether.accountingpoints")


async def upsert_reference_data(conn: db.Connection) -> None:
    """Make the reference tables hold the catalogue."""
    await db.execute(
        conn,
        queries["upsert_grid_areas"],
        {
            "business_ids": list(reference.GRID_AREAS),
            "names": list(reference.GRID_AREAS.values()),
        },
    )
    await db.execute(
        conn,
        queries["upsert_energy_suppliers"],
        {
            "business_ids": list(reference.ENERGY_SUPPLIERS),
            "names": list(reference.ENERGY_SUPPLIERS.values()),
        },
    )


_PARTY_QUERIES = {
    "energy-suppliers": ("list_energy_suppliers", "add_energy_suppliers", "retire_energy_supplier"),
    "grid-areas": ("list_grid_areas", "add_grid_areas", "retire_grid_area"),
}


async def list_parties(
    conn: db.Connection, kind: str, *, include_retired: bool
) -> list[dict[str, Any]]:
    return await db.fetch_all(conn, queries[_PARTY_QUERIES[kind][0]], {"all": include_retired})


async def add_parties(
    conn: db.Connection, kind: str, rows: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    return await db.fetch_all(
        conn,
        queries[_PARTY_QUERIES[kind][1]],
        {"business_ids": [r[0] for r in rows], "names": [r[1] for r in rows]},
    )


async def retire_party(conn: db.Connection, kind: str, business_id: str) -> dict[str, Any] | None:
    return await db.fetch_optional(
        conn, queries[_PARTY_QUERIES[kind][2]], {"business_id": business_id}
    )


async def accept_unknown_parties(conn: db.Connection, answers: list[dict[str, Any]]) -> None:
    """Add the suppliers and grid areas these answers name that we lack, unverified."""
    await db.execute(conn, queries["accept_unknown_parties"], {"data": Jsonb(answers)})


async def pseudonymise_end_users(conn: db.Connection, pseudonym: Callable[[str], str]) -> int:
    """Replace every person id still stored in clear by its pseudonym; returns how many."""
    found = await db.fetch_one(conn, queries["any_clear_person_end_user"])
    if not found["found"]:
        return 0
    await db.execute(conn, queries["lock_end_users"])
    rows = await db.fetch_all(conn, queries["clear_person_end_users"])
    if not rows:
        return 0
    return await db.execute(
        conn,
        queries["pseudonymise_end_users"],
        {
            "ids": [r["id"] for r in rows],
            "pseudonyms": [pseudonym(r["business_id"]) for r in rows],
        },
    )


async def claim_due_syncs(
    conn: db.Connection, *, limit: int, dead_timeout: timedelta, worker: str
) -> list[Claim]:
    """Claim due APs, each with the earliest start date of its controllable units."""
    rows = await db.fetch_all(
        conn,
        queries["claim_due_syncs"],
        {"limit": limit, "dead_timeout": dead_timeout, "worker": worker},
    )
    return [
        Claim(
            gsrn=r["gsrn"],
            started_at=r["started_at"],
            earliest_start=r["earliest_start"],
            attempts=r["attempts"],
            last_reason=r["last_error_reason"],
        )
        for r in rows
    ]


async def apply_sync(
    conn: db.Connection,
    *,
    gsrn: str,
    data: dict[str, Any],
    started_at: datetime | None,
    resync: timedelta,
    actor: str,
    accept_unknown: bool = False,
) -> int:
    """Merge one adapter answer; returns the AP id."""
    if accept_unknown:
        await accept_unknown_parties(conn, [data])
    row = await db.fetch_one(
        conn,
        queries["apply_sync"],
        {
            "gsrn": gsrn,
            "data": Jsonb(data),
            "started_at": started_at,
            "resync": resync,
            "actor": actor,
        },
    )
    return int(row["accounting_point_id"])


@dataclass(frozen=True, kw_only=True)
class BatchItem:
    """One validated adapter answer of a batch; ``started_at`` is its claim (None: lookup)."""

    gsrn: str
    data: dict[str, Any]
    started_at: datetime | None

    @classmethod
    def of(cls, claim: Claim, data: dict[str, Any]) -> BatchItem:
        return cls(gsrn=claim.gsrn, data=data, started_at=claim.started_at)


@dataclass(frozen=True, kw_only=True)
class Verdict:
    gsrn: str
    outcome: str  # "ok", "claim_lost" or "unknown_reference"
    message: str | None


async def apply_sync_batch(
    conn: db.Connection,
    *,
    items: list[BatchItem],
    resync: timedelta,
    actor: str,
    accept_unknown: bool = False,
) -> list[Verdict]:
    """Merge many adapter answers with one statement; rejected items are reported, not raised."""
    if accept_unknown:
        await accept_unknown_parties(conn, [i.data for i in items])
    doc = [
        {
            "gsrn": i.gsrn,
            "started_at": None if i.started_at is None else i.started_at.isoformat(),
            "data": i.data,
        }
        for i in items
    ]
    rows = await db.fetch_all(
        conn, queries["apply_sync_batch"], {"items": Jsonb(doc), "resync": resync, "actor": actor}
    )
    return [Verdict(gsrn=r["gsrn"], outcome=r["outcome"], message=r["message"]) for r in rows]


@dataclass(frozen=True, kw_only=True)
class Failure:
    gsrn: str
    started_at: datetime
    error: str
    reason: str
    retry_after: timedelta


async def record_sync_failures(conn: db.Connection, failures: list[Failure]) -> int:
    """Record why syncs failed and when to retry, skipping claims no longer ours."""
    if not failures:
        return 0
    await db.execute(conn, queries["set_lock_timeout"], {"timeout": "1s"})
    return await db.execute(
        conn,
        queries["record_sync_failures"],
        {
            "gsrns": [f.gsrn for f in failures],
            "started_ats": [f.started_at for f in failures],
            "errors": [f.error for f in failures],
            "reasons": [f.reason for f in failures],
            "retry_afters": [f.retry_after for f in failures],
        },
    )


async def request_syncs(
    conn: db.Connection, gsrns: list[str], *, retry_base: timedelta
) -> dict[str, bool]:
    """Mark APs as changed upstream; the GSRNs we hold, each with whether it is due now (else
    it waits for its retry after a failure)."""
    params = {"gsrns": gsrns, "retry_base": retry_base}
    rows = await db.fetch_all(conn, queries["request_syncs"], params)
    return {r["gsrn"]: r["due"] for r in rows}


async def get_accounting_point(conn: db.Connection, gsrn: str) -> dict[str, Any] | None:
    return await db.fetch_optional(conn, queries["get_accounting_point"], {"gsrn": gsrn})


async def get_timelines(conn: db.Connection, accounting_point_id: int) -> list[dict[str, Any]]:
    return await db.fetch_all(conn, queries["get_timelines"], {"id": accounting_point_id})


async def get_history(conn: db.Connection, accounting_point_id: int) -> list[dict[str, Any]]:
    return await db.fetch_all(conn, queries["get_history"], {"id": accounting_point_id})


async def current_end_user(conn: db.Connection, accounting_point_id: int) -> str | None:
    row = await db.fetch_optional(conn, queries["current_end_user"], {"id": accounting_point_id})
    return None if row is None else str(row["business_id"])


async def list_controllable_units(
    conn: db.Connection, accounting_point_id: int
) -> list[dict[str, Any]]:
    return await db.fetch_all(conn, queries["list_controllable_units"], {"id": accounting_point_id})


async def find_controllable_unit(conn: db.Connection, business_id: str) -> dict[str, Any] | None:
    return await db.fetch_optional(
        conn, queries["find_controllable_unit"], {"business_id": business_id}
    )


async def insert_controllable_unit(
    conn: db.Connection, *, gsrn: str, name: str, start_date: date | None
) -> dict[str, Any]:
    return await db.fetch_one(
        conn,
        queries["insert_controllable_unit"],
        {"gsrn": gsrn, "name": name, "start_date": start_date},
    )


async def count_sync_states(conn: db.Connection) -> dict[str, Any]:
    return await db.fetch_one(conn, queries["count_sync_states"])


async def heartbeat_claims(
    conn: db.Connection, *, worker: str, lease: timedelta, dead_timeout: timedelta
) -> int:
    return await db.execute(
        conn,
        queries["heartbeat_claims"],
        {"worker": worker, "lease": lease, "dead_timeout": dead_timeout},
    )


async def release_claims(conn: db.Connection, *, worker: str) -> int:
    return await db.execute(conn, queries["release_claims"], {"worker": worker})
