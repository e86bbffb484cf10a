"""HTTP plumbing shared by every capability: one error mapping, health and metrics routes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import psycopg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from tether.core.bootstrap import Runtime
from tether.core.errors import TetherError, UpstreamError
from tether.core.metrics import metrics_response

logger = logging.getLogger(__name__)


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
    async def _tether_error(request: Request, exc: TetherError) -> JSONResponse:
        body: dict[str, object] = {"error": type(exc).__name__, "detail": exc.message}
        if isinstance(exc, UpstreamError):
            body["reason"] = exc.reason
        if exc.status_code >= 500:
            logger.warning("request failed: %s", exc.message, extra={"action": "request_failed"})
        return JSONResponse(body, status_code=exc.status_code)


def core_router() -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> object:
        return metrics_response()

    @router.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict[str, str]:
        # a connection of its own: a burst of requests queued on the pool must not make the
        # process look dead
        runtime: Runtime = request.app.state.runtime
        async with await psycopg.AsyncConnection.connect(
            runtime.database_url, connect_timeout=5, autocommit=True
        ) as conn:
            await conn.execute("SELECT 1")
        return {"status": "ok"}

    return router
