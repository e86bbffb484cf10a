"""Every route needs a credential with the right scope; API keys, the events token and the
session cookie, against the real app on a socket and a real database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import SecretStr

from tether.app import create_app
from tether.core import keys
from tether.core.auth import COOKIE, Requirement
from tether.core.settings import Settings

PUBLIC = {
    "/healthz",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/login",
    "/logout",
    "/static-offline-docs",  # the assets of /docs and /redoc (fastapi-offline), public as they are
}
EVENTS_TOKEN = "auth-test-events-token-0123456789"


def protected_routes(
    settings: Settings, *, templates: bool = False
) -> list[tuple[str, str, str, bool]]:
    """(method, path with sample parameters, required scope, accepts cookie) of every route,
    read from the app itself so a new route is covered without touching this test (with
    ``templates``: the path as declared, ``{name}`` and all)."""
    found = []
    for route in iter_route_contexts(create_app(settings).routes):
        if route.path in PUBLIC:
            continue
        assert route.path is not None and route.methods is not None, route
        assert isinstance(route.original_route, APIRoute), f"{route.path}: not an API route"
        requirements = [
            d.call for d in route.dependant.dependencies if isinstance(d.call, Requirement)
        ]
        assert len(requirements) == 1, f"{route.path} must depend on exactly one require()"
        path = route.path if templates else re.sub(r"\{[^}]+\}", "1", route.path)
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, path, requirements[0].scope, requirements[0].cookie))
    return found


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "events_token": SecretStr(EVENTS_TOKEN),
        }
    )


@pytest.fixture
def api(app_settings: Settings, start_api: Any) -> httpx.Client:
    client: httpx.Client = start_api(app_settings)
    return client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_route_list_covers_what_the_issue_names(app_settings: Settings) -> None:
    routes = {(m, p): s for m, p, s, _ in protected_routes(app_settings)}
    assert routes[("GET", "/metrics")] == "read"
    assert routes[("POST", "/api/v1/events")] == "events"
    assert routes[("POST", "/api/v1/controllable-units")] == "write"
    assert routes[("POST", "/api/v1/compliance-report-versions/1/apply-compliance-units")] == (
        "write"
    )
    assert routes[("GET", "/compliance-report-versions/1/obligation")] == "read"
    assert len(routes) >= 12


def test_the_security_docs_list_every_route_with_its_scope(app_settings: Settings) -> None:
    """docs/security.md's list of routes was written by hand and left out routes ``write``
    allows: it must be the app's, each with the scope its ``require()`` asks."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    row = re.compile(r"^\| `(\w+) (/\S*)` \| `(\w+)` \| (yes)? *\|$", re.MULTILINE)
    documented = {(m, p, s, bool(c)) for m, p, s, c in row.findall(text)}
    assert documented == set(protected_routes(app_settings, templates=True))


def test_every_route_refuses_no_credential_and_the_wrong_scope(
    api: httpx.Client, app_settings: Settings, db_url: str
) -> None:
    anonymous = httpx.Client(base_url=api.base_url, timeout=10)
    for method, path, scope, _ in protected_routes(app_settings):
        none = anonymous.request(method, path)
        assert none.status_code == 401, (method, path, none.text)
        if method == "POST":  # not even JSON: still 401, nothing about the input rules
            junk = anonymous.post(
                path, content=b"{oops", headers={"content-type": "application/json"}
            )
            assert junk.status_code == 401, (path, junk.text)
            deep = anonymous.post(  # the JSON parser gives up on it: a 400 before, as well
                path,
                content=b"[" * 100_000 + b"]" * 100_000,
                headers={"content-type": "application/json"},
            )
            assert deep.status_code in (401, 413), (path, deep.text)
        assert none.headers["www-authenticate"] == "Bearer"
        garbage = anonymous.request(
            method, path, headers=bearer("tth_0123456789abcdef_" + "x" * 43)
        )
        assert garbage.status_code == 401, (method, path)
        others = [s for s in keys.SCOPES if s not in (scope, "admin")]
        _, other = keys.create(db_url, f"not {scope}", others)
        wrong = anonymous.request(method, path, headers=bearer(other))
        assert wrong.status_code == 403, (method, path, wrong.text)
        assert scope in wrong.json()["detail"]
    anonymous.close()


def test_the_public_routes_answer_without_a_credential(api: httpx.Client) -> None:
    anonymous = httpx.Client(base_url=api.base_url, timeout=10)
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/docs").status_code == 200
    assert anonymous.get("/login").status_code == 200
    spec = anonymous.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    anonymous.close()


