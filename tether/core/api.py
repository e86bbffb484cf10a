"""HTTP plumbing shared by every capability: one error mapping, health and metrics routes."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import psycopg
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from tether.core import health
from tether.core.auth import require
from tether.core.bootstrap import Runtime
from tether.core.console import current_panels, render_panels
from tether.core.errors import (
    Busy,
    DatabaseUnavailable,
    DataRejected,
    TetherError,
    Unauthorized,
    UpstreamError,
    one_line,
)
from tether.core.limits import excerpt
from tether.core.metrics import exposition, metrics_response
from tether.core.web import error_page, wants_html

logger = logging.getLogger(__name__)
HEALTH_TIMEOUT_S = 0.8


@dataclass(frozen=True, kw_only=True)
class Capability:
    """How a capability plugs into the app: its router, and how to build its service.

    ``build`` yields the service for the app's lifetime; it is stored as ``app.state.<name>``.
    """

    name: str
    router: APIRouter
    build: Callable[[Runtime], AbstractAsyncContextManager[object]]


def install_error_handlers(app: FastAPI) -> None:
    """Map every ``TetherError`` to its status code; anything else stays a plain 500."""

    @app.exception_handler(TetherError)
    async def _tether_error(request: Request, exc: TetherError) -> Response:
        if isinstance(exc, DatabaseUnavailable) and (down := database_down(request, exc.message)):
            return down
        if wants_html(request):
            return error_page(exc.status_code, exc.message)
        detail = excerpt(exc.message, 1000)  # it may quote the caller's input: not a page of it
        body: dict[str, object] = {"error": type(exc).__name__, "detail": detail}
        if isinstance(exc, UpstreamError | DatabaseUnavailable | DataRejected | Busy):
            body["reason"] = exc.reason
        if exc.status_code >= 500:
            logger.warning("request failed: %s", exc.message, extra={"action": "request_failed"})
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else {}
        if (retry_after := getattr(exc, "retry_after_s", None)) is not None:
            headers["Retry-After"] = str(retry_after)  # a circuit open until a known time
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    sweeps: set[asyncio.Task[None]] = set()  # at most one; a reference keeps it alive

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def _database_down(request: Request, exc: Exception) -> Response:
        # no connection within TETHER_DB_POOL_TIMEOUT_S, or the server went away mid-request
        runtime = getattr(request.app.state, "runtime", None)
        if isinstance(exc, psycopg.OperationalError) and runtime is not None and not sweeps:
            sweep = asyncio.create_task(_sweep(runtime))
            sweeps.add(sweep)
            sweep.add_done_callback(sweeps.discard)
        return database_down(request, await _why(request, exc)) or await _tether_error(
            request, DatabaseUnavailable()
        )

    # a browser gets a page; others the JSON answer of the handler installed before this one
    as_json = app.exception_handlers.get(StarletteHTTPException, http_exception_handler)

    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if wants_html(request):  # a browser on an unknown page gets a page, not JSON
            return error_page(exc.status_code, str(exc.detail))
        answer = as_json(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(StarletteHTTPException, _http_error)


DOWN_TITLE = "Database unreachable"
DOWN_HINT = (
    "tether cannot reach its PostgreSQL database, so it can neither check your sign-in nor "
    "read anything. Nothing is lost: this page works again as soon as the database answers "
    "(/healthz says when)."
)


def database_down(request: Request, why: str) -> Response | None:
    """What the operator's views answer while the database does not (None: the usual 503).

    ``/metrics`` answers 200 with ``tether_database_up 0`` only: its credential cannot be checked,
    so nothing else (``/healthz`` tells anyone as much), and a scrape that failed instead would
    look like tether down. The console's refresh gets a Service panel saying so (swapped in by
    htmx, see ``console.html``); a page, an error page that names the database.
    """
    path = request.url.path
    if path == "/metrics":
        body = exposition(health.unreachable_panel(why).gauges, process=False)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
    if path == "/console/panels" and request.headers.get("hx-request") == "true":
        return render_panels("panels.html", [health.unreachable_panel(why)], status_code=503)
    if wants_html(request):
        return error_page(503, f"The database does not answer: {why}", DOWN_TITLE, DOWN_HINT)
    return None


async def _why(request: Request, exc: Exception) -> str:
    """Why the database failed: libpq's reason for a page (``health.reason_for``), which the
    pool's ``PoolTimeout`` hid; the short one where nobody reads it."""
    runtime = getattr(request.app.state, "runtime", None)
    if wants_html(request) and runtime is not None and isinstance(exc, psycopg.OperationalError):
        return await health.reason_for(exc, runtime.database_url)
    return one_line(exc)


async def _sweep(runtime: Runtime) -> None:
    """After a connection broke, test the pool's idle ones at once: after a server restart each
    held a dead one, and each cost a client a 503 until the pool had met them all."""
    try:
        await runtime.pool.check()
    except Exception as exc:  # the server still down: the next failure sweeps again
        logger.info("pool check after a broken connection failed: %s", exc)


def core_router() -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False, dependencies=[require("read")])
    async def metrics(request: Request) -> object:
        return await metrics_response(await current_panels(request))

    probe: dict[str, asyncio.Future[str | None]] = {}  # the check in flight, if any

    @router.get("/healthz", tags=["ops"], responses={503: {"description": "Database down"}})
    async def healthz(request: Request) -> JSONResponse:
        """Its own short connection (not the request pool's queue): an answer within a second.
        Open to anyone, so concurrent calls share the check in flight: a flood of them opened a
        connection each and used up the server's slots."""
        runtime: Runtime = request.app.state.runtime
        running = probe.get("now")
        if running is None:
            running = probe["now"] = asyncio.ensure_future(
                health.check(runtime.database_url, HEALTH_TIMEOUT_S)
            )
            running.add_done_callback(lambda _: probe.pop("now", None))
        why = await asyncio.shield(running)
        if why is not None:
            body = {
                "status": "unavailable",
                "error": DatabaseUnavailable.__name__,
                # open to anyone: the kind of failure, not libpq's text (host, user)
                "detail": f"database: {health.category(why)}",
                "reason": DatabaseUnavailable.reason,
            }
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok"})

    return router
