"""One flat route table in place of FastAPI's walk through the included routers.

FastAPI 0.163 keeps an included router as one lazy route: to find a request's route the app asks
each included router in turn whether one of its routes matches, the router that says yes matches
again to pick the route (once more per level of nesting), and a request that matches nothing is
tried against every route twice more (the trailing-slash redirect, then the low-priority routes)
before its 404. With some 30 routers that walk was most of a plain request's CPU.

``RouteTable`` sits where the app's router does its routing (``router.middleware_stack``, inside
the exception handlers like the router itself). It lists every route once, in the order FastAPI
tries them, each with the context FastAPI built for its inclusion (full path, the routers'
dependencies). A request is matched against that list with FastAPI's and Starlette's own
``matches``, asked only of the routes whose path can match (a dict for fixed paths, the route's
regex for the others), and the first full match (else the first method mismatch) is handed on as
FastAPI's router hands it: FastAPI still answers a wrong method (405 with Allow), solves the
dependencies (the route's ``require``) and builds the response. A request matching nothing gets
the same trailing-slash redirect, or the router's own 404.

What the table does not model goes to FastAPI's router as before: websocket and lifespan scopes,
requests FastAPI's telemetry follows, and apps with low-priority (frontend) routes. Routes added
later are seen: the table is rebuilt when FastAPI's route versions change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter, _EffectiveRouteContext, _IncludedRouter
from starlette._utils import get_route_path
from starlette.datastructures import URL
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

Found = tuple[Match, Scope, "_Entry"]
_FASTAPI = "fastapi"  # FastAPI's own key in the scope, and its two entries the handler reads
_CONTEXT = "effective_route_context"
_INCLUDED = "included_router"
_REGEX_MATCHES = (Route.matches, APIRoute.matches)  # matching that is exactly its path regex


@dataclass(frozen=True, slots=True)
class _Entry:
    """One route as FastAPI would try it."""

    index: int  # position in FastAPI's order
    route: BaseRoute  # what handles the request (the original route of an included API route)
    context: _EffectiveRouteContext | None = None  # FastAPI's state of the inclusion, if any
    branch: _IncludedRouter | None = None  # the inclusion the route came through
    regex: re.Pattern[str] | None = None  # the route matches only paths this matches
    fixed: str | None = None  # the route matches only this path (and it plus a final newline)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """What the route answers to FastAPI's router for ``scope``."""
        if self.context is None:
            return self.route.matches(scope)
        match, child_scope = self.context.matches(scope)
        if match is not Match.NONE and isinstance(self.route, APIRoute):
            child_scope["route"] = self.route  # as APIRoute.matches adds it
        return match, child_scope

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request on as FastAPI's router does once it chose this route."""
        if self.context is not None:
            own = scope.setdefault(_FASTAPI, {})
            own[_INCLUDED] = self.branch
            own[_CONTEXT] = self.context
        await self.route.handle(scope, receive, send)


def _path_test(
    route: BaseRoute, context: _EffectiveRouteContext | None
) -> tuple[re.Pattern[str] | None, str | None]:
    """The regex a path must match for ``route`` to match it, where that is all its matching
    checks of the path, and the one path it matches if the regex is a fixed path's."""
    if context is not None and isinstance(route, APIRoute):
        plain = type(route).matches is APIRoute.matches  # then the context's matching decides
        shape: Route | _EffectiveRouteContext | None = context if plain else None
    else:
        plain = isinstance(route, Route) and type(route).matches in _REGEX_MATCHES
        shape = route if isinstance(route, Route) and plain else None
    if shape is None:
        return None, None
    fixed = shape.path_format if not shape.param_convertors else None
    if fixed is not None and shape.path_regex.pattern != f"^{re.escape(fixed)}$":
        fixed = None
    return shape.path_regex, fixed


class _Unsupported(Exception):
    """A route the table cannot hand requests to as FastAPI would."""


def _walk(
    branch: _IncludedRouter, routers: list[APIRouter]
) -> Iterator[tuple[_EffectiveRouteContext, _IncludedRouter]]:
    routers.append(branch.original_router)
    for candidate in branch.effective_candidates():
        if isinstance(candidate, _IncludedRouter):
            yield from _walk(candidate, routers)
        else:
            yield candidate, branch


