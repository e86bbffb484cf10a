"""Older versions kept for the as-at snapshot, the retention purge and the re-run guard (real
ingest, runs and CLI on PostgreSQL).

docs/accruals.md, "Snapshot" and "Retention": a version older than the stored one is kept in
acc.*_superseded (once), the snapshot takes the newest version by version time whatever the
order it was kept in, `tether accruals purge-superseded` deletes versions kept before the
retention horizon, and a run whose as-at is before the horizon of a purge is refused.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from tests.accruals.run_fixtures import PERIOD_END, api_client, load_world, nem12, nem13
from tests.accruals.test_run_asat import (
    AFTER_REVISION,
    AS_AT,
    SETTINGS,
    a1_kwh,
    exports,
    ingest,
    revision_nem12,
    revision_nem13,
    scalar,
    superseded,
)
from tether.accruals import flow, retention, run
from tether.accruals.retention import SnapshotPurged
from tether.accruals.settings import AccrualsSettings
from tether.core import workflows
from tether.core.settings import Settings

NEWEST = "20260420120000"  # AEST, all after AS_AT (2026-04-07 00:00 AEST)
OLDER = "20260410120000"
OLDEST = "20260405120000"


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> str:
    return await load_world(db_url, tmp_path, {"nem12": nem12(), "nem13": nem13()})


def at(stamp: str) -> datetime:
    """A yyyyMMddHHmmss market time (AEST) as an aware datetime, one second later."""
    aest = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC) - timedelta(hours=10)
    return aest + timedelta(seconds=1)


def a1_total(url: str, as_at: datetime) -> Any:
    return scalar(
        url,
        "SELECT round(total::numeric, 3)::float8 FROM acc.channel_day_at(%s)"
        " WHERE nmi = 'QTOU000001' AND suffix = 'E1' AND day = '2026-03-31'",
        as_at,
    )


def a4_read(url: str, as_at: datetime) -> Any:
    return scalar(
        url, "SELECT current_read FROM acc.basic_read_at(%s) WHERE nmi = 'QBAS000004'", as_at
    )


def nem13_version(update: str, read: str) -> str:
    return revision_nem13(update).replace("000400,", f"000{read},")


async def test_an_older_version_is_kept_and_used_by_an_as_at_run(
    world: str, tmp_path: Path
) -> None:
    """The newest revision first, then two older ones, the oldest last: before, each older one
    was ignored and a run as at a time between them saw the world's first version."""
    for name, update, value, read in (
        ("newest", NEWEST, "1.1", "401"),
        ("older", OLDER, "0.9", "400"),
        ("oldest", OLDEST, "0.7", "390"),
    ):
        texts = [
            (tmp_path / f"{name}12.csv", revision_nem12(update, value)),
            (tmp_path / f"{name}13.csv", nem13_version(update, read)),
        ]
        assert [r.status for r in await ingest(world, *texts)] == ["loaded", "loaded"]
    assert a1_total(world, datetime(2026, 12, 1, tzinfo=UTC)) == 52.8  # the newest is current
    # world's first version, and the two older ones: kept though they replaced nothing
    assert superseded(world) == (2 + 2 * 2, 1 + 2)
    # by version time, not by the order they were kept in (the oldest was kept last)
    times = (at("20260401120000"), at(OLDEST), at(OLDER), at(NEWEST))
    assert [a1_total(world, t) for t in times] == [24, 33.6, 43.2, 52.8]
    assert [a4_read(world, t) for t in times] == [380, 390, 400, 401]

    kwh = []  # A1's, by runs as at the world's version, AS_AT and AFTER_REVISION
    for attempt, as_at in enumerate((times[0], AS_AT, AFTER_REVISION), start=1):
        run.run_inline(world, PERIOD_END, as_at, SETTINGS, attempt=attempt)
        kwh.append(a1_kwh(world))
    # as at AS_AT (2026-04-07) the oldest version (04-05), after 04-10 the older one
    assert kwh[1] == pytest.approx(kwh[0] + 48 * (0.7 - 0.5))
    assert kwh[2] == pytest.approx(kwh[0] + 48 * (0.9 - 0.5))


async def test_within_one_file_the_older_versions_are_kept_too(world: str, tmp_path: Path) -> None:
    day = ",".join(["0.8"] * 48)
    text = revision_nem12(NEWEST, "1.1").replace(
        "900\n", f"200,QFLT000003,E1,1,E1,N1,M3,kWh,30,\n300,20260315,{day},A,,,{OLDER},\n900\n"
    )
    assert [r.status for r in await ingest(world, (tmp_path / "both.csv", text))] == ["loaded"]
    day15 = (
        "SELECT round(total::numeric, 3)::float8 FROM acc.channel_day_at(%s)"
        " WHERE nmi = 'QFLT000003' AND day = '2026-03-15'"
    )
    assert [scalar(world, day15, at(t)) for t in (OLDER, NEWEST)] == [38.4, 52.8]


