"""The console's Service panel: whether the database answers and which ``tether worker``
processes are alive (their heartbeats, ``core/workers.py``). First on the console, in
``tether status``, and on ``/metrics`` as ``tether_database_up`` and ``tether_workers_alive``.

While the database does not answer the panel says so instead of failing: ``/metrics`` still
reports ``tether_database_up 0`` (see ``core/api.py`` for a scrape whose credential cannot be
checked then), and the other panels show their own failure. It says why in libpq's words
("Connection refused", "password authentication failed ..."): the pool only says it waited
(``PoolTimeout``), so one short connection of our own asks (``why_down``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from tether.core import db, workers
from tether.core.bootstrap import Runtime
from tether.core.console import Cell, Gauge, Panel, Row, Table, age
from tether.core.errors import one_line
from tether.core.logging import hide_passwords

LISTED = 50  # worker processes the panel lists at most
TITLE = "Service"
PROBE_TIMEOUT_S = 2.0  # the connection that asks why the pool got none
REASON_KEPT_S = 5.0  # its answer is reused this long: an outage makes no storm of connections
PROBE_APP_NAME = "tether-health"  # its sessions in pg_stat_activity


async def panel(runtime: Runtime, _service: object = None) -> Panel:
    """Database up, and the live worker processes, for the console and ``/metrics``."""
    try:
        async with runtime.pool.connection() as conn:
            rows = await db.fetch_all(
                conn,
                workers.Q["worker_processes"],
                {"dead_after_s": workers.DEAD_AFTER_S, "limit": LISTED},
            )
            deaths = await db.fetch_all(
                conn, workers.Q["child_deaths"], {"window_s": workers.DEATHS_WINDOW_S}
            )
    except psycopg.OperationalError as exc:  # no server, no connection in time
        return unreachable_panel(await reason_for(exc, runtime.database_url))
    return build_panel(rows, deaths)


async def reason_for(exc: psycopg.OperationalError, url: str) -> str:
    """Why the database failed a request, for the console: libpq's reason, asked anew when
    the pool only says it waited."""
    if not isinstance(exc, PoolTimeout):
        return scrub(db.libpq_reason(exc), url)
    why = await why_down(url)
    return why or f"{one_line(exc)} (the database answers: every connection was busy)"


_asked: dict[str, tuple[float, asyncio.AbstractEventLoop, asyncio.Future[str | None]]] = {}


async def why_down(url: str) -> str | None:
    """Why the database at ``url`` cannot be reached now (None: it answers), from one short
    connection shared by concurrent callers and remembered ``REASON_KEPT_S``."""
    now, running = time.monotonic(), asyncio.get_running_loop()
    kept = _asked.get(url)
    if kept is None or kept[0] < now or kept[1] is not running:
        kept = _asked[url] = (now + REASON_KEPT_S, running, asyncio.ensure_future(check(url)))
    return await asyncio.shield(kept[2])


async def check(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Connect and run ``SELECT 1``: None when that works, else libpq's reason (no secret)."""
    try:
        async with asyncio.timeout(timeout_s):
            conn = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=2, application_name=PROBE_APP_NAME
            )
            async with conn:
                await conn.execute("SELECT 1")
    except TimeoutError:
        return "no answer in time"
    except psycopg.Error as exc:
        return scrub(db.libpq_reason(exc), url)
    return None


_CATEGORIES = (
    ("server not running", "not running"),  # no socket file: first, its path may say anything
    ("no answer in time", "no answer in time"),
    ("timeout", "no answer in time"),
    ("refused", "connection refused"),
    ("authentication", "authentication failed"),
    ("password", "authentication failed"),
    ("does not exist", "no such database or role"),
    ("closed the connection", "connection closed by the server"),
    ("translate host name", "unknown host"),
)


def category(reason: str) -> str:
    """A reason in a few words and no name, host or user: what an unauthenticated caller
    (``/healthz``) may be told."""
    low = reason.lower()
    return next((name for needle, name in _CATEGORIES if needle in low), "unreachable")


def scrub(text: str, url: str) -> str:
    """``text`` without the URL's password, should libpq quote the connection string."""
    password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    if password:
        text = text.replace(str(password), "<HIDDEN>")
    return hide_passwords(text, mask="<HIDDEN>")  # any other URL's or conninfo's


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


def build_panel(
    rows: Sequence[Mapping[str, Any]], deaths: Sequence[Mapping[str, Any]] = ()
) -> Panel:
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
    died = sum(int(d["deaths"]) for d in deaths)
    if died:
        last = max(deaths, key=lambda d: d["last_at"])
        per_lane = ", ".join(f"{d['lane']} {d['deaths']}" for d in deaths)
        lines.append(
            Row(
                label=f"child deaths in the last {workers.DEATHS_WINDOW_S / 3600:.0f} h",
                value=f"{died} ({per_lane}; last {last['last_how']}, "
                f"{age(last['last_at'], last['now'])} ago)",
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
        *_deaths_gauges(rows, deaths),
    )
    return Panel(title=TITLE, rows=tuple(lines), table=table, gauges=gauges)


def _deaths_gauges(
    rows: Sequence[Mapping[str, Any]], deaths: Sequence[Mapping[str, Any]]
) -> list[Gauge]:
    """Children's deaths per lane, for an alert on one that keeps crashing: a lane of a live
    worker without deaths reports 0 (an absent series alerts on nothing)."""
    counts = {r["lane"]: 0 for r in rows if r["alive"]} | {
        d["lane"]: int(d["deaths"]) for d in deaths
    }
    return [
        Gauge(
            name="tether_worker_child_deaths_last_hour",
            help="Worker processes found dead by their tether worker parent in the last hour.",
            value=float(n),
            labels={"lane": lane},
        )
        for lane, n in sorted(counts.items())
    ]
