"""``/login`` stops trying credentials for an address after too many failures (429 with when to
try again), while other addresses sign in as usual. The app on a real socket; the second address
is a real one too (127.0.0.2, another loopback address the client binds)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tether.core import keys
from tether.core.settings import Settings
from tether.core.throttle import INVALID, LoginThrottle, client_key

FAILURES = 3
WINDOW_S = 600


@pytest.fixture
def api(settings: Settings, start_api: Any) -> httpx.Client:
    update = {"login_max_failures": FAILURES, "login_failure_window_s": WINDOW_S}
    client: httpx.Client = start_api(settings.model_copy(update=update))
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


def guesses_until_refused(api: httpx.Client, forwarded_for: list[str]) -> list[int]:
    """The statuses of failed sign-ins from this (trusted, loopback) client each claiming, in
    X-Forwarded-For, the next of ``forwarded_for`` as its address."""
    with browser(api, "127.0.0.1") as local:
        return [
            local.post(
                "/login", data={"token": "tth_guess"}, headers={"X-Forwarded-For": xff}
            ).status_code
            for xff in forwarded_for
        ]


def test_an_address_that_is_no_ip_is_not_a_fresh_address(api: httpx.Client) -> None:
    """uvicorn takes any X-Forwarded-For value from a trusted peer as the client's address: each
    a new garbage value was a fresh count (and a key of thousands of characters in memory)."""
    garbage = [f"{n}-" + "x" * 2000 for n in range(FAILURES + 1)]
    assert guesses_until_refused(api, garbage) == [401] * FAILURES + [429]


def test_an_ipv6_client_is_counted_by_its_slash_64(api: httpx.Client) -> None:
    """One host commonly holds a whole /64: rotating through it is not a fresh address."""
    same_64 = [f"2001:db8::{n + 1:x}" for n in range(FAILURES)] + ["2001:db8::ffff:1"]
    assert guesses_until_refused(api, same_64) == [401] * FAILURES + [429]
    assert guesses_until_refused(api, ["2001:db8:0:1::1"]) == [401]  # another /64


def test_client_keys_are_bounded_and_canonical() -> None:
    assert client_key("10.0.0.1") == client_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_key("2001:DB8::1%" + "e" * 5000) == "2001:db8::/64"
    assert client_key("x" * 12_000) == client_key("") == client_key("1.2.3.4:5") == INVALID


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_ends_a_block() -> None:
    clock = Clock()
    throttle = LoginThrottle(2, 60, clock=clock)
    throttle.failed("a")
    assert throttle.retry_after("a") == 0
    throttle.failed("a")
    assert throttle.retry_after("a") == 60 and throttle.retry_after("b") == 0
    clock.now += 59.5
    assert throttle.retry_after("a") == 1
    clock.now += 0.5
    assert throttle.retry_after("a") == 0
    throttle.failed("a")  # a new window: one failure is not a block
    assert throttle.retry_after("a") == 0


def test_memory_is_bounded_by_the_number_of_addresses() -> None:
    throttle = LoginThrottle(1, 60, max_clients=100, clock=Clock())
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle) == 100
    assert throttle.retry_after("10.0.3.231") > 0  # the latest are kept (n = 999)


def test_zero_failures_turns_the_limit_off() -> None:
    throttle = LoginThrottle(0, 60, clock=Clock())
    for _ in range(50):
        throttle.failed("a")
    assert throttle.retry_after("a") == 0 and len(throttle) == 0
