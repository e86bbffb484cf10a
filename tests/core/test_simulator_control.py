"""A simulator's control port answers only to its control token (real servers, real sockets).

Whoever reaches a control port can take the simulated system down; the token guards every route
of the shared router (and, by the tests of each capability, the routes they add).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import PlainTextResponse

from tether.core.errors import ConfigurationError
from tether.core.simulator import FaultMode, SimulatorServer, SimulatorState, control_router
from tether.core.simulator_auth import CONTROL_TOKEN_ENV, configured_token

TOKEN = "a-control-token-long-enough-1234"


def _server(**options: Any) -> SimulatorServer:
    data = FastAPI()

    @data.get("/hello")
    async def hello() -> PlainTextResponse:
        return PlainTextResponse("hello")

    state = SimulatorState()
    control = FastAPI()
    control.include_router(control_router(state, FaultMode))
    return SimulatorServer(data, control, state, **options)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    server = _server(control_token=TOKEN).start_in_thread()
    yield server
    server.stop()


ROUTES = [
    ("GET", "/faults"),
    ("PUT", "/faults"),
    ("GET", "/stats"),
    ("DELETE", "/stats"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/nowhere"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Bearer {TOKEN}x",
        f"Basic {TOKEN}",
        TOKEN,
        f"Bearer {TOKEN[:-1]}",
    ],
)
def test_every_control_route_refuses_a_missing_or_wrong_token(
    sim: SimulatorServer, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = httpx.request(method, sim.control_url + path, json={"mode": "down"}, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    detail = answer.json()["detail"]
    assert "Authorization: Bearer" in detail and CONTROL_TOKEN_ENV in detail
    assert "--control-token" in detail
    assert sim.state.mode == FaultMode.NONE  # the PUT changed nothing
    assert httpx.get(f"{sim.url}/hello").text == "hello"  # the data port is still up


def test_the_right_token_switches_faults(sim: SimulatorServer) -> None:
    faults = f"{sim.control_url}/faults"
    answer = httpx.put(faults, json={"mode": "down"}, headers=sim.control_headers)
    assert answer.status_code == 200 and answer.json()["mode"] == "down"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.url}/hello")
    scheme_in_any_case = {"authorization": f"bearer {TOKEN}"}
    assert httpx.put(faults, json={"mode": "none"}, headers=scheme_in_any_case).status_code == 200
    assert httpx.get(f"{sim.url}/hello").text == "hello"
    assert httpx.get(f"{sim.control_url}/stats", headers=sim.control_headers).status_code == 200
    assert httpx.get(f"{sim.control_url}/openapi.json", headers=sim.control_headers).is_success


def test_faults_echo_every_setting_and_refuse_a_misspelt_one(sim: SimulatorServer) -> None:
    """``slow_ms`` was taken but never shown, and an unknown key was ignored silently."""
    faults = f"{sim.control_url}/faults"
    answer = httpx.put(faults, json={"mode": "slow", "slow_ms": 1500}, headers=sim.control_headers)
    assert answer.status_code == 200 and answer.json()["slow_ms"] == 1500
    bogus = httpx.put(faults, json={"mode": "slow", "slo_ms": 10}, headers=sim.control_headers)
    assert bogus.status_code == 422 and "slo_ms" in bogus.text
    httpx.put(faults, json={"mode": "none"}, headers=sim.control_headers)


def test_the_data_port_does_not_ask_for_the_control_token(sim: SimulatorServer) -> None:
    assert httpx.get(f"{sim.url}/hello").status_code == 200


def test_an_unset_token_is_generated_fresh_for_each_simulator() -> None:
    first, second = _server().start_in_thread(), _server().start_in_thread()
    try:
        assert first.control_token_generated and second.control_token_generated
        assert first.control_token != second.control_token
        assert len(first.control_token) >= 32
        assert first.shown_control_token == first.control_token  # printed: the operator needs it
        faults = f"{first.control_url}/faults"
        assert httpx.get(faults).status_code == 401
        assert httpx.get(faults, headers=second.control_headers).status_code == 401
        assert httpx.get(faults, headers=first.control_headers).status_code == 200
    finally:
        first.stop()
        second.stop()


def test_a_configured_token_is_not_shown() -> None:
    server = _server(control_token=TOKEN)
    try:
        assert not server.control_token_generated
        assert TOKEN not in server.shown_control_token
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("weak", ["short", "dev-control-token-long-enough", "x" * 15])
def test_a_weak_token_is_refused_off_loopback_before_binding(weak: str) -> None:
    port = _free_port()
    with pytest.raises(ConfigurationError) as refused:
        _server(host="0.0.0.0", port=port, control_token=weak)
    message = str(refused.value)
    assert CONTROL_TOKEN_ENV in message and "16+ characters" in message and "0.0.0.0" in message
    with socket.socket() as probe:  # nothing was bound: the port is still free
        probe.bind(("0.0.0.0", port))


def test_weak_tokens_still_work_on_loopback_and_strong_ones_anywhere() -> None:
    loopback = _server(control_token="short").start_in_thread()
    exposed = _server(host="0.0.0.0", control_token=TOKEN).start_in_thread()
    try:
        loopback_faults = f"{loopback.control_url}/faults"
        assert httpx.get(loopback_faults, headers=loopback.control_headers).status_code == 200
        exposed_faults = f"http://127.0.0.1:{exposed.control_port}/faults"
        assert httpx.get(exposed_faults).status_code == 401
        assert httpx.get(exposed_faults, headers=exposed.control_headers).status_code == 200
    finally:
        loopback.stop()
        exposed.stop()


def test_the_option_wins_over_the_setting_which_wins_over_generating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(CONTROL_TOKEN_ENV, raising=False)
    assert configured_token(None) is None
    monkeypatch.setenv(CONTROL_TOKEN_ENV, "from-the-environment-1234")
    assert configured_token(None) == "from-the-environment-1234"
    assert configured_token("from-the-option-12345678") == "from-the-option-12345678"


def test_a_weak_data_token_is_refused_off_loopback_and_kept_on_loopback() -> None:
    """The simulated system's own token: a published ``dev-`` or a short one only on loopback."""
    for weak in ("dev-adapter-token", "short"):
        with pytest.raises(ConfigurationError, match=r"data port on 0\.0\.0\.0"):
            _server(host="0.0.0.0", control_token=TOKEN, data_token=weak)
        # an empty bind address is every interface, not loopback
        with pytest.raises(ConfigurationError, match="data port on every interface"):
            _server(host="", control_token=TOKEN, data_token=weak)
        with pytest.raises(ConfigurationError, match="control port on every interface"):
            _server(host="", control_token=weak)
    loopback = _server(control_token=TOKEN, data_token="dev-adapter-token").start_in_thread()
    exposed = _server(host="0.0.0.0", control_token=TOKEN, data_token=TOKEN).start_in_thread()
    try:
        for server in (loopback, exposed):
            faults = f"http://127.0.0.1:{server.control_port}/faults"
            assert httpx.get(faults, headers=server.control_headers).status_code == 200
    finally:
        loopback.stop()
        exposed.stop()
