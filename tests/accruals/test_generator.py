"""The generator: real NEM12/NEM13 files that our parser reads cleanly, CSVs, determinism."""

from __future__ import annotations

import csv
import hashlib
from datetime import date
from pathlib import Path

import numpy as np

from tether.accruals.gen_accounts import ACCOUNT_COLUMNS, TARIFF_COLUMNS
from tether.accruals.generator import INVOICE_COLUMNS, generate
from tether.accruals.nem import parse


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.csv"))
    }


def test_output_parses_cleanly_and_matches_the_counts(tmp_path: Path) -> None:
    result = generate(60, 4, tmp_path, seed=3, end=date(2026, 11, 30))
    assert result.start == date(2026, 8, 1)
    channel_days = values = basic = 0
    suffixes: set[str] = set()
    intervals: set[int] = set()
    qualities: set[str] = set()
    for path in result.nem12_files + result.nem13_files:
        parsed = parse(path)
        assert parsed.rejected is None and parsed.errors == [], path
        for batch in parsed.channel_days:
            channel_days += len(batch)
            values += batch.values.size
            suffixes.update(batch.suffix.tolist())
            intervals.add(batch.interval_length)
            qualities.update(set(batch.quality.tobytes().decode()))
            assert (batch.values >= 0).all()
        basic += sum(len(b) for b in parsed.basic_reads)
    assert (channel_days, values, basic) == (result.channel_days, result.values, result.basic_reads)
    assert suffixes == {"E1", "E2", "B1"}
    assert intervals == {5, 15, 30}
    assert {"A", "E", "S"} <= qualities
    assert basic > 0 and result.invoices > 0


def test_csv_files_have_the_agreed_columns(tmp_path: Path) -> None:
    generate(30, 2, tmp_path, seed=1)
    for name, columns in (
        ("accounts.csv", ACCOUNT_COLUMNS),
        ("tariffs.csv", TARIFF_COLUMNS),
        ("invoices.csv", INVOICE_COLUMNS),
    ):
        with (tmp_path / name).open() as f:
            rows = list(csv.reader(f))
        assert tuple(rows[0]) == columns
        assert len(rows) > 1
    with (tmp_path / "accounts.csv").open() as f:
        accounts = list(csv.DictReader(f))
    assert {a["meter_type"] for a in accounts} == {"interval", "basic"}
    assert {a["billing_cycle"] for a in accounts} == {"monthly", "quarterly"}
    assert all(len(a["nmi"]) == 10 for a in accounts)
    with (tmp_path / "invoices.csv").open() as f:
        invoices = list(csv.DictReader(f))
    assert all(i["period_from"] <= i["period_to"] < "2026-11-30" for i in invoices)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate(20, 2, tmp_path / "a", seed=5)
    generate(20, 2, tmp_path / "b", seed=5)
    generate(20, 2, tmp_path / "c", seed=6)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_v_days_carry_400_rows_and_data_stops_before_the_end_for_some(tmp_path: Path) -> None:
    result = generate(80, 1, tmp_path, seed=11)
    text = "".join(p.read_text() for p in result.nem12_files)
    assert "\n400," in text
    last: dict[str, np.datetime64] = {}
    for path in result.nem12_files:
        for batch in parse(path).channel_days:
            for nmi, day in zip(batch.nmi.tolist(), batch.day, strict=True):
                last[nmi] = max(last.get(nmi, day), day)
    end = np.datetime64("2026-11-30")
    assert max(last.values()) == end
    assert any(day < end - 1 for day in last.values())  # lagging meters: a gap to the end
