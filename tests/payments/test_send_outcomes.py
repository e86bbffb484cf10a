"""A send batch's bookkeeping against a real NATS: a published order is marked HOS_OPPDRAG with
its status; one JetStream refused stays MOTTATT with the error and a later due time, and is sent
by a later round."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.events import ensure_stream
from tether.payments import repository, tasks
from tether.payments.service import PaymentsService

from .conftest import june, message, order_publisher


async def _order_row(pool: AsyncConnectionPool[Any], order_id: Any) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT state, last_error, send_due_at > now() AS later, sent_at IS NOT NULL AS sent"
            " FROM pay.oppdrag WHERE id = %s",
            (order_id,),
        )
        row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def test_a_refused_publish_is_recorded_and_a_later_one_marks_the_order_sent(
    service: PaymentsService, pool: AsyncConnectionPool[Any], js: Any
) -> None:
    await service.submit("k1", message(june(3, 14)))
    (order,) = await service.orders("sak1")
    # no stream holds the orders subject yet: JetStream refuses the publish
    assert await tasks._send_batch(service, order_publisher(js, service), [order]) == 0
    refused = await _order_row(pool, order.id)
    assert refused["state"] == "MOTTATT" and not refused["sent"]
    assert refused["last_error"] and refused["later"]

    s = service.settings
    await ensure_stream(js, s.orders_stream, s.orders_subject)
    assert await tasks._send_batch(service, order_publisher(js, service), [order]) == 1
    sent = await _order_row(pool, order.id)
    assert sent["state"] == "HOS_OPPDRAG" and sent["sent"] and sent["last_error"] is None
    assert (await js.stream_info(s.orders_stream)).state.messages == 1
    statuses = [row.status for row in await service.statuses("sak1")]
    assert statuses == ["MOTTATT", "HOS_OPPDRAG"]


async def test_a_failed_send_ends_the_claim_so_the_order_is_due_at_its_retry_time(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """A claim holds an order for the dead timeout (``claimed_until``, migration 0010); a send
    that failed gives it a retry time instead, and the order is claimed again then, not only
    when the claim would have expired."""
    await service.submit("k1", message(june(3, 14)))
    async with db.autocommit(pool) as conn:
        (order,) = await repository.claim_due_orders(conn, limit=10, dead_s=600)
        assert await repository.claim_due_orders(conn, limit=10, dead_s=600) == []  # held
        await repository.book_sends(conn, sent=[], failed=[(order.id, 0, "refused")])
        (again,) = await repository.claim_due_orders(conn, limit=10, dead_s=600)
    assert again.id == order.id and again.send_attempts == 2
