"""Sizes bounded end to end: a message of more days than a case can hold is refused, an order
larger than the orders queue takes is refused at planning (never stored), a status larger than
the broker takes goes out compact (the publisher goes on with the next one), and an order too
large to send (stored before the limit) is its message's FEILET 400: never sent nor retried,
and its case goes on with the next message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from tether.core.events import ensure_stream
from tether.payments import repository, tasks
from tether.payments.client import OppdragClient
from tether.payments.models import MAX_DAYS
from tether.payments.service import PaymentsService

from .conftest import (
    day,
    june,
    message,
    order_publisher,
    publish_once,
    start_simulator,
    unique_settings,
    unique_topology,
)


@pytest.fixture
async def small_orders(pool: AsyncConnectionPool[Any]) -> AsyncIterator[PaymentsService]:
    """A service whose orders queue takes 2,000 bytes: a fortnight of own amounts is more."""
    own = unique_settings(max_order_bytes=2000)
    async with OppdragClient.from_settings(own) as client:
        yield PaymentsService(pool=pool, settings=own, client=client)


def own_amounts(first: date, n: int) -> list[dict[str, Any]]:
    """``n`` consecutive days, each its own amount (so each its own period and line)."""
    return [day(first + timedelta(days=i), 100 + i) for i in range(n)]


async def test_a_message_of_more_days_than_the_cap_is_feilet_400(
    service: PaymentsService,
) -> None:
    await service.submit("k1", message(own_amounts(date(2015, 1, 1), MAX_DAYS + 1)))
    row = await service.wait_status("k1", 10)
    assert row.status == "FEILET"
    assert row.body["error"]["statusCode"] == 400
    assert "utbetalinger" in row.body["error"]["msg"]
    assert str(MAX_DAYS) in row.body["error"]["msg"]
    assert await service.orders("sak1") == []


async def test_a_message_under_the_cap_plans_as_before(service: PaymentsService) -> None:
    await service.submit("k1", message(june(3, 14)))
    assert (await service.latest_status("k1")).status == "MOTTATT"


async def test_an_order_over_max_order_bytes_is_feilet_400_and_never_stored(
    small_orders: PaymentsService,
) -> None:
    service = small_orders
    await service.submit("k1", message(own_amounts(date(2024, 6, 3), 12)))
    row = await service.wait_status("k1", 10)
    assert row.status == "FEILET"
    error = row.body["error"]
    assert error["statusCode"] == 400
    assert "over the payment system's 2000" in error["msg"]
    assert "send fewer periods per message" in error["msg"]
    assert await service.orders("sak1") == []
    assert (await service.case("sak1")).inflight_order is None  # the case stays free
    # a small one on the same case still goes through
    await service.submit("k2", message([day(date(2024, 6, 3), 100)]))
    assert (await service.latest_status("k2")).status == "MOTTATT"


async def test_an_order_over_max_order_bytes_in_a_fetched_batch_is_feilet_400(
    small_orders: PaymentsService,
) -> None:
    service = small_orders
    big = message(own_amounts(date(2024, 6, 3), 12))
    small = message([day(date(2024, 6, 3), 100)], sak="sak2")
    await service.submit_many([("k1", big), ("k2", small)])
    assert (await service.wait_status("k1", 10)).status == "FEILET"
    assert (await service.latest_status("k2")).status == "MOTTATT"
    assert await service.orders("sak1") == []


async def test_a_dry_run_over_max_order_bytes_is_feilet_400(
    small_orders: PaymentsService,
) -> None:
    service = small_orders
    await service.submit("k1", message(own_amounts(date(2024, 6, 3), 12), dryrun=True))
    row = await service.wait_status("k1", 10)
    assert row.status == "FEILET" and row.body["simulering"] is True
    assert "over the payment system's 2000" in row.body["error"]["msg"]


async def test_a_status_larger_than_the_broker_takes_goes_out_compact(
    service: PaymentsService, pool: AsyncConnectionPool[Any], nats_url: str, js: Any
) -> None:
    lines = [
        {
            "behandlingId": "b1",
            "fom": "2024-06-03",
            "tom": "2024-06-03",
            "vedtakssats": 100,
            "beløp": 100,
            "klassekode": "DAGPENGER",
        }
        for _ in range(12_000)
    ]
    big = {
        "status": "MOTTATT",
        "detaljer": {"ytelse": "DAGPENGER", "linjer": lines},
        "error": None,
        "simulering": False,
    }
    assert len(json.dumps(big).encode()) > 1024 * 1024  # over NATS's default max_payload
    small = {"status": "OK", "detaljer": None, "error": None, "simulering": False}
    async with pool.connection() as conn:
        await repository.insert_status(conn, original_key="big/1", status="MOTTATT", body=big)
        await repository.insert_status(conn, original_key="k2", status="OK", body=small)

    assert await publish_once(service, nats_url) == 2
    s = service.settings
    first = await js.get_msg(s.status_stream, 1)
    second = await js.get_msg(s.status_stream, 2)
    assert first.headers["Transaction-ID"] == "big/1"
    body = json.loads(first.data)
    assert body["status"] == "MOTTATT" and body["detaljer"] is None
    assert body["error"] is None and body["simulering"] is False
    assert body["utelatt"]["linjer"] == 12_000
    assert "GET /api/v1/payments/status/big%2F1" in body["utelatt"]["info"]
    assert second.headers["Transaction-ID"] == "k2"
    assert json.loads(second.data) == small
    assert await publish_once(service, nats_url) == 0  # both past the log's cursor
    # the full status is still what the status endpoint reads
    assert len((await service.latest_status("big/1")).body["detaljer"]["linjer"]) == 12_000


async def test_an_order_too_large_to_send_is_feilet_400_and_its_case_goes_on(
    service: PaymentsService, pool: AsyncConnectionPool[Any], js: Any
) -> None:
    """An order stored before the limit (or under a larger one) is never sent nor claimed
    again; its message ends FEILET 400 as an 08 would end it, and the message that waited
    behind it on the case is planned at once (not stuck behind an order that cannot go)."""
    await service.submit("k1", message(own_amounts(date(2024, 6, 3), 12)))
    (order,) = await service.orders("sak1")
    await service.submit("k2", message(june(3, 7)))
    assert (await service.latest_status("k2")).status == "VENTER"
    s = service.settings.model_copy(update={"max_order_bytes": 2000})
    sender = PaymentsService(pool=pool, settings=s, client=service.client)
    await ensure_stream(js, s.orders_stream, s.orders_subject)
    assert await tasks._send_batch(sender, order_publisher(js, sender), [order]) == 0
    assert (await js.stream_info(s.orders_stream)).state.messages == 0

    k1 = await service.latest_status("k1")
    assert k1.status == "FEILET" and k1.body["error"]["statusCode"] == 400
    assert "over the payment system's 2000" in k1.body["error"]["msg"]
    assert k1.body["detaljer"] == order.details  # what would have been sent
    assert [r.status for r in await service.statuses("sak1") if r.original_key == "k1"] == [
        "MOTTATT",
        "FEILET",
    ]  # never HOS_OPPDRAG: it never left
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT state, last_error, send_due_at, sent_at, receipt_code, receipt_at"
            " FROM pay.oppdrag WHERE id = %s",
            (order.id,),
        )
        row = await cur.fetchone()
        assert row is not None
        assert row["state"] == "FEILET" and row["send_due_at"] is None
        assert row["sent_at"] is None and row["receipt_code"] is None and row["receipt_at"] is None
        assert "over the payment system's 2000" in row["last_error"]

    # the case is free again: k2 was planned against the state before k1 (nothing confirmed)
    assert (await service.latest_status("k2")).status == "MOTTATT"
    first, second = await service.orders("sak1")
    assert first.id == order.id and second.original_key == "k2"
    assert "<kodeEndring>NY</kodeEndring>" in second.xml  # k1 never reached the payment system
    view = await service.case("sak1")
    assert view.inflight_order == second.id
    assert view.active_uids is None  # still never paid: nothing was confirmed
    # a second refusal of the same order (another sender's) changes nothing
    assert await sender.refuse_unsendable([(order.id, "again")]) == 0
    assert (await service.latest_status("k1")).body["error"]["msg"] == k1.body["error"]["msg"]
    async with pool.connection() as conn:  # no sender claims it again
        claimed = await repository.claim_due_orders(conn, limit=10, dead_s=0)
    assert order.id not in {o.id for o in claimed}


async def test_a_second_attempt_too_large_is_parked_not_refused(
    service: PaymentsService, pool: AsyncConnectionPool[Any], js: Any, nats_url: str
) -> None:
    """An order claimed before may sit in the payment system's queue, which its lookup does not
    see: refusing it would free the case while the order may still be paid. It is parked:
    MOTTATT, no due time, its case still waiting; a receipt for it would still be booked."""
    await service.submit("k1", message(own_amounts(date(2024, 6, 3), 12)))
    (order,) = await service.orders("sak1")
    await service.submit("k2", message(june(3, 7)))
    token = service.settings.oppdrag_token.get_secret_value()
    sim = start_simulator(nats_url, topology=unique_topology(), token=token)
    try:
        s = service.settings.model_copy(update={"max_order_bytes": 2000, "oppdrag_url": sim.url})
        async with OppdragClient.from_settings(s) as client:
            sender = PaymentsService(pool=pool, settings=s, client=client)
            await ensure_stream(js, s.orders_stream, s.orders_subject)
            assert (
                await tasks._send_batch(
                    sender, order_publisher(js, sender), [replace(order, send_attempts=2)]
                )
                == 0
            )
    finally:
        sim.stop()
    assert (await js.stream_info(s.orders_stream)).state.messages == 0
    assert (await service.latest_status("k1")).status == "MOTTATT"  # not FEILET
    assert (await service.latest_status("k2")).status == "VENTER"  # still behind it
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT state, last_error, send_due_at FROM pay.oppdrag WHERE id = %s", (order.id,)
        )
        row = await cur.fetchone()
        assert row is not None
        assert row["state"] == "MOTTATT" and row["send_due_at"] is None
        assert "over the payment system's 2000" in row["last_error"]
        claimed = await repository.claim_due_orders(conn, limit=10, dead_s=0)
    assert order.id not in {o.id for o in claimed}
    assert (await service.case("sak1")).inflight_order == order.id
