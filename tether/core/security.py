"""Wires authentication, input limits and documented error answers into the app in one call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tether.core.auth import COOKIE, Authenticator, Requirement, authenticator, bearer
from tether.core.errors import LoginRequired, TetherError
from tether.core.headers import SecurityHeaders, wrap_outermost
from tether.core.hotpath import answer, handler_for
from tether.core.limits import excerpt, install_limits
from tether.core.settings import Settings
from tether.core.throttle import LoginThrottle, client_key
from tether.core.web import render

# The statuses any route may answer besides its own; every one carries an ``ErrorOut`` body.
ERROR_STATUSES = {
    "400": "Malformed request line or headers",
    "401": "No valid credential",
    "403": "The credential lacks the scope",
    "404": "No such object",
    "409": "Conflicts with what is stored (the reason says which), or busy: try again",
    "413": "Request body too large",
    "422": "Invalid input",
    "431": "Request headers too large",
    "503": "The database or an upstream system is unavailable",
}
PUBLIC_PATHS = frozenset(
    {"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/login", "/logout"}
)


class FieldProblem(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error answer of tether."""

    error: str
    detail: str
    reason: str | None = None
    errors: list[FieldProblem] | None = None


def install_security(
    app: FastAPI,
    settings: Settings,
    *,
    pool: Callable[[], AsyncConnectionPool[Any]] | None = None,
) -> None:
    """Authentication (``app.state.auth``), ``/login``, input limits, security headers,
    documented errors."""
    database = pool or (lambda: app.state.runtime.pool)
    app.state.auth = Authenticator(settings, database)
    install_limits(app, settings)
    wrap_outermost(app, SecurityHeaders)  # the limits' refusals and a bug's 500 get them too
    app.include_router(login_router(settings, database))

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> HTMLResponse:
        target = quote(request.url.path, safe="/")
        return render(
            "tether.core",
            "login.html",
            status_code=401,
            failed=False,
            next=target,
            headers={"WWW-Authenticate": "Bearer"},
        )

    checked_invalid = app.exception_handlers[RequestValidationError]

    async def _refusal(request: Request) -> Response | None:
        """The route's credential check, run now: its refusal, or None when it passes."""
        dependant = getattr(request.scope.get("route"), "dependant", None)
        for dependency in getattr(dependant, "dependencies", ()):
            if isinstance(dependency.call, Requirement):
                try:
                    await dependency.call(request, await bearer(request))
                except TetherError as refused:
                    handler = handler_for(app.exception_handlers, refused)
                    assert handler is not None  # install_error_handlers maps every TetherError
                    return await answer(handler, request, refused)
        return None

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: Exception) -> Response:
        """A body that is not JSON at all fails before the route's credential check: check the
        credential first, so a caller without one learns nothing about the input rules."""
        return await _refusal(request) or await answer(checked_invalid, request, exc)

    @app.exception_handler(400)
    async def _unparsable(request: Request, exc: Exception) -> Response:
        """The same for a body the JSON parser gives up on (nested too deep): FastAPI answers
        it with a 400 of its own, before the credential check too."""
        others = {k: v for k, v in app.exception_handlers.items() if k != 400}
        handler = handler_for(others, exc)
        assert handler is not None  # install_error_handlers maps HTTP errors
        return await _refusal(request) or await answer(handler, request, exc)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation declares the shared error statuses with the ``ErrorOut`` body."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (FieldProblem, ErrorOut):
        components[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for status, text in ERROR_STATUSES.items():
                if path in PUBLIC_PATHS and status in ("401", "403"):
                    continue
                responses[status] = {"description": text, **ref}
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return schema


HOME = "/"  # the operator console: where sign-in leads unless a page sent the browser there


def _safe_next(target: str) -> str:
    """Only a path on this site (no scheme, no ``//host``) is followed after sign-in."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else HOME


def _throttled(wait_s: int, target: str) -> HTMLResponse:
    """429 with when to try again, as a page (the form, which stays usable then and still leads
    to ``target``)."""
    until = (datetime.now(UTC) + timedelta(seconds=wait_s)).strftime("%H:%M:%S UTC")
    return render(
        "tether.core",
        "login.html",
        status_code=429,
        failed=False,
        wait=f"Too many failed sign-ins from your address: try again in {wait_s} s ({until}).",
        next=target,
        headers={"Retry-After": str(wait_s)},
    )


def login_router(settings: Settings, pool: Callable[[], AsyncConnectionPool[Any]]) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    throttle = LoginThrottle(settings.login_max_failures, settings.login_failure_window_s, pool)

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(next: str = HOME) -> HTMLResponse:
        return render(
            "tether.core", "login.html", failed=False, next=_safe_next(excerpt(next, 500))
        )

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        """POST only (and a SameSite=Strict cookie), so another site cannot use a session.
        Each attempt takes its place in its address's count before its credential is tried,
        and a right credential gives it back, so concurrent guesses cannot all pass the check
        first: an address whose window is full gets 429 without its credential being tried.

        Without the database the throttle cannot be asked, and the request fails with the app's
        503 for it (a page naming the database) before any credential is tried: no guess goes
        uncounted, and no sign-in could succeed then anyway (API keys and the session a sign-in
        starts live in the database)."""
        client = client_key(request.client.host if request.client else "")
        try:
            form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
        except ValueError:  # more fields than the form has: not a sign-in (it was a 500)
            return render("tether.core", "login.html", status_code=400, failed=True, next=HOME)
        target = _safe_next((form.get("next") or [HOME])[0])
        attempt = await throttle.reserve(client)
        if attempt.wait_s:
            return _throttled(attempt.wait_s, target)
        token = (form.get("token") or [""])[0].strip()
        auth: Authenticator = authenticator(request)
        principal = await auth.from_bearer(token) if token.isascii() and token else None
        if principal is None:  # its place stays taken: a counted failure
            return render("tether.core", "login.html", status_code=401, failed=True, next=target)
        await throttle.release(client, attempt)  # a right credential is no failure
        auth.refuse_weak_off_loopback(principal, request)
        value, max_age = await auth.session_cookie(principal)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=auth.settings.session_cookie_secure,
            path="/",
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        """Revoke the session on the server first: a copy of the cookie must not outlive it."""
        if value := request.cookies.get(COOKIE):
            await authenticator(request).end_session(value)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return router
