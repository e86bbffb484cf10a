"""The outbox's sending: claim due orders, publish each to JetStream, book them sent.

Used by the sender job (``tasks.send_orders``) and, right after a receipt booking planned a
case's next order, by the receipt worker (``SendNow``). A claim moves the order's due clock past
the dead timeout (``FOR UPDATE SKIP LOCKED``): one claimant per order, and a claim whose send
was never recorded expires by itself; an order claimed before is first looked up at the payment
system (``send_one``), so a crash between send and bookkeeping never sends it twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from tether.core import db
from tether.core.jobs import backoff
from tether.payments import repository
from tether.payments.records import OrderRow
from tether.payments.service import PaymentsService

logger = logging.getLogger(__name__)


async def claim_due(service: PaymentsService) -> list[OrderRow]:
    s = service.settings
    async with db.transaction(service.pool) as conn:
        return await repository.claim_due_orders(
            conn, limit=s.send_batch, dead_s=s.send_dead_timeout_s
        )


class SendNow:
    """Sender rounds right after receipt bookings planned orders: a hot case's next order leaves
    without waiting for the sender to wake. Beside the receipt loop (one round at a time, one
    more when asked meanwhile), so booking the next receipts does not wait for sends. The same
    claim (``FOR UPDATE SKIP LOCKED``, the due clock moved past the dead timeout) and the same
    send as ``send_orders``: exactly one of the two takes an order, and one claimed here whose
    send was never recorded is looked up at the payment system before it is sent again. A
    failure leaves the orders to the sender."""

    def __init__(self, service: PaymentsService, js: Any) -> None:
        self.service, self.js = service, js
        self.task: asyncio.Task[None] | None = None
        self.again = False

    def ask(self) -> None:
        if self.task is not None and not self.task.done():
            self.again = True
        else:
            self.task = asyncio.create_task(self._rounds())

    async def _rounds(self) -> None:
        self.again = True
        while self.again:
            self.again = False
            try:
                if orders := await claim_due(self.service):
                    await send_batch(self.service, self.js, orders)
            except Exception:
                logger.warning(
                    "sending after a receipt failed; left to the sender",
                    exc_info=True,
                    extra={"action": "payments_send_now_failed"},
                )

    async def close(self) -> None:
        if self.task is not None:
            await self.task


async def send_batch(service: PaymentsService, js: Any, orders: Sequence[OrderRow]) -> int:
    s = service.settings
    outcomes = await asyncio.gather(*(send_one(service, js, o) for o in orders))
    done = [o.id for o, err in zip(orders, outcomes, strict=True) if err is None]
    async with db.transaction(service.pool) as conn:
        if done:
            await repository.mark_orders_sent(conn, ids=done)
        for order, err in zip(orders, outcomes, strict=True):
            if err is not None:
                delay = backoff(
                    order.send_attempts,
                    base_s=s.send_retry_base_s,
                    max_s=s.send_retry_max_s,
                    jitter=0.5,
                )
                await repository.record_send_failure(conn, id=order.id, delay_s=delay, error=err)
    if done:
        service.statuses_ready.set()
    return len(done)


async def send_one(service: PaymentsService, js: Any, order: OrderRow) -> str | None:
    """Publish one order; an error text when it could not be sent (it is retried later)."""
    s = service.settings
    try:
        if order.send_attempts > 1 and await service.client.has_order(order.id):
            logger.info(
                "order %s already at the payment system: not re-sent",
                order.id,
                extra={"action": "payments_order_already_sent"},
            )
            return None
        await js.publish(
            s.orders_subject,
            order.xml.encode(),
            stream=s.orders_stream,
            headers={"Nats-Msg-Id": order.message_id, "Order-Id": str(order.id)},
        )
    except Exception as exc:  # upstream, socket or nats-py's own errors: all mean "not sent"
        return f"{type(exc).__name__}: {exc}"
    return None
