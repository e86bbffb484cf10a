"""Security headers on every response of the app: pages, the JSON API, errors and the hot routes.

Pure ASGI (a wrapped ``send`` that appends constant tuples), so the hot intake pays a few list
items, not Starlette's ``BaseHTTPMiddleware``. One policy for every response keeps a page that
forgot its headers impossible; on a JSON answer they cost nothing and harm nothing.

The pages' policy allows scripts from this site only (htmx is served by the app; no template has
an inline script or event handler attribute) and inline styles (the shared layout's ``<style>``
and a few ``style=`` attributes: a style cannot run code, and templates autoescape). ``/docs``
and ``/redoc`` come from FastAPI with an inline start-up script, ReDoc with a ``blob:`` worker:
they get a policy allowing those, and show no data themselves. ``Cache-Control: no-store``
unless the response chose its own: every page but ``/login`` and every API answer is behind a
credential, and a shared or back-button cache must not keep them.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
PAGES_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_ASSETS = "/static-offline-docs/"  # fastapi_offline's bundles: cacheable, no data
_PAGES = (*_COMMON, (b"content-security-policy", PAGES_CSP.encode()))
_DOCS = (*_COMMON, (b"content-security-policy", DOCS_CSP.encode()))
_NO_STORE = (b"cache-control", b"no-store")
# the same set for the answers the HTTP protocol writes itself or has uvicorn's 503 app send
# (400, 408, 431, 503: no tether app runs for them), and as a block of header lines
PROTOCOL_HEADERS = (*_PAGES, _NO_STORE)
RAW_HEADERS = b"".join(name + b": " + value + b"\r\n" for name, value in PROTOCOL_HEADERS)


class SecurityHeaders:
    """Adds the security headers to every HTTP response the wrapped app starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        docs = path in DOCS_PATHS or path.startswith(DOCS_ASSETS)
        extra = _DOCS if docs else _PAGES

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))  # a copy: never the response's own
                headers.extend(extra)
                if not path.startswith(DOCS_ASSETS) and not any(
                    name.lower() == b"cache-control" for name, _ in headers
                ):
                    headers.append(_NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def wrap_outermost(app: FastAPI, middleware: Callable[[ASGIApp], ASGIApp]) -> None:
    """Put ``middleware`` around the whole stack Starlette builds, its ``ServerErrorMiddleware``
    included: added with ``add_middleware`` it sits inside that one, and a bug's plain 500 went
    out without the headers."""
    build = app.build_middleware_stack

    def build_wrapped() -> ASGIApp:
        return middleware(build())

    app.build_middleware_stack = build_wrapped  # type: ignore[method-assign]
