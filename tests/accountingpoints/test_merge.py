"""The timeline merge of ``ap.apply_sync``: each kind of change gives the right rows and history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tether.accountingpoints import repository
from tether.accountingpoints.domain import make_gsrn
from tether.core import db
from tether.core.errors import DataRejected

OSLO = ZoneInfo("Europe/Oslo")
GSRN = make_gsrn("70705750", 42)
SUP_A, SUP_B = "7080005051237", "7080010002152"
MGA = "10YNO-1--------2"


def day(y: int, m: int, d: int) -> str:
    return datetime(y, m, d, tzinfo=OSLO).isoformat()


def payload(
    *,
    end_user: list[tuple[str, str | None, str]] | None = None,
    supplier: list[tuple[str, str | None, str]] | None = None,
    lat: float | None = 59.9,
    lon: float | None = 10.7,
) -> dict[str, Any]:
    def periods(items: list[tuple[str, str | None, str]]) -> list[dict[str, Any]]:
        return [{"valid_from": f, "valid_to": t, "business_id": b} for f, t, b in items]

    return {
        "end_user": periods(
            end_user if end_user is not None else [(day(2024, 1, 1), None, "123456789")]
        ),
        "energy_supplier": periods(
            supplier if supplier is not None else [(day(2024, 1, 1), None, SUP_A)]
        ),
        "metering_grid_area": periods([(day(2024, 1, 1), None, MGA)]),
        "energy_direction": [
            {"valid_from": day(2024, 1, 1), "valid_to": None, "direction": ["consumption"]}
        ],
        "latitude": lat,
        "longitude": lon,
    }


async def apply(pool: AsyncConnectionPool[Any], data: dict[str, Any]) -> None:
    async with db.transaction(pool) as conn:
        await repository.upsert_reference_data(conn)
        with db.translate_db_errors():
            await repository.apply_sync(
                conn,
                gsrn=GSRN,
                data=data,
                started_at=None,
                resync=timedelta(hours=23),
                actor="test",
            )


def rows(db_url: str, table: str, column: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        conn.execute("SET TIME ZONE 'Europe/Oslo'")
        return conn.execute(
            f"SELECT t.valid_from::date, t.valid_to::date, r.business_id FROM ap.{table} t "
            f"JOIN ap.{column} r ON r.id = t.{column}_id ORDER BY t.valid_from"
        ).fetchall()


def history(db_url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        conn.execute("SET TIME ZONE 'Europe/Oslo'")
        return conn.execute(
            f"SELECT valid_from::date, valid_to::date, history_operation, replaced_by "
            f"FROM ap.{table}_history ORDER BY history_id"
        ).fetchall()


async def commit_between(pool: AsyncConnectionPool[Any], *changes: dict[str, Any]) -> None:
    """Apply each change in its own transaction (history needs distinct record times)."""
    for change in changes:
        await apply(pool, change)


async def test_first_sync_inserts_everything_and_no_history(pool: Any, db_url: str) -> None:
    await apply(pool, payload())
    assert rows(db_url, "accounting_point_energy_supplier", "energy_supplier") == [
        (datetime(2024, 1, 1).date(), None, SUP_A)
    ]
    assert history(db_url, "accounting_point_energy_supplier") == []


async def test_supplier_switch_closes_old_period_and_opens_new(pool: Any, db_url: str) -> None:
    await commit_between(
        pool,
        payload(),
        payload(
            supplier=[(day(2024, 1, 1), day(2024, 6, 1), SUP_A), (day(2024, 6, 1), None, SUP_B)]
        ),
    )
    d = datetime
    assert rows(db_url, "accounting_point_energy_supplier", "energy_supplier") == [
        (d(2024, 1, 1).date(), d(2024, 6, 1).date(), SUP_A),
        (d(2024, 6, 1).date(), None, SUP_B),
    ]
    # the open-ended version was replaced: one history row, by the test actor
    assert history(db_url, "accounting_point_energy_supplier") == [
        (d(2024, 1, 1).date(), None, "UPDATE", "test")
    ]


PERSON = "hmac:" + "ab" * 32  # a person as stored: the keyed hash of the id (pii.py)


async def test_end_user_move_creates_new_end_user(pool: Any, db_url: str) -> None:
    moved = [
        (day(2024, 1, 1), day(2025, 3, 1), "123456789"),
        (day(2025, 3, 1), None, PERSON),
    ]
    await commit_between(pool, payload(), payload(end_user=moved))
    got = rows(db_url, "accounting_point_end_user", "end_user")
    assert [r[2] for r in got] == ["123456789", PERSON]
    with psycopg.connect(db_url) as conn:
        kinds = conn.execute(
            "SELECT business_id, entity_type FROM ap.end_user ORDER BY 1"
        ).fetchall()
    assert len(kinds) == 2


async def test_period_removed_upstream_is_deleted_with_history(pool: Any, db_url: str) -> None:
    two = [(day(2024, 1, 1), day(2024, 6, 1), SUP_A), (day(2024, 6, 1), None, SUP_B)]
    await commit_between(
        pool, payload(supplier=two), payload(supplier=[(day(2024, 1, 1), None, SUP_A)])
    )
    assert [r[2] for r in rows(db_url, "accounting_point_energy_supplier", "energy_supplier")] == [
        SUP_A
    ]
    ops = [h[2] for h in history(db_url, "accounting_point_energy_supplier")]
    assert sorted(ops) == ["DELETE", "UPDATE"]


async def test_period_split_shrinks_and_inserts(pool: Any, db_url: str) -> None:
    split = [
        (day(2024, 1, 1), day(2024, 3, 1), SUP_A),
        (day(2024, 3, 1), day(2024, 9, 1), SUP_B),
        (day(2024, 9, 1), None, SUP_A),
    ]
    await commit_between(pool, payload(), payload(supplier=split))
    assert len(rows(db_url, "accounting_point_energy_supplier", "energy_supplier")) == 3


async def test_boundary_moves_in_both_directions_never_trip_the_constraint(
    pool: Any, db_url: str
) -> None:
    # move the boundary later: the first period grows, the second is replaced (new valid_from)
    first = [
        (day(2024, 1, 1), day(2024, 3, 1), SUP_A),
        (day(2024, 3, 1), day(2024, 5, 1), SUP_B),
        (day(2024, 5, 1), None, SUP_A),
    ]
    later = [
        (day(2024, 1, 1), day(2024, 4, 1), SUP_A),
        (day(2024, 4, 1), day(2024, 5, 1), SUP_B),
        (day(2024, 5, 1), None, SUP_A),
    ]
    # and a case where one period shrinks while its neighbour grows backwards is a new key
    earlier = [(day(2024, 1, 1), day(2024, 2, 1), SUP_A), (day(2024, 2, 1), None, SUP_B)]
    await commit_between(
        pool, payload(supplier=first), payload(supplier=later), payload(supplier=earlier)
    )
    got = rows(db_url, "accounting_point_energy_supplier", "energy_supplier")
    assert [(r[0].isoformat(), r[2]) for r in got] == [("2024-01-01", SUP_A), ("2024-02-01", SUP_B)]


async def test_empty_list_from_adapter_deletes_nothing(pool: Any, db_url: str) -> None:
    await commit_between(pool, payload(), payload(supplier=[]))
    assert len(rows(db_url, "accounting_point_energy_supplier", "energy_supplier")) == 1
    assert history(db_url, "accounting_point_energy_supplier") == []


async def test_identical_resync_writes_no_history(pool: Any, db_url: str) -> None:
    await commit_between(pool, payload(), payload(), payload())
    for table in (
        "accounting_point_end_user",
        "accounting_point_energy_supplier",
        "accounting_point_metering_grid_area",
        "accounting_point_energy_direction",
    ):
        assert history(db_url, table) == [], table
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM ap.accounting_point_history").fetchone() == (0,)


async def test_location_updates_only_when_both_coordinates_present(pool: Any, db_url: str) -> None:
    await commit_between(pool, payload(lat=60.0, lon=11.0), payload(lat=61.0, lon=None))
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT latitude, longitude FROM ap.accounting_point").fetchone() == (
            60.0,
            11.0,
        )
    await apply(pool, payload(lat=62.5, lon=5.25))
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT latitude, longitude FROM ap.accounting_point").fetchone() == (
            62.5,
            5.25,
        )


async def test_unknown_supplier_fails_whole_sync_and_changes_nothing(
    pool: Any, db_url: str
) -> None:
    await apply(pool, payload())
    bad = payload(supplier=[(day(2024, 1, 1), None, "7080000000001")], lat=1.0, lon=1.0)
    bad["end_user"] = [
        {"valid_from": day(2024, 1, 1), "valid_to": None, "business_id": "987654321"}
    ]
    with pytest.raises(DataRejected) as info:
        await apply(pool, bad)
    assert info.value.reason == "unknown_reference"
    assert "7080000000001" in info.value.message
    assert [r[2] for r in rows(db_url, "accounting_point_end_user", "end_user")] == ["123456789"]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT latitude FROM ap.accounting_point").fetchone() == (59.9,)


async def test_overlapping_periods_are_refused_by_the_database_too(pool: Any, db_url: str) -> None:
    # the client rejects overlaps first; the exclusion constraint is the last line of defence
    overlapping = [(day(2024, 1, 1), day(2024, 6, 1), SUP_A), (day(2024, 5, 1), None, SUP_B)]
    with pytest.raises(psycopg.errors.ExclusionViolation):
        await apply(pool, payload(supplier=overlapping))
