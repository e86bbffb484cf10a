"""Many readers at once: no read waits for a second pooled connection while it holds one, and
every read is answered (queued, or stale with a reason), never a 500, whatever the upstream does.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from tether.core.api import core_router
from tether.core.bootstrap import Runtime
from tether.elicensing.demo import seed_ledger
from tether.elicensing.models import StaleReason
from tether.elicensing.service import ElicensingService
from tether.elicensing.simulator import ElicensingSimulatorServer, make_simulator

from .conftest import INVOICE_CALL, client_for, invoice_number, make_settings, small_service

BASE = "/api/v1/compliance-report-versions"


@pytest.fixture
def sim100() -> Any:
    server = make_simulator(clients=100, seed=11)
    server.state.slow_s = 2.0
    server.start_in_thread()
    yield server
    server.stop()


@pytest.fixture
def runtime100(runtime: Runtime, sim100: ElicensingSimulatorServer) -> Runtime:
    from tether.elicensing.settings import ElicensingSettings

    # four calls out at once: when e-licensing hangs, the circuit opens before most are sent
    settings = make_settings(
        sim100, refresh_concurrency=4, upstream_concurrency=4, refresh_queue_s=1.0
    )
    return Runtime(
        settings=runtime.settings,
        database_url=runtime.database_url,
        pool=runtime.pool,
        overrides={ElicensingSettings: settings},
    )


async def _read_all(http: httpx.AsyncClient, versions: list[int], force: bool) -> list[Any]:
    params = {"force": "true"} if force else {}
    return await asyncio.gather(*(http.get(f"{BASE}/{v}/invoice", params=params) for v in versions))


@pytest.mark.parametrize("mode", ["none", "slow", "down"])
async def test_100_reads_of_distinct_versions_on_a_pool_of_4_are_all_answered(
    runtime100: Runtime, sim100: ElicensingSimulatorServer, mode: str, auth_headers: dict[str, str]
) -> None:
    versions = await seed_ledger(runtime100, sim100)
    assert len(versions) == 100
    # generous timeouts while healthy: a loaded machine must not turn an answer into a timeout
    async with (
        small_service(runtime100, pool_max=4, read_timeout_s=5.0) as warm,
        client_for(warm, auth_headers) as http,
    ):
        first = await _read_all(http, versions, force=False)  # 100 first retrievals at once
        assert {r.status_code for r in first} <= {200, 503}  # 503: busy, never retrieved
        assert all(r.json()["reason"] == "busy" for r in first if r.status_code == 503)
        assert all(r.json()["data_is_fresh"] for r in first if r.status_code == 200)
        missing = [v for v, r in zip(versions, first, strict=True) if r.status_code != 200]
        for v in missing:  # one at a time: a slot is always free
            assert (await http.get(f"{BASE}/{v}/obligation-summary")).status_code == 200

    sim100.set_mode(mode)
    timeout = 5.0 if mode == "none" else 0.5  # "slow" answers after 2 s
    async with (
        small_service(runtime100, pool_max=4, read_timeout_s=timeout) as service,
        client_for(service, auth_headers) as http,
    ):
        answers = await _read_all(http, versions, force=True)

    assert [r.status_code for r in answers] == [200] * 100
    reasons = Counter(r.json()["stale_reason"] for r in answers)
    if mode == "none":
        assert set(reasons) <= {None, StaleReason.BUSY.value}
    else:
        failed = {
            StaleReason.UPSTREAM_UNAVAILABLE.value,
            StaleReason.CIRCUIT_OPEN.value,
            StaleReason.BUSY.value,
        }
        assert set(reasons) <= failed
        assert sim100.state.calls[INVOICE_CALL] < 100 + 100  # the circuit stopped the calls
    # the previous copy answered every stale read
    assert all(r.json()["last_refreshed"] is not None for r in answers)


async def test_a_refresh_never_needs_a_second_request_connection(
    runtime: Runtime, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    """With ONE pooled connection, concurrent first reads of three invoices all refresh.

    Before the lock moved to its own pool, each refresh held its lock on a pooled connection
    and then waited for another: with a pool of one that is a certain PoolTimeout.
    """
    async with small_service(runtime, pool_max=1, read_timeout_s=5.0) as service:
        reads = await asyncio.gather(*(service.read_invoice(v) for v in versions))
        forced = await asyncio.gather(*(service.read_invoice(v, force=True) for v in versions))
    assert all(r.data_is_fresh for r in reads + forced)
    assert sim.state.calls[INVOICE_CALL] == 6


async def test_100_reads_of_one_version_with_the_circuit_open_make_no_call(
    runtime: Runtime, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    async with small_service(runtime, pool_max=4) as service:
        await service.read_invoice(versions[0])
        sim.set_mode("down")
        while (await service.breaker.state()).state != "open":
            await service.read_invoice(versions[0], force=True)
        calls = sim.state.calls[INVOICE_CALL]
        reads = await asyncio.gather(
            *(service.read_invoice(versions[0], force=True) for _ in range(100))
        )
    assert {r.stale_reason for r in reads} == {StaleReason.CIRCUIT_OPEN}
    assert sim.state.calls[INVOICE_CALL] == calls


async def test_forced_reads_that_answer_from_the_copy_answer_it_with_its_fees(
    runtime: Runtime, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    """The read before a forced refresh skips the fees unless the circuit is open; a read that
    answers from the copy (refresh failed, or circuit open) still has them all."""
    async with small_service(runtime, pool_max=4) as service:
        copy = (await service.read_invoice(versions[0])).invoice
        assert copy.line_items
        sim.set_mode("down")
        failed = await service.read_invoice(versions[0], force=True)
        while (await service.breaker.state()).state != "open":
            await service.read_invoice(versions[0], force=True)
        reads = await asyncio.gather(
            *(service.read_invoice(versions[0], force=True) for _ in range(5))
        )
    assert failed.stale_reason is StaleReason.UPSTREAM_UNAVAILABLE
    assert failed.invoice.line_items == copy.line_items
    assert {r.stale_reason for r in reads} == {StaleReason.CIRCUIT_OPEN}
    assert all(r.invoice.line_items == copy.line_items for r in reads)


async def test_a_group_of_reads_skips_the_fees_only_of_the_reads_that_asked(
    runtime: Runtime, versions: list[int]
) -> None:
    from tether.core import db
    from tether.elicensing import repository
    from tether.elicensing.models import InvoiceType

    async with small_service(runtime, pool_max=4) as service:
        await service.read_invoice(versions[0])
        await service.read_invoice(versions[1])
        first, second = ((v, InvoiceType.OBLIGATION) for v in versions[:2])
        async with db.autocommit(runtime.pool) as conn:
            found = await repository.fetch_reads(conn, [first, second], without_items={second})
    assert found[first].items_read and found[first].invoice
    assert found[first].invoice.line_items
    assert not found[second].items_read and found[second].invoice
    assert found[second].invoice.line_items == ()


async def test_readers_beyond_the_call_slots_answer_stale_busy_with_the_copy(
    runtime: Runtime, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    async with small_service(
        runtime, pool_max=4, upstream_concurrency=1, refresh_queue_s=0, read_timeout_s=5.0
    ) as service:
        before = [await service.read_invoice(v) for v in versions]
        sim.set_mode("none", latency_ms=1000)  # the one call slot stays taken for a second
        reads = await asyncio.gather(*(service.read_invoice(v, force=True) for v in versions))
    busy = [r for r in reads if r.stale_reason is StaleReason.BUSY]
    assert busy, [r.stale_reason for r in reads]
    assert len(busy) < len(versions)  # one of them had the slot and refreshed
    for read in busy:
        earlier = next(b for b in before if b.invoice.id == read.invoice.id)
        assert read.invoice == earlier.invoice and not read.data_is_fresh


async def test_healthz_answers_while_every_pooled_connection_is_taken(runtime: Runtime) -> None:
    app = FastAPI()
    app.include_router(core_router())
    app.state.runtime = runtime
    held = [await runtime.pool.getconn() for _ in range(runtime.pool.max_size)]
    try:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/healthz")
        assert response.json() == {"status": "ok"}
    finally:
        for conn in held:
            await runtime.pool.putconn(conn)


async def test_refreshes_waiting_on_e_licensing_hold_no_refresh_slot(
    runtime: Runtime, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    """One refresh slot, no queueing, a slow e-licensing: every refresh still gets through.

    While the slot was held for the whole call, all but one of these answered stale ``busy``.
    """
    async with small_service(
        runtime, pool_max=4, refresh_concurrency=1, refresh_queue_s=0, read_timeout_s=5.0
    ) as service:
        for v in versions:
            await service.read_invoice(v)
        sim.set_mode("none", latency_ms=500)
        calls = sim.state.calls[INVOICE_CALL]
        reads = await asyncio.gather(*(service.read_invoice(v, force=True) for v in versions))
    assert [r.stale_reason for r in reads] == [None] * len(versions)
    assert sim.state.calls[INVOICE_CALL] == calls + len(versions)


async def test_a_lease_left_by_a_crashed_process_expires(
    service: ElicensingService, versions: list[int], sim: ElicensingSimulatorServer, db_url: str
) -> None:
    number = invoice_number(sim)
    with psycopg.connect(db_url, autocommit=True) as conn:  # a leader that never came back
        conn.execute(
            "INSERT INTO elicensing.refresh_lease (invoice_number, holder, leased_until) "
            "VALUES (%s, gen_random_uuid(), clock_timestamp() - interval '1 second')",
            (number,),
        )
    read = await service.read_invoice(versions[0])
    assert read.data_is_fresh and sim.state.calls[INVOICE_CALL] == 1
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM elicensing.refresh_lease").fetchone() == (0,)
