"""The API key cache: a key verified once is served from the process, yet a revocation by any
other process is honoured on the key's next request, also after the cache's listener was cut."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import ApiServer
from tether.core import keys
from tether.core.auth import Authenticator
from tether.core.settings import Settings

PATH = "/api/v1/accounting-points/707057500000000001"  # read scope; 404 once let in


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def server(settings: Settings, db_url: str) -> Iterator[ApiServer]:
    api = ApiServer(settings.model_copy(update={"api_key_cache_s": 600.0}), db_url).start()
    yield api
    api.stop()


def auth_of(server: ApiServer) -> Authenticator:
    auth: Authenticator = server.server.config.app.state.auth
    return auth


def wait_listening(auth: Authenticator) -> None:
    """The listener runs on the server's loop: wait until it is connected (not a speed check)."""
    deadline = time.monotonic() + 15
    while not auth.keys.live:
        assert time.monotonic() < deadline, "the key cache listener never connected"
        time.sleep(0.02)


def cached(auth: Authenticator, token: str) -> bool:
    """Whether the server's cache holds the key (read from this thread, so without ``get``)."""
    return hashlib.sha256(token.encode()).digest() in auth.keys


def cached_client(
    server: ApiServer, db_url: str, name: str, scopes: list[str]
) -> tuple[Authenticator, keys.ApiKey, str, httpx.Client]:
    """The server's authenticator once its cache listens, a new key, and a client using it."""
    auth = auth_of(server)
    wait_listening(auth)
    key, secret = keys.create(db_url, name, scopes)
    return auth, key, secret, httpx.Client(base_url=server.url, timeout=10, headers=bearer(secret))


def listener_pids(db_url: str) -> list[int]:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        return [r["pid"] for r in conn.execute(keys.Q["cache_listeners"]).fetchall()]


def test_a_key_revoked_by_another_process_fails_on_its_next_request(
    server: ApiServer, db_url: str
) -> None:
    auth, key, secret, client = cached_client(server, db_url, "cached reader", ["read"])
    assert client.get(PATH).status_code == 404  # let in, nothing there
    assert cached(auth, secret)
    assert client.get(PATH).status_code == 404  # from the cache
    revoked = subprocess.run(
        [sys.executable, "-m", "tether", "keys", "revoke", key.id],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": db_url},
    )
    assert revoked.returncode == 0, revoked.stderr
    assert client.get(PATH).status_code == 401
    assert not cached(auth, secret)
    client.close()


def test_a_key_revoked_by_hand_in_sql_is_dropped_too(server: ApiServer, db_url: str) -> None:
    auth, key, secret, client = cached_client(server, db_url, "cached writer", ["read", "write"])
    assert client.get(PATH).status_code == 404
    assert cached(auth, secret)
    with psycopg.connect(db_url) as conn:  # fewer scopes, no tether code involved
        conn.execute("UPDATE tether.api_key SET scopes = '{events}' WHERE id = %s", (key.id,))
    # nothing waits for the caches here (unlike keys.revoke): the notification empties it
    deadline = time.monotonic() + 15
    while cached(auth, secret):
        assert time.monotonic() < deadline, "the trigger's notification never emptied the cache"
        time.sleep(0.01)
    assert client.get(PATH).status_code == 403
    client.close()


def test_after_the_listener_is_killed_the_cache_serves_no_revoked_key(
    server: ApiServer, db_url: str
) -> None:
    auth, key, secret, client = cached_client(server, db_url, "cached reader", ["read"])
    assert client.get(PATH).status_code == 404
    assert cached(auth, secret)
    [listener] = listener_pids(db_url)
    with psycopg.connect(db_url) as conn:
        # the revocation commits right after the listener is gone: its notification reaches
        # no one, so only the lost connection can tell the cache
        conn.execute(keys.Q["cut_listener"], {"pid": listener})  # returns once it is gone
        conn.execute(keys.Q["revoke_key"], {"id": key.id})
    assert client.get(PATH).status_code == 401
    # it comes back by itself, empty, and caches again
    wait_listening(auth)
    assert listener_pids(db_url) != [listener]
    _, other = keys.create(db_url, "after the outage", ["read"])
    assert client.get(PATH, headers=bearer(other)).status_code == 404
    assert cached(auth, other) and not cached(auth, secret)
    client.close()


def test_a_cache_of_zero_seconds_checks_the_database_every_time(
    settings: Settings, db_url: str
) -> None:
    api = ApiServer(settings.model_copy(update={"api_key_cache_s": 0.0}), db_url).start()
    try:
        _, secret = keys.create(db_url, "uncached", ["read"])
        client = httpx.Client(base_url=api.url, timeout=10, headers=bearer(secret))
        assert client.get(PATH).status_code == 404
        assert not cached(auth_of(api), secret) and not auth_of(api).keys.live
        assert listener_pids(db_url) == []
        client.close()
    finally:
        api.stop()


def test_a_cache_that_does_not_confirm_a_revocation_has_its_listener_cut(db_url: str) -> None:
    stalled = psycopg.connect(db_url, autocommit=True, application_name=keys.LISTENER)
    stalled.execute(f"LISTEN {keys.CHANNEL}")  # listens, never confirms (a stuck process)
    key, _ = keys.create(db_url, "revoked while a cache hangs", ["read"])
    assert listener_pids(db_url) == [stalled.info.backend_pid]
    assert keys.revoke(db_url, key.id, wait_s=0.5)[0].revoked_at is not None
    assert listener_pids(db_url) == []  # gone: that process's cache stops serving
    stalled.close()


def test_a_hit_reads_the_dict_not_the_listener() -> None:
    """The loop reads the listener when its socket turns readable; a hit makes no ``recv`` (one
    per request was 2.5 % of the API's CPU at 1,000 requests/s)."""

    class Unread:
        @property
        def pgconn(self) -> None:
            raise AssertionError("a cache hit read the listener")

    cache = keys.KeyCache(600.0, lambda: pytest.fail("a hit needs no pool"))
    cache._conn = Unread()  # type: ignore[assignment]  # live, as far as the cache knows
    found = ("0123456789abcdef", frozenset({"read"}))
    cache.put(b"digest", found, cache.generation)
    assert cache.get(b"digest") == found
    assert cache.get(b"other") is None


async def test_a_cached_key_is_let_in_without_parsing_its_token(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token is stored only once it parsed and verified: a hit skips the key regex (twice a
    request before, 16,000 instructions of the intake's 2.5 million with the rest of the
    path)."""
    auth = Authenticator(settings, lambda: pytest.fail("a cached key needs no database"))
    auth.keys._conn = object()  # type: ignore[assignment]  # live, as far as the cache knows
    token = f"tth_{'0' * 16}_{'A' * 43}"
    digest = hashlib.sha256(token.encode()).digest()
    auth.keys.put(digest, ("0" * 16, frozenset({"write"})), auth.keys.generation)
    monkeypatch.setattr(keys, "parse", lambda _: pytest.fail("a cached token was parsed"))
    principal = await auth.from_bearer(token)
    assert principal is not None and principal.key_id == "0" * 16
    assert principal.scopes == frozenset({"write"}) and principal.kind == "api_key"
    assert auth.keys.known("tth_\u00e9") is None  # not ASCII: never a key, never hashed
