"""Hot routes: a route marked ``@hot`` is served without FastAPI's routing and dependency solving.

An upstream system may POST one event per request, thousands a second, and on 2 cores FastAPI's
per-request machinery (matching through the included routers, solving ``require`` and
``HTTPBearer``, its exit stacks) cost as much as the work itself. For a route that is plain
enough, ``HotRoutes`` (the innermost middleware, inside the input limits) calls the same pieces
directly: the route's own ``Requirement`` with the same bearer parsing, then the route's own
endpoint with the ``Request``; exceptions are answered by the app's own exception handlers. So
the semantics stay in one place, the route, which still documents itself in OpenAPI and serves
any other method.

A hot route has a fixed path (no parameters), takes only ``request: Request``, and has exactly
one dependency, its ``require(scope)``; ``install_hot_routes`` refuses anything else at start.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from tether.core.auth import Requirement, bearer

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Any], Response | Awaitable[Response]]
F = TypeVar("F", bound=Endpoint)
_HOT = "__tether_hot__"


def hot(endpoint: F) -> F:
    """Mark a route's endpoint to be served by ``HotRoutes`` (put it under the route decorator)."""
    setattr(endpoint, _HOT, True)
    return endpoint


async def read_body(request: Request) -> bytes:
    """The request's whole body, as ``Request.body`` reads it (``ClientDisconnect`` when the
    client leaves first) but without its async generator, which asyncio enters in a weak set
    at its first step and Starlette wraps in ``aclosing``: those cost twice the read. For a hot
    endpoint that reads its body once; the request's own ``body()`` is not available after."""
    chunks = []
    while True:
        message = await request.receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def handler_for(handlers: Mapping[Any, Handler], exc: Exception) -> Handler | None:
    """The app's exception handler for ``exc``, looked up as Starlette's ExceptionMiddleware
    does (an ``HTTPException``'s status code first, then the exception's classes in order)."""
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    return next((handlers[kind] for kind in type(exc).__mro__ if kind in handlers), None)


async def answer(handler: Handler, request: Request, exc: Exception) -> Response:
    """Run an exception handler, sync or async."""
    result = handler(request, exc)
    return await result if inspect.isawaitable(result) else result


@dataclass(frozen=True)
class _Hot:
    route: BaseRoute
    requirement: Requirement
    endpoint: Endpoint


class HotRoutes:
    """Serves the hot routes' requests directly; every other request goes on to FastAPI."""

    def __init__(self, app: ASGIApp, *, owner: FastAPI, table: dict[tuple[str, str], _Hot]) -> None:
        self.app = app
        self.owner = owner
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        http = scope["type"] == "http"
        found = self.table.get((scope["method"], scope["path"])) if http else None
        if found is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = found.route  # as the router sets it
        scope["endpoint"] = found.endpoint
        request = Request(scope, receive, send)
        try:
            await found.requirement(request, await bearer(request))
            response = await found.endpoint(request)
        except Exception as exc:
            handler = handler_for(self.owner.exception_handlers, exc)
            if handler is None:
                raise
            response = await answer(handler, request, exc)
        await response(scope, receive, send)


def _hot_route(route: RouteContext) -> _Hot:
    """The hot route of ``route``, as included (its full path, router-level dependencies too)."""
    dependencies = route.dependant.dependencies
    requirement = dependencies[0].call if len(dependencies) == 1 else None
    endpoint = route.endpoint
    parameters = list(inspect.signature(endpoint).parameters.values()) if endpoint else []
    plain = (
        isinstance(route.original_route, APIRoute)
        and not route.param_convertors
        and len(parameters) == 1
        and route.dependant.request_param_name == parameters[0].name
    )
    if not plain or endpoint is None or not isinstance(requirement, Requirement):
        raise TypeError(
            f"hot route {route.path}: needs a fixed path, one require(...) dependency and an "
            "endpoint taking only the Request"
        )
    return _Hot(route=route.original_route, requirement=requirement, endpoint=endpoint)


def install_hot_routes(app: FastAPI) -> None:
    """Serve the app's ``@hot`` routes through ``HotRoutes`` (call after including the routers,
    before the app serves)."""
    table = {
        (method, str(route.path)): _hot_route(route)
        for route in iter_route_contexts(app.routes)
        if getattr(route.endpoint, _HOT, False)
        for method in route.methods or ()
    }
    if table:  # innermost of the user middlewares: inside the input limits, like a route
        app.user_middleware.append(Middleware(HotRoutes, owner=app, table=table))
