"""The e-licensing panel of the operator console, and the gauges ``/metrics`` exports.

One statement (``console.sql``) reads the shared circuit of the e-licensing client, the last
successful refresh and the invoices whose last refresh failed, so their local copy is stale.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.core.circuits import circuit_gauges, circuit_in, circuit_rows
from tether.core.console import Cell, Gauge, Panel, Row, Table, age
from tether.core.sql import load_queries
from tether.elicensing.service import ElicensingService

queries = load_queries("tether.elicensing", "console.sql")
EXAMPLES = 10  # stale invoices listed


async def panel(runtime: Runtime, service: ElicensingService) -> Panel:
    """Circuit, last refresh and stale invoices, for the console and ``/metrics``."""
    async with runtime.pool.connection() as conn:
        row = await db.fetch_one(
            conn,
            queries["refresh_overview"],
            {"circuit": service.breaker.name, "examples": EXAMPLES},
        )
    return build_panel(row, service)


def _parse(moment: str | None) -> datetime | None:
    return None if moment is None else datetime.fromisoformat(moment)


def _page(version: int | None) -> str | None:
    return None if version is None else f"/compliance-report-versions/{version}/obligation"


def build_panel(row: dict[str, Any], service: ElicensingService) -> Panel:
    circuit = circuit_in(row, service.breaker)
    stale, never = int(row["stale"]), int(row["never_read"])
    rows = (
        *circuit_rows(circuit, service.display_time),
        Row(
            label="last refresh",
            value=f"{age(row['last_refreshed'])} ago" if row["last_refreshed"] else "never",
        ),
        Row(label="invoices copied", value=str(row["invoices"])),
        Row(label="stale invoices", value=str(stale), status="bad" if stale else "ok"),
        Row(label="obligations not read yet", value=str(never)),
    )
    stale_rows: list[dict[str, Any]] = row["stale_invoices"]
    table = Table(
        caption="Stale invoices (last refresh failed)",
        columns=("invoice", "reason", "last refreshed"),
        rows=tuple(
            (
                Cell(text=s["invoice_number"], link=_page(s["report_version_id"])),
                Cell(text=s["reason"]),
                Cell(text=service.display_time(_parse(s["last_refreshed"]))),
            )
            for s in stale_rows
        ),
        empty="No stale invoices.",
    )
    gauges = (
        *circuit_gauges(service.breaker, circuit),
        Gauge(
            name="tether_elicensing_stale_invoices",
            help="Invoices whose last refresh failed (the local copy is served stale).",
            value=stale,
        ),
        Gauge(
            name="tether_elicensing_invoices_never_read",
            help="Obligations whose invoice was never read successfully.",
            value=never,
        ),
    )
    return Panel(title="E-licensing", rows=rows, table=table, gauges=gauges)
