"""Worker jobs of the payments capability, each a loop until ``stop`` is set.

- ``send_orders``: the outbox. Claims due unsent orders (``FOR UPDATE SKIP LOCKED``; a dead
  sender's claim falls due by itself), publishes each XML with ``Nats-Msg-Id`` = order id (a
  re-send is dropped by JetStream's duplicate window; a second attempt is first looked up at the
  payment system), marks the sent ones ``HOS_OPPDRAG`` in one transaction.
- ``consume_receipts`` / ``consume_intake``: durable pull consumers (the intake's key in
  ``Transaction-ID``), a fetched batch booked in one transaction, acknowledged after its commit.
- ``statuses.publish_statuses``: every stored status to ``payments.status.v1``.

A round of less than a full batch is followed by a pause (``rounds``: short while messages wait
behind their cases, longer when none does): a trickle is taken in groups, less CPU a message for
at most that much latency (not the intake's: a sender waits on it, and a crowd forms batches by
itself).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tether.core import db
from tether.core.errors import Conflict, InvalidInput, UpstreamError
from tether.core.events import close_quietly, connect_nats, ensure_stream
from tether.core.jetstream import Publisher, Puller
from tether.core.jobs import backoff, run_due_loop
from tether.payments import codec, intake, outbox, repository, rounds
from tether.payments.records import OrderRow, Outgoing
from tether.payments.service import PaymentsService
from tether.payments.statuses import HEADROOM

logger = logging.getLogger(__name__)


async def send_orders(
    service: PaymentsService, nats_url: str, *, stop: asyncio.Event, once: bool = False
) -> int:
    """Publish due orders on the core job loop until stopped; returns how many were claimed."""
    s = service.settings
    nc = await connect_nats(nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, s.orders_stream, s.orders_subject, max_age_s=s.stream_max_age_s)
        publisher = Publisher(nc, s.orders_subject, stream=s.orders_stream)
        service.send_here()
        handed: list[Outgoing] = []
        last_claim = float("-inf")

        async def claim() -> list[Outgoing]:
            # the handed ones were claimed for this sender when stored; due ones are claimed
            # besides at least every poll interval, so a steady flow of receipts cannot starve
            # orders stored elsewhere (they wait no longer than an idle sender's poll)
            nonlocal last_claim
            handed[:] = service.take_handed()
            now = asyncio.get_running_loop().time()
            if handed and now - last_claim < s.poll_interval_s:
                return list(handed)
            last_claim = now
            async with db.autocommit(service.pool) as conn:  # one statement, atomic by itself
                due = await repository.claim_due_orders(
                    conn, limit=max(1, s.send_batch - len(handed)), dead_s=s.send_dead_timeout_s
                )
            return [*handed, *due]

        async def process(orders: Sequence[Outgoing]) -> None:
            await _send_batch(service, publisher, orders, max_payload=nc.max_payload)

        def pause(orders: Sequence[Outgoing]) -> float:
            return rounds.after_send(
                s, orders=len(orders), handed=len(handed), queueing=service.queueing.now()
            )

        return await run_due_loop(
            claim=claim,
            process=process,
            stop=stop,
            once=once,
            poll_interval_s=s.poll_interval_s,
            wake=service.orders_ready,
            name="payments-send",
            pause=pause,
        )
    finally:
        await close_quietly(nc)


async def _send_batch(
    service: PaymentsService,
    publisher: Publisher,
    orders: Sequence[Outgoing],
    *,
    max_payload: int | None = None,
) -> int:
    """Send a claimed batch; ``max_payload`` is the broker's (its connection's), if known."""
    s = service.settings
    limit = s.max_order_bytes
    if max_payload is not None:
        limit = min(limit, max_payload - HEADROOM)
    outcomes = await outbox.send(service, publisher, orders, limit)
    done = [o.id for o, err in zip(orders, outcomes, strict=True) if err is None]
    unsendable: list[tuple[uuid.UUID, str]] = []  # refused once the marks are committed
    parked: list[tuple[uuid.UUID, str]] = []
    failed: list[tuple[uuid.UUID, float, str]] = []
    for order, err in zip(orders, outcomes, strict=True):
        if isinstance(err, outbox.TooLarge) and order.send_attempts < 2:  # never published
            unsendable.append((order.id, err))
        elif isinstance(err, outbox.TooLarge):  # may sit in the queue, unseen by the lookup
            parked.append((order.id, err))
        elif err is not None:
            delay = backoff(
                order.send_attempts,
                base_s=s.send_retry_base_s,
                max_s=s.send_retry_max_s,
                jitter=0.5,
            )
            failed.append((order.id, delay, err))
    marked = 0  # HOS_OPPDRAG statuses stored: none for an order a receipt finished first
    if done or parked or failed:  # one transaction, one round trip
        async with db.autocommit(service.pool) as conn:
            marked = await repository.book_sends(conn, sent=done, parked=parked, failed=failed)
    intake.count(["HOS_OPPDRAG"] * marked)  # committed
    if unsendable:  # never retried: FEILET 400, and the case goes on with its next message
        await service.refuse_unsendable(unsendable)
    if done:
        service.statuses_ready.set()
    return len(done)


async def chase_receipts(
    service: PaymentsService, nats_url: str, *, stop: asyncio.Event, once: bool = False
) -> int:
    """Orders without a receipt past the timeout: ask the payment system, book its verdict, or
    send the order again if it never arrived (a lost receipt must not block a case forever)."""
    s = service.settings

    async def claim() -> list[OrderRow]:
        async with db.transaction(service.pool) as conn:
            return await repository.claim_unanswered_orders(
                conn, limit=s.send_batch, timeout_s=s.receipt_timeout_s
            )

    async def process(orders: Sequence[OrderRow]) -> None:
        for order in orders:
            await _chase_one(service, order)

    return await run_due_loop(
        claim=claim,
        process=process,
        stop=stop,
        once=once,
        poll_interval_s=max(s.poll_interval_s, 1.0),
        name="payments-chase",
    )


async def _chase_one(service: PaymentsService, order: OrderRow) -> None:
    try:
        found = await service.client.lookup_order(order.id)
    except UpstreamError as exc:
        logger.warning(
            "cannot ask about order %s: %s",
            order.id,
            exc.message,
            extra={"action": "payments_chase_failed"},
        )
        return
    receipt = codec.receipt_from_lookup(order.id, found) if found is not None else None
    if receipt is not None:
        outcome = await service.apply_receipt(receipt, f"lookup: {found}")
        logger.warning(
            "order %s had no receipt; booked its verdict from a lookup (%s)",
            order.id,
            outcome,
            extra={"action": "payments_receipt_chased"},
        )
        return
    if found is None:
        async with db.transaction(service.pool) as conn:
            resent = await repository.resend_order(conn, id=order.id)
        if resent:
            service.orders_ready.set()
            logger.warning(
                "order %s never reached the payment system: sent again",
                order.id,
                extra={"action": "payments_order_resent"},
            )


async def _consume(
    nats_url: str,
    *,
    stream: str,
    subject: str,
    durable: str,
    batch: int,
    stop: asyncio.Event,
    once: bool,
    handle: Callable[[Any], Awaitable[None]],
    ack_wait_s: float,
    max_age_s: float,
    parallel: int = 1,
    handle_batch: Callable[[list[Any]], Awaitable[None]] | None = None,
    pause: Callable[[int], float] | None = None,
) -> int:
    """Pull messages with a durable consumer; each is acknowledged once ``handle`` returned.

    A message not acknowledged within ``ack_wait_s`` (its worker died) is delivered again.
    ``parallel`` > 1 handles a fetched batch concurrently (receipts: each books its own order).
    ``handle_batch`` takes a fetched batch at once; when it fails, ``handle`` takes each message.
    ``pause(fetched)``: seconds to sleep after a round (none without it).
    """
    from nats.js.api import ConsumerConfig

    nc = await connect_nats(nats_url)
    sub = None
    handled = 0
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream, subject, max_age_s=max_age_s)
        gate = asyncio.Semaphore(parallel)

        async def bounded(msg: Any) -> bool:
            async with gate:
                return await _handle_and_ack(msg, handle)

        config = ConsumerConfig(ack_wait=ack_wait_s)
        sub = await js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
        puller = Puller(nc, stream, durable)
        while not stop.is_set():
            try:
                msgs = await puller.fetch(batch, wait_s=0.5)
            except TimeoutError:  # none within the wait
                if once:
                    break
                continue
            if handle_batch is not None:
                results = await _batch_and_ack(msgs, handle_batch, bounded)
            elif parallel > 1:
                results = await asyncio.gather(*(bounded(m) for m in msgs))
            else:  # one at a time: the broker's order is the arrival order
                results = [await _handle_and_ack(m, handle) for m in msgs]
            handled += sum(results)
            wait_s = 0.0 if pause is None else pause(len(msgs))
            if wait_s > 0:
                await asyncio.sleep(wait_s)
    finally:
        await close_quietly(nc, sub)
    return handled


async def _batch_and_ack(
    msgs: list[Any],
    handle_batch: Callable[[list[Any]], Awaitable[None]],
    one: Callable[[Any], Awaitable[bool]],
) -> list[bool]:
    """The batch at once; on an error (a deadlock, one bad row) each message on its own, so one
    failure does not hold back the others. Acknowledged only after the batch committed."""
    try:
        await handle_batch(msgs)
    except Exception:
        logger.warning(
            "handling a batch of %d failed; one by one",
            len(msgs),
            exc_info=True,
            extra={"action": "payments_batch_fallback"},
        )
        return list(await asyncio.gather(*(one(m) for m in msgs)))
    for msg in msgs:  # one after the other: an ack is written, never awaited (no task each)
        await msg.ack()
    return [True] * len(msgs)


async def _handle_and_ack(msg: Any, handle: Callable[[Any], Awaitable[None]]) -> bool:
    try:
        await handle(msg)
    except Exception:  # the database is away or a bug: redeliver later
        logger.exception(
            "handling a message failed; redelivered later",
            extra={"action": "payments_consume_failed"},
        )
        await msg.nak(delay=1)
        return False
    await msg.ack()
    return True


async def consume_receipts(
    service: PaymentsService, nats_url: str, *, stop: asyncio.Event, once: bool = False
) -> int:
    """Book receipts until stopped; an unreadable or unknown one is kept, never a crash."""
    s = service.settings

    async def handle(msg: Any) -> None:
        raw = msg.data.decode("utf-8", errors="replace")
        try:
            receipt = codec.read_receipt(msg.data)
        except Exception as exc:  # whatever the payment system sent, keep it for an operator
            async with db.transaction(service.pool) as conn:
                await repository.insert_stray_receipt(
                    conn,
                    order_id=(msg.headers or {}).get("Order-Id"),
                    reason=f"unreadable: {exc}"[:300],
                    body=raw,
                )
            return
        await service.apply_receipt(receipt, raw)

    async def handle_batch(msgs: list[Any]) -> None:
        readable, unreadable = [], []
        for msg in msgs:
            try:
                readable.append((codec.read_receipt(msg.data), msg.data.decode("utf-8")))
            except Exception:  # kept as a stray by ``handle``, after the batch committed
                unreadable.append(msg)
        if readable:
            await service.apply_receipts(readable)
        for msg in unreadable:  # should this fail, the batch is booked again: duplicates only
            await handle(msg)

    return await _consume(
        nats_url,
        stream=s.receipts_stream,
        subject=s.receipts_subject,
        durable=s.receipts_durable,
        batch=s.fetch_batch,
        stop=stop,
        once=once,
        handle=handle,
        ack_wait_s=s.ack_wait_s,
        max_age_s=s.stream_max_age_s,
        parallel=s.receipt_concurrency,
        handle_batch=handle_batch,
        pause=lambda fetched: rounds.after_receipts(
            s, fetched=fetched, queueing=service.queueing.now()
        ),
    )


async def consume_intake(
    service: PaymentsService, nats_url: str, *, stop: asyncio.Event, once: bool = False
) -> int:
    """Take dagpenger messages from the broker; the key is the ``Transaction-ID`` header."""
    s = service.settings

    async def handle(msg: Any) -> None:
        await handle_batch([msg])

    async def handle_batch(msgs: list[Any]) -> None:
        batch = [((m.headers or {}).get("Transaction-ID", ""), m.data) for m in msgs]
        for outcome in await service.submit_many(batch):
            if isinstance(outcome, (InvalidInput, Conflict)):  # no key, or a reused one
                logger.warning(
                    "intake message refused: %s",
                    outcome.message,
                    extra={"action": "payments_intake_refused"},
                )

    return await _consume(
        nats_url,
        stream=s.intake_stream,
        subject=s.intake_subject,
        durable=s.intake_durable,
        batch=s.fetch_batch,
        stop=stop,
        once=once,
        handle=handle,
        ack_wait_s=s.ack_wait_s,
        max_age_s=s.stream_max_age_s,
        handle_batch=handle_batch,
    )