async def test_an_identical_older_version_is_not_kept_twice(world: str, tmp_path: Path) -> None:
    newest = [
        (tmp_path / "n12.csv", revision_nem12(NEWEST, "1.1")),
        (tmp_path / "n13.csv", nem13_version(NEWEST, "401")),
    ]
    older = [revision_nem12(OLDER, "0.9"), nem13_version(OLDER, "400")]
    assert [r.status for r in await ingest(world, *newest)] == ["loaded", "loaded"]
    assert superseded(world) == (2, 1)  # the world's versions of the two days and the read
    await ingest(world, *((tmp_path / f"o{i}.csv", text) for i, text in enumerate(older)))
    assert superseded(world) == (4, 2)
    # the same older versions again, then each twice in one file
    await ingest(world, *((tmp_path / f"a{i}.csv", text) for i, text in enumerate(older)))
    twice = [t.replace("900\n", "\n".join(t.splitlines()[1:-1]) + "\n900\n") for t in older]
    await ingest(world, *((tmp_path / f"t{i}.csv", text) for i, text in enumerate(twice)))
    # the world's own files again: their versions are kept already (replaced by the newest)
    await ingest(world, (tmp_path / "w12.csv", nem12()), (tmp_path / "w13.csv", nem13()))
    assert superseded(world) == (4, 2)
    assert (a1_total(world, at(OLDER)), a4_read(world, at(OLDER))) == (43.2, 400)


def age(url: str, table: str, days: int, where: str) -> None:
    """Make the versions of ``table`` matching ``where`` kept ``days`` days ago."""
    sql = f"UPDATE acc.{table} SET superseded_at = now() - make_interval(days => %s) WHERE {where}"
    with psycopg.connect(url) as conn:
        conn.execute(sql, (days,))  # type: ignore[arg-type]


