"""``tether simulate datahub`` on a non-loopback address refuses a weak control token at start,
whether it came from ``--control-token`` or ``TETHER_SIMULATOR_CONTROL_TOKEN``, and a weak or
published token for its data port (the adapter's own credential)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer

from tether.accountingpoints.cli import simulate

BIND = ["--host", "0.0.0.0", "--port", "0", "--control-port", "0", "--count", "2"]
STRONG = ["--token", "a-data-token-long-enough-5678"]


def _simulate(*args: str, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "tether", "simulate", "datahub", *BIND, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


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
    code, said = _simulate(*STRONG, *option, env=env)
    assert code == 1, said
    assert "refusing to serve a simulator's control port on 0.0.0.0" in said
    assert "set TETHER_SIMULATOR_CONTROL_TOKEN (or --control-token)" in said
    assert "16+ characters" in said and "Traceback" not in said


@pytest.mark.parametrize("token", [[], ["--token", "short"]])
def test_a_weak_data_token_off_loopback_is_refused_at_start(token: list[str]) -> None:
    """The default ``dev-adapter-token`` (or a short one) is published: off loopback it would
    let anybody read the simulated datahub, so the simulator refuses to start."""
    env = {**os.environ, "COLUMNS": "500", "TETHER_SIMULATOR_CONTROL_TOKEN": "c" * 24}
    env.pop("TETHER_ADAPTER_TOKEN", None)
    env.pop("TETHER_AP_ADAPTER_TOKEN", None)
    code, said = _simulate(*token, env=env)
    assert code == 1, said
    assert "refusing to serve a simulator's data port on 0.0.0.0" in said
    assert "--token" in said and "16+ characters" in said and "Traceback" not in said


def test_simulate_datahub_reads_the_token_and_zone_tether_s_client_reads() -> None:
    """Setting README's TETHER_AP_ADAPTER_TOKEN for tether left the simulator on its
    ``dev-adapter-token`` (it read TETHER_ADAPTER_TOKEN only), so tether's calls were refused."""
    single = typer.Typer(add_completion=False)
    single.command()(simulate)
    params = {p.name: p for p in typer.main.get_command(single).params}
    assert params["token"].envvar[0] == "TETHER_AP_ADAPTER_TOKEN"
    assert params["tz"].envvar[0] == "TETHER_AP_TIMEZONE"
