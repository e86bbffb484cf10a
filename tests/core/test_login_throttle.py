"""``/login`` stops trying credentials for an address after too many failures (429 with when to
try again), while other addresses sign in as usual; the count is the database's, so every API
process shares it. The app on a real socket; the second address is a real one too (127.0.0.2,
another loopback address the client binds)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tests.core.test_serve_process import env, free_port, wait_serving
from tether.core import keys
from tether.core.settings import Settings
from tether.core.throttle import INVALID, LoginThrottle, client_key

FAILURES = 3
WINDOW_S = 600


@pytest.fixture
def throttled(settings: Settings) -> Settings:
    update = {"login_max_failures": FAILURES, "login_failure_window_s": WINDOW_S}
    return settings.model_copy(update=update)


@pytest.fixture
def api(throttled: Settings, start_api: Any) -> httpx.Client:
    client: httpx.Client = start_api(throttled)
    return client


def browser(api: httpx.Client, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=api.base_url, transport=transport, timeout=10)


def test_an_address_that_failed_too_often_waits_and_others_sign_in(
    api: httpx.Client, db_url: str
) -> None:
    _, secret = keys.create(db_url, "reader", ["read"])
    with browser(api, "127.0.0.1") as guesser, browser(api, "127.0.0.2") as user:
        for attempt in range(FAILURES):
            wrong = guesser.post("/login", data={"token": f"tth_guess_{attempt}", "next": "/"})
            assert wrong.status_code == 401, wrong.text
        refused = guesser.post("/login", data={"token": "tth_guess_again", "next": "/groups"})
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= WINDOW_S
        assert "try again in" in refused.text and 'name="token"' in refused.text
        assert 'name="next" value="/groups"' in refused.text  # the page asked for: kept
        elsewhere = guesser.post("/login", data={"token": "tth_guess", "next": "//evil.example"})
        assert 'name="next" value="/"' in elsewhere.text  # checked as the form checks it
        # not even the right key is tried from that address until the window ends
        assert guesser.post("/login", data={"token": secret}).status_code == 429
        signed = user.post("/login", data={"token": secret, "next": "/"})
        assert signed.status_code == 303, signed.text


def test_a_success_does_not_clear_the_failures(api: httpx.Client, db_url: str) -> None:
    """Any valid credential (an events-only token, say) signing in now and then must not let
    guesses from the same address go on for ever: failures leave only with their window."""
    _, secret = keys.create(db_url, "events-only", ["events"])
    with browser(api, "127.0.0.1") as guesser:
        for attempt in range(FAILURES - 1):
            assert guesser.post("/login", data={"token": f"tth_guess_{attempt}"}).status_code == 401
        assert guesser.post("/login", data={"token": secret}).status_code == 303
        assert guesser.post("/login", data={"token": "tth_guess_last"}).status_code == 401
        assert guesser.post("/login", data={"token": "tth_guess_more"}).status_code == 429


async def sign_in_at_once(api: httpx.Client, tokens: list[str], address: str) -> list[int]:
    """The statuses of sign-ins with ``tokens``, all sent at once, each on its own connection,
    from a (trusted, loopback) client claiming ``address`` in X-Forwarded-For."""
    limits = httpx.Limits(max_connections=len(tokens))
    async with httpx.AsyncClient(base_url=api.base_url, limits=limits, timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.post("/login", data={"token": token}, headers={"X-Forwarded-For": address})
                for token in tokens
            )
        )
    return [answer.status_code for answer in answers]


async def test_concurrent_guesses_try_at_most_the_limit(api: httpx.Client, db_url: str) -> None:
    """Each sign-in checked the count, tried the credential, then counted the failure: 200
    guesses at once all got 401. Now each takes its place before its credential is tried."""
    statuses = await sign_in_at_once(api, [f"tth_guess_{n}" for n in range(60)], "198.51.100.2")
    assert statuses.count(401) == FAILURES
    assert statuses.count(429) == 60 - FAILURES
    assert rows(db_url) == {"198.51.100.2": (FAILURES, True)}


async def test_a_right_credential_among_concurrent_guesses(api: httpx.Client, db_url: str) -> None:
    """It signs in when it got a place (and gives it back), or waits like the guesses; either
    way no more than the limit of guesses are tried, and the count is exactly those."""
    _, secret = keys.create(db_url, "reader", ["read"])
    tokens = [f"tth_guess_{n}" for n in range(30)]
    tokens.insert(7, secret)
    statuses = await sign_in_at_once(api, tokens, "198.51.100.3")
    assert statuses[7] in (303, 429)
    guesses = statuses[:7] + statuses[8:]
    assert set(guesses) <= {401, 429} and guesses.count(401) <= FAILURES
    assert rows(db_url) == {"198.51.100.3": (guesses.count(401), True)}
    assert (await sign_in_at_once(api, [secret], "198.51.100.4")) == [303]  # elsewhere: as usual


def guesses(api: httpx.Client, forwarded_for: list[str]) -> list[int]:
    """The statuses of failed sign-ins from this (trusted, loopback) client each claiming, in
    X-Forwarded-For, the next of ``forwarded_for`` as its address."""
    with browser(api, "127.0.0.1") as local:
        return [
            local.post(
                "/login", data={"token": "tth_guess"}, headers={"X-Forwarded-For": xff}
            ).status_code
            for xff in forwarded_for
        ]


def guesses_answer(api: httpx.Client, forwarded_for: str) -> httpx.Response:
    """The answer to one failed sign-in claiming ``forwarded_for`` as its address."""
    with browser(api, "127.0.0.1") as local:
        return local.post(
            "/login", data={"token": "tth_guess"}, headers={"X-Forwarded-For": forwarded_for}
        )


def test_an_address_that_is_no_ip_is_not_a_fresh_address(api: httpx.Client) -> None:
    """uvicorn takes any X-Forwarded-For value from a trusted peer as the client's address: each
    a new garbage value was a fresh count (and a key of thousands of characters in memory)."""
    garbage = [f"{n}-" + "x" * 2000 for n in range(FAILURES + 1)]
    assert guesses(api, garbage) == [401] * FAILURES + [429]


def test_an_ipv6_client_is_counted_by_its_slash_64(api: httpx.Client) -> None:
    """One host commonly holds a whole /64: rotating through it is not a fresh address."""
    same_64 = [f"2001:db8::{n + 1:x}" for n in range(FAILURES)] + ["2001:db8::ffff:1"]
    assert guesses(api, same_64) == [401] * FAILURES + [429]
    assert guesses(api, ["2001:db8:0:1::1"]) == [401]  # another /64


def test_client_keys_are_bounded_and_canonical() -> None:
    assert client_key("10.0.0.1") == client_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_key("2001:DB8::1%" + "e" * 5000) == "2001:db8::/64"
    assert client_key("x" * 12_000) == client_key("") == client_key("1.2.3.4:5") == INVALID


def age(db_url: str, seconds: float) -> None:
    """Move every window ``seconds`` closer to its end, as that much time passing would."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE tether.login_failure SET window_ends = window_ends - make_interval(secs => %s)",
            (seconds,),
        )


