"""Thin events pulled from NATS JetStream: a private nats-server, real Postgres, the simulator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tether.accountingpoints.service import AccountingPointService, build
from tether.accountingpoints.settings import AccountingPointSettings
from tether.accountingpoints.simulator import EVENT_SOURCE, EVENT_TYPE, Datahub, start_simulator
from tether.accountingpoints.tasks import consume_events, run_worker
from tether.core import db
from tether.core.bootstrap import open_runtime
from tether.core.events import CloudEvent, ensure_stream, make_event, publish_nats
from tether.core.settings import Settings
from tether.core.simulator import SimulatorServer

TOKEN = "nats-test-adapter-token"
INVALID = "tether_ap_events_total", {"result": "invalid"}
WAIT_S = 20.0  # only a ceiling for a hang; nothing asserts on how long anything took


@pytest.fixture
def sim() -> Iterator[tuple[SimulatorServer, Datahub]]:
    server, hub = start_simulator(count=6, seed=9, token=TOKEN)
    yield server, hub
    server.stop()


@pytest.fixture
async def service(
    db_url: str, nats_url: str, sim: tuple[SimulatorServer, Datahub], tmp_path: Path
) -> AsyncIterator[AccountingPointService]:
    tag = uuid.uuid4().hex[:10]  # the NATS server is shared by the session: own stream per test
    settings = Settings(
        database_url=db_url,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        nats_url=nats_url,
        db_pool_max=4,
    )
    ap_settings = AccountingPointSettings(
        adapter_url=sim[0].url,
        adapter_token=TOKEN,
        adapter_retries=0,
        nats_stream=f"T{tag}",
        nats_subject=f"test.{tag}.changed",
        nats_durable=f"tether-{tag}",
    )
    async with (
        open_runtime(settings, database_url=db_url, overrides=[ap_settings]) as runtime,
        build(runtime) as svc,
    ):
        yield svc


def event(gsrn: str) -> CloudEvent:
    return make_event(type_=EVENT_TYPE, source=EVENT_SOURCE, subject=gsrn, data={"gsrn": gsrn})


async def publish(service: AccountingPointService, url: str, events: list[CloudEvent]) -> None:
    s = service.settings
    await publish_nats(url, s.nats_stream, s.nats_subject, events)


async def publish_raw(service: AccountingPointService, js: Any, payload: bytes) -> None:
    s = service.settings
    await ensure_stream(js, s.nats_stream, s.nats_subject)
    await js.publish(s.nats_subject, payload)


async def consumer_info(service: AccountingPointService, js: Any) -> Any:
    s = service.settings
    return await js.consumer_info(s.nats_stream, s.nats_durable)


async def requested(service: AccountingPointService, gsrn: str) -> bool:
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT s.requested_at IS NOT NULL AS r FROM ap.accounting_point_sync s "
            "JOIN ap.accounting_point a ON a.id = s.accounting_point_id WHERE a.gsrn = %s",
            (gsrn,),
        )
        row = await cur.fetchone()
    return bool(row and row["r"])


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not await check():  # noqa: ASYNC110 - polling the database and NATS
            await asyncio.sleep(0.05)


async def hold(service: AccountingPointService, gsrns: list[str]) -> None:
    """Register a CU on each AP and sync them: held, synced, not due."""
    for gsrn in gsrns:
        await service.register_controllable_unit(gsrn=gsrn, name=f"cu {gsrn}")
    async with db.transaction(service.pool) as conn:
        await conn.execute("UPDATE ap.accounting_point_sync SET requested_at = NULL")


async def test_events_from_nats_make_accounting_points_sync(
    service: AccountingPointService,
    sim: tuple[SimulatorServer, Datahub],
    nats_url: str,
    js: Any,
) -> None:
    server, hub = sim
    first, second = hub.gsrns[:2]
    await hold(service, [first, second])
    hub.mutate(first, "supplier_switch")
    stop = asyncio.Event()
    consumer = asyncio.create_task(consume_events(service, nats_url=nats_url, stop=stop))
    try:
        await publish_raw(service, js, b"{not a cloud event")
        invalid_before = REGISTRY.get_sample_value(*INVALID) or 0.0
        await publish(  # the second is not held, the third is not a GSRN at all
            service, nats_url, [event(first), event(hub.gsrns[5]), event("123")]
        )
        await until(lambda: requested(service, first))

        # the malformed message was acknowledged and dropped, not redelivered forever
        async def drained() -> bool:
            info = await consumer_info(service, js)
            return bool(info.num_pending == 0 and info.num_ack_pending == 0)

        await until(drained)
        assert (await consumer_info(service, js)).delivered.stream_seq == 4
        assert REGISTRY.get_sample_value(*INVALID) == invalid_before + 1  # dropped, counted
    finally:
        stop.set()
        await consumer
    assert not await requested(service, second)

    stats = await run_worker(service, stop=asyncio.Event(), once=True)
    assert stats.claimed == 1 and stats.outcomes["ok"] == 1
    assert server.state.calls[first] == 2 and server.state.calls[second] == 1
    _, timelines, _ = await service.get(first)
    record = hub.record(first)
    assert record is not None
    open_now = [
        t["value"] for t in timelines if t["kind"] == "energy_supplier" and not t["valid_to"]
    ]
    assert open_now == [record["energy_supplier"][-1]["business_id"]]
    history = [h for h in await service.history(first) if h["kind"] == "energy_supplier"]
    assert [h["history_operation"] for h in history] == ["UPDATE"]


async def test_the_consumer_is_durable_across_restarts(
    service: AccountingPointService,
    sim: tuple[SimulatorServer, Datahub],
    nats_url: str,
    js: Any,
) -> None:
    _, hub = sim
    first, second = hub.gsrns[2:4]
    await hold(service, [first, second])

    stop = asyncio.Event()
    consumer = asyncio.create_task(consume_events(service, nats_url=nats_url, stop=stop))
    await publish(service, nats_url, [event(first)])
    await until(lambda: requested(service, first))
    stop.set()
    await consumer

    # published while no consumer runs: kept by the stream for the durable consumer
    await publish(service, nats_url, [event(second)])
    assert not await requested(service, second)
    stop = asyncio.Event()
    consumer = asyncio.create_task(consume_events(service, nats_url=nats_url, stop=stop))
    try:
        await until(lambda: requested(service, second))
    finally:
        stop.set()
        await consumer
    info = await consumer_info(service, js)
    assert info.delivered.stream_seq == 2 and info.num_pending == 0
