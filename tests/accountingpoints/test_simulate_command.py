"""``tether simulate datahub`` on a non-loopback address refuses a weak control token at start,
whether it came from ``--control-token`` or ``TETHER_SIMULATOR_CONTROL_TOKEN``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BIND = ["--host", "0.0.0.0", "--port", "0", "--control-port", "0", "--count", "2"]


@pytest.mark.parametrize(
    ("option", "environment"),
    [(["--control-token", "short"], None), ([], "dev-simulator-control-token")],
)
def test_a_weak_control_token_off_loopback_is_refused_at_start(
    option: list[str], environment: str | None
) -> None:
    env = {**os.environ, "COLUMNS": "500"}
    env.pop("TETHER_SIMULATOR_CONTROL_TOKEN", None)
    if environment is not None:
        env["TETHER_SIMULATOR_CONTROL_TOKEN"] = environment
    done = subprocess.run(
        [sys.executable, "-m", "tether", "simulate", "datahub", *BIND, *option],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1, said
    assert "refusing to serve a simulator's control port on 0.0.0.0" in said
    assert "set TETHER_SIMULATOR_CONTROL_TOKEN (or --control-token)" in said
    assert "16+ characters" in said and "Traceback" not in said