def rows(db_url: str) -> dict[str, tuple[int, bool]]:
    """Every key in the table: its count, and whether its window still runs."""
    with psycopg.connect(db_url) as conn:
        found = conn.execute(
            "SELECT client, failures, window_ends > now() FROM tether.login_failure"
        ).fetchall()
    return {client: (failures, running) for client, failures, running in found}


def test_every_api_process_shares_the_count_and_a_restart_keeps_it(
    throttled: Settings, start_api: Any, db_url: str
) -> None:
    """Each process counted in its own memory: `tether serve --workers N` took N times the
    failures, and a restart forgot them. A `tether serve` process fails twice, stops; an app
    started afterwards refuses after one more failure, and so does a third one beside it."""
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "--port", str(port), "--no-migrate"],
        env=env(
            DATABASE_URL=db_url,
            TETHER_LOGIN_MAX_FAILURES=str(FAILURES),
            TETHER_LOGIN_FAILURE_WINDOW_S=str(WINDOW_S),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as other:
            wait_serving(other)
            with browser(other, "127.0.0.1") as guesser:
                for attempt in range(FAILURES - 1):
                    wrong = guesser.post("/login", data={"token": f"tth_guess_{attempt}"})
                    assert wrong.status_code == 401, wrong.text
    finally:
        serve.terminate()
        serve.wait(30)
    first, second = start_api(throttled), start_api(throttled)
    with browser(first, "127.0.0.1") as guesser, browser(second, "127.0.0.1") as again:
        assert guesser.post("/login", data={"token": "tth_guess_last"}).status_code == 401
        assert guesser.post("/login", data={"token": "tth_guess_more"}).status_code == 429
        refused = again.post("/login", data={"token": "tth_guess_more"})
        assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= WINDOW_S
    assert rows(db_url) == {"127.0.0.1": (FAILURES, True)}  # a 429 is not one more failure


def test_the_window_ends_the_block_in_every_process(
    throttled: Settings, start_api: Any, db_url: str
) -> None:
    first, second = start_api(throttled), start_api(throttled)
    assert guesses(first, ["203.0.113.7"] * FAILURES) == [401] * FAILURES
    assert guesses(second, ["203.0.113.7"]) == [429]
    age(db_url, WINDOW_S - 5)
    assert 0 < int(guesses_answer(second, "203.0.113.7").headers["retry-after"]) <= 5
    age(db_url, 5)  # the window ended: a new one, where one failure is no block
    assert guesses(first, ["203.0.113.7"]) == [401]
    assert rows(db_url) == {"203.0.113.7": (1, True)}
    assert guesses(second, ["203.0.113.7"] * (FAILURES - 1)) == [401] * (FAILURES - 1)
    assert guesses(first, ["203.0.113.7"]) == [429]


def test_every_address_that_is_no_ip_shares_one_count_across_processes(
    throttled: Settings, start_api: Any, db_url: str
) -> None:
    first, second = start_api(throttled), start_api(throttled)
    assert guesses(first, ["x" * 3000, "unknown"]) == [401, 401]
    assert guesses(second, ["not-an-address", "x" * 3001]) == [401, 429]
    assert rows(db_url) == {INVALID: (FAILURES, True)}  # one short key, not the header values


async def test_the_table_keeps_about_one_window_of_a_flood(
    pool: AsyncConnectionPool[Any], db_url: str
) -> None:
    """A flood of distinct addresses, each failing once: every attempt deletes ended windows (at
    most a batch of them, a bounded cost), so the table holds the keys of about one window, not
    of the whole flood; the next attempts delete what is left once it stops."""
    throttle = LoginThrottle(1, 60, lambda: pool, purge_batch=150)
    for window in range(4):
        for n in range(100):
            await throttle.reserve(f"10.{window}.{n // 256}.{n % 256}")
        assert len(rows(db_url)) == 100  # not 100 per window so far
        age(db_url, 60)  # this window ended
    assert (await throttle.reserve("10.3.0.99")).wait_s == 0  # an ended row blocks nothing
    assert len(rows(db_url)) == 1  # and that attempt deleted the other 99 ended ones
    for n in range(200):  # 200 keys in one window (more than a batch), then it ends
        await throttle.reserve(f"10.9.{n // 256}.{n % 256}")
    age(db_url, 60)
    await throttle.reserve("192.0.2.1")  # deletes one batch only
    assert len(rows(db_url)) == 201 - 150 + 1
    await throttle.reserve("192.0.2.2")
    assert rows(db_url) == {f"192.0.2.{n}": (1, True) for n in (1, 2)}
    assert (await throttle.reserve("192.0.2.2")).wait_s > 0


async def test_concurrent_attempts_each_count_and_purge_without_deadlock(
    pool: AsyncConnectionPool[Any], db_url: str
) -> None:
    """Attempts of keys whose windows ended, at once from several connections (as from several
    API processes): each purge may pick the very rows the others restart. Each statement
    upserts its own row before purging, and the purge skips locked rows, so none waits holding a
    row another waits for; every attempt counts."""
    throttle = LoginThrottle(10, 60, lambda: pool, purge_batch=5)
    clients = [f"198.51.100.{n}" for n in range(16)]
    for _ in range(20):
        age(db_url, 60)  # every window ended
        await asyncio.gather(*(throttle.reserve(client) for client in reversed(clients)))
        await asyncio.gather(*(throttle.reserve(client) for client in clients))
    assert rows(db_url) == {client: (2, True) for client in clients}


async def test_concurrent_attempts_of_one_key_take_at_most_the_limit(
    pool: AsyncConnectionPool[Any], db_url: str
) -> None:
    """Checking, then counting after the try, let every concurrent attempt pass the check: each
    reservation decides on the row's latest version, so exactly the limit is reserved and the
    rest are refused without counting."""
    throttle = LoginThrottle(FAILURES, WINDOW_S, lambda: pool)
    attempts = await asyncio.gather(*(throttle.reserve("a") for _ in range(40)))
    assert sum(a.wait_s == 0 for a in attempts) == FAILURES
    assert all(0 < a.wait_s <= WINDOW_S for a in attempts if a.window_ends is None)
    assert rows(db_url) == {"a": (FAILURES, True)}


async def test_a_release_gives_back_only_its_own_place(
    pool: AsyncConnectionPool[Any], db_url: str
) -> None:
    throttle = LoginThrottle(2, 60, lambda: pool)
    await throttle.reserve("a")  # a failure: kept
    right = await throttle.reserve("a")
    await throttle.release("a", right)
    assert rows(db_url) == {"a": (1, True)}
    assert (await throttle.reserve("a")).wait_s == 0  # the place given back
    assert (await throttle.reserve("a")).wait_s > 0
    both = [await throttle.reserve("c") for _ in range(2)]
    for attempt in both:
        await throttle.release("c", attempt)
    assert rows(db_url)["c"] == (0, True)  # a count of right credentials only: no failures


async def test_the_window_ends_a_block(pool: AsyncConnectionPool[Any], db_url: str) -> None:
    throttle = LoginThrottle(2, 60, lambda: pool)
    assert [(await throttle.reserve("a")).wait_s for _ in range(2)] == [0, 0]
    assert 0 < (await throttle.reserve("a")).wait_s <= 60
    assert (await throttle.reserve("b")).wait_s == 0
    age(db_url, 55)
    assert 0 < (await throttle.reserve("a")).wait_s <= 5
    age(db_url, 5)
    assert (await throttle.reserve("a")).wait_s == 0  # a new window: one failure is no block
    assert rows(db_url) == {"a": (1, True)}  # b's ended window was purged


async def test_zero_failures_turns_the_limit_off(
    pool: AsyncConnectionPool[Any], db_url: str
) -> None:
    throttle = LoginThrottle(0, 60, lambda: pool)
    attempts = [await throttle.reserve("a") for _ in range(50)]
    assert all(a.wait_s == 0 and a.window_ends is None for a in attempts)
    await throttle.release("a", attempts[0])
    assert rows(db_url) == {}
