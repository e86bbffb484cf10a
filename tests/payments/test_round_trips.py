"""The sender books a round in one round trip (BEGIN, its marks, parks and failures, COMMIT,
pipelined), the status publisher a page in two (BEGIN with the claim, COMMIT with the cursor's
move); a failure between leaves nothing and the connection goes back to the pool as lent.
Round trips are counted in libpq's trace of the pool's one connection: one ReadyForQuery each."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from psycopg import pq
from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.errors import UpstreamError
from tether.core.events import ensure_stream
from tether.payments import statuses, tasks
from tether.payments.service import PaymentsService

from .conftest import june, message, order_publisher, publish_once


@pytest.fixture
async def own(db_url: str, service: PaymentsService) -> AsyncIterator[PaymentsService]:
    """The service on a pool of one connection: the one traced."""
    pool = db.make_pool(db_url, min_size=1, max_size=1)
    await pool.open(wait=True)
    try:
        yield PaymentsService(pool=pool, settings=service.settings, client=service.client)
    finally:
        await pool.close()


@asynccontextmanager
async def traced(pool: AsyncConnectionPool[Any]) -> AsyncIterator[list[int]]:
    """Round trips on the pool's connection while inside (the count filled in at the end)."""
    counted: list[int] = []
    with tempfile.TemporaryFile("w+") as log:
        async with pool.connection() as conn:
            conn.pgconn.trace(log.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield counted
        finally:
            async with pool.connection() as conn:
                conn.pgconn.untrace()
            log.seek(0)
            counted.append(sum("\tReadyForQuery\t" in line for line in log))


async def lent_as_usual(pool: AsyncConnectionPool[Any]) -> int:
    async with pool.connection() as conn:
        assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        assert conn.autocommit is False
        return conn.info.backend_pid


async def test_a_send_round_is_booked_in_one_round_trip(own: PaymentsService, js: Any) -> None:
    s = own.settings
    await ensure_stream(js, s.orders_stream, s.orders_subject)
    await own.submit("k1", message(june(3, 14)))
    await own.submit("k2", message(june(3, 14), sak="sak2"))
    (first,) = await own.orders("sak1")
    (second,) = await own.orders("sak2")
    retried = replace(second, send_attempts=2)  # looked up first: the system is unreachable
    async with traced(own.pool) as round_trips:
        sent = await tasks._send_batch(own, order_publisher(js, own), [first, retried])
    assert sent == 1 and round_trips == [1]
    assert [o.state for o in await own.orders("sak1")] == ["HOS_OPPDRAG"]
    (failed,) = await own.orders("sak2")
    assert failed.state == "MOTTATT"
    async with own.pool.connection() as conn:
        cur = await conn.execute("SELECT last_error FROM pay.oppdrag WHERE id = %s", (failed.id,))
        row = await cur.fetchone()
    assert row is not None and row["last_error"]  # the lookup's failure, retried later
    await lent_as_usual(own.pool)


async def test_a_status_page_is_one_transaction_in_two_round_trips(
    own: PaymentsService, nats_url: str
) -> None:
    await own.submit("k1", message(june(3, 14)))
    async with traced(own.pool) as round_trips:
        assert await publish_once(own, nats_url) == 1  # a page of one, then an empty one
    assert round_trips == [4]
    assert await publish_once(own, nats_url) == 0  # the cursor moved past it


async def test_a_failed_status_page_leaves_the_cursor_and_a_clean_connection(
    own: PaymentsService, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await own.submit("k1", message(june(3, 14)))
    kept = await lent_as_usual(own.pool)

    async def refused(*_: Any) -> None:
        raise UpstreamError("not stored")

    with monkeypatch.context() as patched:
        patched.setattr(statuses, "_publish_all", refused)
        with pytest.raises(UpstreamError):
            await publish_once(own, nats_url)
    assert await lent_as_usual(own.pool) == kept  # rolled back, not replaced
    assert await publish_once(own, nats_url) == 1  # the page goes out again
