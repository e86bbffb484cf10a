"""A run date's snapshot after later meter data revisions (real ingest and runs, PostgreSQL).

The as-at rule (docs/accruals.md, "Snapshot"): per NMI, suffix and day (per basic read), the
newest version whose UpdateDateTime, else MSATS load time, is at or before the as-at, whether
it is still current or was replaced by a later ingest (acc.*_superseded).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.accruals.run_fixtures import (
    PERIOD_END,
    ingest_paths,
    load_world,
    nem12,
    nem13,
)
from tether.accruals import run
from tether.accruals.ingest import FileResult
from tether.accruals.settings import AccrualsSettings

SETTINGS = AccrualsSettings(min_contributors=1, chunk_size=2)
AS_AT = run.default_as_at(PERIOD_END, SETTINGS)  # 2026-04-07 00:00 AEST
REVISED = "20260410120000"  # after AS_AT (AEST)
AFTER_REVISION = datetime(2026, 4, 11, tzinfo=UTC)


def revision_nem12(update: str = REVISED, value: str = "0.9") -> str:
    """New versions of two channel-days the world's first run used (A1's E1, A3's 15 March)."""
    day = ",".join([value] * 48)
    return (
        "100,NEM12,202604101200,MDP,RET\n"
        "200,QTOU000001,E1B1,1,E1,N1,M1,kWh,30,\n"
        f"300,20260331,{day},A,,,{update},\n"
        "200,QFLT000003,E1,1,E1,N1,M3,kWh,30,\n"
        f"300,20260315,{day},A,,,{update},\n"
        "900\n"
    )


def revision_nem13(update: str = REVISED) -> str:
    """A4's read of 28 February again, 20 kWh more (its scalar history changes)."""
    return (
        nem13()
        .replace("000380,", "000400,")
        .replace(",280,kWh,", ",300,kWh,")
        .replace("20260301120000,20260301120000", f"{update},{update}")
    )


async def ingest(url: str, *texts: tuple[Path, str]) -> list[FileResult]:
    for path, text in texts:
        path.write_text(text)
    return await ingest_paths(url, [p for p, _ in texts])


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> str:
    return await load_world(db_url, tmp_path, {"nem12": nem12(), "nem13": nem13()})


def exports(url: str) -> dict[str, bytes]:
    """Every file the run wrote (summary, line items, estimates NEM12, report), byte for byte."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name, content FROM acc.run_export WHERE period_end = %s ORDER BY name",
            (PERIOD_END,),
        ).fetchall()
    assert len(rows) == 4
    return {name: bytes(content) for name, content in rows}


def scalar(url: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


def superseded(url: str) -> tuple[int, int]:
    return (
        scalar(url, "SELECT count(*) FROM acc.channel_day_superseded"),
        scalar(url, "SELECT count(*) FROM acc.basic_read_superseded"),
    )


def a1_kwh(url: str) -> float:
    return float(scalar(url, "SELECT kwh_actual FROM acc.run_result WHERE account_id = 'A1'"))


async def test_a_rerun_after_a_later_revision_writes_the_same_bytes(
    world: str, tmp_path: Path
) -> None:
    run.run_inline(world, PERIOD_END, AS_AT, SETTINGS)
    first, kwh = exports(world), a1_kwh(world)
    revision = [
        (tmp_path / "rev12.csv", revision_nem12()),
        (tmp_path / "rev13.csv", revision_nem13()),
    ]
    assert [r.status for r in await ingest(world, *revision)] == ["loaded", "loaded"]
    assert superseded(world) == (2, 1)  # the replaced versions, kept

    run.run_inline(world, PERIOD_END, AS_AT, SETTINGS, attempt=2)
    assert exports(world) == first  # the revision is after the as-at: not in the snapshot

    # the same version delivered again replaces nothing, so keeps nothing more
    assert [r.status for r in await ingest(world, *revision)] == ["loaded", "loaded"]
    assert superseded(world) == (2, 1)

    run.run_inline(world, PERIOD_END, AFTER_REVISION, SETTINGS, attempt=3)
    later = exports(world)
    assert later["BUAAccountSummary.csv"] != first["BUAAccountSummary.csv"]
    assert a1_kwh(world) == pytest.approx(kwh + 48 * (0.9 - 0.5))  # A1's 31 March, revised
    run.run_inline(world, PERIOD_END, AS_AT, SETTINGS, attempt=4)
    assert exports(world) == first  # and back again


async def test_a_late_loaded_correction_dated_before_the_as_at_is_in_the_rerun(
    world: str, tmp_path: Path
) -> None:
    """A version whose UpdateDateTime is before the as-at but which was loaded after the first
    run is used by a re-run: the snapshot is defined by the data's own version time
    (UpdateDateTime, else MSATS load time), not by when we happened to load it, so the re-run's
    output changes. That is the documented rule (docs/accruals.md, "Snapshot"): a late file
    carrying data as they stood at the as-at completes the snapshot rather than revising it."""
    run.run_inline(world, PERIOD_END, AS_AT, SETTINGS)
    first, kwh = exports(world), a1_kwh(world)
    late = [(tmp_path / "late.csv", revision_nem12(update="20260405120000", value="0.7"))]
    assert [r.status for r in await ingest(world, *late)] == ["loaded"]
    run.run_inline(world, PERIOD_END, AS_AT, SETTINGS, attempt=2)
    assert exports(world) != first
    assert a1_kwh(world) == pytest.approx(kwh + 48 * (0.7 - 0.5))


async def test_the_newest_version_within_the_as_at_wins_current_or_superseded(
    world: str, tmp_path: Path
) -> None:
    for n, (update, value) in enumerate((("20260410120000", "0.9"), ("20260420120000", "1.1"))):
        texts = [
            (tmp_path / f"r{n}.csv", revision_nem12(update, value)),
            (tmp_path / f"b{n}.csv", revision_nem13(update).replace("000400,", f"00040{n},")),
        ]
        assert [r.status for r in await ingest(world, *texts)] == ["loaded", "loaded"]
    assert superseded(world) == (4, 2)

    def total(as_at: datetime) -> Any:
        return scalar(
            world,
            "SELECT round(total::numeric, 3)::float8 FROM acc.channel_day_at(%s)"
            " WHERE nmi = 'QTOU000001' AND suffix = 'E1' AND day = '2026-03-31'",
            as_at,
        )

    def read(as_at: datetime) -> Any:
        return scalar(
            world,
            "SELECT current_read FROM acc.basic_read_at(%s) WHERE nmi = 'QBAS000004'",
            as_at,
        )

    before = datetime(2026, 3, 1, tzinfo=UTC)  # before the world's own version
    latest = datetime(2026, 5, 1, tzinfo=UTC)
    assert [total(t) for t in (before, AS_AT, AFTER_REVISION, latest)] == [None, 24, 43.2, 52.8]
    assert [read(t) for t in (datetime(2026, 2, 1, tzinfo=UTC), AS_AT, AFTER_REVISION)] == [
        None, 380, 400
    ]  # fmt: skip
    assert read(latest) == 401
