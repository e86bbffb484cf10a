"""A worker without ``TETHER_NATS_URL``: its payments jobs cannot run, which it says once a
process, not once a job (five identical warnings in every `tether worker --once`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_a_worker_without_a_broker_says_so_once_a_process(db_url: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url, "TETHER_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "tether", "worker", "--only", "payments", "--once"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "payments jobs not started" in line]
    assert said and all("set TETHER_NATS_URL" in line for line in said), done.stderr
    lanes = [re.search(r"worker=(\w+):\d+", line) for line in said]
    names = [m.group(1) for m in lanes if m]
    assert len(names) == len(said) == len(set(names)), said  # one line for each process
