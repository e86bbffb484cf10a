"""``tether worker`` as deployed: real CLI processes, one database, the simulator over HTTP.

Many processes syncing at once never sync an AP twice; a worker killed mid-sync leaves nothing
half-written, and its claims are taken over after the dead-sync timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tether.accountingpoints.simulator import Datahub, start_simulator
from tether.core.simulator import SimulatorServer

TOKEN = "e2e-adapter-token"
TABLES = tuple(
    f"accounting_point_{k}"
    for k in ("end_user", "energy_supplier", "metering_grid_area", "energy_direction")
)
WAIT_S = 60.0  # only a ceiling for a hang; nothing asserts on how long anything took


def worker_env(
    db_url: str, server: SimulatorServer, tmp_path: Path, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        DATABASE_URL=db_url,
        TETHER_DATA_DIR=str(tmp_path / "data"),
        TETHER_AP_ADAPTER_URL=server.url,
        TETHER_AP_ADAPTER_TOKEN=TOKEN,
        TETHER_AP_ADAPTER_RETRIES="0",
        TETHER_LOG_LEVEL="WARNING",
        TETHER_DB_POOL_MAX="5",
        **extra,
    )
    return env


def tether_worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether", "worker", "--once", "--only", "accounting-points", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def seed(db_url: str, gsrns: list[str]) -> None:
    """APs with a CU each, set-based; their sync rows come from the trigger: never synced."""
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO ap.accounting_point (gsrn) SELECT unnest(%s::text[])", (gsrns,))
        conn.execute(
            "INSERT INTO ap.controllable_unit (name, accounting_point_id) "
            "SELECT 'cu ' || gsrn, id FROM ap.accounting_point WHERE gsrn = ANY(%s)",
            (gsrns,),
        )


def query(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql, params or None).fetchall()  # type: ignore[arg-type]


def sync_state(db_url: str, gsrn: str) -> dict[str, Any]:
    with psycopg.connect(db_url) as conn:
        cur = conn.execute(
            "SELECT s.version, s.attempts, s.claimed_by, s.last_sync_start, s.last_synced_at, "
            "s.last_error, s.next_sync_at <= now() AS due FROM ap.accounting_point_sync s "
            "JOIN ap.accounting_point a ON a.id = s.accounting_point_id WHERE a.gsrn = %s",
            (gsrn,),
        )
        row = cur.fetchone()
        assert row is not None and cur.description is not None
        return dict(zip([c.name for c in cur.description], row, strict=True))


def snapshot(db_url: str, gsrn: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with psycopg.connect(db_url) as conn:
        for table, key in [
            ("accounting_point", "id"),
            *((t, "accounting_point_id") for t in TABLES),
        ]:
            for suffix in ("", "_history"):
                rows = conn.execute(
                    f"SELECT row_to_json(t)::text FROM ap.{table}{suffix} t "  # type: ignore[arg-type]
                    f"JOIN ap.accounting_point a ON a.id = t.{key} WHERE a.gsrn = %s ORDER BY 1",
                    (gsrn,),
                ).fetchall()
                out[table + suffix] = [r[0] for r in rows]
    return out


def wait_for(check: Any) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


@pytest.fixture
def big_sim() -> Iterator[tuple[SimulatorServer, Datahub]]:
    server, hub = start_simulator(count=2000, seed=4, token=TOKEN)
    yield server, hub
    server.stop()


@pytest.fixture
def sim() -> Iterator[tuple[SimulatorServer, Datahub]]:
    server, hub = start_simulator(count=4, seed=4, token=TOKEN)
    yield server, hub
    server.stop()


def test_four_worker_processes_sync_every_accounting_point_exactly_once(
    db_url: str, big_sim: tuple[SimulatorServer, Datahub], tmp_path: Path
) -> None:
    server, hub = big_sim
    gsrns = hub.gsrns
    assert len(gsrns) == 2000
    seed(db_url, gsrns)
    env = worker_env(
        db_url, server, tmp_path, TETHER_AP_CLAIM_BATCH="50", TETHER_AP_FETCH_CONCURRENCY="16"
    )
    done = tether_worker(env, "--processes", "4")
    assert done.returncode == 0, done.stderr[-3000:]

    assert sum(server.state.calls.values()) == 2000
    assert {server.state.calls[g] for g in gsrns} == {1}
    states = query(
        db_url,
        "SELECT s.version, s.attempts, s.claimed_by IS NULL, s.last_sync_start IS NULL, "
        "s.last_error IS NULL, count(*) FROM ap.accounting_point_sync s GROUP BY 1, 2, 3, 4, 5",
    )
    assert states == [(1, 0, True, True, True, 2000)]
    # and the work was spread: more than one process claimed
    synced_by = query(
        db_url,
        "SELECT count(DISTINCT recorded_by) FROM ap.accounting_point_energy_supplier",
    )
    assert synced_by[0][0] > 1


def test_a_worker_killed_mid_sync_leaves_nothing_half_written_and_is_taken_over(
    db_url: str, sim: tuple[SimulatorServer, Datahub], tmp_path: Path
) -> None:
    server, hub = sim
    existing, fresh = hub.gsrns[:2]
    seed(db_url, [existing])
    env = worker_env(db_url, server, tmp_path, TETHER_AP_DEAD_SYNC_TIMEOUT_S="1")
    assert tether_worker(env).returncode == 0
    assert sync_state(db_url, existing)["version"] == 1
    hub.mutate(existing, "supplier_switch")  # a sync that wrote anything would show
    hub.mutate(existing, "relocate")
    query(db_url, "UPDATE ap.accounting_point_sync SET next_sync_at = now() RETURNING 1")
    seed(db_url, [fresh])
    before = snapshot(db_url, existing)

    server.state.slow_s = 30.0
    server.set_mode("slow")
    log = (tmp_path / "killed-worker.log").open("w")
    victim = subprocess.Popen(
        [sys.executable, "-m", "tether", "worker"],
        env={**env, "TETHER_AP_ADAPTER_TIMEOUT_S": "60"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the CLI and its worker child
    )
    try:
        # claimed by the victim (committed at once), which now waits on the slow datahub
        wait_for(lambda: all(sync_state(db_url, g)["claimed_by"] for g in (existing, fresh)))
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        log.close()

    assert snapshot(db_url, existing) == before
    fresh_rows = snapshot(db_url, fresh)
    assert all(fresh_rows[t] == [] for t in TABLES)
    assert query(db_url, "SELECT latitude FROM ap.accounting_point WHERE gsrn = %s", fresh) == [
        (None,)
    ]
    assert sync_state(db_url, existing)["version"] == 1
    assert sync_state(db_url, fresh)["last_synced_at"] is None
    assert all(sync_state(db_url, g)["claimed_by"] for g in (existing, fresh))  # a dead claim

    server.set_mode("none")
    wait_for(lambda: all(sync_state(db_url, g)["due"] for g in (existing, fresh)))
    done = tether_worker(env)
    assert done.returncode == 0, done.stderr[-3000:]
    for gsrn, version in ((existing, 2), (fresh, 1)):
        state = sync_state(db_url, gsrn)
        assert state["last_synced_at"] is not None, gsrn
        assert state["version"] == version and state["attempts"] == 0
        assert state["claimed_by"] is None and state["last_sync_start"] is None
        assert state["last_error"] is None and not state["due"]
    assert snapshot(db_url, existing) != before
    record = hub.record(existing)
    assert record is not None
    assert query(db_url, "SELECT latitude FROM ap.accounting_point WHERE gsrn = %s", existing) == [
        (record["latitude"],)
    ]
