"""Days the run fills only in part (real PostgreSQL): exported as V days whose 400 rows keep the
read intervals' own QualityMethod and give the filled ones E55; whole missing days stay plain E55
rows. Read back by our parser and nemreader, and the same bytes on a re-run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from nemreader import NEMFile

from tests.accruals.run_fixtures import PERIOD_END, UPDATED, load_world, run_and_export
from tether.accruals.exports import NEM12, NEM12_QUALITY_METHOD
from tether.accruals.nem import parse
from tether.accruals.settings import AccrualsSettings

SETTINGS = AccrualsSettings(min_contributors=1, chunk_size=2)
E55 = NEM12_QUALITY_METHOD
GAP = [0.1 * (i % 5) for i in range(48)]  # A5's read half-hours

# (nmi, day) -> the 400 rows the export must write, as (first, last, QualityMethod)
V_DAYS = {
    # A3, 30-min: two null intervals in an actual day
    ("QFLT000003", "20260115"): [(1, 10, "A"), (11, 12, E55), (13, 48, "A")],
    # A5, 30-min: actual, then the distributor's estimate, then null to the end of the day
    ("QGAP000005", "20260330"): [(1, 20, "A"), (21, 30, "E52"), (31, 48, E55)],
    # A7, 15-min: a half-hour takes its worst interval (N -> filled; S14 + A -> S14; E52 + A)
    ("QCTL000007", "20260330"): [
        (1, 20, "A"),
        (21, 21, E55),
        (22, 30, "S14"),
        (31, 31, "E52"),
        (32, 48, "A"),
    ],
}
# whole days of ours: a day the file sends as N, a day it lacks, a day after the data stops
WHOLE_DAYS = {("QFLT000003", "20260210"), ("QFLT000003", "20260301"), ("QGAP000005", "20260331")}


def _row(d: date, values: list[float], method: str, ranges: Sequence[str] = ()) -> list[str]:
    text = ",".join(f"{v:g}" for v in values)
    return [f"300,{d:%Y%m%d},{text},{method},,,{UPDATED},", *ranges]


def nem12() -> str:
    lines = ["100,NEM12,202604011200,MDP,RET"]
    for suffix in ("E1", "B1"):  # A1: actual, nothing to estimate
        lines.append(f"200,QTOU000001,E1B1,1,{suffix},N1,M1,kWh,30,")
        for d in (date(2026, 3, 30), date(2026, 3, 31)):
            lines += _row(d, [0.5] * 48, "A")
    lines.append("200,QFLT000003,E1,1,E1,N1,M3,kWh,30,")
    d = date(2026, 1, 1)
    while d <= PERIOD_END:
        if d == date(2026, 1, 15):
            values = [0.0 if 10 <= i < 12 else 0.25 for i in range(48)]
            lines += _row(d, values, "V", ["400,1,10,A,,", "400,11,12,N,,", "400,13,48,A,,"])
        elif d == date(2026, 2, 10):
            lines += _row(d, [0.0] * 48, "N")
        elif d != date(2026, 3, 1):
            lines += _row(d, [0.25] * 48, "A")
        d += timedelta(days=1)
    lines.append("200,QGAP000005,E1,1,E1,N1,M5,kWh,30,")
    lines += _row(date(2026, 3, 28), GAP, "A") + _row(date(2026, 3, 29), GAP, "A")
    ranges = ["400,1,20,A,,", "400,21,30,E52,,", "400,31,48,N,,"]
    lines += _row(date(2026, 3, 30), [*GAP[:30], *[0.0] * 18], "V", ranges)
    lines.append("200,QCTL000007,E1E2,1,E1,N1,M7,kWh,15,")
    quarter = [0.0 if i == 40 else 0.1 for i in range(96)]
    ranges = ["400,1,40,A,,", "400,41,41,N,,", "400,42,59,S14,,", "400,60,60,A,,"]
    ranges += ["400,61,61,E52,,", "400,62,96,A,,"]
    lines += _row(date(2026, 3, 30), quarter, "V", ranges) + _row(PERIOD_END, [0.1] * 96, "A")
    lines.append("200,QCTL000007,E1E2,2,E2,N1,M7,kWh,30,")
    for d in (date(2026, 3, 30), PERIOD_END):
        lines += _row(d, [0.1 if i < 14 else 0.0 for i in range(48)], "A")
    lines.append("900")
    return "\n".join(lines) + "\n"


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> str:
    return await load_world(db_url, tmp_path, {"nem12": nem12()})


def stored(url: str) -> dict[tuple[str, str], tuple[list[float], list[str | None] | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT nmi, day, vals, read_methods FROM acc.run_estimated_day WHERE period_end = %s",
            (PERIOD_END,),
        ).fetchall()
    return {(nmi, f"{day:%Y%m%d}"): (vals, read) for nmi, day, vals, read in rows}


def days_of(content: bytes) -> dict[tuple[str, str], tuple[list[str], list[list[str]]]]:
    """(nmi, day) -> its 300 row's fields and its 400 rows' fields."""
    out: dict[tuple[str, str], tuple[list[str], list[list[str]]]] = {}
    nmi = key = None
    for line in content.decode().splitlines():
        f = line.split(",")
        if f[0] == "200":
            nmi = f[1]
        elif f[0] == "300":
            assert nmi is not None
            key = (nmi, f[1])
            out[key] = (f, [])
        elif f[0] == "400":
            assert key is not None
            out[key][1].append(f)
        else:
            key = None
    return out


def per_interval(ranges: list[tuple[int, int, str]]) -> list[str]:
    return [m for first, last, m in ranges for _ in range(first, last + 1)]


async def test_a_day_filled_in_part_is_a_v_day_with_400_ranges(world: str) -> None:
    days = days_of(run_and_export(world, SETTINGS))
    rows = stored(world)
    assert set(days) == set(V_DAYS) | WHOLE_DAYS == set(rows)
    for key, ranges in V_DAYS.items():
        day, four = days[key]
        vals, read = rows[key]
        assert len(day) == 2 + 48 + 5 and day[2 + 48 : 2 + 48 + 3] == ["V", "", ""]
        assert day[2 : 2 + 48] == [f"{v:.3f}" for v in vals]
        assert four == [["400", str(a), str(b), m, "", ""] for a, b, m in ranges]
        assert [int(f[1]) for f in four] == [1] + [int(f[2]) + 1 for f in four[:-1]]
        assert four[-1][2] == "48"  # in order, each interval exactly once
        # stored: the read half-hours' method, None where the run filled
        assert read == [None if m == E55 else m for m in per_interval(ranges)]
    # the read half-hours keep the meter's values, the filled ones are the profile's
    a3 = rows[("QFLT000003", "20260115")][0]
    assert (a3[:10], a3[12:]) == ([0.25] * 10, [0.25] * 36) and all(v > 0 for v in a3[10:12])
    assert np.allclose(rows[("QGAP000005", "20260330")][0][:30], GAP[:30])
    a7 = rows[("QCTL000007", "20260330")][0]
    assert np.allclose(a7[:20] + a7[21:], [0.2] * 47) and a7[20] != 0.2


async def test_a_whole_missing_day_stays_a_plain_e55_row(world: str) -> None:
    days = days_of(run_and_export(world, SETTINGS))
    rows = stored(world)
    for key in WHOLE_DAYS:
        day, four = days[key]
        assert day[2 + 48] == E55 and four == []
        assert rows[key][1] is None
        assert day[2 : 2 + 48] == [f"{v:.3f}" for v in rows[key][0]]


async def test_the_v_days_read_back_with_our_parser_and_nemreader(
    world: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / NEM12
    path.write_bytes(run_and_export(world, SETTINGS))
    rows = stored(world)
    expected = {k: per_interval(r) for k, r in V_DAYS.items()}
    expected |= {k: [E55] * 48 for k in WHOLE_DAYS}
    # ours: no error; per interval the flag, per V day its 400 ranges; the values as stored
    ours = parse(path)
    assert ours.rejected is None and ours.errors == []
    seen = set()
    for b in ours.channel_days:
        for nmi, day, vals, qm, q, methods in zip(
            b.nmi, b.day, b.values, b.quality_method, b.quality, b.interval_methods, strict=True
        ):
            key = (str(nmi), f"{day.astype(date):%Y%m%d}")
            seen.add(key)
            assert q.tobytes().decode() == "".join(m[0] for m in expected[key])
            if key in V_DAYS:
                assert qm == "V"
                assert [(a, z, m) for a, z, m, _, _ in methods] == V_DAYS[key]
            else:
                assert (qm, methods) == (E55, None)
            assert np.allclose(vals, rows[key][0], atol=5e-4)
    assert seen == set(expected)
    # nemreader: no warning, and each reading carries its interval's QualityMethod
    with caplog.at_level(logging.WARNING, logger="nemreader"):
        data = NEMFile(str(path), strict=True).nem_data()
    assert [r for r in caplog.records if r.name.startswith("nemreader")] == []
    got: dict[tuple[str, str], list[tuple[str | None, float]]] = {}
    for nmi, channels in data.readings.items():
        for readings in channels.values():
            for r in readings:
                got.setdefault((nmi, f"{r.t_start:%Y%m%d}"), []).append(
                    (r.quality_method, r.read_value)
                )
    assert set(got) == set(expected)
    for key, day in got.items():
        assert [m for m, _ in day] == expected[key]
        assert np.allclose([v for _, v in day], rows[key][0], atol=5e-4)


async def test_a_rerun_writes_the_same_v_days(world: str) -> None:
    first = run_and_export(world, SETTINGS)
    assert b"\n400," in first
    assert run_and_export(world, SETTINGS) == first
