"""Reference data operators manage: energy suppliers (GLN) and metering grid areas (EIC-Y).

``reference.py`` only seeds an empty database; from then on operators list, add, retire and
load parties through the API and the CLI. Retiring keeps a party known (past periods name it).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.accountingpoints import repository
from tether.accountingpoints.domain import EIC_Y, GLN
from tether.accountingpoints.errors import AccountingPointNotFound
from tether.core import db
from tether.core.errors import InvalidInput

MAX_PARTIES = 10_000


class PartyKind(StrEnum):
    ENERGY_SUPPLIERS = "energy-suppliers"
    GRID_AREAS = "grid-areas"


_FORMAT: dict[PartyKind, tuple[re.Pattern[str], str]] = {
    PartyKind.ENERGY_SUPPLIERS: (GLN, "a GLN (13 digits)"),
    PartyKind.GRID_AREAS: (EIC_Y, "an EIC-Y code (16 characters)"),
}


@dataclass(frozen=True, kw_only=True)
class Party:
    business_id: str
    name: str
    verified: bool
    retired_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Party:
        return cls(
            business_id=row["business_id"],
            name=row["name"],
            verified=row["verified"],
            retired_at=row["retired_at"],
        )


def check(kind: PartyKind, rows: list[tuple[str, str]]) -> None:
    """Refuse the whole list, naming the first bad row, before anything is stored (a single
    party has no rows to count: "row 1" confused an operator adding one)."""
    pattern, what = _FORMAT[kind]
    if not rows or len(rows) > MAX_PARTIES:
        raise InvalidInput(f"give 1 to {MAX_PARTIES} parties")
    for n, (business_id, name) in enumerate(rows, 1):
        where = f"row {n}: " if len(rows) > 1 else ""
        if not pattern.fullmatch(business_id):
            raise InvalidInput(f"{where}{business_id!r} is not {what}")
        if not name.strip() or len(name) > 200:
            raise InvalidInput(f"{where}a name of 1 to 200 characters is required")


def parse_csv(text: str) -> list[tuple[str, str]]:
    """``business_id,name`` rows; a header row naming ``business_id`` is skipped."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and rows[0][0].strip().lower() == "business_id":
        rows = rows[1:]
    out = []
    for n, r in enumerate(rows, 1):
        if len(r) != 2:
            raise InvalidInput(f"CSV row {n}: expected business_id,name")
        out.append((r[0].strip(), r[1].strip()))
    return out


async def list_parties(
    pool: AsyncConnectionPool[Any], kind: PartyKind, *, include_retired: bool = False
) -> list[Party]:
    async with pool.connection() as conn:
        rows = await repository.list_parties(conn, kind.value, include_retired=include_retired)
    return [Party.from_row(r) for r in rows]


async def add_parties(
    pool: AsyncConnectionPool[Any], kind: PartyKind, rows: list[tuple[str, str]]
) -> list[Party]:
    """Add or rename parties (verified, active again if retired), all or none."""
    check(kind, rows)
    async with db.transaction(pool) as conn:
        stored = await repository.add_parties(conn, kind.value, rows)
    return [Party.from_row(r) for r in stored]


async def retire_party(pool: AsyncConnectionPool[Any], kind: PartyKind, business_id: str) -> Party:
    async with db.transaction(pool) as conn:
        row = await repository.retire_party(conn, kind.value, business_id)
    if row is None:
        raise AccountingPointNotFound(f"no {kind.value[:-1].replace('-', ' ')} {business_id}")
    return Party.from_row(row)
