"""The payments worker creates its streams with ``TETHER_PAYMENTS_STREAM_MAX_AGE_S``; the
simulated payment system creates its own queues with its topology's age limit."""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from tether.cli import app
from tether.payments import tasks
from tether.payments.client import OppdragClient
from tether.payments.service import PaymentsService
from tether.payments.simulator import simulate, start_simulator

from .conftest import unique_settings, unique_topology


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


async def test_the_simulator_creates_the_payment_systems_queues_with_its_topologys_age(
    js: Any, nats_url: str
) -> None:
    topology = unique_topology(max_age_s=1800)
    server = start_simulator(nats_url, topology=topology)
    try:
        for stream in (topology.orders_stream, topology.receipts_stream):
            assert (await js.stream_info(stream)).config.max_age == 1800
    finally:
        server.stop()


def test_simulate_oppdrag_offers_the_queues_age_limit() -> None:
    result = CliRunner().invoke(app, ["simulate", "oppdrag", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--stream-max-age" in result.output


def test_simulate_oppdrag_reads_the_broker_and_token_from_tethers_variables() -> None:
    """Started beside a worker, it finds the same broker and expects the token the worker sends."""
    single = typer.Typer(add_completion=False)
    single.command()(simulate)
    params = {p.name: p for p in typer.main.get_command(single).params}
    assert params["nats_url"].envvar == "TETHER_NATS_URL"
    assert params["token"].envvar == "TETHER_PAYMENTS_OPPDRAG_TOKEN"
