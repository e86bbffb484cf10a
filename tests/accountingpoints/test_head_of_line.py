"""One slow AP holds back nobody: a claimed batch's answers are merged in groups as they arrive.

Real Postgres, the datahub simulator over HTTP with one AP made slow through its control port,
and the real worker loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tether.accountingpoints.simulator import start_simulator
from tether.accountingpoints.tasks import run_worker

from .conftest import TOKEN, Sim, seed_never_synced, sql

COUNT = 20
SLOW_S = 5.0  # far longer than the group wait (0.05 s) and than the fast answers take


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, hub = start_simulator(count=COUNT, seed=29, token=TOKEN)
    yield server, hub
    server.stop()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"adapter_timeout_s": 3 * SLOW_S, "claim_batch": 100}  # all in one batch


async def synced(service: Any) -> set[str]:
    rows = await sql(
        service,
        "SELECT a.gsrn FROM ap.accounting_point a JOIN ap.accounting_point_sync s "
        "ON s.accounting_point_id = a.id WHERE s.last_synced_at IS NOT NULL",
    )
    return {r["gsrn"] for r in rows}


async def test_the_fast_answers_of_a_batch_are_stored_while_a_slow_one_is_still_out(
    service: Any, sim: Sim
) -> None:
    server, hub = sim
    gsrns = hub.gsrns[:COUNT]
    slow = gsrns[0]
    async with httpx.AsyncClient(
        base_url=server.control_url, headers=server.control_headers
    ) as control:
        answer = await control.put(f"/accounting-points/{slow}/delay", json={"delay_ms": 5000})
        assert answer.status_code == 200, answer.text
    await seed_never_synced(service, gsrns)

    worker = asyncio.create_task(run_worker(service, stop=asyncio.Event(), once=True))
    while len(done := await synced(service)) < COUNT - 1 and not worker.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # polling the database: no event to wait on
    assert done == set(gsrns) - {slow}  # the 19 fast ones are in ...
    assert not worker.done()  # ... while the slow answer is still on its way

    stats = await worker
    assert await synced(service) == set(gsrns)
    assert dict(stats.outcomes) == {"ok": COUNT}
    assert hub.delays == {slow: SLOW_S}


async def test_a_delay_of_zero_makes_the_ap_fast_again(sim: Sim) -> None:
    server, hub = sim
    async with httpx.AsyncClient(
        base_url=server.control_url, headers=server.control_headers
    ) as control:
        await control.put(f"/accounting-points/{hub.gsrns[0]}/delay", json={"delay_ms": 100})
        assert hub.delays == {hub.gsrns[0]: 0.1}
        await control.put(f"/accounting-points/{hub.gsrns[0]}/delay", json={"delay_ms": 0})
        refused = await control.put(
            f"/accounting-points/{hub.gsrns[0]}/delay", json={"delay_ms": -1}
        )
    assert hub.delays == {}
    assert refused.status_code == 422
