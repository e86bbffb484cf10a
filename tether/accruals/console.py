"""The accruals panel of the operator console: the latest runs and their progress.

Run progress reaches ``/metrics`` through ``metrics.py`` (read at scrape time), so this panel
adds no gauges of its own.
"""

from __future__ import annotations

from typing import Any

from tether.accruals.service import AccrualsService
from tether.core import db
from tether.core.bootstrap import Runtime
from tether.core.console import Cell, Panel, Row, Status, Table, age
from tether.core.sql import load_queries

queries = load_queries("tether.accruals", "console.sql")
RUNS = 6
_STATUS: dict[str, Status] = {"finished": "ok", "running": "warn", "failed": "bad"}


async def panel(runtime: Runtime, service: AccrualsService) -> Panel:
    """The latest run dates: status, chunks priced, failed accounts."""
    async with runtime.pool.connection() as conn:
        runs = await db.fetch_all(conn, queries["accruals_overview"], {"runs": RUNS})
    return build_panel(runs)


def build_panel(runs: list[dict[str, Any]]) -> Panel:
    latest = runs[0] if runs else None
    rows: tuple[Row, ...] = (
        Row(label="runs", value="none yet" if latest is None else str(len(runs))),
    )
    if latest is not None:
        period = latest["period_end"].isoformat()
        rows += (
            Row(
                label=f"latest run ({period})",
                value=f"{latest['status']}, {latest['chunks_done']}/{latest['chunks']} chunks",
                status=_STATUS.get(latest["status"], "bad"),
                link=f"/accruals/runs/{period}",
            ),
            Row(
                label="accounts that failed",
                value=str(latest["failed"]),
                status="warn" if latest["failed"] else "ok",
            ),
        )
    table = Table(
        caption="Latest runs",
        columns=("period end", "status", "progress", "failed accounts", "started"),
        rows=tuple(
            (
                Cell(
                    text=r["period_end"].isoformat(),
                    link=f"/accruals/runs/{r['period_end'].isoformat()}",
                ),
                Cell(text=f"{r['status']} (attempt {r['attempt']})"),
                Cell(text=f"{r['chunks_done']}/{r['chunks']} chunks"),
                Cell(text=str(r["failed"])),
                Cell(text=f"{age(r['started_at'])} ago"),
            )
            for r in runs
        ),
        empty="No run yet: tether accruals run --period-end YYYY-MM-DD",
    )
    return Panel(title="Accruals", rows=rows, table=table)
