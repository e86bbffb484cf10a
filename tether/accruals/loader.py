"""Load accounts, tariffs and invoices from CSV: validate every line, then COPY in one transaction.

A file with any bad line is rejected whole (nothing stored) with each line number and reason, so
a half-loaded tariff or account list can never be priced.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import LiteralString

import psycopg

from tether.core import textfiles

KINDS = ("accounts", "tariffs", "invoices")

COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": (
        "account_id",
        "nmi",
        "customer_class",
        "jurisdiction",
        "distributor",
        "tariff_id",
        "billing_cycle",
        "meter_type",
    ),
    "tariffs": (
        "tariff_id",
        "effective_from",
        "component",
        "band",
        "days",
        "start_time",
        "end_time",
        "block_kwh_per_day",
        "rate_cents",
        "unit",
    ),
    "invoices": (
        "invoice_id",
        "account_id",
        "period_from",
        "period_to",
        "issued_at",
        "amount_ex_gst",
    ),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "customer_class": ("residential", "business"),
    "jurisdiction": ("NSW", "VIC", "QLD", "SA"),
    "billing_cycle": ("monthly", "quarterly"),
    "meter_type": ("interval", "basic"),
    "component": ("supply", "flat", "block", "tou", "controlled_load", "feed_in"),
    "days": ("weekday", "weekend", "all"),
    "unit": ("c/day", "c/kWh"),
}
_NMI = re.compile(r"^[A-Z0-9]{10}$")


@dataclass
class LoadResult:
    file: str
    kind: str
    status: str = "loaded"  # loaded | rejected
    rows: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)


def _date(v: str) -> str:
    return date.fromisoformat(v).isoformat()


def _time(v: str) -> str:
    if v == "24:00":
        return "24:00"
    parsed = time.fromisoformat(v)
    if parsed.minute % 30 or parsed.second:
        raise ValueError("time-of-use bands start and end on a half-hour")
    return parsed.isoformat()


def _ts(v: str) -> str:
    parsed = datetime.fromisoformat(v)
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs an offset (e.g. +10:00)")
    return parsed.isoformat()


def _dec(v: str) -> str:
    try:
        return str(Decimal(v))
    except InvalidOperation:
        raise ValueError("not a decimal number") from None


def _nonneg(v: str) -> str:
    if Decimal(_dec(v)) < 0:
        raise ValueError("must not be negative")
    return v


_TYPES: dict[str, Callable[[str], str]] = {
    "effective_from": _date,
    "period_from": _date,
    "period_to": _date,
    "issued_at": _ts,
    "start_time": _time,
    "end_time": _time,
    "block_kwh_per_day": _nonneg,
    "rate_cents": _nonneg,
    "amount_ex_gst": _dec,
}
_OPTIONAL = {"start_time", "end_time", "block_kwh_per_day"}


def _check_row(kind: str, row: dict[str, str]) -> list[str]:
    """Reasons this row is invalid (empty: valid); rows are normalised in place."""
    reasons: list[str] = []
    for col in COLUMNS[kind]:
        value = row[col] = row[col].strip()
        if not value:
            if col not in _OPTIONAL:
                reasons.append(f"{col} is empty")
            continue
        if col in _CHOICES and value not in _CHOICES[col]:
            reasons.append(f"{col} {value!r} is not one of {', '.join(_CHOICES[col])}")
        elif col in _TYPES:
            try:
                row[col] = _TYPES[col](value)
            except ValueError as exc:
                reasons.append(f"{col} {value!r}: {exc}")
    if kind == "accounts" and row["nmi"] and not _NMI.fullmatch(row["nmi"]):
        reasons.append(f"nmi {row['nmi']!r} is not 10 letters/digits")
    if kind == "tariffs" and not reasons:
        reasons += _check_tariff(row)
    if kind == "invoices" and not reasons and row["period_to"] < row["period_from"]:
        reasons.append("period_to is before period_from")
    return reasons


def _check_tariff(row: dict[str, str]) -> list[str]:
    comp, unit = row["component"], row["unit"]
    reasons = []
    if (comp == "supply") != (unit == "c/day"):
        reasons.append(f"component {comp} needs unit {'c/day' if comp == 'supply' else 'c/kWh'}")
    timed = bool(row["start_time"]) and bool(row["end_time"])
    if (comp == "tou") != timed:
        reasons.append("tou rows (and only they) need start_time and end_time")
    if timed and row["end_time"] != "24:00" and row["end_time"] <= row["start_time"]:
        reasons.append("end_time must be after start_time (split bands that cross midnight)")
    if comp != "block" and row["block_kwh_per_day"]:
        reasons.append("block_kwh_per_day is only for block rows")
    return reasons


def _rows(path: Path, kind: str, result: LoadResult) -> Iterator[tuple[str | None, ...]]:
    with contextlib.closing(textfiles.lines(path)) as source:  # not UTF-8: raises, none stored
        reader = csv.DictReader(source)
        header = tuple(reader.fieldnames or ())
        if header != COLUMNS[kind]:
            result.errors.append(
                {
                    "line": 1,
                    "reason": f"header must be {','.join(COLUMNS[kind])}; got {','.join(header)}",
                }
            )
            return
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                result.errors.append({"line": line, "reason": "wrong number of fields"})
                continue
            reasons = _check_row(kind, row)
            if reasons:
                result.errors.append({"line": line, "reason": "; ".join(reasons)})
                continue
            yield tuple(row[c] or None for c in COLUMNS[kind])


_MERGE: dict[str, LiteralString] = {
    "accounts": """
        INSERT INTO acc.account AS a (account_id, nmi, customer_class, jurisdiction, distributor,
            tariff_id, billing_cycle, meter_type)
        SELECT * FROM stage
        ON CONFLICT (account_id) DO UPDATE SET nmi = excluded.nmi,
            customer_class = excluded.customer_class, jurisdiction = excluded.jurisdiction,
            distributor = excluded.distributor, tariff_id = excluded.tariff_id,
            billing_cycle = excluded.billing_cycle, meter_type = excluded.meter_type,
            loaded_at = now()""",
    "tariffs": """
        WITH gone AS (
            DELETE FROM acc.tariff_rate t USING (SELECT DISTINCT tariff_id, effective_from
                FROM stage) v
            WHERE t.tariff_id = v.tariff_id AND t.effective_from = v.effective_from::date)
        INSERT INTO acc.tariff_rate (tariff_id, effective_from, component, band, days,
            start_time, end_time, block_kwh_per_day, rate_cents, unit)
        SELECT * FROM stage""",
    "invoices": """
        INSERT INTO acc.invoice (invoice_id, account_id, period_from, period_to, issued_at,
            amount_ex_gst)
        SELECT * FROM stage
        ON CONFLICT (invoice_id) DO UPDATE SET account_id = excluded.account_id,
            period_from = excluded.period_from, period_to = excluded.period_to,
            issued_at = excluded.issued_at, amount_ex_gst = excluded.amount_ex_gst,
            loaded_at = now()""",
}
_STAGE: dict[str, LiteralString] = {
    "accounts": "CREATE TEMP TABLE stage (LIKE acc.account) ON COMMIT DROP",
    "tariffs": "CREATE TEMP TABLE stage (LIKE acc.tariff_rate) ON COMMIT DROP",
    "invoices": "CREATE TEMP TABLE stage (LIKE acc.invoice) ON COMMIT DROP",
}


def load(url: str, kind: str, path: Path) -> LoadResult:
    """Validate ``path`` as a ``kind`` file and store it, or store nothing and say why."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    result = LoadResult(file=str(path), kind=kind)
    rows = list(_rows(path, kind, result))
    if result.errors:
        result.status = "rejected"
        return result
    cols = ", ".join(COLUMNS[kind])
    try:
        with psycopg.connect(url) as conn, conn.transaction():
            conn.execute(_STAGE[kind])
            conn.execute("ALTER TABLE stage DROP COLUMN loaded_at")
            copy_sql = f"COPY stage ({cols}) FROM STDIN"
            with conn.cursor().copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.execute(_MERGE[kind])
    except psycopg.errors.IntegrityError as exc:  # e.g. an invoice of an unknown account
        detail = exc.diag.message_detail or exc.diag.message_primary or str(exc)
        result.status = "rejected"
        result.errors.append({"line": None, "reason": f"the database refused the file: {detail}"})
        return result
    result.rows = len(rows)
    return result
