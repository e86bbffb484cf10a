"""Claims that follow their worker: a short lease the live worker renews, and a release."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tether.accountingpoints import claims
from tether.accountingpoints.service import AccountingPointService
from tether.accountingpoints.simulator import start_simulator
from tether.accountingpoints.tasks import run_worker

from .conftest import TOKEN, Sim, seed_never_synced, sql


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, hub = start_simulator(count=6, seed=17, token=TOKEN)
    yield server, hub
    server.stop()


async def claim_rows(service: AccountingPointService) -> list[dict[str, Any]]:
    return await sql(
        service,
        "SELECT claimed_by, next_sync_at - last_sync_start AS held, next_sync_at <= now() AS due"
        " FROM ap.accounting_point_sync ORDER BY accounting_point_id",
    )


async def test_a_dead_worker_s_claims_lapse_after_one_lease(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    await seed_never_synced(service, hub.gsrns[:3])
    taken = await service.claim_due(limit=10, worker="dead-worker")
    assert len(taken) == 3
    lease = claims.lease(service.settings)
    assert lease == timedelta(seconds=45)  # not the 600 s dead-sync timeout
    rows = await claim_rows(service)
    assert all(r["claimed_by"] == "dead-worker" and r["held"] <= lease for r in rows)


async def test_a_live_worker_renews_its_claims_up_to_the_dead_timeout(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    await seed_never_synced(service, hub.gsrns[:2])
    await service.claim_due(limit=10, worker="live")
    await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now() + interval '1s'")
    assert await claims.heartbeat(service.pool, service.settings, "live") == 2
    assert await claims.heartbeat(service.pool, service.settings, "someone-else") == 0
    [row, _] = await sql(
        service, "SELECT next_sync_at - now() AS left FROM ap.accounting_point_sync"
    )
    assert row["left"] > timedelta(seconds=40)
    # a sync that began longer ago than the dead-sync timeout is not kept alive
    await sql(
        service, "UPDATE ap.accounting_point_sync SET last_sync_start = now() - '1h'::interval"
    )
    assert await claims.heartbeat(service.pool, service.settings, "live") == 0


async def test_release_frees_a_named_worker_s_claims_at_once(
    service: AccountingPointService, sim: Sim, db_url: str, tmp_path: Path
) -> None:
    _, hub = sim
    await seed_never_synced(service, hub.gsrns[:3])
    await service.claim_due(limit=10, worker="dead-worker")
    assert (await run_worker(service, stop=asyncio.Event(), once=True)).claimed == 0
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url, "TETHER_DATA_DIR": str(tmp_path)}

    async def release() -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "tether", "accounting-points", "release", "dead-worker"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    released = await release()
    assert released.returncode == 0, released.stderr
    assert "released 3 claim(s) of dead-worker" in released.stdout
    stats = await run_worker(service, stop=asyncio.Event(), once=True)
    assert stats.outcomes == {"ok": 3}
    again = await release()  # nothing left: said on stderr, exit 1 (was "released 0")
    assert again.returncode == 1 and again.stdout == ""
    assert "no claims held by 'dead-worker': nothing released" in again.stderr
    assert "host:pid" in again.stderr
