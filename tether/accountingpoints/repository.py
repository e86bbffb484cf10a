"""The only module that runs accounting point SQL. Every function takes the caller's connection."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from tether.accountingpoints import reference
from tether.accountingpoints.models import ClaimedSync
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


async def claim_due_syncs(
    conn: db.Connection, *, limit: int, dead_timeout: timedelta, worker: str
) -> list[tuple[ClaimedSync, date | None]]:
    """Claim due APs; return each with the earliest start date of its controllable units."""
    rows = await db.fetch_all(
        conn,
        queries["claim_due_syncs"],
        {"limit": limit, "dead_timeout": dead_timeout, "worker": worker},
    )
    return [
        (
            ClaimedSync(
                accounting_point_id=r["accounting_point_id"],
                gsrn=r["gsrn"],
                started_at=r["started_at"],
                attempts=r["attempts"],
            ),
            r["earliest_start"],
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
) -> int:
    """Merge one adapter answer; returns the AP id."""
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


async def record_sync_failure(
    conn: db.Connection,
    *,
    gsrn: str,
    started_at: datetime | None,
    error: str,
    reason: str,
    retry_after: timedelta,
) -> bool:
    """Record why a sync failed and when to retry; False if the claim was no longer ours."""
    count = await db.execute(
        conn,
        queries["record_sync_failure"],
        {
            "gsrn": gsrn,
            "started_at": started_at,
            "error": error,
            "reason": reason,
            "retry_after": retry_after,
        },
    )
    return count > 0


async def request_syncs(conn: db.Connection, gsrns: list[str]) -> list[str]:
    """Mark APs as changed upstream; returns the GSRNs we hold."""
    rows = await db.fetch_all(conn, queries["request_syncs"], {"gsrns": gsrns})
    return [r["gsrn"] for r in rows]


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
