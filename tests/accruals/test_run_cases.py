"""Hand-computed accruals on a tiny world, priced by the whole run (real PostgreSQL)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.accruals.run_fixtures import PERIOD_END, estimated_reads, load_world, nem12, nem13
from tests.accruals.run_fixtures import stored_export as export
from tether.accruals import run
from tether.accruals.exports import NEM12_QUALITY_METHOD
from tether.accruals.nem import ChannelDays, NemFile
from tether.accruals.settings import AccrualsSettings

SETTINGS = AccrualsSettings(min_contributors=1, chunk_size=2)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> str:
    return await load_world(db_url, tmp_path, {"nem12": nem12(), "nem13": nem13()})


def table(url: str, name: str) -> list[dict[str, Any]]:
    return list(csv.DictReader(io.StringIO(export(url, name).decode())))


def lines_of(url: str, account: str) -> list[tuple[str, str, str, str, str]]:
    return [
        (r["month"], r["charge_code"], r["quantity"], r["rate"], r["amount_ex_gst"])
        for r in table(url, "InvoiceLineItemMonthly.csv")
        if r["account_id"] == account
    ]


def run_once(url: str) -> dict[str, Any]:
    return run.run_inline(url, PERIOD_END, run.default_as_at(PERIOD_END, SETTINGS), SETTINGS)


async def test_hand_computed_accounts(world: str) -> None:
    totals = run_once(world)
    summary = {r["account_id"]: r for r in table(world, "BUAAccountSummary.csv")}
    assert totals["failures"] == 0 and totals["accounts"] == 6
    # A1: interval meter, time of use, 2 weekdays of 0.5 kWh a half-hour; solar export credit
    assert lines_of(world, "A1") == [
        ("2026-03", "FEED_IN", "1.600", "10.0000", "-0.16"),
        ("2026-03", "SUPPLY", "2.000", "100.0000", "2.00"),
        ("2026-03", "TOU_OFFPEAK", "36.000", "20.0000", "7.20"),
        ("2026-03", "TOU_PEAK", "12.000", "50.0000", "6.00"),
    ]
    a1 = summary["A1"]
    assert (a1["amount_ex_gst"], a1["gst"], a1["unbilled_days"]) == ("15.04", "1.50", "2")
    assert (a1["kwh_actual"], a1["estimate_share"], a1["estimate_method"]) == (
        "48.000",
        "0.0000",
        "actual",
    )
    # A2: billed past the period end -> nothing
    a2 = summary["A2"]
    assert a2["billed_to_date"] == "2026-04-10"
    assert (a2["amount_ex_gst"], a2["unbilled_days"], a2["flags"]) == (
        "0.00",
        "0",
        "billed_past_period_end",
    )
    assert lines_of(world, "A2") == []
    # A3: quarterly, not yet due -> the whole window; price change on 2026-03-15
    assert lines_of(world, "A3") == [
        ("2026-01", "SUPPLY", "31.000", "80.0000", "24.80"),
        ("2026-01", "USAGE", "372.000", "25.0000", "93.00"),
        ("2026-02", "SUPPLY", "28.000", "80.0000", "22.40"),
        ("2026-02", "USAGE", "336.000", "25.0000", "84.00"),
        ("2026-03", "SUPPLY", "14.000", "80.0000", "11.20"),
        ("2026-03", "SUPPLY", "17.000", "90.0000", "15.30"),
        ("2026-03", "USAGE", "168.000", "25.0000", "42.00"),
        ("2026-03", "USAGE", "204.000", "30.0000", "61.20"),
    ]
    assert summary["A3"]["amount_ex_gst"] == "353.90"
    assert summary["A3"]["unbilled_days"] == "90"
    # A4: basic meter, 10 kWh/day last read -> the run's estimated read of 310 kWh to period end
    a4 = summary["A4"]
    assert (a4["kwh_estimated"], a4["estimate_share"], a4["estimate_method"]) == (
        "310.000",
        "1.0000",
        "previous_read",
    )
    assert a4["amount_ex_gst"] == "112.50"
    reads = [r[1:] for r in estimated_reads(world)]
    assert reads == [("11", "2026-02-28", "2026-03-31", 310.0, "previous_read")]
    # A5: 03-31 missing: its own segment's profile (itself) x scalar 1 -> half estimated
    a5 = summary["A5"]
    assert (a5["kwh_actual"], a5["kwh_estimated"], a5["estimate_share"]) == (
        "18.000",
        "18.000",
        "0.5000",
    )
    assert a5["estimate_method"] == "profile"
    nem = export(world, "EstimatedIntervals_NEM12.csv").decode().splitlines()
    # A7: controlled load on its own channel and rate (2 nights of 1.4 kWh at 15 c)
    assert lines_of(world, "A7") == [
        ("2026-03", "CONTROLLED_LOAD", "2.800", "15.0000", "0.42"),
        ("2026-03", "SUPPLY", "2.000", "90.0000", "1.80"),
        ("2026-03", "USAGE", "24.000", "30.0000", "7.20"),
    ]
    assert (summary["A7"]["amount_ex_gst"], summary["A7"]["kwh_actual"]) == ("9.42", "26.800")
    assert nem[1] == "200,QGAP000005,E1,1,E1,,,kWh,30,"
    assert nem[2].startswith("300,20260331,0.000,0.250,0.500,0.750,0.000,")
    assert nem[2].endswith(",0.750,E55,,,20260407000000,")


async def test_the_estimates_file_is_nem12_our_parser_reads(world: str, tmp_path: Path) -> None:
    run_once(world)
    path = tmp_path / "estimates.csv"
    path.write_bytes(export(world, "EstimatedIntervals_NEM12.csv"))
    parsed = NemFile(path)
    days = [b for b in parsed.batches() if isinstance(b, ChannelDays)]
    assert parsed.errors == [] and not parsed.rejected
    assert sum(len(b.nmi) for b in days) == 1
    assert days[0].values[0][:4].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert days[0].quality_method.tolist() == [NEM12_QUALITY_METHOD] == ["E55"]
    assert days[0].quality.tobytes() == b"E" * 48


async def test_rerun_gives_identical_bytes_and_replaces_own_rows(world: str) -> None:
    run_once(world)
    first = [export(world, n) for n in ("BUAAccountSummary.csv", "InvoiceLineItemMonthly.csv")]
    run_once(world)
    second = [export(world, n) for n in ("BUAAccountSummary.csv", "InvoiceLineItemMonthly.csv")]
    assert first == second
    with psycopg.connect(world) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM acc.run_estimated_read),"
            " (SELECT count(*) FROM acc.run_result), (SELECT attempt FROM acc.run)"
        ).fetchone()
    assert counts == (1, 6, 1)
