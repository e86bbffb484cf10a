"""No development secret works off loopback: the events token and session cookies resting on a
weak secret are refused for a remote client (as a same-host proxy forwarding X-Forwarded-For
makes ``request.client``), through the real security wiring on an ASGI transport (and a real
database for the sessions)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from tether.core.api import install_error_handlers
from tether.core.auth import require
from tether.core.security import install_security
from tether.core.settings import Settings

REMOTE = ("203.0.113.9", 1234)
STRONG = "weak-secret-test-events-token-0123456789"


def _app(settings: Settings, pool: AsyncConnectionPool[Any] | None = None) -> FastAPI:
    """The security wiring alone; ``pool`` (a real database) where a login stores its session."""
    app = FastAPI()
    install_security(app, settings, pool=None if pool is None else (lambda: pool))
    install_error_handlers(app)
    router = APIRouter()

    @router.post("/api/v1/events", dependencies=[require("events")])
    async def events() -> Response:
        return Response(status_code=202)

    @router.get("/page", dependencies=[require("events", cookie=True)])
    async def page() -> Response:
        return Response(status_code=200)

    app.include_router(router)
    return app


async def _post(app: FastAPI, token: str, client: tuple[str, int]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.post("/api/v1/events", headers={"Authorization": f"Bearer {token}"})


async def test_the_development_events_token_works_only_from_loopback() -> None:
    app = _app(Settings())  # events_token is the published dev-events-token
    refused = await _post(app, "dev-events-token", REMOTE)
    assert refused.status_code == 401
    assert "TETHER_EVENTS_TOKEN" in refused.text and "random value" in refused.text
    assert (await _post(app, "dev-events-token", ("127.0.0.1", 1234))).status_code == 202
    assert (await _post(app, "dev-events-token", ("::1", 1234))).status_code == 202


@pytest.mark.parametrize("weak", ["short", "dev-0123456789abcdefghij"], ids=["short", "dev-"])
async def test_short_and_dev_tokens_are_refused_from_remote_clients(weak: str) -> None:
    app = _app(Settings(events_token=SecretStr(weak)))
    assert (await _post(app, weak, REMOTE)).status_code == 401


async def test_a_strong_events_token_works_from_anywhere() -> None:
    app = _app(Settings(events_token=SecretStr(STRONG)))
    assert (await _post(app, STRONG, REMOTE)).status_code == 202
    assert (await _post(app, "dev-events-token", REMOTE)).status_code == 401  # not the token


async def _login_and_get(app: FastAPI, token: str, client: tuple[str, int]) -> list[int]:
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        login = await http.post("/login", data={"token": token, "next": "/page"})
        local = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=local, base_url="http://t") as here:
            signed = await here.post("/login", data={"token": token, "next": "/page"})
        cookies = dict(signed.cookies)
        page = await http.get("/page", cookies=cookies)
        return [login.status_code, signed.status_code, page.status_code]


async def test_sessions_resting_on_a_weak_secret_work_only_from_loopback(
    pool: AsyncConnectionPool[Any],
) -> None:
    # a development events token cannot sign in remotely; a local sign-in's cookie, signed
    # with an unset (per-process, development only) session secret, is refused remotely
    app = _app(Settings(events_token=SecretStr(STRONG)), pool)
    assert await _login_and_get(app, STRONG, REMOTE) == [303, 303, 401]
    assert (await _login_and_get(_app(Settings(), pool), "dev-events-token", REMOTE))[0] == 401
    strong = Settings(events_token=SecretStr(STRONG), session_secret=SecretStr(STRONG + "-s"))
    assert await _login_and_get(_app(strong, pool), STRONG, REMOTE) == [303, 303, 200]