def test_a_key_works_until_revoked_and_only_its_hash_is_stored(
    api: httpx.Client, db_url: str
) -> None:
    key, secret = keys.create(db_url, "reader", ["read"])
    anonymous = httpx.Client(base_url=api.base_url, timeout=10)
    path = "/api/v1/accounting-points/707057500000000001"
    assert anonymous.get(path, headers=bearer(secret)).status_code == 404  # in, nothing there
    lower = {"Authorization": f"bEaReR {secret}"}
    assert anonymous.get(path, headers=lower).status_code == 404  # scheme is case-insensitive
    assert anonymous.get("/metrics", headers=bearer(secret)).status_code == 200
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT hash, last_used_at FROM tether.api_key WHERE id = %s", (key.id,)
        ).fetchone()
        stored = conn.execute("SELECT row_to_json(k)::text FROM tether.api_key k").fetchall()
    assert row is not None and row[1] is not None  # last use recorded
    secret_part = secret.split("_", 2)[2]  # tth_<id>_<secret>; the secret may hold "_" too
    assert len(secret_part) >= 40 and secret_part not in " ".join(r[0] for r in stored)
    assert row[0] != secret and len(row[0]) == 64
    keys.revoke(db_url, key.id)
    assert anonymous.get(path, headers=bearer(secret)).status_code == 401
    almost = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    _, other = keys.create(db_url, "other", ["read"])
    assert anonymous.get(path, headers=bearer(other[:-1] + almost[-1])).status_code in (401, 404)
    anonymous.close()


def test_the_events_token_is_an_events_credential_and_nothing_more(api: httpx.Client) -> None:
    anonymous = httpx.Client(base_url=api.base_url, timeout=10)
    event = {
        "specversion": "1.0",
        "id": "1",
        "source": "t",
        "type": "no.datahub.accounting_point.changed",
        "subject": "707057500000000018",  # a well-formed GSRN tether does not hold
    }
    posted = anonymous.post("/api/v1/events", json=event, headers=bearer(EVENTS_TOKEN))
    assert posted.status_code == 202, posted.text
    read = anonymous.get("/api/v1/accounting-points/1", headers=bearer(EVENTS_TOKEN))
    assert read.status_code == 403
    anonymous.close()


def test_login_sets_a_strict_http_only_session_cookie_for_pages_only(
    api: httpx.Client, db_url: str
) -> None:
    key, secret = keys.create(db_url, "browser", ["read"])
    browser = httpx.Client(base_url=api.base_url, timeout=10)
    page = "/compliance-report-versions/1/obligation"
    first = browser.get(page)
    assert first.status_code == 401 and 'name="token"' in first.text  # a sign-in form
    crowded = browser.post("/login", content=b"token=a&b=1&c=2&d=3&e=4&f=5")
    assert crowded.status_code == 400 and 'name="token"' in crowded.text  # it was a 500
    failed = browser.post("/login", data={"token": "wrong", "next": page})
    assert failed.status_code == 401 and COOKIE not in browser.cookies
    signed = browser.post("/login", data={"token": secret, "next": page})
    assert signed.status_code == 303 and signed.headers["location"] == page
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie
    assert browser.get(page).status_code == 404  # signed in; report version 1 does not exist
    # the cookie is for pages: the JSON API still wants a bearer credential
    assert browser.get("/api/v1/compliance-report-versions/1/invoice").status_code == 401
    tampered = browser.cookies[COOKIE].replace(".", "x.", 1)
    forged = httpx.Client(base_url=api.base_url, cookies={COOKIE: tampered}, timeout=10)
    assert forged.get(page).status_code == 401
    keys.revoke(db_url, key.id)  # revoking the key ends its sessions at once
    assert browser.get(page).status_code == 401
    offsite = browser.post("/login", data={"token": secret, "next": "//evil.example/"})
    assert offsite.status_code == 401  # revoked; and with a live key:
    _, live = keys.create(db_url, "browser 2", ["read"])
    offsite = browser.post("/login", data={"token": live, "next": "//evil.example/"})
    assert offsite.status_code == 303 and offsite.headers["location"] == "/"  # the console
    console = browser.get("/")
    assert console.status_code == 200 and 'action="/logout"' in console.text  # a way out
    assert 'action="/logout"' not in browser.get("/login").text
    for client in (browser, forged):
        client.close()
