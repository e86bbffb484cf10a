"""``RouteTable`` answers every request as FastAPI's own routing does: each request is sent
through both on the same app and the answers (status, headers, body) must be the same, for
shapes of routes that make the order of matching matter and for the real app's routes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tether.app import create_app
from tether.core import keys
from tether.core.routetable import RouteTable, install_route_table
from tether.core.settings import Settings

Sent = tuple[str, str, dict[str, str]]
LIVE = {"/metrics", "/", "/console/panels"}  # the console's pages and counters
EXPIRES = re.compile(r"expires=[^;]*")  # a cookie's expiry is the time of the answer


def scope_facts(request: Request) -> dict[str, Any]:
    """What the router left in the scope for the endpoint (objects by identity)."""
    own = request.scope.get("fastapi", {})
    return {
        "route": id(request.scope["route"]),
        "endpoint": request.scope["endpoint"].__name__,
        "path_params": request.path_params,
        "router": id(request.scope["router"]),
        "context": id(own.get("effective_route_context")),
        "included": id(own.get("included_router")),
    }


def needs_key(request: Request) -> None:
    if request.headers.get("x-key") != "k":
        raise HTTPException(401, "no key", headers={"WWW-Authenticate": "Key"})


def tricky_app() -> FastAPI:
    """Nested routers, prefixes, router dependencies, one path's methods in two routers, a
    parametrised route before a fixed one it shadows, a top-level route and a mount."""
    app = FastAPI()

    @app.exception_handler(418)
    async def teapot(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"handled": "teapot"}, status_code=418)

    reads, writes = APIRouter(prefix="/items"), APIRouter(prefix="/items")
    inner = APIRouter(prefix="/deep", dependencies=[Depends(needs_key)])

    @reads.get("/{item_id:int}")
    async def read_item(request: Request, item_id: int) -> dict[str, Any]:
        return scope_facts(request)

    @reads.get("/special")
    async def special(request: Request) -> dict[str, Any]:
        return scope_facts(request)

    @writes.post("/{item_id:int}")
    async def write_item(request: Request, item_id: int) -> dict[str, Any]:
        return scope_facts(request)

    @inner.get("/{name}")
    async def deep(request: Request, name: str) -> dict[str, Any]:
        if name == "teapot":
            raise HTTPException(418)
        return scope_facts(request)

    @inner.get("/fixed")  # shadowed by /{name} before it
    async def shadowed(request: Request) -> dict[str, Any]:
        return scope_facts(request)

    @inner.put("/dir/")
    async def with_slash(request: Request) -> dict[str, Any]:
        return scope_facts(request)

    async def mounted(request: Any) -> PlainTextResponse:
        return PlainTextResponse(f"mounted {request.url.path} {request.scope['root_path']}")

    inner.add_route("/plain/{x}", mounted, methods=["GET"])  # a Starlette route in a router
    inner.mount("/sub", Starlette(routes=[Route("/{x}", mounted)]))  # and a mount
    middle = APIRouter(prefix="/api")
    middle.include_router(inner)
    app.include_router(reads)
    app.include_router(middle)
    app.include_router(writes)

    @app.get("/top/{rest:path}")
    async def top(request: Request, rest: str) -> dict[str, Any]:
        return scope_facts(request)

    app.mount("/m", Starlette(routes=[Route("/{x}", mounted)]))
    return app


TRICKY: list[Sent] = [
    ("GET", "/items/3", {}),
    ("POST", "/items/3", {}),  # the later router's full match wins over the earlier partial
    ("PUT", "/items/3", {}),  # 405, Allow of the first partial match
    ("GET", "/items/special", {}),
    ("POST", "/items/special", {}),
    ("GET", "/items/3/", {}),  # redirected without the slash
    ("GET", "/api/deep/x", {"x-key": "k"}),
    ("GET", "/api/deep/x", {}),  # the router's dependency refuses
    ("GET", "/api/deep/fixed", {"x-key": "k"}),
    ("GET", "/api/deep/teapot", {"x-key": "k"}),  # the app's handler for 418
    ("PUT", "/api/deep/dir", {"x-key": "k"}),  # redirected to the slash
    ("PUT", "/api/deep/dir/", {"x-key": "k"}),
    ("GET", "/api/deep/dir/", {"x-key": "k"}),
    ("GET", "/api/deep/a/b", {}),
    ("GET", "/api/plain/1", {}),  # no prefix of its own router, nor its dependencies
    ("POST", "/api/plain/1", {}),
    ("GET", "/api/sub/1", {}),
    ("GET", "/api/sub", {}),
    ("GET", "/top/a/b/c", {}),
    ("GET", "/m/file", {}),
    ("GET", "/m/a/b", {}),
    ("GET", "/nothing", {}),
    ("GET", "/nothing/", {}),
    ("GET", "/", {}),
    ("GET", "/items/3%0A", {}),  # "$" of a path regex matches before a final newline
    ("GET", "/items/special%0A", {}),
    ("GET", "/api/deep/x?y=1", {"x-key": "k"}),
]


@contextmanager
def routing(app: FastAPI, table: RouteTable | None) -> Iterator[None]:
    """Serve ``app`` with the table, or with FastAPI's routing (None)."""
    app.router.middleware_stack = table if table is not None else app.router.app
    try:
        yield
    finally:
        app.router.middleware_stack = app.router.app


