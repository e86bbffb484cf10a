"""The run's files, rendered from its stored rows in a fixed order and format (same rows -> same
bytes): BUAAccountSummary.csv, InvoiceLineItemMonthly.csv, the estimates as NEM12, a report."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg

from tether.accruals.sql import Q

MARKET_TIME = timezone(timedelta(hours=10))  # NEM12 DateTimes: AEST, no daylight saving

SUMMARY = "BUAAccountSummary.csv"
LINES = "InvoiceLineItemMonthly.csv"
NEM12 = "EstimatedIntervals_NEM12.csv"
REPORT = "RunReport.json"
# QualityMethod of what the run estimated in NEM12: E + AEMO estimation type 55 (agreed method).
# Every exported day is filled one way (energy._fill: segment profile x the account's
# micro-scalar), a method no other type describes: not 51/52 (the meter's own previous year or
# reading), 53 (revision), 54 (linear), 56/57 (prior to a first reading: most have readings,
# which scale the profile), 58 (zero). A second method would need its own code, stored per day.
# A whole estimated day is a 300 row of this method; a day filled only in part is a V day whose
# 400 rows give the filled intervals this method and the read ones their meter data's method.
NEM12_QUALITY_METHOD = "E55"
SUMMARY_COLUMNS = (
    "account_id",
    "nmi",
    "jurisdiction",
    "segment",
    "tariff_id",
    "billed_to_date",
    "period_end",
    "unbilled_days",
    "kwh_actual",
    "kwh_estimated",
    "amount_ex_gst",
    "gst",
    "estimate_share",
    "estimate_method",
    "micro_scalar",
    "flags",
)
LINE_COLUMNS = (
    "account_id",
    "month",
    "charge_code",
    "quantity",
    "unit",
    "rate",
    "amount_ex_gst",
    "gst",
)


def _fmt(value: Decimal, places: int) -> str:
    return f"{value:.{places}f}"


def summary_csv(conn: psycopg.Connection[Any], period_end: date) -> bytes:
    out = io.StringIO()
    out.write(",".join(SUMMARY_COLUMNS) + "\n")
    for (
        account_id,
        nmi,
        jur,
        segment,
        tariff,
        billed_to,
        days,
        act,
        est,
        amount,
        gst,
        method,
        scalar,
        flags,
    ) in conn.execute(Q["summary_rows"], {"period_end": period_end}):
        total = act + est
        share = est / total if total else Decimal(0)
        out.write(
            ",".join(
                (
                    account_id,
                    nmi,
                    jur,
                    segment,
                    tariff,
                    billed_to.isoformat(),
                    period_end.isoformat(),
                    str(days),
                    _fmt(act, 3),
                    _fmt(est, 3),
                    _fmt(amount, 2),
                    _fmt(gst, 2),
                    _fmt(share, 4),
                    method,
                    _fmt(scalar, 4),
                    flags,
                )
            )
            + "\n"
        )
    return out.getvalue().encode()


def lines_csv(conn: psycopg.Connection[Any], period_end: date) -> bytes:
    out = io.StringIO()
    out.write(",".join(LINE_COLUMNS) + "\n")
    for account_id, month, code, qty, unit, rate, amount, gst in conn.execute(
        Q["line_rows"], {"period_end": period_end}
    ):
        out.write(
            ",".join(
                (
                    account_id,
                    month.strftime("%Y-%m"),
                    code,
                    _fmt(qty, 3),
                    unit,
                    _fmt(rate, 4),
                    _fmt(amount, 2),
                    _fmt(gst, 2),
                )
            )
            + "\n"
        )
    return out.getvalue().encode()


def nem12(conn: psycopg.Connection[Any], period_end: date, as_at: datetime) -> bytes:
    """Estimated channel-days as NEM12 (NEM12_QUALITY_METHOD), stamped with the run's as-at
    (not now) in market time, so a re-run writes the same bytes whatever offset the as-at came
    with (a stored one is read back in UTC)."""
    stamp = as_at.astimezone(MARKET_TIME).strftime("%Y%m%d%H%M")
    out = io.StringIO()
    out.write(f"100,NEM12,{stamp},TETHER,TETHER\n")
    current = None
    rows = conn.execute(Q["estimated_days"], {"period_end": period_end})
    for nmi, suffix, day, vals, read in rows:
        if (nmi, suffix) != current:
            current = (nmi, suffix)
            out.write(f"200,{nmi},{suffix},1,{suffix},,,kWh,30,\n")
        values = ",".join(f"{v:.3f}" for v in vals)
        ranges = _ranges(read, len(vals))
        method = ranges[0][2] if len(ranges) == 1 else "V"
        out.write(f"300,{day:%Y%m%d},{values},{method},,,{stamp}00,\n")
        if method == "V":
            out.writelines(f"400,{first},{last},{m},,\n" for first, last, m in ranges)
    out.write("900\n")
    return out.getvalue().encode()


def _ranges(read: list[str | None] | None, width: int) -> list[tuple[int, int, str]]:
    """A day's runs of one QualityMethod as inclusive 1-based (first, last, method), covering
    every interval in order: its 400 rows (a single run needs none: the 300 row carries it)."""
    if read is None:  # a whole day of ours
        return [(1, width, NEM12_QUALITY_METHOD)]
    out: list[tuple[int, int, str]] = []
    first = 1
    for method, run in itertools.groupby(m or NEM12_QUALITY_METHOD for m in read):
        last = first + sum(1 for _ in run) - 1
        out.append((first, last, method))
        first = last + 1
    return out


def report(
    totals: dict[str, Any], steps: list[dict[str, Any]], failures: list[dict[str, str]]
) -> bytes:
    body = {"totals": totals, "steps": steps, "failures": failures}
    return (json.dumps(body, indent=2, sort_keys=True, default=str) + "\n").encode()


def store(conn: psycopg.Connection[Any], period_end: date, name: str, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    conn.execute(
        Q["put_export"],
        {"period_end": period_end, "name": name, "content": content, "sha256": digest},
    )
    return digest
