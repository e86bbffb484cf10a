"""``tether worker --metrics-port``: the worker processes' sync counters and durations reach
Prometheus. A real worker CLI with two processes syncs against the simulator; the scrape of its
port shows what both processes counted, summed, to an API key with the read scope only.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tether.accountingpoints.simulator import Datahub, start_simulator
from tether.core import keys
from tether.core.simulator import SimulatorServer

from .test_workers_e2e import TOKEN, query, seed, wait_for, worker_env

COUNT = 30
WORKER = ("worker", "--processes", "2", "--only", "accounting-points")


@pytest.fixture
def sim() -> Iterator[tuple[SimulatorServer, Datahub]]:
    server, hub = start_simulator(count=COUNT, seed=8, token=TOKEN)
    yield server, hub
    server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(url: str, headers: dict[str, str]) -> Samples:
    """Every sample of one scrape, keyed by name and sorted labels."""
    answer = httpx.get(url, headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    text = answer.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scraped(url: str, headers: dict[str, str]) -> Samples | None:
    try:
        return samples(url, headers)
    except httpx.TransportError:
        return None


def test_the_worker_serves_its_processes_sync_counters_summed(
    db_url: str, sim: tuple[SimulatorServer, Datahub], tmp_path: Path
) -> None:
    server, hub = sim
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    auth = {"Authorization": f"Bearer {keys.create(db_url, 'scraper', ['read'])[1]}"}
    wrong = {"Authorization": f"Bearer {keys.create(db_url, 'events only', ['events'])[1]}"}
    env = worker_env(  # small batches: both processes get a share
        db_url, server, tmp_path, TETHER_WORKER_METRICS_PORT=str(port), TETHER_AP_CLAIM_BATCH="5"
    )
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tether", *WORKER],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: scraped(url, auth) is not None)
        for refused in ({}, wrong, {"Authorization": "Bearer tth_not_a_key"}):
            answer = httpx.get(url, headers=refused, timeout=5)
            assert answer.status_code == 401 and "tether_ap" not in answer.text
        before = samples(url, auth)
        ok = ("tether_ap_syncs_total", (("outcome", "ok"),))
        assert before.get(ok, 0.0) == 0.0  # nothing synced yet: nothing counted

        seed(db_url, hub.gsrns)
        wait_for(
            lambda: (
                query(db_url, "SELECT count(*) FROM ap.accounting_point_sync WHERE version = 1")[0][
                    0
                ]
                == COUNT
            )
        )
        # the commit lands before the counter moves: wait for the scrape to catch up
        wait_for(lambda: samples(url, auth).get(ok) == COUNT)
        after = samples(url, auth)
        assert after[("tether_ap_sync_seconds_count", ())] == COUNT
        assert after[("tether_ap_sync_seconds_sum", ())] > 0
        calls = sum(v for (name, _), v in after.items() if name == "tether_upstream_requests_total")
        assert calls >= COUNT  # the core HTTP client's counters come along
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert scraped(url, auth) is None  # the port closes with the worker


def test_a_taken_metrics_port_is_a_one_line_error(
    db_url: str, sim: tuple[SimulatorServer, Datahub], tmp_path: Path
) -> None:
    server, _ = sim
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "tether", "worker", "--once", "--metrics-port", str(port)],
            env=worker_env(db_url, server, tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode != 0
    assert f"cannot serve worker metrics on 127.0.0.1:{port}" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
