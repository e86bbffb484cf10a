"""``/login`` stops trying credentials for an address after too many failures (429 with when to
try again), while other addresses sign in as usual. The app on a real socket; the second address
is a real one too (127.0.0.2, another loopback address the client binds)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tether.core import keys
from tether.core.settings import Settings
from tether.core.throttle import LoginThrottle

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
        refused = guesser.post("/login", data={"token": "tth_guess_again", "next": "/"})
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= WINDOW_S
        assert "try again in" in refused.text and 'name="token"' in refused.text
        # not even the right key is tried from that address until the window ends
        assert guesser.post("/login", data={"token": secret}).status_code == 429
        signed = user.post("/login", data={"token": secret, "next": "/"})
        assert signed.status_code == 303, signed.text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_ends_a_block_and_a_success_clears_the_count() -> None:
    clock = Clock()
    throttle = LoginThrottle(2, 60, clock=clock)
    throttle.failed("a")
    throttle.succeeded("a")  # the user found their key: earlier typos do not count
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
