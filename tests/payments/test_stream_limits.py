"""The payments worker creates its streams with ``TETHER_PAYMENTS_STREAM_MAX_AGE_S``."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.payments import tasks
from tether.payments.client import OppdragClient
from tether.payments.service import PaymentsService

from .conftest import unique_settings


async def test_the_payments_worker_creates_its_streams_with_its_setting(
    js: Any, nats_url: str, pool: AsyncConnectionPool[Any]
) -> None:
    settings = unique_settings(stream_max_age_s=3600)
    async with OppdragClient.from_settings(settings) as client:
        service = PaymentsService(pool=pool, settings=settings, client=client)
        stop = asyncio.Event()
        await tasks.consume_intake(service, nats_url, stop=stop, once=True)
        await tasks.consume_receipts(service, nats_url, stop=stop, once=True)
    for stream in (settings.intake_stream, settings.receipts_stream):
        assert (await js.stream_info(stream)).config.max_age == 3600
