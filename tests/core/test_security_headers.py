"""Every response carries the security headers (no sniffing, no framing, no referrer, a CSP,
no-store unless the route chose its caching), pages and API alike, the hot intake and the input
guard's refusals included; and the pages keep within their CSP. The app on a real socket."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tether.core.headers import DOCS_CSP, PAGES_CSP
from tether.core.settings import Settings

HOT_INTAKE = "/api/v1/payments/dagpenger"  # served by core/hotpath.py, not FastAPI's routing


@pytest.fixture
def api(settings: Settings, start_api: Any) -> httpx.Client:
    client: httpx.Client = start_api(settings.model_copy(update={"max_body_bytes": 1000}))
    return client


def assert_secured(response: httpx.Response, csp: str = PAGES_CSP) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff", response.request.url
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == csp
    assert "frame-ancestors 'none'" in csp


def test_pages_api_routes_and_refusals_carry_the_security_headers(api: httpx.Client) -> None:
    anonymous = httpx.Client(base_url=api.base_url, timeout=10)
    with anonymous:
        answers = {
            "console": api.get("/"),
            "page": api.get("/accruals/runs"),
            "login": anonymous.get("/login"),
            "api": api.get("/api/v1/payments/orders", params={"sakId": "S1"}),
            "health": anonymous.get("/healthz"),
            "unauthenticated": anonymous.get("/api/v1/payments/orders"),
            "hot intake": anonymous.post(HOT_INTAKE, content=b"<x/>"),
            "too large": api.post(HOT_INTAKE, content=b"x" * 2000),
        }
        docs = [anonymous.get("/docs"), anonymous.get("/redoc")]
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "console": 200,
        "page": 200,
        "login": 200,
        "api": 200,
        "health": statuses["health"],  # 200, or 503 while a capability's upstream is absent
        "unauthenticated": 401,
        "hot intake": 401,
        "too large": 413,
    }
    for answer in [*answers.values()]:
        assert_secured(answer)
        assert answer.headers["cache-control"] == "no-store", answer.request.url
    for answer in docs:
        assert answer.status_code == 200
        assert_secured(answer, DOCS_CSP)


def test_a_route_that_chose_its_caching_keeps_it(api: httpx.Client) -> None:
    htmx = api.get("/static/htmx.min.js")
    assert htmx.status_code == 200
    assert htmx.headers["cache-control"] == "public, max-age=86400"
    assert_secured(htmx)


_SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
_EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


@pytest.mark.parametrize("path", ["/", "/login", "/accruals/runs", "/no-such-page"])
def test_pages_stay_within_their_policy(api: httpx.Client, path: str) -> None:
    """``script-src 'self'``: a page with an inline script, an event handler attribute or a
    script, style or form of another site would break in the browser."""
    page = api.get(path, headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html"), page.text[:200]
    policy = page.headers["content-security-policy"].split("; ")
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    scripts = _SCRIPT.findall(page.text)
    assert all(re.search(r"""\ssrc=["']/[^/]""", attrs) for attrs in scripts), scripts
    assert _HANDLER.search(page.text) is None
    assert _EXTERNAL.search(page.text) is None


async def test_a_bugs_500_carries_them_too() -> None:
    """Starlette answers an unhandled exception in its outermost middleware; the headers are
    put around that one too, not only around the routes."""
    from fastapi import FastAPI

    from tether.core.security import install_security

    app = FastAPI()
    install_security(app, Settings())

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/bug")
    assert answer.status_code == 500
    assert_secured(answer)
    assert answer.headers["cache-control"] == "no-store"
