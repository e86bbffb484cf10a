"""The receipt worker sends the order its booking planned (a hot case's next order) at once,
with the sender's claim: no sender job runs here, so only the receipt worker can send it."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.payments import tasks
from tether.payments.client import OppdragClient
from tether.payments.service import PaymentsService
from tether.payments.simulator import Topology, start_simulator

from .conftest import june, message, unique_settings


async def test_the_next_order_of_a_case_leaves_from_the_receipt_worker(
    pool: AsyncConnectionPool[Any], nats_url: str
) -> None:
    own = unique_settings()
    topology = Topology(
        orders_stream=own.orders_stream,
        orders_subject=own.orders_subject,
        receipts_stream=own.receipts_stream,
        receipts_subject=own.receipts_subject,
        durable=f"sim-{own.orders_stream}",
    )
    sim = start_simulator(nats_url, topology=topology, token=own.oppdrag_token)
    own = own.model_copy(update={"oppdrag_url": sim.url})
    stop = asyncio.Event()
    try:
        async with OppdragClient.from_settings(own) as client:
            service = PaymentsService(pool=pool, settings=own, client=client)
            await service.submit("k1", message(june(3, 14)))
            await service.submit("k2", message(june(3, 14, 200), behandling="b2"))  # waits
            assert await tasks.send_orders(service, nats_url, stop=stop, once=True) == 1
            receipts = asyncio.create_task(tasks.consume_receipts(service, nats_url, stop=stop))
            try:
                done = await service.wait_status("k2", 20.0)
            finally:
                stop.set()
                await receipts
            assert done.status == "OK", done.body
            orders = await service.orders("sak1")
            assert [(o.original_key, o.state) for o in orders] == [("k1", "OK"), ("k2", "OK")]
            assert [o.original_key for o in orders if o.sent_at is not None] == ["k1", "k2"]
    finally:
        sim.stop()
