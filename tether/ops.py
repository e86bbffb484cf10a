"""``tether status``: the Service panel and every capability's console panel in the terminal
(or as JSON).

Read-only as far as the schema goes: it refuses to run on a database with pending migrations
instead of applying them (``tether db upgrade`` does that).
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import asdict

from rich.console import Console
from rich.table import Table

from tether.capabilities import CAPABILITIES, migration_components
from tether.core import db, health, migrations
from tether.core.bootstrap import open_runtime
from tether.core.console import Panel, PanelProvider, collect_panels
from tether.core.errors import ConfigurationError
from tether.core.settings import Settings

_STYLE = {"ok": "green", "warn": "yellow", "bad": "red"}


async def read_panels(settings: Settings) -> list[Panel]:
    """The Service panel and every capability's, read from the database in use (nothing is
    migrated, no server started: with none running it says how to start one)."""
    url = db.url_in_use(settings)
    pending = migrations.pending(url, migration_components())
    if pending:
        raise ConfigurationError(
            f"the database has {len(pending)} pending migration(s); "
            "run `tether db upgrade` first (status never changes the schema)"
        )
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(open_runtime(settings, database_url=url))
        providers = [PanelProvider(name=health.TITLE, panel=health.panel, service=None)]
        for capability in CAPABILITIES:
            if capability.panel is not None:
                service = await stack.enter_async_context(capability.build(runtime))
                providers.append(
                    PanelProvider(name=capability.name, panel=capability.panel, service=service)
                )
        return await collect_panels(runtime, providers)


def panel_json(panel: Panel) -> dict[str, object]:
    body = asdict(panel)
    body["status"] = panel.status
    return body


async def print_status(settings: Settings, *, as_json: bool) -> None:
    panels = await read_panels(settings)
    out = Console()
    if as_json:
        out.print_json(json.dumps({"panels": [panel_json(p) for p in panels]}, default=str))
        return
    for panel in panels:
        table = Table(title=panel.title, show_header=False, title_justify="left")
        for row in panel.rows:
            table.add_row(row.label, row.value, f"[{_STYLE[row.status]}]{row.status}[/]")
        out.print(table)
        if panel.table and panel.table.rows:
            detail = Table(*panel.table.columns, title=panel.table.caption, title_justify="left")
            for cells in panel.table.rows:
                detail.add_row(
                    *(
                        c.text if not isinstance(c, tuple) else " ".join(x.text for x in c)
                        for c in cells
                    )
                )
            out.print(detail)
