"""Ingest into a real PostgreSQL: COPY + set-based merge, versions, quarantine and rejection."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tests.conftest import SHARED
from tether.accruals.ingest import ingest_files
from tether.accruals.meterdata import read_meter_data
from tether.core import db

NEM = SHARED / "data" / "nem"
HEAD = "100,NEM12,200405011135,MDA1,Ret1"
C30 = "200,NMI0000001,E1,1,E1,N1,MS1,kWh,30,"


def day(date_: str, value: str = "1.0", update: str = "20040202120025", n: int = 48) -> str:
    return f"300,{date_}," + ",".join([value] * n) + f",A,,,{update},"


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


async def rows(pool: AsyncConnectionPool[Any], sql: Any) -> list[Any]:
    async with pool.connection() as conn:
        return await db.fetch_all(conn, sql)


async def test_every_sample_file_loads_with_exact_values(
    pool: AsyncConnectionPool[Any],
) -> None:
    results = await ingest_files(pool, sorted(NEM.glob("*.csv")))
    assert [r.status for r in results] == ["loaded"] * 4
    assert [r.channel_days for r in results] == [8, 2, 1, 0]
    assert [r.values for r in results] == [768, 96, 48, 0]
    assert results[3].basic_reads == 1
    data = await read_meter_data(pool, "CCCC123456", date(2004, 4, 1), date(2004, 4, 30))
    (cd,) = data.channel_days
    assert cd.qualities == "F" * 20 + "A" * 4 + "S" * 24
    assert cd.values[0] == 18.023 and cd.values[47] == 14.733 and len(cd.values) == 48
    assert cd.total == pytest.approx(sum(cd.values))
    basic = await read_meter_data(pool, "VABC005890", date(2004, 1, 1), date(2004, 1, 31))
    (read,) = basic.basic_reads
    assert read.quantity == 1312.1 and read.current_quality == "A" and read.register_id == "1"
    assert read.current_read_at.isoformat() == "2004-01-07T00:03:33+00:00"  # 10:03:33 AEST
    (v,) = await rows(
        pool, "SELECT interval_methods FROM acc.channel_day WHERE qualities LIKE 'F%'"
    )
    assert v["interval_methods"] == [[1, 20, "F14", "76", ""], [21, 24, "A", "", ""],
                                     [25, 48, "S14", "1", ""]]  # fmt: skip
    log = await rows(pool, "SELECT status, channel_days FROM acc.meter_file ORDER BY file_id")
    assert [r["status"] for r in log] == ["loaded"] * 4


async def test_partial_file_keeps_good_rows_and_logs_bad_ones(
    pool: AsyncConnectionPool[Any], tmp_path: Path
) -> None:
    path = write(
        tmp_path, "p.csv", HEAD, C30, day("20040201"), day("20040202", "x"), day("20040231"),
        day("20040203"), "900",
    )  # fmt: skip
    (result,) = await ingest_files(pool, [path])
    assert result.status == "partial"
    assert [(e.line, e.reason) for e in result.errors] == [
        (4, "300 row value 1 is not a number: 'x'"),
        (5, "bad IntervalDate '20040231'"),
    ]
    assert result.channel_days == 2 and result.nmis == 1 and result.values == 96
    days = await rows(pool, "SELECT day FROM acc.channel_day ORDER BY day")
    assert [r["day"] for r in days] == [date(2004, 2, 1), date(2004, 2, 3)]
    errs = await rows(pool, "SELECT line, reason FROM acc.meter_file_error ORDER BY line")
    assert [r["line"] for r in errs] == [4, 5]


async def test_rejected_file_stores_nothing_but_its_log(
    pool: AsyncConnectionPool[Any], tmp_path: Path
) -> None:
    path = write(tmp_path, "r.csv", HEAD, C30, day("20040201"), day("20040202"))
    (result,) = await ingest_files(pool, [path], batch_rows=1)
    assert result.status == "rejected"
    assert [(e.line, e.reason) for e in result.errors] == [(5, "missing 900 end record")]
    assert await rows(pool, "SELECT 1 FROM acc.channel_day") == []
    log = await rows(pool, "SELECT status, rejected_reason FROM acc.meter_file")
    assert log == [{"status": "rejected", "rejected_reason": "line 5: missing 900 end record"}]


async def test_newer_update_datetime_wins_older_is_ignored(
    pool: AsyncConnectionPool[Any], tmp_path: Path
) -> None:
    first = write(tmp_path, "1.csv", HEAD, C30, day("20040201", "1", "20040202000000"), "900")
    newer = write(tmp_path, "2.csv", HEAD, C30, day("20040201", "2", "20040203000000"), "900")
    older = write(tmp_path, "3.csv", HEAD, C30, day("20040201", "3", "20040201000000"), "900")
    results = await ingest_files(pool, [first, newer, older])
    assert [r.status for r in results] == ["loaded"] * 3
    (row,) = await rows(pool, 'SELECT "values"[1] AS v, total FROM acc.channel_day')
    assert row == {"v": 2.0, "total": 96.0}


async def test_within_one_file_the_newest_version_wins(
    pool: AsyncConnectionPool[Any], tmp_path: Path
) -> None:
    path = write(
        tmp_path, "v.csv", HEAD, C30, day("20040201", "5", "20040203000000"), C30,
        day("20040201", "4", "20040202000000"), "900",
    )  # fmt: skip
    (result,) = await ingest_files(pool, [path])
    assert result.status == "loaded"
    (row,) = await rows(pool, 'SELECT "values"[48] AS v FROM acc.channel_day')
    assert row["v"] == 5.0


async def test_wh_channel_stored_in_kwh(pool: AsyncConnectionPool[Any], tmp_path: Path) -> None:
    wh = "200,NMI0000001,E1,1,E1,N1,MS1,WH,30,"
    path = write(tmp_path, "wh.csv", HEAD, wh, day("20040201", "1234.5"), "900")
    await ingest_files(pool, [path])
    (row,) = await rows(pool, 'SELECT "values"[1] AS v, uom, total FROM acc.channel_day')
    assert row == {"v": 1.2345, "uom": "kWh", "total": pytest.approx(48 * 1.2345)}


async def test_missing_file_or_folder_is_reported_rejected(
    pool: AsyncConnectionPool[Any], tmp_path: Path
) -> None:
    missing, folder = await ingest_files(pool, ["/nonexistent/nem.csv", tmp_path])
    assert missing.status == "rejected" and missing.errors[0].line == 0
    assert folder.status == "rejected"
    assert folder.errors[0].reason == "cannot read the file: not a regular file"


async def test_url_form_and_progress(db_url: str, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    path = write(tmp_path, "u.csv", HEAD, C30, day("20040201"), "900")
    (result,) = await ingest_files(db_url, [path], lambda _f, d, t: seen.append((d, t)))
    assert result.status == "loaded"
    assert seen[-1][0] == seen[-1][1] == path.stat().st_size
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM acc.channel_day").fetchone() == (1,)


def test_cli_ingest_prints_json_and_fails_when_a_file_is_not_fully_loaded(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from tether.accruals.cli_ingest import ingest

    monkeypatch.setenv("DATABASE_URL", db_url)
    app = typer.Typer()
    app.command()(ingest)
    good = write(tmp_path, "good.csv", HEAD, C30, day("20040201"), "900")
    bad = write(tmp_path, "bad.csv", HEAD, C30, day("20040202"))
    result = CliRunner().invoke(app, [str(good), str(bad), "--json"])
    assert result.exit_code == 1, result.output
    answer = json.loads(result.stdout)
    assert [(r["file"], r["status"]) for r in answer] == [
        (str(good), "loaded"),
        (str(bad), "rejected"),
    ]
    assert answer[0]["values"] == 48 and answer[0]["nmis"] == 1
    assert answer[1]["errors"] == [{"line": 4, "reason": "missing 900 end record"}]
    assert CliRunner().invoke(app, [str(good)]).exit_code == 0
    folder = tmp_path / "month"
    folder.mkdir()
    write(folder, "a.csv", HEAD, C30, day("20040203"), "900")
    write(folder, "b.csv", HEAD, C30, day("20040204"), "900")
    answer = json.loads(CliRunner().invoke(app, [str(folder), "--json"]).stdout)
    assert [(Path(r["file"]).name, r["status"]) for r in answer] == [
        ("a.csv", "loaded"),
        ("b.csv", "loaded"),
    ]


async def test_generated_files_ingest_fully(pool: AsyncConnectionPool[Any], tmp_path: Path) -> None:
    from tether.accruals.generator import generate

    gen = generate(40, 2, tmp_path, seed=4)
    results = await ingest_files(pool, gen.nem12_files + gen.nem13_files)
    assert {r.status for r in results} == {"loaded"}
    assert sum(r.values for r in results) == gen.values
    assert sum(r.basic_reads for r in results) == gen.basic_reads
    (row,) = await rows(pool, "SELECT count(*) AS n FROM acc.channel_day")
    assert row["n"] == gen.channel_days  # one version of each channel-day
    v_days = await rows(pool, "SELECT qualities FROM acc.channel_day WHERE quality_method = 'V'")
    assert v_days and all(set(r["qualities"]) == {"A", "E"} for r in v_days)


async def test_read_meter_data_returns_only_the_window(
    pool: AsyncConnectionPool[Any], tmp_path: Path
) -> None:
    days = [day(f"200402{d:02d}", str(d)) for d in range(1, 11)]
    nem12 = write(tmp_path, "w.csv", HEAD, C30, *days, "900")
    read = (
        "250,NMI0000001,11,1,11,11,MS1,E,100.0,20040101093000,A,,,250.0,20040301093000,E64,,,"
        "150.0,kWh,20040601,20040302030000,"
    )
    nem13 = write(tmp_path, "b.csv", "100,NEM13,200403020300,MDP1,RET", read, "900")
    await ingest_files(pool, [nem12, nem13])
    data = await read_meter_data(pool, "NMI0000001", date(2004, 2, 3), date(2004, 2, 5))
    assert [c.day for c in data.channel_days] == [date(2004, 2, d) for d in (3, 4, 5)]
    assert [c.values[0] for c in data.channel_days] == [3.0, 4.0, 5.0]
    (basic,) = data.basic_reads  # 1 Jan -> 1 Mar overlaps the window
    assert basic.quantity == 150.0 and basic.current_quality == "E64"
    after = await read_meter_data(pool, "NMI0000001", date(2004, 3, 2), date(2004, 3, 9))
    assert after.channel_days == [] and after.basic_reads == []
    body = data.as_json()
    assert body["channel_days"][0]["date"] == "2004-02-03"
    assert body["channel_days"][0]["qualities"] == "A" * 48


async def test_basic_read_window_is_in_market_time(
    pool: AsyncConnectionPool[Any], tmp_path: Path
) -> None:
    read = (
        "250,NMI0000001,11,1,11,11,MS1,E,100.0,20040101093000,A,,,250.0,20040301053000,A,,,"
        "150.0,kWh,,20040302030000,"
    )  # current read 05:30 AEST on 1 March = 19:30 UTC on 29 February
    nem13 = write(tmp_path, "b.csv", "100,NEM13,200403020300,MDP1,RET", read, "900")
    await ingest_files(pool, [nem13])
    data = await read_meter_data(pool, "NMI0000001", date(2004, 3, 1), date(2004, 3, 9))
    assert len(data.basic_reads) == 1


async def test_same_update_datetime_replaces_only_when_different(
    pool: AsyncConnectionPool[Any], tmp_path: Path
) -> None:
    first = write(tmp_path, "1.csv", HEAD, C30, day("20040201", "1", "20040202000000"), "900")
    again = write(tmp_path, "2.csv", HEAD, C30, day("20040201", "1", "20040202000000"), "900")
    fixed = write(tmp_path, "3.csv", HEAD, C30, day("20040201", "7", "20040202000000"), "900")
    await ingest_files(pool, [first, again])
    (row,) = await rows(pool, "SELECT file_id FROM acc.channel_day")
    (file_one,) = await rows(pool, "SELECT min(file_id) AS id FROM acc.meter_file")
    assert row["file_id"] == file_one["id"]  # an identical re-delivery is not rewritten
    await ingest_files(pool, [fixed])
    (row,) = await rows(pool, 'SELECT "values"[1] AS v FROM acc.channel_day')
    assert row["v"] == 7.0  # same UpdateDateTime, different data: the later file wins
