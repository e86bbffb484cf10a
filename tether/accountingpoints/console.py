"""The accounting point panel of the operator console, and the gauges ``/metrics`` exports.

One statement (``console.sql``) reads the sync bookkeeping of the APs kept in sync (those with a
controllable unit): how many are synced, due, failing or never synced, the oldest sync, the
backlog's lag, the APs whose location came half (one coordinate), the failures grouped by
reason with links to a few of the APs, and the datahub's circuit (``core/circuits.py``), which
stops syncs and lookups while it is open.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from tether.accountingpoints.service import AccountingPointService
from tether.core import db
from tether.core.bootstrap import Runtime
from tether.core.circuits import circuit_gauges, circuit_in, circuit_rows
from tether.core.console import Cell, Gauge, Panel, Row, Table, age
from tether.core.sql import load_queries

queries = load_queries("tether.accountingpoints", "console.sql")
EXAMPLES = 5  # GSRNs linked per failure reason


def ap_link(gsrn: str) -> str:
    return f"/api/v1/accounting-points/{gsrn}"


async def panel(runtime: Runtime, service: AccountingPointService) -> Panel:
    """Sync state of the accounting points, for the console and ``/metrics``."""
    async with runtime.pool.connection() as conn:
        row = await db.fetch_one(
            conn,
            queries["sync_overview"],
            {"examples": EXAMPLES, "circuit": service.breaker.name},
        )
    return build_panel(row, service)


def _waits(seconds: float) -> str:
    return "nothing due" if seconds <= 0 else age(datetime.now(UTC) - timedelta(seconds=seconds))


def _shown_in(tz: tzinfo) -> Callable[[datetime | None], str]:
    def shown(moment: datetime | None) -> str:
        return "never" if moment is None else f"{moment.astimezone(tz):%Y-%m-%d %H:%M %Z}"

    return shown


def build_panel(row: dict[str, Any], service: AccountingPointService) -> Panel:
    total, due, failing = int(row["total"]), int(row["due"]), int(row["failing"])
    never, synced = int(row["never_synced"]), int(row["synced"])
    partial = int(row["location_partial"])
    oldest: datetime | None = row["oldest_synced_at"]
    lag = float(row["due_lag_s"] or 0.0)
    failures: list[dict[str, Any]] = row["failures"]
    circuit = circuit_in(row, service.breaker)
    rows = (
        *circuit_rows(circuit, _shown_in(service.tz)),
        Row(label="kept in sync", value=str(total)),
        Row(label="synced", value=str(synced), status="ok" if synced == total else "warn"),
        Row(label="due now", value=str(due), status="warn" if lag > 300 else "ok"),
        Row(label="failing", value=str(failing), status="bad" if failing else "ok"),
        Row(label="never synced", value=str(never), status="warn" if never else "ok"),
        Row(label="location partial", value=str(partial), status="warn" if partial else "ok"),
        Row(label="oldest sync", value=f"{age(oldest)} ago" if oldest else "never"),
        Row(label="oldest due waits", value=_waits(lag), status="warn" if lag > 300 else "ok"),
    )
    table = Table(
        caption="Failures by reason",
        columns=("reason", "APs", "examples"),
        rows=tuple(
            (
                Cell(text=f["reason"]),
                Cell(text=str(f["count"])),
                tuple(Cell(text=g, link=ap_link(g)) for g in f["gsrns"]),
            )
            for f in failures
        ),
        empty="No failing syncs.",
    )
    oldest_age = (datetime.now(oldest.tzinfo) - oldest).total_seconds() if oldest else 0.0
    gauges = (
        *circuit_gauges(service.breaker, circuit),
        Gauge(name="tether_ap_sync_backlog", help="APs due for a sync now.", value=due),
        Gauge(
            name="tether_ap_sync_lag_seconds",
            help="How long the longest-waiting due AP has waited (0: none).",
            value=lag,
        ),
        Gauge(
            name="tether_ap_oldest_sync_age_seconds",
            help="Age of the oldest successful sync among APs kept in sync.",
            value=oldest_age,
        ),
        Gauge(
            name="tether_ap_location_partial",
            help="APs whose last answer gave one coordinate only (location stored as unknown).",
            value=partial,
        ),
        *(
            Gauge(
                name="tether_ap_syncs",
                help="APs kept in sync, by state.",
                value=n,
                labels={"state": state},
            )
            for state, n in (
                ("synced", synced),
                ("failing", failing),
                ("never_synced", never),
                ("due", due),
            )
        ),
        *(
            Gauge(
                name="tether_ap_sync_failing",
                help="APs whose last sync failed, by reason.",
                value=int(f["count"]),
                labels={"reason": f["reason"]},
            )
            for f in failures
        ),
    )
    return Panel(title="Accounting points", rows=rows, table=table, gauges=gauges)
