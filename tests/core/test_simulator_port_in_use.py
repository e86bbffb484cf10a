"""``tether simulate <system>`` on a port another process holds says so in one line, naming the
option that moves it, as ``tether serve`` does; it printed a traceback ending in ``OSError``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


@pytest.mark.parametrize("option", ["--port", "--control-port"])
def test_a_simulator_port_in_use_is_a_one_line_error(option: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        ports = {"--port": "0", "--control-port": "0", option: str(port)}
        done = subprocess.run(
            [sys.executable, "-m", "tether", "simulate", "elicensing"]
            + [arg for pair in ports.items() for arg in pair],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "500"},
        )
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, said
    assert "Traceback" not in said and "OSError" not in said, said
    [line] = said.splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert f"pick another port with {option}." in line
