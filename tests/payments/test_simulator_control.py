"""The payment system simulator's control port speaks plain values and needs the control token,
and a client that gives up during ``slow`` costs one info line, not an error traceback (real
NATS, real HTTP)."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from tether.payments.simulator import DEFAULT_TOKEN, OppdragSimulator

MODES = ["none", "04", "08", "12", "08-untrimmed", "slow", "silent", "duplicate", "down"]


def test_an_unknown_mode_is_refused_with_the_plain_values(sim: OppdragSimulator) -> None:
    faults, control = f"{sim.control_url}/faults", sim.control_headers
    r = httpx.put(faults, json={"mode": "bogus"}, headers=control)
    assert r.status_code == 422
    assert r.json() == {"detail": f"unknown mode 'bogus'; one of: {', '.join(MODES)}"}
    assert httpx.get(faults, headers=control).json()["modes"] == MODES


@pytest.mark.parametrize("path", ["/orders", "/cases/SAK1", "/faults", "/stats"])
def test_the_control_routes_need_the_control_token(sim: OppdragSimulator, path: str) -> None:
    url = sim.control_url + path
    for wrong in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    ):
        answer = httpx.get(url, headers=wrong)
        assert answer.status_code == 401 and "control token" in answer.json()["detail"]
    refused = httpx.put(f"{sim.control_url}/faults", json={"mode": "08"}, headers=wrong)
    assert refused.status_code == 401 and sim.state.mode == "none"
    answer = httpx.get(url, headers=sim.control_headers)
    assert answer.status_code == (404 if path.startswith("/cases/") else 200), answer.text
    assert "control token" not in answer.text


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_client_that_gives_up_while_slow_is_one_info_line(sim: OppdragSimulator) -> None:
    seen = _Records()
    # uvicorn's own logging config keeps its loggers from propagating: listen where it logs
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "tether.core.simulator")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(seen)
    loggers[1].setLevel(logging.INFO)
    try:
        slow = {"mode": "slow", "slow_ms": 300}
        put = httpx.put(f"{sim.control_url}/faults", json=slow, headers=sim.control_headers)
        put.raise_for_status()
        auth = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{sim.url}/simulering", json={"oppdrag": "x"}, headers=auth, timeout=0.05)
        deadline = time.monotonic() + 5
        while not seen.records and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # anything logged after the first line
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(seen)
            lg.setLevel(level)
    assert [(r.levelno, r.getMessage()) for r in seen.records] == [
        (logging.INFO, "client went away before the answer: POST /simulering")
    ]
