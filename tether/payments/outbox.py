"""The sender's round: each claimed order looked up if it may have left before, checked for
size, and the rest published in one round (``jetstream.Publisher``), its outcome per order for
``tasks._send_batch`` to book."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Literal

from tether.core.jetstream import Item, Publisher
from tether.payments import codec
from tether.payments.records import Outgoing
from tether.payments.service import PaymentsService

logger = logging.getLogger(__name__)


class TooLarge(str):
    """The error of an order the broker would refuse for its size: retrying cannot help."""


SEND_TIMEOUT_S = 5.0  # JetStream's acknowledgement of an order, or it is sent again later


async def send(
    service: PaymentsService, publisher: Publisher, orders: Sequence[Outgoing], limit: int
) -> list[str | None]:
    """Per order, None once sent, an error text when it could not be (it is retried later), a
    ``TooLarge`` one when it never can be (planning refuses such orders; one stored before the
    limit, or under a larger one, is refused or parked by ``_send_batch`` instead of being
    refused by the broker for ever). One that may have left before is first looked up; the
    others go out in one round of ``publisher``."""
    retried = [o for o in orders if o.send_attempts > 1]
    found = await asyncio.gather(*(_look_up(service, o) for o in retried))
    looked_up = dict(zip((o.id for o in retried), found, strict=True))
    outcomes: list[str | None] = []
    places: list[int] = []
    items: list[Item] = []
    for order in orders:
        seen = looked_up.get(order.id, False)
        data = order.xml.encode()
        if seen is not False:  # at the payment system (None), or the lookup failed
            outcomes.append(seen)
        elif len(data) > limit:
            outcomes.append(_too_large(order, len(data), limit))
        else:
            places.append(len(outcomes))
            outcomes.append(None)
            items.append((data, {"Nats-Msg-Id": order.message_id, "Order-Id": str(order.id)}))
    answers = await publisher.publish(items, timeout_s=SEND_TIMEOUT_S)
    for place, answer in zip(places, answers, strict=True):
        outcomes[place] = answer
    return outcomes


async def _look_up(service: PaymentsService, order: Outgoing) -> Literal[False] | str | None:
    """None when the payment system has the order already (it is not sent again), False when
    it has not, an error text when it could not be asked (asked again on the next attempt)."""
    try:
        if not await service.client.has_order(order.id):
            return False
    except Exception as exc:  # upstream or socket errors
        return f"{type(exc).__name__}: {exc}"
    logger.info(
        "order %s already at the payment system: not re-sent",
        order.id,
        extra={"action": "payments_order_already_sent"},
    )
    return None


def _too_large(order: Outgoing, size: int, limit: int) -> TooLarge:
    logger.error(
        "order %s (key %s) is %d bytes, over the %d the orders queue takes: not sent; "
        "its message is FEILET 400 on a first attempt, else the order is parked for an "
        "operator (an earlier attempt may sit in the payment system's queue)",
        order.id,
        order.original_key,
        size,
        limit,
        extra={"action": "payments_order_too_large"},
    )
    return TooLarge(codec.too_large(size, limit))
