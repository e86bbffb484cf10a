"""The payments panel of the operator console, and the gauges ``/metrics`` exports.

One statement (``console.sql``) reads the backlog: messages queued behind their case's order,
orders not sent yet or at the payment system without a receipt, and the oldest of them. A
receipt that never comes shows here first (the chase job asks the payment system after
``TETHER_PAYMENTS_RECEIPT_TIMEOUT_S``). Statuses not on NATS yet show a stalled publisher (NATS
down, no worker running the payments jobs) that no order count would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.core.console import Cell, Gauge, Panel, Row, Status, Table, age, age_s
from tether.core.sql import load_queries
from tether.payments.paths import case_page_url
from tether.payments.service import PaymentsService

queries = load_queries("tether.payments", "console.sql")
EXAMPLES = 10  # waiting orders listed
WARN_AFTER_S = 60.0  # an order without a receipt for a minute deserves a look


async def panel(runtime: Runtime, service: PaymentsService) -> Panel:
    """Backlog and waiting orders, for the console and ``/metrics``."""
    async with runtime.pool.connection() as conn:
        row = await db.fetch_one(conn, queries["payments_overview"], {"examples": EXAMPLES})
    return build_panel(row)


def _status(oldest: datetime | None, now: datetime) -> Status:
    if oldest is None:
        return "ok"
    waited = age_s(oldest, now)
    return "bad" if waited > 10 * WARN_AFTER_S else "warn" if waited > WARN_AFTER_S else "ok"


def build_panel(row: dict[str, Any], now: datetime | None = None) -> Panel:
    now = now or datetime.now(UTC)
    oldest: datetime | None = row["oldest_waiting"]
    waiting = int(row["unsent"]) + int(row["at_payment_system"])
    rows = (
        Row(label="orders not sent yet", value=str(row["unsent"])),
        Row(label="orders waiting for a receipt", value=str(row["at_payment_system"])),
        Row(
            label="oldest order without a receipt",
            value="none" if oldest is None else f"{age(oldest, now)} old",
            status=_status(oldest, now),
        ),
        Row(label="messages queued behind their case", value=str(row["queued"])),
        Row(
            label="statuses not on NATS yet",
            value=_unpublished(row, now),
            status=_status(row["oldest_unpublished"], now),
        ),
    )
    listed: list[dict[str, Any]] = row["waiting"]
    table = Table(
        caption="Oldest orders without a receipt",
        columns=("case", "state", "original key", "age"),
        rows=tuple(
            (
                Cell(text=w["sak_id"], link=case_page_url(w["sak_id"])),
                Cell(text=w["state"]),
                Cell(text=w["original_key"]),
                Cell(text=age(datetime.fromisoformat(w["created_at"]), now)),
            )
            for w in listed
        ),
        empty="Every order has its receipt.",
    )
    gauges = (
        Gauge(
            name="tether_payments_orders_waiting",
            help="Orders not sent yet or without a receipt from the payment system.",
            value=waiting,
        ),
        Gauge(
            name="tether_payments_oldest_waiting_seconds",
            help="Age of the oldest order without a receipt (0 when none).",
            value=age_s(oldest, now),
        ),
        Gauge(
            name="tether_payments_messages_queued",
            help="Messages waiting behind an order of their case.",
            value=float(row["queued"]),
        ),
    )
    return Panel(
        title="Payment orders", rows=rows, table=table, gauges=gauges + _publisher(row, now)
    )


def _unpublished(row: dict[str, Any], now: datetime) -> str:
    oldest: datetime | None = row["oldest_unpublished"]
    count = int(row["statuses_unpublished"])
    return str(count) if oldest is None else f"{count}, the oldest {age(oldest, now)} old"


def _publisher(row: dict[str, Any], now: datetime) -> tuple[Gauge, ...]:
    """The status publisher's backlog: statuses stored and not yet acknowledged by NATS."""
    return (
        Gauge(
            name="tether_payments_statuses_unpublished",
            help="Statuses stored and not yet published on NATS.",
            value=float(row["statuses_unpublished"]),
        ),
        Gauge(
            name="tether_payments_oldest_unpublished_seconds",
            help="Age of the oldest status not yet published on NATS (0 when none).",
            value=age_s(row["oldest_unpublished"], now),
        ),
    )
