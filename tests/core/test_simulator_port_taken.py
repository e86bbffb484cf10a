"""``down`` really closes a simulator's data port, so another process may take it meanwhile.
Coming back up then answered a bare 500, logged a ``ConfigurationError`` traceback, and
``GET /faults`` claimed the new mode though nothing listened. Now: a 409 saying so, one WARNING
line, the mode still ``down``; once the port is free, the same request serves again."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.core.test_simulator_control import TOKEN, _server
from tether.core.simulator import SimulatorServer


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    server = _server(control_token=TOKEN).start_in_thread()
    yield server
    server.stop()


def test_a_data_port_taken_while_down_is_a_409_and_the_mode_stays_down(
    sim: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    control = httpx.Client(base_url=sim.control_url, headers=sim.control_headers, timeout=10)
    with control:
        assert control.put("/faults", json={"mode": "down"}).status_code == 200
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
            squatter.bind((sim.host, sim.port))
            squatter.listen()
            caplog.clear()
            refused = control.put("/faults", json={"mode": "none", "latency_ms": 5})
            assert refused.status_code == 409, refused.text
            body = refused.json()
            assert body["mode"] == "down"
            assert f"{sim.host}:{sim.port} was taken by another process" in body["detail"]
            assert "try again once the port is free" in body["detail"]
            faults = control.get("/faults").json()
            assert (faults["mode"], faults["latency_ms"]) == ("down", 0)
        said = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.levelname for r in said] == ["WARNING"], [r.getMessage() for r in said]
        assert said[0].exc_info is None
        assert control.put("/faults", json={"mode": "none"}).json()["mode"] == "none"
    assert httpx.get(f"{sim.url}/hello", timeout=10).text == "hello"
