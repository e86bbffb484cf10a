"""Estimated channel-days under the meter's own NMI suffix (real PostgreSQL): a meter whose
channels are `11` and `41` is exported as `11` and `41`, not as the kind's usual `E1`/`E2`; an
account with two channels of one kind (`E1` and `11`) is estimated, each channel filling its own
missing intervals, and its energy is counted once."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from tests.accruals.run_fixtures import (
    PERIOD_END,
    UPDATED,
    load_world,
    run_and_export,
    run_result,
)
from tether.accruals.settings import AccrualsSettings

SETTINGS = AccrualsSettings(min_contributors=1, chunk_size=2)
MON, TUE = date(2026, 3, 30), PERIOD_END  # A5's and A7's unbilled days (billed to 3/29)
E1_DAY, S11_DAY = [0.2] * 48, [0.1] * 48  # A5's two general channels on a read day


def _row(
    d: date, values: list[float], method: str = "A", ranges: tuple[str, ...] = ()
) -> list[str]:
    text = ",".join(f"{v:g}" for v in values)
    return [f"300,{d:%Y%m%d},{text},{method},,,{UPDATED},", *ranges]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def nem12() -> str:
    """A1: no data (the fallback E1). A3: one general channel `11`, a day missing. A5: general
    `E1` and `11`, both with null intervals on 3/30, neither on 3/31. A7: general `11` and `E1`
    read to the end, controlled `41` stopping before the unbilled window."""
    lines = ["100,NEM12,202604011200,MDP,RET", "200,QFLT000003,11,1,11,N1,M3,kWh,30,"]
    for d in _days(date(2026, 1, 1), PERIOD_END):
        if d != date(2026, 2, 10):
            lines += _row(d, [0.25] * 48)
    week = _days(date(2026, 3, 23), date(2026, 3, 29))
    lines.append("200,QGAP000005,E111,1,E1,N1,M5,kWh,30,")
    for d in week:
        lines += _row(d, E1_DAY)
    part = [0.2] * 30 + [0.0] * 18
    lines += _row(MON, part, "V", ("400,1,30,A,,", "400,31,48,N,,"))
    lines.append("200,QGAP000005,E111,2,11,N1,M5,kWh,30,")
    for d in week:
        lines += _row(d, S11_DAY)
    part = [0.1] * 40 + [0.0] * 8
    lines += _row(MON, part, "V", ("400,1,40,A,,", "400,41,48,N,,"))
    lines.append("200,QCTL000007,1141,1,11,N1,M7,kWh,30,")
    for d in [*week, MON, TUE]:
        lines += _row(d, [0.25] * 48)
    lines.append("200,QCTL000007,1141,3,E1,N1,M7,kWh,30,")  # a second general channel
    for d in [*week, MON, TUE]:
        lines += _row(d, [0.05] * 48)
    lines.append("200,QCTL000007,1141,2,41,N1,M7,kWh,30,")
    for d in week[:-1]:
        lines += _row(d, [0.1 if i < 14 else 0.0 for i in range(48)])
    lines.append("900")
    return "\n".join(lines) + "\n"


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> str:
    return await load_world(db_url, tmp_path, {"nem12": nem12()})


Stored = dict[tuple[str, str, date], tuple[list[float], list[str | None] | None]]


def stored(url: str) -> Stored:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT nmi, suffix, day, vals, read_methods FROM acc.run_estimated_day"
            " WHERE period_end = %s",
            (PERIOD_END,),
        ).fetchall()
    return {(nmi, suffix, day): (vals, read) for nmi, suffix, day, vals, read in rows}


def failures(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT account_id, reason FROM acc.run_failure WHERE period_end = %s", (PERIOD_END,)
        ).fetchall()


def summary_kwh(url: str, account_id: str) -> tuple[float, float]:
    actual, estimated, _ = run_result(url, account_id)
    return float(actual), float(estimated)


def channels(content: bytes) -> set[tuple[str, str]]:
    """(NMI, suffix) of every 200 row, checking that the 200 row names its own suffix."""
    out = set()
    for line in content.decode().splitlines():
        f = line.split(",")
        if f[0] == "200":
            assert f[2] == f[4]  # NMIConfiguration and NMISuffix as the export writes them
            out.add((f[1], f[4]))
    return out


async def test_estimated_days_carry_the_meters_own_suffix(world: str) -> None:
    content = run_and_export(world, SETTINGS)
    rows = stored(world)
    # the meter's channels, never a kind's usual suffix it does not have; A1 has no data at all
    # and takes E1, the general channel's usual suffix
    expected = {
        ("QTOU000001", "E1"),
        ("QFLT000003", "11"),
        ("QGAP000005", "E1"),
        ("QGAP000005", "11"),
        ("QCTL000007", "41"),
    }
    assert channels(content) == expected == {(nmi, s) for nmi, s, _ in rows}
    assert {d for nmi, s, d in rows if nmi == "QFLT000003"} == {date(2026, 2, 10)}
    # A7's controlled load has no data in the unbilled window: the channel its data last used
    assert {(s, d) for nmi, s, d in rows if nmi == "QCTL000007"} == {("41", MON), ("41", TUE)}


async def test_two_channels_of_one_kind_are_each_estimated(world: str) -> None:
    run_and_export(world, SETTINGS)
    assert failures(world) == []
    rows = stored(world)
    a5 = {(s, d): v for (nmi, s, d), v in rows.items() if nmi == "QGAP000005"}
    # 3/30: each channel's own V day; 3/31, no channel read: the kind once, under the channel
    # its data used most recently (both read 3/30: the lowest suffix)
    assert set(a5) == {("E1", MON), ("11", MON), ("11", TUE)}
    e1, e1_read = a5[("E1", MON)]
    s11, s11_read = a5[("11", MON)]
    whole, whole_read = a5[("11", TUE)]
    assert whole_read is None
    assert e1_read == ["A"] * 30 + [None] * 18 and s11_read == ["A"] * 40 + [None] * 8
    assert (e1[:30], s11[:40]) == ([0.2] * 30, [0.1] * 40)  # the read intervals as read
    # a missing half-hour of a day both channels read shares the kind's estimate between them
    # (3/30 and 3/31 are both March weekdays: the same profile cell)
    assert sum(whole) > 0
    assert np.allclose(e1[30:], np.array(whole[30:]) / 2, atol=1e-3)
    assert np.allclose(s11[40:], np.array(whole[40:]) / 2, atol=1e-3)


async def test_an_accounts_energy_is_counted_once(world: str) -> None:
    run_and_export(world, SETTINGS)
    rows = stored(world)
    # A7: its two general channels read both days and add up (neither replaces the other); its
    # controlled load is all estimated
    a7 = sum(sum(v) for (nmi, _, _), (v, _) in rows.items() if nmi == "QCTL000007")
    actual, estimated = summary_kwh(world, "A7")
    assert actual == pytest.approx((0.25 + 0.05) * 48 * 2)
    assert estimated == pytest.approx(a7, abs=0.05)
    # A5: every unbilled day is estimated (in part or whole), so its rows hold all its energy
    a5 = sum(sum(v) for (nmi, _, _), (v, _) in rows.items() if nmi == "QGAP000005")
    actual, estimated = summary_kwh(world, "A5")
    assert actual + estimated == pytest.approx(a5, abs=0.05)
    assert actual == 0  # a day filled in part counts as estimated, as for one channel


async def test_a_rerun_writes_the_same_suffixes(world: str) -> None:
    first = run_and_export(world, SETTINGS)
    assert run_and_export(world, SETTINGS) == first


def scalars(url: str) -> dict[tuple[str, str], float]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT account_id, kind, micro_scalar FROM acc.run_scalar WHERE period_end = %s",
            (PERIOD_END,),
        ).fetchall()
    return {(a, k): float(v) for a, k, v in rows}


async def test_two_channels_of_one_kind_are_one_account_day(world: str) -> None:
    """An account's daily consumption of a kind is the sum of its channels on a day: the
    profiles and micro-scalars average per account-day, not per channel-day.

    By hand (profile window 2/25-3/31, history window 12/31-3/31, min_contributors 1):
    - A5 (business; the only business account, so its own segment at every level) reads E1 0.2
      and 11 0.1 per half-hour 3/23-3/29 (3/30 has N intervals: not actual). Per account-day a
      March cell is 0.2 + 0.1 = 0.3 per half-hour (per channel-day it was their mean, 0.15). Its
      scalar is 1 (its segment's average is its own), so 3/31, which no channel read, is 0.3 a
      half-hour under 11 (was 0.15), and the half-hours one channel misses on 3/30 get half of
      it each, 0.15 (was 0.075).
    - A7 (residential, Ergon) reads general 11 0.25 and E1 0.05 per half-hour 3/23-3/31: 12 +
      2.4 = 14.4 kWh a day over 9 days (per channel-day it averaged 7.2). A3 (residential,
      Ergon) reads 11 0.25 every day but 2/10: 12 kWh a day. Ergon residential general
      averages (12 + 14.4) / 2 = 13.2 a day (was (12 + 7.2) / 2 = 9.6), so A7's scalar is
      14.4 / 13.2 = 1.090909 (was 0.75) and A3's 12 / 13.2 = 0.909091 (was 1.25).
    - A3's 2/10 (a February weekday: only A3's 0.25 in that cell) is 0.25 x 0.909091 = 0.227
      a half-hour (was 0.25 x 1.25 = 0.3125).
    - A1 (residential, Energex, no data, scalar 1) takes QLD residential's March weekday cell:
      A3's 22 weekdays at 0.25 and A7's 7 weekday account-days at 0.3: 7.6 / 29 = 0.262 a
      half-hour (per channel-day it was 7.6 / 36 = 0.211, A7's days counted twice)."""
    run_and_export(world, SETTINGS)
    assert failures(world) == []
    scalar = scalars(world)
    rows = stored(world)
    mon_e1, mon_11 = rows[("QGAP000005", "E1", MON)][0], rows[("QGAP000005", "11", MON)][0]
    got = {
        "A5 scalar": scalar[("A5", "general")],
        "A7 scalar": scalar[("A7", "general")],
        "A3 scalar": scalar[("A3", "general")],
        "A5 3/31": set(rows[("QGAP000005", "11", TUE)][0]),
        "A5 3/30 E1 filled": set(mon_e1[30:]),
        "A5 3/30 11 filled": set(mon_11[40:]),
        "A3 2/10": set(rows[("QFLT000003", "11", date(2026, 2, 10))][0]),
        "A1 3/31": set(rows[("QTOU000001", "E1", TUE)][0]),
    }
    assert got == {
        "A5 scalar": 1.0,
        "A7 scalar": round(14.4 / 13.2, 6),
        "A3 scalar": round(12 / 13.2, 6),
        "A5 3/31": {0.3},
        "A5 3/30 E1 filled": {0.15},
        "A5 3/30 11 filled": {0.15},
        "A3 2/10": {round(0.25 * round(12 / 13.2, 6), 3)},
        "A1 3/31": {round(7.6 / 29, 3)},
    }
