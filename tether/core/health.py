"""The console's Service panel: whether the database answers and which ``tether worker``
processes are alive (their heartbeats, ``core/workers.py``). First on the console, in
``tether status``, and on ``/metrics`` as ``tether_database_up`` and ``tether_workers_alive``.

While the database does not answer the panel says so instead of failing: ``/metrics`` still
reports ``tether_database_up 0`` (see ``core/api.py`` for a scrape whose credential cannot be
checked then), and the other panels show their own failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from tether.core import db, workers
from tether.core.bootstrap import Runtime
from tether.core.console import Cell, Gauge, Panel, Row, Table, age

LISTED = 50  # worker processes the panel lists at most
TITLE = "Service"


async def panel(runtime: Runtime, _service: object = None) -> Panel:
    """Database up, and the live worker processes, for the console and ``/metrics``."""
    try:
        async with runtime.pool.connection() as conn:
            rows = await db.fetch_all(
                conn,
                workers.Q["worker_processes"],
                {"dead_after_s": workers.DEAD_AFTER_S, "limit": LISTED},
            )
    except psycopg.OperationalError as exc:  # no server, no connection in time
        return unreachable_panel(workers.reason(exc))
    return build_panel(rows)


def unreachable_panel(reason: str) -> Panel:
    """The Service panel while the database does not answer."""
    return Panel(
        title=TITLE,
        rows=(Row(label="database", value=f"unreachable ({reason[:200]})", status="bad"),),
        gauges=(_database_up(0.0),),
    )


def _database_up(value: float) -> Gauge:
    return Gauge(
        name="tether_database_up",
        help="1 when this API process reaches PostgreSQL, 0 when it does not.",
        value=value,
    )


def build_panel(rows: Sequence[Mapping[str, Any]]) -> Panel:
    now = rows[0]["now"] if rows else datetime.now(UTC)
    alive = int(rows[0]["alive_count"]) if rows else 0
    silent = [r for r in rows if not r["alive"]]
    lines = [
        Row(label="database", value="up"),
        Row(label="workers", value=f"{alive} alive", status="ok" if alive else "bad"),
    ]
    if silent:
        last = max(r["beat_at"] for r in silent)
        lines.append(
            Row(
                label="workers gone silent",
                value=f"{len(silent)} (last beat {age(last, now)} ago)",
                status="warn",
            )
        )
    table = Table(
        caption="Worker processes",
        columns=("process", "lane", "up for", "last beat", "jobs"),
        rows=tuple(
            (
                Cell(text=r["id"]),
                Cell(text=r["lane"]),
                Cell(text=age(r["started_at"], now)),
                Cell(text=f"{age(r['beat_at'], now)} ago" + ("" if r["alive"] else " (dead)")),
                Cell(text=", ".join(r["jobs"])),
            )
            for r in rows
        ),
        empty="No worker process has beaten: start `tether worker`.",
    )
    gauges = (
        _database_up(1.0),
        Gauge(
            name="tether_workers_alive",
            help=f"Worker processes that beat in the last {workers.DEAD_AFTER_S:.0f} s.",
            value=float(alive),
        ),
    )
    return Panel(title=TITLE, rows=tuple(lines), table=table, gauges=gauges)
