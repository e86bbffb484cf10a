"""Concurrent event requests share commits, yet each gets its own answer after its commit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tether.accountingpoints.domain import make_gsrn
from tether.accountingpoints.service import AccountingPointService
from tether.accountingpoints.simulator import start_simulator

from .conftest import TOKEN, Sim, seed_never_synced, sql


@pytest.fixture
def sim() -> Iterator[Sim]:
    server, hub = start_simulator(count=8, seed=19, token=TOKEN)
    yield server, hub
    server.stop()


async def test_concurrent_events_each_get_their_own_answer(
    service: AccountingPointService, sim: Sim
) -> None:
    _, hub = sim
    held = hub.gsrns[:6]
    await seed_never_synced(service, held)
    await sql(service, "UPDATE ap.accounting_point_sync SET next_sync_at = now() + '1h'::interval")
    unknown = [make_gsrn("7070575", 900_000 + n) for n in range(6)]
    asks = [[held[n % 6], unknown[n % 6]] for n in range(40)]
    answers = await asyncio.gather(*(service.handle_changed(a) for a in asks))
    for asked, answer in zip(asks, answers, strict=True):
        assert answer.accepted == [asked[0]] and answer.ignored == [asked[1]]
    rows = await sql(
        service,
        "SELECT count(*) AS n FROM ap.accounting_point_sync "
        "WHERE requested_at IS NOT NULL AND next_sync_at <= now()",
    )
    assert rows[0]["n"] == 6  # every held AP is due, each event committed before its answer
