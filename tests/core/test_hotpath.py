"""``@hot`` routes: served by ``HotRoutes`` with the route's own requirement, endpoint and the
app's error handlers; a route the fast path cannot serve as FastAPI would is refused at start."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import SecretStr
from starlette.requests import ClientDisconnect

from tether.core.api import install_error_handlers
from tether.core.auth import require
from tether.core.errors import InvalidInput
from tether.core.hotpath import hot, install_hot_routes, read_body
from tether.core.security import install_security
from tether.core.settings import Settings

TOKEN = "hotpath-test-events-token-0123456789"


def _app(settings: Settings) -> FastAPI:
    app = FastAPI()
    install_security(app, settings.model_copy(update={"events_token": SecretStr(TOKEN)}))
    install_error_handlers(app)
    router = APIRouter(prefix="/api")

    @router.post("/hot", dependencies=[require("events")])
    @hot
    async def hot_route(request: Request) -> Response:
        body = await request.body()
        if body == b"bad":
            raise InvalidInput("bad body")
        # FastAPI's own request handling leaves its exit stack in the scope; the fast path not
        return Response(str("fastapi_inner_astack" in request.scope).encode(), status_code=202)

    @router.post("/plain", dependencies=[require("events")])
    async def plain_route(request: Request) -> Response:
        return Response(str("fastapi_inner_astack" in request.scope).encode(), status_code=202)

    app.include_router(router)
    install_hot_routes(app)
    return app


async def test_a_hot_route_skips_fastapi_with_the_same_answers(settings: Settings) -> None:
    transport = httpx.ASGITransport(app=_app(settings))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        hot_answer = await client.post("/api/hot", content=b"{}", headers=auth)
        plain = await client.post("/api/plain", content=b"{}", headers=auth)
        refused = await client.post("/api/hot", content=b"{}")
        wrong = await client.post("/api/hot", content=b"{}", headers={"Authorization": "Bearer x"})
        invalid = await client.post("/api/hot", content=b"bad", headers=auth)
        other_method = await client.get("/api/hot", headers=auth)
    assert (hot_answer.status_code, hot_answer.text) == (202, "False")
    assert (plain.status_code, plain.text) == (202, "True")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401 and wrong.json()["error"] == "Unauthorized"
    assert invalid.status_code == 422 and invalid.json()["detail"] == "bad body"
    assert other_method.status_code == 405


def test_a_route_the_fast_path_cannot_serve_is_refused() -> None:
    app = FastAPI()

    @app.post("/things/{thing}", dependencies=[require("events")])
    @hot
    async def with_parameter(request: Request) -> Response:
        return Response(b"")

    with pytest.raises(TypeError, match="hot route /things/"):
        install_hot_routes(app)

    bare = FastAPI()

    @bare.post("/open")
    @hot
    async def without_requirement(request: Request) -> Response:
        return Response(b"")

    with pytest.raises(TypeError, match="hot route /open"):
        install_hot_routes(bare)


async def test_read_body_joins_the_chunks_and_refuses_a_client_that_left() -> None:
    """``read_body`` reads as ``Request.body`` does: every chunk, or ``ClientDisconnect``."""
    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}

    def receiving(*messages: dict[str, object]) -> Callable[[], Awaitable[dict[str, object]]]:
        pending = list(messages)

        async def receive() -> dict[str, object]:
            return pending.pop(0)

        return receive

    chunks = receiving(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "more_body": True},
        {"type": "http.request", "body": b"c"},
    )
    assert await read_body(Request(scope, chunks)) == b"abc"
    gone = receiving(
        {"type": "http.request", "body": b"a", "more_body": True}, {"type": "http.disconnect"}
    )
    with pytest.raises(ClientDisconnect):
        await read_body(Request(scope, gone))