def cli(url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    from tether.accruals.cli import app

    monkeypatch.setenv("DATABASE_URL", url)
    return CliRunner().invoke(app, list(args))


async def test_purge_deletes_only_what_is_past_the_horizon(
    world: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, update, value in (("n", NEWEST, "1.1"), ("o", OLDER, "0.9")):
        texts = [
            (tmp_path / f"{name}12.csv", revision_nem12(update, value)),
            (tmp_path / f"{name}13.csv", nem13_version(update, "40" + value[-1])),
        ]
        await ingest(world, *texts)
    assert superseded(world) == (4, 2)
    age(world, "channel_day_superseded", 401, "update_datetime < '2026-04-05'")  # the world's 2
    age(world, "channel_day_superseded", 399, "update_datetime > '2026-04-05'")
    age(world, "basic_read_superseded", 500, "current_read = 380")
    before = a1_total(world, at(OLDER))

    dry = cli(world, monkeypatch, "purge-superseded", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would delete 2 channel-day and 1 basic read versions" in dry.stdout
    assert "(retention 400 days)" in dry.stdout
    assert superseded(world) == (4, 2)  # nothing went
    assert scalar(world, "SELECT count(*) FROM acc.superseded_purge") == 0

    done = cli(world, monkeypatch, "purge-superseded", "--batch-size", "1")
    assert done.exit_code == 0, done.output
    assert "deleted 2 channel-day and 1 basic read versions" in done.stdout
    assert superseded(world) == (2, 1)
    assert scalar(world, "SELECT min(superseded_at) > now() - interval '400 days'"
                  " FROM acc.channel_day_superseded")  # fmt: skip
    assert a1_total(world, at(OLDER)) == before  # within the retention: still as it was
    log = "SELECT channel_days, basic_reads, retention_days FROM acc.superseded_purge"
    with psycopg.connect(world) as conn:
        assert conn.execute(log).fetchall() == [(2, 1, 400)]

    again = cli(world, monkeypatch, "purge-superseded")
    assert "deleted 0 channel-day and 0 basic read versions" in again.stdout
    assert "--dry-run" in cli(world, monkeypatch, "purge-superseded", "--help").stdout


def test_a_run_under_way_holds_the_horizon_back(world: str) -> None:
    """Its later stages still read the snapshot as at its as-at."""
    old = datetime.now(UTC) - timedelta(days=500)
    with psycopg.connect(world) as conn:
        conn.execute(
            "INSERT INTO acc.run (period_end, as_at, workflow_id, status)"
            " VALUES ('2025-06-30', %s, 'w', 'running')",
            (old,),
        )
    result = retention.purge(world, SETTINGS)
    assert result.horizon == old and result.channel_days == 0
    assert result.held_by == date(2025, 6, 30)  # named, with what to do if it is stuck
    assert "run it again (tether accruals run --period-end 2025-06-30)" in result.held_back()
    assert retention.purge(world, SETTINGS, dry_run=True).held_by == date(2025, 6, 30)
    with psycopg.connect(world) as conn:
        conn.execute("UPDATE acc.run SET status = 'finished' WHERE workflow_id = 'w'")
    free = retention.purge(world, SETTINGS)
    assert free.held_by is None and free.held_back() == ""
    assert free.horizon > datetime.now(UTC) - timedelta(days=401)  # now minus the retention


async def test_a_run_as_at_before_the_purge_horizon_is_refused(
    world: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run.run_inline(world, PERIOD_END, AS_AT, SETTINGS)
    first = exports(world)
    await ingest(world, (tmp_path / "n12.csv", revision_nem12(NEWEST, "1.1")))
    run.run_inline(world, PERIOD_END, AS_AT, SETTINGS, attempt=2)  # nothing purged: allowed
    assert exports(world) == first

    short = SETTINGS.model_copy(update={"superseded_retention_days": 1})
    horizon = retention.purge(world, short).horizon  # yesterday: after the run's as-at
    with pytest.raises(SnapshotPurged, match=r"before .* the horizon of the last purge"):
        run.run_inline(world, PERIOD_END, AS_AT, SETTINGS, attempt=3)
    for submit in (
        lambda: flow.submit(world, SETTINGS, PERIOD_END, None),
        lambda: flow.resubmit(world, SETTINGS, PERIOD_END),
    ):
        with pytest.raises(SnapshotPurged, match="--as-at"):
            submit()
    refused = cli(world, monkeypatch, "run", "--period-end", "2026-03-31")
    assert refused.exit_code == 1
    assert "can no longer be rebuilt" in " ".join(refused.output.split())
    assert exports(world) == first  # the last attempt's files stay as they were
    assert scalar(world, "SELECT attempt FROM acc.run") == 2

    later = horizon + timedelta(seconds=1)  # a new snapshot, at or after the horizon: allowed
    run.run_inline(world, PERIOD_END, later, SETTINGS, attempt=3)
    assert scalar(world, "SELECT status FROM acc.run") == "finished"


async def test_the_api_refuses_such_a_run_with_409(
    world: str, settings: Settings, pool: AsyncConnectionPool[Any], auth_headers: dict[str, str]
) -> None:
    run.run_inline(world, PERIOD_END, AS_AT, SETTINGS)
    retention.purge(world, SETTINGS.model_copy(update={"superseded_retention_days": 1}))
    async with api_client(world, settings, pool, auth_headers, SETTINGS) as http:
        rerun = await http.post("/api/v1/accruals/runs", json={"period_end": "2026-03-31"})
        resubmit = await http.post("/api/v1/accruals/runs/2026-03-31/resubmit")
    for answer in (rerun, resubmit):
        assert answer.status_code == 409, answer.text
        assert "horizon of the last purge" in answer.text


def test_the_purge_schedule_purges_without_an_operator(world: str, tmp_path: Path) -> None:
    """A firing of the daily schedule (started here by hand, as DBOS would at its cron time)
    deletes what is past the retention and records its horizon, as the command does. A plain
    test: an executor starts outside an event loop."""
    for name, update, value in (("n", NEWEST, "1.1"), ("o", OLDER, "0.9")):
        asyncio.run(ingest(world, (tmp_path / f"{name}12.csv", revision_nem12(update, value))))
    kept = superseded(world)
    age(world, "channel_day_superseded", 401, "update_datetime < '2026-04-05'")
    assert AccrualsSettings().purge_schedule == "30 3 * * *"  # type: ignore[call-arg]
    flow.start_executor(world, SETTINGS, "test-purger")
    try:
        fired = datetime.now(UTC)
        workflows.start("purge-test-1", flow.purge_workflow, fired, None)
        workflows.result("purge-test-1")
    finally:
        workflows.shutdown()
    assert superseded(world) == (kept[0] - 2, kept[1])
    assert scalar(world, "SELECT count(*) FROM acc.superseded_purge") == 1


async def test_a_resubmit_priced_after_a_purge_passed_its_as_at_is_refused(world: str) -> None:
    """flow.resubmit checks at submit, but its workflow is queued and the run is not marked
    running, so a purge meanwhile is not held back: the pricing itself must refuse."""
    run.run_inline(world, PERIOD_END, AS_AT, SETTINGS)
    first = exports(world)
    before = a1_kwh(world)
    retention.purge(world, SETTINGS.model_copy(update={"superseded_retention_days": 1}))
    with pytest.raises(SnapshotPurged, match="horizon of the last purge"):
        run.price(world, PERIOD_END, AS_AT, ["A1"], SETTINGS)  # what resubmit_workflow runs
    assert a1_kwh(world) == before and exports(world) == first
