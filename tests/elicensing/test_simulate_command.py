"""``tether simulate elicensing`` as its own process: it serves, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_the_simulator_process_answers_then_stops_on_ctrl_c() -> None:
    port, control = _free_port(), _free_port()
    args = ["--port", str(port), "--control-port", str(control), "--clients", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "simulate", "elicensing", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TETHER_LOG_LEVEL": "WARNING"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ledger = httpx.get(f"http://127.0.0.1:{control}/ledger", timeout=1).json()
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "it did not start"
                time.sleep(0.1)
        number, client = ledger[0]["invoiceNumber"], ledger[0]["clientObjectId"]
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
