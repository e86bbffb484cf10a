"""``tether demo`` from the command line: it starts, serves real data, and stops by itself."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import psycopg
import pytest


@pytest.mark.xdist_group("tether_demo")  # one database (tether_demo), the same simulator ports
def test_demo_serves_synced_accounting_points_and_the_obligation_page(server_url: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": server_url,
        "TETHER_LOG_LEVEL": "WARNING",
        "TETHER_AP_DEMO_ACCOUNTING_POINTS": "40",
        "TETHER_AP_DEMO_CONTROLLABLE_UNITS": "10",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tether",
            "demo",
            "--port",
            "0",
            "--duration",
            "120",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    api = gsrn = key = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (api is None or gsrn is None or key is None):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if m := re.search(r"API docs\s+(http://127\.0\.0\.1:\d+)/docs", line):
            api = m.group(1)
        if m := re.search(r"accounting-points/(\d{18})/history", line):
            gsrn = m.group(1)
        if m := re.search(r"Admin API key\s+(tth_\S+)", line):
            key = m.group(1)
    try:
        assert api is not None and gsrn is not None and key is not None, "".join(lines)
        ap_url = f"{api}/api/v1/accounting-points/{gsrn}"
        assert httpx.get(ap_url, timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        ap = httpx.get(ap_url, headers=auth, timeout=10)
        assert ap.status_code == 200
        body = ap.json()
        assert body["sync"]["last_synced_at"] is not None
        assert body["energy_supplier"] and body["controllable_units"]
        page = httpx.get(
            f"{api}/compliance-report-versions/101/obligation", headers=auth, timeout=10
        )
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert httpx.get(f"{api}/docs", timeout=10).status_code == 200
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a graceful stop with a summary
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + rest
    assert "worker synced" in rest
    printed = "".join(lines)
    assert "dev-" not in printed  # random secrets, printed with the curl lines
    assert f"curl -H 'authorization: Bearer {key}' {api}/api/v1/accounting-points/" in printed
    with psycopg.connect(server_url, dbname="tether_demo") as conn:
        synced = conn.execute(
            "SELECT count(*) FROM ap.accounting_point_sync WHERE last_synced_at IS NOT NULL"
        ).fetchone()
    assert synced == (10,)
