"""Loader errors, per-account failure and resubmit, the API and the run page."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tests.accruals.run_fixtures import ACCOUNTS, PERIOD_END, RUN_SETTINGS, TARIFFS, write_world
from tether.accruals import flow, loader, run
from tether.accruals.ingest import ingest_files
from tether.core import migrations, workflows

SETTINGS = RUN_SETTINGS


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[arg-type]
    return int(row[0]) if row else 0


def test_a_file_with_bad_lines_is_rejected_whole_with_line_numbers(
    db_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "accounts.csv"
    lines = ACCOUNTS.splitlines()
    lines[2] = lines[2].replace(",QLD,", ",TAS,")
    lines[3] = lines[3].replace("QFLT000003", "QFLT3")
    bad.write_text("\n".join(lines) + "\n")
    result = loader.load(db_url, "accounts", bad)
    assert result.status == "rejected"
    assert [e["line"] for e in result.errors] == [3, 4]
    assert "jurisdiction 'TAS'" in str(result.errors[0]["reason"])
    assert "nmi 'QFLT3'" in str(result.errors[1]["reason"])
    assert count(db_url, "acc.account") == 0
    header = tmp_path / "h.csv"
    header.write_text("account_id,nmi\nA1,QTOU000001\n")
    assert loader.load(db_url, "accounts", header).errors[0]["line"] == 1


def test_tariff_rules_and_refused_references(db_url: str, tmp_path: Path) -> None:
    tariffs = tmp_path / "tariffs.csv"
    tariffs.write_text(
        TARIFFS.splitlines()[0] + "\n"
        "T,2026-01-01,tou,peak,weekday,,,,50,c/kWh\n"
        "T,2026-01-01,tou,peak,weekday,20:00,14:00,,50,c/kWh\n"
        "T,2026-01-01,supply,all,all,,,,100,c/kWh\n"
        "T,2026-01-01,flat,all,all,,,,-1,c/kWh\n"
    )
    result = loader.load(db_url, "tariffs", tariffs)
    assert [e["line"] for e in result.errors] == [2, 3, 4, 5]
    invoices = tmp_path / "invoices.csv"
    invoices.write_text(
        ",".join(loader.COLUMNS["invoices"])
        + "\nI9,NOBODY,2026-01-01,2026-01-31,2026-02-02T09:00:00+10:00,1.00\n"
    )
    refused = loader.load(db_url, "invoices", invoices)
    assert refused.status == "rejected" and "NOBODY" in str(refused.errors[0]["reason"])
    assert count(db_url, "acc.tariff_rate") == 0 and count(db_url, "acc.invoice") == 0


@pytest.fixture
async def world(db_url: str, tmp_path: Path, pool: AsyncConnectionPool[Any]) -> str:
    migrations.upgrade(db_url, ("tether.core", "tether.accruals"))
    files = write_world(tmp_path)
    accounts = tmp_path / "accounts6.csv"
    accounts.write_text(
        ACCOUNTS
        + "A6,QNEW000006,residential,QLD,Ergon,NEW,monthly,basic\n"
        + "A8,QGAP000008,business,QLD,Solo,FLAT,monthly,interval\n"
    )
    assert loader.load(db_url, "accounts", accounts).status == "loaded"
    invoices = tmp_path / "invoices6.csv"
    invoices.write_text(
        files["invoices"].read_text()
        + "I6,A6,2026-02-28,2026-03-29,2026-03-30T09:00:00+10:00,10.00\n"
    )
    assert loader.load(db_url, "tariffs", files["tariffs"]).status == "loaded"
    assert loader.load(db_url, "invoices", invoices).status == "loaded"
    never_billed = tmp_path / "a8.csv"
    day = ",".join(["0.5"] * 48)
    never_billed.write_text(
        "100,NEM12,202604011200,MDP,RET\n200,QGAP000008,E1,1,E1,N1,M8,kWh,30,\n"
        f"300,20260330,{day},A,,,20260401120000,\n300,20260331,{day},A,,,20260401120000,\n900\n"
    )
    await ingest_files(pool, [files["nem12"], files["nem13"], never_billed])
    return db_url


def test_a_failed_account_is_recorded_and_resubmitted_alone(world: str, tmp_path: Path) -> None:
    run.run_inline(world, PERIOD_END, run.default_as_at(PERIOD_END, SETTINGS), SETTINGS)
    with psycopg.connect(world) as conn:
        failures = conn.execute("SELECT account_id, reason FROM acc.run_failure").fetchall()
        before = conn.execute(
            "SELECT account_id, amount_ex_gst FROM acc.run_result ORDER BY 1"
        ).fetchall()
    assert failures == [("A6", "tariff NEW is not loaded")]
    assert [a for a, _ in before] == ["A1", "A2", "A3", "A4", "A5", "A7", "A8"]
    new = tmp_path / "new.csv"
    new.write_text(
        TARIFFS.splitlines()[0] + "\n"
        "NEW,2026-01-01,supply,all,all,,,,50,c/day\nNEW,2026-01-01,flat,all,all,,,,20,c/kWh\n"
    )
    assert loader.load(world, "tariffs", new).status == "loaded"
    flow.start_executor(world, SETTINGS, "test-executor")
    try:
        wid = flow.resubmit(world, SETTINGS, PERIOD_END)
        totals = workflows.result(wid)
    finally:
        workflows.shutdown()
    assert wid.startswith("accruals-run-2026-03-31-resubmit-")
    assert totals["failures"] == 0 and totals["accounts"] == 8
    with psycopg.connect(world) as conn:
        after = conn.execute(
            "SELECT account_id, amount_ex_gst, flags FROM acc.run_result ORDER BY 1"
        ).fetchall()
    assert [(a, m) for a, m, _ in after if a != "A6"] == before
    # no reads: segment (Ergon residential, 12 kWh/day) x scalar 1.0, 2 days: 1.00 + 4.80
    assert next(r for r in after if r[0] == "A6") == ("A6", Decimal("5.80"), "")
    # never billed: from the day before its first data (2 days: 1.80 supply + 48 kWh at 30 c)
    assert next(r for r in after if r[0] == "A8") == ("A8", Decimal("16.20"), "never_billed")


async def test_api_and_page(http: httpx.AsyncClient, world: str) -> None:
    anonymous = await http.get("/api/v1/accruals/runs", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert (await http.get("/api/v1/accruals/runs")).json() == []
    assert (await http.get("/api/v1/accruals/runs/2026-03-31")).status_code == 404
    for far in ("9999-12-31", "0001-01-01"):  # a 500 (date overflow) before they were bounded
        refused = await http.post("/api/v1/accruals/runs", json={"period_end": far})
        assert refused.status_code == 422, refused.text
    run.run_inline(world, PERIOD_END, run.default_as_at(PERIOD_END, SETTINGS), SETTINGS)
    runs = (await http.get("/api/v1/accruals/runs")).json()
    assert [(r["period_end"], r["status"]) for r in runs] == [("2026-03-31", "finished")]
    detail = (await http.get("/api/v1/accruals/runs/2026-03-31")).json()
    assert [s["step"] for s in detail["steps"]] == list(run.STEPS)
    assert detail["progress"]["done"] == detail["progress"]["total"] == 4
    assert detail["failures"][0]["account_id"] == "A6"
    link = next(e["href"] for e in detail["exports"] if e["name"] == "BUAAccountSummary.csv")
    body = (await http.get(link)).content
    assert body.startswith(b"account_id,nmi,jurisdiction,segment,") and b"\nA1,QTOU000001," in body
    assert (await http.get("/api/v1/accruals/runs/2026-03-31/exports/x.csv")).status_code == 404
    md = await http.get("/api/v1/accruals/meter-data/QTOU000001?from=2026-03-30&to=2026-03-31")
    assert md.status_code == 200 and len(md.json()["channel_days"]) == 4
    page = await http.get("/accruals/runs/2026-03-31")
    assert page.status_code == 200 and "1 account(s) failed" in page.text
    assert "BUAAccountSummary.csv" in page.text
    assert "amount ex gst" in page.text and "amount_ex_gst" not in page.text  # labels, not keys
    assert re.search(r"snapshot as at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page.text)
    assert "{&#39;" not in page.text  # a step's detail as pairs, not Python's dict text
    assert "2026-03-31" in (await http.get("/accruals/runs")).text
    from prometheus_client import generate_latest

    scrape = generate_latest().decode()
    assert 'tether_accruals_run_chunks{period_end="2026-03-31",state="done"} 4.0' in scrape
    assert 'tether_accruals_run_failed_accounts{period_end="2026-03-31"} 1.0' in scrape


def test_the_schedule_runs_the_previous_month_once(world: str) -> None:
    flow.start_executor(world, SETTINGS, "test-scheduler")
    try:
        fired = datetime(2026, 4, 3, 2, 0, tzinfo=UTC)
        workflows.start("sched-test-1", flow.scheduled_workflow, fired, None)
        workflows.result("sched-test-1")
        workflows.result(run.workflow_id(PERIOD_END, 1))
        workflows.start("sched-test-2", flow.scheduled_workflow, fired, None)
        workflows.result("sched-test-2")
    finally:
        workflows.shutdown()
    with psycopg.connect(world) as conn:
        row = conn.execute("SELECT period_end, attempt, status FROM acc.run").fetchall()
    assert row == [(PERIOD_END, 1, "finished")]


def test_the_snapshot_sees_only_what_was_there_at_the_as_at(world: str, tmp_path: Path) -> None:
    late = tmp_path / "late.csv"
    late.write_text(
        ",".join(loader.COLUMNS["invoices"])
        + "\nI8,A1,2026-03-30,2026-03-31,2026-04-08T09:00:00+10:00,20.00\n"
    )
    assert loader.load(world, "invoices", late).status == "loaded"
    default = run.default_as_at(PERIOD_END, SETTINGS)
    assert default.isoformat() == "2026-04-07T00:00:00+10:00"

    def a1_days() -> object:
        with psycopg.connect(world) as conn:
            row = conn.execute(
                "SELECT unbilled_days FROM acc.run_result WHERE account_id = 'A1'"
            ).fetchone()
        return row[0] if row else None

    run.run_inline(world, PERIOD_END, default, SETTINGS)
    assert a1_days() == 2  # the invoice issued on 8 April is after the snapshot
    later = datetime(2026, 4, 9, tzinfo=UTC)
    run.run_inline(world, PERIOD_END, later, SETTINGS, attempt=2)
    assert a1_days() == 0


def test_a_run_with_no_accounts_finishes_empty(db_url: str) -> None:
    totals = run.run_inline(db_url, PERIOD_END, run.default_as_at(PERIOD_END, SETTINGS), SETTINGS)
    assert totals["accounts"] == 0 and totals["amount_ex_gst"] == "0.00"
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT content FROM acc.run_export WHERE name = 'BUAAccountSummary.csv'"
        ).fetchone()
    assert row is not None and bytes(row[0]).count(b"\n") == 1  # the header only


def test_a_run_submitted_before_any_worker_waits_in_the_queue(db_url: str) -> None:
    wid = flow.submit(db_url, SETTINGS, PERIOD_END, None)
    assert wid == "accruals-run-2026-03-31"
    assert workflows.status(db_url, wid) == "ENQUEUED"
    assert flow.submit(db_url, SETTINGS, PERIOD_END, None) == wid  # not queued twice


def test_cli_load_prints_json_and_exits_1_on_a_rejected_file(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tether.accruals.cli import app

    monkeypatch.setenv("DATABASE_URL", db_url)
    bad = tmp_path / "accounts.csv"
    bad.write_text(ACCOUNTS.replace("residential", "household", 1))
    result = CliRunner().invoke(app, ["load", "accounts", str(bad), "--json"])
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["status"] == "rejected" and body["errors"][0]["line"] == 2
    missing = CliRunner().invoke(app, ["load", "accounts", str(tmp_path / "missing.csv")])
    assert missing.exit_code == 2  # typer: the file does not exist


def test_a_file_that_is_not_utf8_is_refused_in_one_line_and_nothing_loaded(
    db_url: str, tmp_path: Path
) -> None:
    from tether.core.textfiles import NotUtf8

    latin = tmp_path / "lat2.csv"
    latin.write_bytes(ACCOUNTS.replace("residential", "résidential", 1).encode("latin-1"))
    with pytest.raises(NotUtf8, match=r"lat2.csv is not UTF-8 \(byte 0xe9 at offset \d+\): save"):
        loader.load(db_url, "accounts", latin)
    assert count(db_url, "acc.account") == 0
    marked = tmp_path / "marked.csv"  # "CSV UTF-8" from a spreadsheet: a byte order mark first
    marked.write_bytes(ACCOUNTS.encode("utf-8-sig"))
    assert loader.load(db_url, "accounts", marked).status == "loaded"
