"""A second ``tether demo`` on the data dir of a running one: it dropped the running demo's
database (its admin key then answered 401, its DBOS lost its tables) and deleted its settings
file on the way out. Now it refuses in one line, naming the running demo's pid, and touches
nothing; once that demo is killed (SIGKILL: no cleanup of its own) the next one starts, and the
files the killed run left are in the data dir, where that next run removes them, not in /tmp."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.banner import read_banner
from tether.core import demorun


def _demo(duration: int) -> list[str]:
    return [sys.executable, "-m", "tether", "demo", "--port", "0", "--duration", str(duration)]


@pytest.mark.xdist_group("tether_demo")  # one database (tether_demo), the same simulator ports
def test_a_second_demo_on_the_same_data_dir_is_refused_and_harms_nothing(
    server_url: str, private_dir: Path
) -> None:
    data = private_dir / "data"
    env = {
        **os.environ,
        "DATABASE_URL": server_url,
        "TETHER_DATA_DIR": str(data),
        "TETHER_LOG_LEVEL": "WARNING",
        "TETHER_AP_DEMO_ACCOUNTING_POINTS": "10",
        "TETHER_AP_DEMO_CONTROLLABLE_UNITS": "2",
    }
    first = subprocess.Popen(
        _demo(300), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        banner = read_banner(first, timeout_s=180)
        api, key, gsrn = (banner.values.get(k) for k in ("api", "key", "gsrn"))
        assert api and key and gsrn, banner.text
        point = f"{api}/api/v1/accounting-points/{gsrn}"
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(point, headers=auth, timeout=10).status_code == 200

        second = subprocess.run(_demo(0), capture_output=True, text=True, timeout=120, env=env)
        assert second.returncode == 1, second.stdout + second.stderr
        assert second.stdout == ""  # it started nothing
        assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
        assert second.stderr.startswith(f"error: a demo (pid {first.pid}) is running with ")
        assert f"kill {first.pid}" in second.stderr

        assert httpx.get(point, headers=auth, timeout=10).status_code == 200  # key and data kept
        assert (data / demorun.ENV).exists()  # its settings file too

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert (data / demorun.ENV).exists()  # what a killed demo leaves, in the data dir
        assert (data / demorun.SCRATCH / "nats").is_dir()  # (its NATS store was in /tmp)

        third = subprocess.run(_demo(0), capture_output=True, text=True, timeout=300, env=env)
        assert third.returncode == 0, third.stdout + third.stderr
        assert "tether demo is running" in third.stdout
        assert not (data / demorun.SCRATCH).exists() and not (data / demorun.ENV).exists()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


HOLDER = """
import sys, time
from tether.core import demorun
with demorun.hold_server(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.xdist_group("tether_demo")  # it holds the server's demo lock: demos wait for it
def test_a_demo_on_a_server_another_demo_uses_is_refused(server_url: str, tmp_path: Path) -> None:
    """Two data dirs, one ``DATABASE_URL`` server: both demos dropped the same ``tether_demo``.
    The data dir's lock cannot see that; the server's advisory lock does, and a killed holder's
    connection ends, which releases it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, server_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        env = {
            **os.environ,
            "DATABASE_URL": server_url,
            "TETHER_DATA_DIR": str(tmp_path / "other"),
        }
        refused = subprocess.run(_demo(0), capture_output=True, text=True, timeout=120, env=env)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.stdout == ""  # it started nothing, dropped nothing
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
        assert refused.stderr.startswith(f"error: a demo (pid {holder.pid}) is running on the ")
        holder.send_signal(signal.SIGKILL)  # its connection ends with it: the lock goes too
        holder.wait(timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                with demorun.hold_server(server_url):
                    break
            except demorun.DemoRunning:
                assert time.monotonic() < deadline, "the killed demo's server lock stayed"
                time.sleep(0.2)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
