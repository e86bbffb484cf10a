"""``tether demo`` from the command line: it starts, serves real data, and stops by itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import psycopg
import pytest

from tests.e2e.banner import read_banner
from tether.core import db


def db_url(server_url: str) -> str:
    return db.with_dbname(server_url, "tether_demo")


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
    banner = read_banner(proc, timeout_s=120)
    api, gsrn, key = (banner.values.get(k) for k in ("api", "gsrn", "key"))
    env_file = banner.env_file()
    try:
        assert api is not None and gsrn is not None and key is not None, banner.text
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
        # the CLI with the demo's settings reaches its simulators: an e-licensing refresh
        # with the defaults instead was refused (401) and marked the invoice stale
        assert env_file is not None and env_file.stat().st_mode & 0o777 == 0o600
        demo_settings = env_file.read_text()
        for name in (
            "TETHER_ELICENSING_TOKEN",
            "TETHER_PAYMENTS_OPPDRAG_TOKEN",
            "TETHER_AP_PII_KEY",
            "TETHER_ACCRUALS_EXPORT_DIR",  # the guide's re-run writes into the data dir
        ):
            assert f"\n{name}=" in demo_settings, demo_settings
        refresh = f"{sys.executable} -m tether elicensing invoice 101 --force --json"
        for sourced, code in ((False, 3), (True, 0)):  # exit 3: the local copy, flagged stale
            cli = subprocess.run(
                ["bash", "-c", f"set -a; . {env_file}; set +a; {refresh}" if sourced else refresh],
                capture_output=True,
                text=True,
                timeout=60,
                env={**env, "DATABASE_URL": db_url(server_url)},
            )
            assert cli.returncode == code, (sourced, cli.stdout, cli.stderr)
            answer = json.loads(cli.stdout[cli.stdout.index("{") :])
            assert answer["data_is_fresh"] is sourced, cli.stdout
            assert (answer["stale_reason"] is None) is sourced, cli.stdout
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a graceful stop with a summary
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, banner.text + rest
    assert not env_file.exists()  # the demo's settings go with it
    assert "worker synced" in rest
    printed = banner.text
    assert "dev-" not in printed  # random secrets, printed with the curl lines
    assert f"curl -H 'authorization: Bearer {key}' {api}/api/v1/accounting-points/" in printed
    with psycopg.connect(server_url, dbname="tether_demo") as conn:
        synced = conn.execute(
            "SELECT count(*) FROM ap.accounting_point_sync WHERE last_synced_at IS NOT NULL"
        ).fetchone()
    assert synced == (10,)
