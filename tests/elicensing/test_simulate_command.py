"""``tether simulate elicensing`` as its own process: it serves, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _printed_control_token(proc: subprocess.Popen[bytes]) -> str:
    """The generated token from the line the simulator prints once at start."""
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(rb"control port \S+: send 'Authorization: Bearer ([^']+)'", line)
        if found:
            return found.group(1).decode()
    raise AssertionError("no control token was printed")


@pytest.mark.timeout(90)
def test_the_simulator_process_answers_then_stops_on_ctrl_c() -> None:
    port, control = _free_port(), _free_port()
    args = ["--port", str(port), "--control-port", str(control), "--clients", "2"]
    env = {**os.environ, "TETHER_LOG_LEVEL": "WARNING"}
    env.pop("TETHER_SIMULATOR_CONTROL_TOKEN", None)  # unset: one is generated and printed
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "simulate", "elicensing", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        token = _printed_control_token(proc)
        auth = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 30
        while True:
            try:
                ledger = httpx.get(f"http://127.0.0.1:{control}/ledger", headers=auth, timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "it did not start"
                time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{control}/ledger", timeout=5).status_code == 401
        number, client = ledger.json()[0]["invoiceNumber"], ledger.json()[0]["clientObjectId"]
        answer = httpx.get(
            f"http://127.0.0.1:{port}/client/{client}/invoice",
            params={"InvoiceNumber": number},
            headers={"Authorization": "Bearer dev-elicensing-token"},
            timeout=5,
        )
        assert answer.status_code == 200 and answer.json()["invoiceNumber"] == number
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err


@pytest.mark.timeout(90)
def test_the_control_token_comes_from_the_environment_and_is_not_printed() -> None:
    port, control = _free_port(), _free_port()
    token = "a-configured-control-token-0123"
    args = ["--port", str(port), "--control-port", str(control), "--clients", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "simulate", "elicensing", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TETHER_SIMULATOR_CONTROL_TOKEN": token},
    )
    try:
        assert _printed_control_token(proc) == "<your control token>"  # not the secret
        faults = f"http://127.0.0.1:{control}/faults"
        answer = httpx.get(faults, headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert answer.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert token.encode() not in out + err