async def answers(app: FastAPI, table: RouteTable | None, sent: list[Sent]) -> list[Any]:
    found = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with routing(app, table):
            for method, path, headers in sent:
                r = await client.request(method, path, headers=headers)
                got = [(k, EXPIRES.sub("expires=*", v)) for k, v in r.headers.items()]
                text = r.text
                live = (path.rstrip("/") or "/") in LIVE
                if live and r.status_code == 200:  # figures move between calls
                    got, text = [h for h in got if h[0] != "content-length"], text[:20]
                found.append((method, path, r.status_code, sorted(got), text))
    return found


async def assert_same(app: FastAPI, table: RouteTable, sent: list[Sent]) -> list[Any]:
    """The answers with the table, once checked equal to FastAPI's answers."""
    ours = await answers(app, table, sent)
    theirs = await answers(app, None, sent)
    assert [a for a, b in zip(ours, theirs, strict=True) if a != b] == []
    return ours


async def test_tricky_routes_are_answered_as_fastapi_answers_them() -> None:
    app = tricky_app()
    routes = list(app.routes)
    table = install_route_table(app)
    assert app.routes == routes  # nothing moved: the OpenAPI document reads the same routes
    got = {
        (m, p): (status, body) for m, p, status, _, body in await assert_same(app, table, TRICKY)
    }
    assert got[("POST", "/items/3")][1].count("write_item") == 1
    assert got[("PUT", "/items/3")][0] == 405
    assert got[("GET", "/items/3/")][0] == 307
    assert (
        got[
            (
                "GET",
                "/api/deep/fixed",
            )
        ][1].count('"endpoint":"deep"')
        == 1
    )
    assert got[("GET", "/api/deep/teapot")] == (418, '{"handled":"teapot"}')
    assert got[("GET", "/m/a/b")][0] == 404 and got[("GET", "/nothing")][0] == 404
    assert got[("GET", "/api/plain/1")] == (200, "mounted /api/plain/1 ")
    assert got[("GET", "/api/sub/1")] == (200, "mounted /api/sub/1 /api/sub")
    assert table.current() is not None  # the table served them, not a fallback


async def test_a_route_added_after_install_is_served() -> None:
    app = tricky_app()
    table = install_route_table(app)
    later = APIRouter(prefix="/later")

    @later.get("/{n}")
    async def late(request: Request, n: str) -> dict[str, Any]:
        return scope_facts(request)

    app.include_router(later)
    sent: list[Sent] = [("GET", "/later/1", {}), ("POST", "/later/1", {})]
    got = await assert_same(app, table, sent)
    assert [status for _, _, status, _, _ in got] == [200, 405]

    @app.post("/later/{n}")  # on the app itself: a later full match after the router's partial
    async def late_post(request: Request, n: str) -> dict[str, Any]:
        return scope_facts(request)

    got = await assert_same(app, table, sent)
    assert [status for _, _, status, _, _ in got] == [200, 200]


def test_a_router_with_middleware_of_its_own_is_refused() -> None:
    app = tricky_app()
    install_route_table(app)
    with pytest.raises(TypeError, match="middleware of its own"):
        install_route_table(app)


# --- the real app ------------------------------------------------------------------------------


@pytest.fixture
async def real_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path with sample parameters) of every route, plus a method it does not take."""
    found = []
    for route in iter_route_contexts(app.routes):
        if route.path is None or not route.methods:
            continue
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        found += [(method, path) for method in sorted(route.methods)]
        found += [("PATCH", path), ("GET", path + "/")]
    return found


async def test_the_apps_routes_answer_as_with_fastapis_routing(
    real_app: FastAPI, db_url: str
) -> None:
    table = real_app.router.middleware_stack
    assert isinstance(table, RouteTable) and table.current() is not None
    _, reader = keys.create(db_url, "reader", ["read"])
    json, html = {"Accept": "application/json"}, {"Accept": "text/html"}
    sent: list[Sent] = [(m, p, json) for m, p in every_route(real_app) if m != "POST"]
    sent += [(m, p, {"Authorization": f"Bearer {reader}"}) for m, p in every_route(real_app)]
    sent += [
        ("GET", "/no/such/page", json),
        ("GET", "/no/such/page", html),
        ("GET", "/healthz", json),
        ("GET", "/healthz/", json),
        ("HEAD", "/healthz", json),
        ("POST", "/healthz", json),
        ("GET", "/openapi.json", json),
        ("HEAD", "/openapi.json", json),
        ("GET", "/docs", html),
        ("GET", "/static-offline-docs/favicon.png", {}),
        ("GET", "/static-offline-docs/none.js", {}),
        ("GET", "/api/v1/payments/status/k1", {"Authorization": "Bearer tth_wrong"}),
        ("DELETE", "/api/v1/payments/status/k1", json),
        ("GET", "/api/v1/payments/status/", json),
        ("GET", "/", html),
        ("GET", "/login", html),
    ]
    got = {(m, p): status for m, p, status, _, _ in await assert_same(real_app, table, sent)}
    assert got[("GET", "/no/such/page")] == 404
    assert got[("POST", "/healthz")] == 405
    assert got[("GET", "/healthz/")] == 307
    assert got[("GET", "/openapi.json")] == 200
    assert got[("GET", "/api/v1/payments/status/k1")] == 401
    assert got[("GET", "/static-offline-docs/none.js")] == 404
