"""Sign-in sessions live on the server: logout, a deleted or an expired row ends a session for
every copy of its cookie. The whole app on a socket, a real database, real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from tether.core import keys, sessions
from tether.core.auth import COOKIE
from tether.core.settings import Settings

PAGE = "/accruals/runs"  # a page (cookie accepted) answering 200 on an empty database
TTL_S = 600
SESSION_SECRET = "sessions-test-secret-0123456789"


@pytest.fixture
def api(settings: Settings, start_api: Any) -> httpx.Client:
    update = {"session_ttl_s": TTL_S, "session_secret": SecretStr(SESSION_SECRET)}
    client: httpx.Client = start_api(settings.model_copy(update=update))
    return client


@pytest.fixture
def browsers(api: httpx.Client) -> Iterator[list[httpx.Client]]:
    """Clients without credentials (each its own cookie jar); closed after the test."""
    made: list[httpx.Client] = []
    yield made
    for client in made:
        client.close()


@pytest.fixture
def sign_in(api: httpx.Client, db_url: str, browsers: list[httpx.Client]) -> Any:
    """``sign_in()``: a new browser signed in with one read key of the test (303 checked)."""
    _, secret = keys.create(db_url, "browser", ["read"])

    def sign_in() -> httpx.Client:
        browser = httpx.Client(base_url=api.base_url, timeout=10)
        browsers.append(browser)
        signed = browser.post("/login", data={"token": secret, "next": PAGE})
        assert signed.status_code == 303, signed.text
        return browser

    return sign_in


def replay(api: httpx.Client, browsers: list[httpx.Client], cookie: str) -> httpx.Response:
    """GET the page from a fresh client holding only a copy of ``cookie``."""
    copy = httpx.Client(base_url=api.base_url, cookies={COOKIE: cookie}, timeout=10)
    browsers.append(copy)
    return copy.get(PAGE)


def rows(db_url: str, sql: str = "SELECT id_hash, revoked_at FROM tether.session") -> list[Any]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql).fetchall()


def refused(response: httpx.Response) -> bool:
    """Treated as not signed in: the sign-in form with 401, as for an expired cookie."""
    return response.status_code == 401 and 'name="token"' in response.text


def test_login_stores_only_a_hash_and_logout_ends_the_session_for_every_copy(
    api: httpx.Client, browsers: list[httpx.Client], db_url: str, sign_in: Any
) -> None:
    browser = sign_in()
    cookie = browser.cookies[COOKIE]
    assert browser.get(PAGE).status_code == 200
    assert replay(api, browsers, cookie).status_code == 200  # a copy works while it lives
    session_id = cookie.partition(".")[0]
    assert len(session_id) >= 43  # 256 random bits
    stored = rows(db_url)
    assert [r[0] for r in stored] == [hashlib.sha256(session_id.encode()).hexdigest()]
    assert session_id not in " ".join(str(r) for r in rows(db_url, "SELECT * FROM tether.session"))

    out = browser.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert COOKIE not in browser.cookies
    assert rows(db_url)[0][1] is not None  # revoked on the server
    assert refused(replay(api, browsers, cookie))  # the copied cookie is dead too
    assert refused(browser.get(PAGE))
    # a forged cookie or none at logout is harmless, and revokes nothing else
    assert httpx.post(f"{api.base_url}/logout", cookies={COOKIE: "x.y"}).status_code == 303
    assert httpx.post(f"{api.base_url}/logout").status_code == 303


def test_a_session_whose_row_is_gone_or_expired_is_refused(
    api: httpx.Client, browsers: list[httpx.Client], db_url: str, sign_in: Any
) -> None:
    gone, expired = sign_in(), sign_in()
    assert gone.get(PAGE).status_code == 200 and expired.get(PAGE).status_code == 200
    gone_hash = hashlib.sha256(gone.cookies[COOKIE].partition(".")[0].encode()).hexdigest()
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM tether.session WHERE id_hash = %s", (gone_hash,))
        conn.execute(
            "UPDATE tether.session SET expires_at = now() - interval '1 second'"
            " WHERE id_hash <> %s",
            (gone_hash,),
        )
    assert refused(gone.get(PAGE))
    assert refused(expired.get(PAGE))
    # the signature alone is not enough: a well-signed id the table never held is refused too
    mac = hmac.new(SESSION_SECRET.encode(), b"A" * 43, hashlib.sha256).digest()
    unknown = "A" * 43 + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert refused(replay(api, browsers, unknown))
    assert refused(replay(api, browsers, "A" * 43 + "." + gone.cookies[COOKIE].partition(".")[2]))


def test_two_sessions_of_one_key_end_independently(
    api: httpx.Client, browsers: list[httpx.Client], db_url: str, sign_in: Any
) -> None:
    first, second = sign_in(), sign_in()
    assert first.cookies[COOKIE] != second.cookies[COOKIE]
    dropped, kept = first.cookies[COOKIE], second.cookies[COOKIE]
    assert first.post("/logout").status_code == 303
    assert refused(replay(api, browsers, dropped))
    assert second.get(PAGE).status_code == 200
    assert replay(api, browsers, kept).status_code == 200
    assert sorted(r[1] is None for r in rows(db_url)) == [False, True]


def test_the_cookie_keeps_its_attributes_and_the_row_its_lifetime(
    settings: Settings, start_api: Any, db_url: str
) -> None:
    api = start_api(
        settings.model_copy(update={"session_ttl_s": TTL_S, "session_cookie_secure": True})
    )
    _, secret = keys.create(db_url, "browser", ["read"])
    signed = httpx.post(f"{api.base_url}/login", data={"token": secret, "next": PAGE})
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "secure", "path=/"):
        assert attribute in cookie, cookie
    max_age = int(cookie.split("max-age=")[1].split(";")[0])
    assert TTL_S - 5 <= max_age <= TTL_S
    [(left,)] = rows(db_url, "SELECT extract(epoch FROM expires_at - now()) FROM tether.session")
    assert TTL_S - 5 <= float(left) <= TTL_S + 1


def test_a_login_purges_a_bounded_batch_of_long_expired_sessions(db_url: str, sign_in: Any) -> None:
    old = sessions.PURGE_BATCH + 5
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO tether.session (id_hash, subject, scopes, expires_at, revoked_at)"
            " SELECT encode(sha256(i::text::bytea), 'hex'), 'old', '{read}',"
            " now() - interval '2 days', CASE WHEN i %% 2 = 0 THEN now() END"
            " FROM generate_series(1, %s) AS i",
            (old,),
        )
        conn.execute(
            "INSERT INTO tether.session (id_hash, subject, scopes, expires_at)"
            " VALUES (repeat('a', 64), 'recent', '{read}', now() - interval '1 hour')"
        )
    count = "SELECT subject, count(*) FROM tether.session GROUP BY subject ORDER BY subject"
    sign_in()
    assert rows(db_url, count) == [("key:" + _key_of(db_url), 1), ("old", 5), ("recent", 1)]
    sign_in()
    assert rows(db_url, count) == [("key:" + _key_of(db_url), 2), ("recent", 1)]


def _key_of(db_url: str) -> str:
    [(key_id,)] = rows(db_url, "SELECT id FROM tether.api_key WHERE name = 'browser'")
    return str(key_id)


def test_a_bearer_request_ignores_any_cookie(
    api: httpx.Client, browsers: list[httpx.Client], sign_in: Any
) -> None:
    browser = sign_in()
    cookie = browser.cookies[COOKIE]
    browser.post("/logout")
    both = httpx.Client(base_url=api.base_url, cookies={COOKIE: cookie}, timeout=10)
    browsers.append(both)
    assert both.get(PAGE, headers=api.headers).status_code == 200  # the admin key decides
    assert refused(both.get(PAGE))
