"""The e-licensing panel of the operator console, and the gauges ``/metrics`` exports.

One statement (``console.sql``) reads the shared circuit of the e-licensing client, the last
successful refresh and the invoices whose last refresh failed, so their local copy is stale.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.core.console import Cell, Gauge, Panel, Row, Status, Table, age
from tether.core.sql import load_queries
from tether.elicensing.service import ElicensingService

queries = load_queries("tether.elicensing", "console.sql")
EXAMPLES = 10  # stale invoices listed
CIRCUIT_STATES = ("closed", "half_open", "open")
_CIRCUIT_STATUS: dict[str, Status] = {"closed": "ok", "half_open": "warn", "open": "bad"}


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
    circuit = row["circuit_state"] or "closed"  # no row yet: never called, so closed
    stale, never = int(row["stale"]), int(row["never_read"])
    circuit_text = circuit.replace("_", "-")
    if circuit == "open" and row["open_until"] is not None:
        circuit_text += f" (next probe at {service.display_time(row['open_until'])})"
    rows = (
        Row(label="circuit", value=circuit_text, status=_CIRCUIT_STATUS.get(circuit, "bad")),
        Row(
            label="consecutive failures",
            value=str(row["circuit_failures"] or 0),
            status="warn" if row["circuit_failures"] else "ok",
        ),
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
    upstream = service.breaker.name
    gauges = (
        *(
            Gauge(
                name="tether_circuit_state",
                help="Circuit breaker state per upstream (1 for the current state).",
                value=1.0 if state == circuit else 0.0,
                labels={"upstream": upstream, "state": state},
            )
            for state in CIRCUIT_STATES
        ),
        Gauge(
            name="tether_circuit_open",
            help="1 while the circuit to an upstream is open or probing.",
            value=0.0 if circuit == "closed" else 1.0,
            labels={"upstream": upstream},
        ),
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
