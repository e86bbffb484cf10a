"""A basic meter with two general registers (e.g. peak `11` and off-peak `12`, each its own
NEM13 `250` rows): both registers' reads and estimated reads count towards the account's kWh,
each estimated read is stored under its own suffix, and the segment fallback (no previous
read rate) splits the kind's rate between the registers instead of giving each the whole of
it (real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from tests.accruals import run_fixtures
from tests.accruals.run_fixtures import PERIOD_END, estimated_reads, load_world, run_result
from tests.accruals.test_run_cases import lines_of, table
from tether.accruals import run
from tether.accruals.settings import AccrualsSettings

SETTINGS = AccrualsSettings(min_contributors=1, chunk_size=2)
STAMP = "20260401120000"


def _read(suffix: str, register: str, prev: str, cur: str, qty: int, quality: str) -> str:
    # A4 (QBAS000004): billed to 2026-02-28, quarterly, FLAT tariff (25 c, 30 c from 03-15)
    return (
        f"250,QBAS000004,1112,{register},{suffix},{suffix},M4,E,000000,{prev}120000,{quality},,,"
        f"{qty:06d},{cur}120000,{quality},,,{qty},kWh,20260531,{STAMP},{STAMP}\n"
    )


def nem13_previous_read() -> str:
    """`11`: 10 kWh/day to 02-28, nothing newer. `12`: 5 kWh/day to 02-28, then a newer actual
    read of 4 kWh/day to 03-15."""
    return (
        "100,NEM13,202604011200,MDP,RET\n"
        + _read("11", "1", "20260131", "20260228", 280, "A")
        + _read("12", "2", "20260131", "20260228", 140, "A")
        + _read("12", "2", "20260228", "20260315", 60, "A")
        + "900\n"
    )


def nem13_segment() -> str:
    """Both registers read only by the distributor's estimate, before the history window: no
    previous read rate and no history (micro-scalar 1.0), so both fall back to the segment."""
    return (
        "100,NEM13,202604011200,MDP,RET\n"
        + _read("11", "1", "20250930", "20251031", 310, "E64")
        + _read("12", "2", "20250930", "20251031", 155, "E64")
        + "900\n"
    )


async def _world(db_url: str, folder: Path, nem13: str) -> str:
    await load_world(db_url, folder, {"nem12": run_fixtures.nem12(), "nem13": nem13})
    run.run_inline(db_url, PERIOD_END, run.default_as_at(PERIOD_END, SETTINGS), SETTINGS)
    return db_url


async def test_two_general_registers_both_count(db_url: str, tmp_path: Path) -> None:
    url = await _world(db_url, tmp_path, nem13_previous_read())
    # 31 unbilled days (03-01..03-31). `11`: 31 x 10 = 310 estimated. `12`: 60 actual to 03-15,
    # then 16 days x 4 = 64 estimated. The account: 310 + 60 + 64 = 434 kWh, 14 kWh a day.
    assert estimated_reads(url) == [
        ("A4", "11", "2026-02-28", "2026-03-31", 310.0, "previous_read"),
        ("A4", "12", "2026-03-15", "2026-03-31", 64.0, "previous_read"),
    ]
    actual, estimated, method = run_result(url, "A4")
    assert (float(actual + estimated), method) == (310.0 + 60.0 + 64.0, "previous_read")
    # a kind's day is actual only when all its registers read it actually (as two channels of a
    # kind): `11` is estimated every day, so all of it is
    a4 = {r["account_id"]: r for r in table(url, "BUAAccountSummary.csv")}["A4"]
    assert (a4["kwh_actual"], a4["kwh_estimated"], a4["estimate_share"]) == (
        "0.000",
        "434.000",
        "1.0000",
    )
    # 14 days at 25 c and 17 days at 30 c of 14 kWh; supply 14 x 80 c + 17 x 90 c
    assert lines_of(url, "A4") == [
        ("2026-03", "SUPPLY", "14.000", "80.0000", "11.20"),
        ("2026-03", "SUPPLY", "17.000", "90.0000", "15.30"),
        ("2026-03", "USAGE", "196.000", "25.0000", "49.00"),
        ("2026-03", "USAGE", "238.000", "30.0000", "71.40"),
    ]
    assert a4["amount_ex_gst"] == "146.90"


async def test_segment_fallback_splits_the_kind_between_registers(
    db_url: str, tmp_path: Path
) -> None:
    url = await _world(db_url, tmp_path, nem13_segment())
    # Ergon QLD residential general: A3 and A7 read 0.25 kWh every half-hour (12 kWh a day) in
    # every month and day type; A4 has no history (scalar 1.0): 31 x 12 = 372 kWh for the kind,
    # half of it under each register, counted once.
    assert estimated_reads(url) == [
        ("A4", "11", "2026-02-28", "2026-03-31", 186.0, "segment"),
        ("A4", "12", "2026-02-28", "2026-03-31", 186.0, "segment"),
    ]
    assert run_result(url, "A4") == (0.0, 372.0, "segment")
