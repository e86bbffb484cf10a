"""The shared circuit breaker and single-flight, seen through e-licensing reads."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.elicensing.models import StaleReason
from tether.elicensing.service import ElicensingService, build
from tether.elicensing.simulator import ElicensingSimulatorServer

from .conftest import INVOICE_CALL, invoice_number


async def _wait_until_probe_due(service: ElicensingService) -> None:
    """Wait (not a timed assertion) until the open circuit allows a probe."""
    for _ in range(200):
        state = await service.breaker.state()
        async with db.transaction(service.pool) as conn:
            now = await (await conn.execute("SELECT clock_timestamp() AS now")).fetchone() or {}
        if state.open_until is None or state.open_until <= now["now"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("circuit never became due for a probe")


async def test_breaker_opens_answers_without_calling_probes_and_closes(
    service: ElicensingService, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    good = await service.read_invoice(versions[0])
    sim.set_mode("500")
    for _ in range(2):  # threshold is 2 in the tests' settings
        read = await service.read_invoice(versions[0], force=True)
        assert read.stale_reason is StaleReason.UPSTREAM_UNAVAILABLE
    assert (await service.breaker.state()).state == "open"
    calls = sim.state.calls[INVOICE_CALL]

    read = await service.read_invoice(versions[0], force=True)
    assert read.stale_reason is StaleReason.CIRCUIT_OPEN
    assert read.invoice == good.invoice
    assert sim.state.calls[INVOICE_CALL] == calls  # known down: not called at all

    # a failed probe opens the circuit again at once
    await _wait_until_probe_due(service)
    read = await service.read_invoice(versions[0], force=True)
    assert read.stale_reason is StaleReason.UPSTREAM_UNAVAILABLE
    assert sim.state.calls[INVOICE_CALL] == calls + 1
    assert (await service.breaker.state()).state == "open"

    # a successful probe closes it
    sim.set_mode("none")
    sim.ledger.add_payment(invoice_number(sim), Decimal("7.00"))
    await _wait_until_probe_due(service)
    read = await service.read_invoice(versions[0], force=True)
    assert read.data_is_fresh
    state = await service.breaker.state()
    assert (state.state, state.failures) == ("closed", 0)


async def test_open_circuit_is_shared_by_every_process(
    service: ElicensingService,
    runtime: Runtime,
    versions: list[int],
    db_url: str,
    sim: ElicensingSimulatorServer,
) -> None:
    await service.read_invoice(versions[0])
    await service.read_invoice(versions[1])
    sim.set_mode("down")
    for _ in range(2):
        await service.read_invoice(versions[0], force=True)
    # another "process": its own pool and its own service object
    other_pool = db.make_pool(db_url, min_size=1, max_size=2)
    await other_pool.open(wait=True)
    try:
        other = dataclasses.replace(runtime, pool=other_pool)
        async with build(other) as other_service:
            read = await other_service.read_invoice(versions[1], force=True)
    finally:
        await other_pool.close()
    assert read.stale_reason is StaleReason.CIRCUIT_OPEN


async def test_twenty_concurrent_reads_of_one_invoice_make_one_upstream_call(
    service: ElicensingService,
    runtime: Runtime,
    versions: list[int],
    sim: ElicensingSimulatorServer,
    db_url: str,
) -> None:
    sim.set_mode("none", latency_ms=200)
    other_pool = db.make_pool(db_url, min_size=1, max_size=4)
    await other_pool.open(wait=True)
    try:
        other = dataclasses.replace(runtime, pool=other_pool)
        async with build(other) as other_service:
            services = [service, other_service] * 10  # two "processes", ten readers each
            reads = await asyncio.gather(*(s.read_invoice(versions[0]) for s in services))
    finally:
        await other_pool.close()
    assert sim.state.calls[INVOICE_CALL] == 1
    assert all(r.data_is_fresh for r in reads)
    assert len({r.last_refreshed for r in reads}) == 1


async def test_concurrent_readers_share_a_failed_refresh(
    service: ElicensingService,
    versions: list[int],
    sim: ElicensingSimulatorServer,
    pool: AsyncConnectionPool[Any],
) -> None:
    await service.read_invoice(versions[0])
    sim.set_mode("500", latency_ms=200)
    reads = await asyncio.gather(
        *(service.read_invoice(versions[0], force=True) for _ in range(20))
    )
    assert sim.state.calls[INVOICE_CALL] == 2  # the first read, then one refresh for all twenty
    assert {r.stale_reason for r in reads} == {StaleReason.UPSTREAM_UNAVAILABLE}