def _entries(routes: list[BaseRoute], routers: list[APIRouter]) -> Iterator[_Entry]:
    """Every route, in FastAPI's order; ``routers`` gets the routers they are included from."""
    index = 0
    for route in routes:
        if not isinstance(route, _IncludedRouter):
            yield _Entry(index, route, None, None, *_path_test(route, None))
            index += 1
            continue
        for context, branch in _walk(route, routers):
            original = context.original_route
            handler = original if isinstance(original, APIRoute) else context.starlette_route
            if handler is None:
                raise _Unsupported(original)
            yield _Entry(index, handler, context, branch, *_path_test(handler, context))
            index += 1


@dataclass(frozen=True)
class _Table:
    """The routes by what a path must be (fixed paths) or match (the others, in order)."""

    fixed: dict[str, tuple[_Entry, ...]] = field(default_factory=dict)
    others: tuple[_Entry, ...] = ()

    @classmethod
    def build(cls, router: APIRouter, routers: list[APIRouter]) -> _Table | None:
        """The table of ``router`` (None where FastAPI's routing must stay); ``routers`` gets
        the routers it was built from."""
        try:
            entries = list(_entries(router.routes, routers))
        except _Unsupported:
            return None
        if any(True for _ in router._iter_low_priority_routes()):
            return None  # frontend routes: matched by specificity after everything else
        fixed: dict[str, list[_Entry]] = {}
        for entry in entries:
            if entry.fixed is not None:
                fixed.setdefault(entry.fixed, []).append(entry)
        others = tuple(e for e in entries if e.fixed is None)
        return cls({p: tuple(e) for p, e in fixed.items()}, others)

    def candidates(self, path: str) -> list[_Entry]:
        """The routes that may match ``path``, in FastAPI's order."""
        # "^/a$" also matches "/a\n": Python's $ matches before a final newline
        hits = [*self.fixed.get(path.removesuffix("\n"), ())]
        hits += (e for e in self.others if e.regex is None or e.regex.match(path))
        return sorted(hits, key=_index) if len(hits) > 1 else hits

    def find(self, scope: Scope) -> Found | None:
        """The first route fully matching ``scope``, else the first partly matching, as the
        router's loop picks them."""
        partial: Found | None = None
        for entry in self.candidates(get_route_path(scope)):
            match, child_scope = entry.matches(scope)
            if match is Match.FULL:
                return match, child_scope, entry
            if match is Match.PARTIAL and partial is None:
                partial = (match, child_scope, entry)
        return partial


def _index(entry: _Entry) -> int:
    return entry.index


class RouteTable:
    """The router's routing, over the flat table (see the module's docstring)."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self.routers: list[APIRouter] = []
        self.table: _Table | None = None
        self.state = (-1, -1)
        self.current()

    def _state(self) -> tuple[int, int]:
        """Changes when a route is added: FastAPI counts each router's route changes (its own
        walk over the routers, ``_get_routes_version``, costs more than a request's matching);
        only the app's own list is read as it is."""
        return sum(r._routes_version for r in self.routers), len(self.router.routes)

    def current(self) -> _Table | None:
        """The table (None: FastAPI routes), rebuilt if a route was added since."""
        if self._state() != self.state:
            routers = [self.router]
            self.table = _Table.build(self.router, routers)
            self.routers = list({id(r): r for r in routers}.values())
            self.state = self._state()
        return self.table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        table = self.current() if scope["type"] == "http" else None
        if table is None or "fastapi.telemetry" in scope:
            await self.router.app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self.router
        found = table.find(scope)
        if found is not None:
            _, child_scope, entry = found
            scope.update(child_scope)
            await entry.handle(scope, receive, send)
            return
        route_path = get_route_path(scope)
        if self.router.redirect_slashes and route_path != "/":
            other = dict(scope)  # the other spelling: with or without the trailing slash
            path = scope["path"]
            other["path"] = path.rstrip("/") if route_path.endswith("/") else path + "/"
            if table.find(other) is not None:
                await RedirectResponse(url=str(URL(scope=other)))(scope, receive, send)
                return
        await self.router.default(scope, receive, send)


def install_route_table(app: FastAPI) -> RouteTable:
    """Route the app's requests through a ``RouteTable`` (call once the routers are included)."""
    router = app.router
    if router.middleware_stack != router.app:
        raise TypeError("the app's router has middleware of its own: no place for a route table")
    table = RouteTable(router)
    router.middleware_stack = table
    return table
