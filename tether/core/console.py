"""The operator console at ``/``: one panel per capability, server-rendered, refreshed by htmx.

Each capability brings its panel through its record (``Capability.panel``): an async function of
the runtime and its service that returns a ``Panel``. The console iterates the panels it is given;
a panel that fails shows the failure instead of taking the page down. A panel also carries the
gauges operators alert on, so ``/metrics`` reads the same numbers the console shows (see
``core/metrics.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from tether.core.auth import require
from tether.core.bootstrap import Runtime
from tether.core.web import templates

logger = logging.getLogger(__name__)

Status = Literal["ok", "warn", "bad"]
REFRESH_S = 5
CACHE_S = 2.0  # panels are read at most this often per process
STATIC_URL = "/static"


@dataclass(frozen=True, kw_only=True)
class Row:
    """One line of a panel: a label, its value, how healthy it is, where to look closer."""

    label: str
    value: str
    status: Status = "ok"
    link: str | None = None


@dataclass(frozen=True, kw_only=True)
class Cell:
    text: str
    link: str | None = None


@dataclass(frozen=True, kw_only=True)
class Table:
    """A small table under a panel's rows (for example failures by reason)."""

    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell | tuple[Cell, ...], ...], ...]  # a tuple: several links in one cell
    empty: str = "Nothing to show."


@dataclass(frozen=True, kw_only=True)
class Gauge:
    """One sample for ``/metrics``: computed with the panel, at scrape time."""

    name: str
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Panel:
    """What a capability shows on the console."""

    title: str
    rows: tuple[Row, ...] = ()
    table: Table | None = None
    gauges: tuple[Gauge, ...] = ()

    @property
    def status(self) -> Status:
        """The worst status of its rows."""
        found = {row.status for row in self.rows}
        return "bad" if "bad" in found else "warn" if "warn" in found else "ok"


PanelSource = Callable[[Runtime, Any], Awaitable[Panel]]


@dataclass(frozen=True, kw_only=True)
class PanelProvider:
    """A capability's panel function bound to its name and service (kept in ``app.state``)."""

    name: str
    panel: PanelSource
    service: Any


def age_s(moment: datetime | None, now: datetime | None = None) -> float:
    """Seconds since ``moment``, never below 0; 0 for None (a gauge's "none")."""
    if moment is None:
        return 0.0
    return max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """A short human age: ``3 s``, ``5 min``, ``2 h``, ``4 d``; ``never`` for None."""
    if moment is None:
        return "never"
    seconds = age_s(moment, now)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


async def collect_panels(runtime: Runtime, providers: Sequence[PanelProvider]) -> list[Panel]:
    """Every provider's panel; one that raises becomes a "bad" panel saying why."""
    panels: list[Panel] = []
    for provider in providers:
        try:
            panels.append(await provider.panel(runtime, provider.service))
        except Exception as exc:  # one broken panel must not hide the others
            logger.warning("console panel %s failed: %s", provider.name, exc)
            reason = f"{type(exc).__name__}: {exc}".strip()
            panels.append(
                Panel(
                    title=provider.name,
                    rows=(Row(label="panel unavailable", value=reason[:200], status="bad"),),
                )
            )
    return panels


def providers_of(request: Request) -> list[PanelProvider]:
    providers: list[PanelProvider] = getattr(request.app.state, "panels", [])
    return providers


class PanelCache:
    """Panels read at most once per ``max_age_s`` by one process, however many console pages
    and scrapes ask: each panel scans its capability's tables (bench/RESULTS.md)."""

    def __init__(self, max_age_s: float = CACHE_S) -> None:
        self.max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._read_at = -math.inf
        self._panels: list[Panel] = []

    async def get(self, runtime: Runtime, providers: Sequence[PanelProvider]) -> list[Panel]:
        async with self._lock:  # callers arriving during a read share its result
            if time.monotonic() - self._read_at >= self.max_age_s:
                self._panels = await collect_panels(runtime, providers)
                self._read_at = time.monotonic()
            return self._panels


async def current_panels(request: Request) -> list[Panel]:
    """The app's panels, from its ``PanelCache``."""
    state = request.app.state
    providers = providers_of(request)
    if not providers:  # an app without capability panels (or before its lifespan started)
        return []
    cache: PanelCache | None = getattr(state, "panel_cache", None)
    if cache is None:
        cache = state.panel_cache = PanelCache()
    return await cache.get(state.runtime, providers)


def render_panels(name: str, panels: Sequence[Panel], status_code: int = 200) -> HTMLResponse:
    """The console page or its refresh fragment (``name``) showing ``panels``."""
    html = (
        templates("tether.core")
        .get_template(name)
        .render(
            alerts=[],
            panels=panels,
            refresh_s=REFRESH_S,
            static_url=STATIC_URL,
            updated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


@cache
def _htmx() -> bytes:
    return (resources.files("tether.core") / "static" / "htmx.min.js").read_bytes()


def console_router() -> APIRouter:
    """``/`` (the page), ``/console/panels`` (the fragment htmx swaps in) and htmx itself,
    vendored from the npm package ``htmx.org`` and served from the installed package."""
    router = APIRouter(include_in_schema=False, dependencies=[require("read", cookie=True)])

    async def _render(request: Request, name: str) -> HTMLResponse:
        return render_panels(name, await current_panels(request))

    @router.get("/", response_class=HTMLResponse)
    async def console(request: Request) -> HTMLResponse:
        """The operator console."""
        return await _render(request, "console.html")

    @router.get("/console/panels", response_class=HTMLResponse)
    async def panels(request: Request) -> HTMLResponse:
        """The panels alone: what the console's htmx refresh swaps in."""
        return await _render(request, "panels.html")

    @router.get(f"{STATIC_URL}/htmx.min.js")
    async def htmx() -> Response:
        return Response(
            _htmx(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return router
