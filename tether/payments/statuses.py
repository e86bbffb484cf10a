"""Publishing of statuses: every stored status to ``payments.status.v1`` (at least once, in
order per key: one publisher at a time across workers, marked only after JetStream's ack).

A status goes out as the database's JSON text of its body (``jsonb`` keeps its own key order, the
one a decoded body has): the same object as the status endpoints show, never decoded and encoded
again here, which was most of this job's CPU."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tether.core import db
from tether.core.events import close_quietly, connect_nats, ensure_stream
from tether.core.jobs import idle
from tether.payments import repository
from tether.payments.service import PaymentsService

STATUS_BATCH = 500  # statuses published per round
PUBLISH_TIMEOUT_S = 10.0  # every acknowledgement of a round, or the round is published again


async def publish_statuses(
    service: PaymentsService, nats_url: str, *, stop: asyncio.Event, once: bool = False
) -> int:
    """Publish stored statuses in order; a status is marked only after JetStream acknowledged."""
    s = service.settings
    nc = await connect_nats(nats_url)
    published = 0
    try:
        js = nc.jetstream()
        await ensure_stream(js, s.status_stream, s.status_subject, max_age_s=s.stream_max_age_s)
        while not stop.is_set():
            async with db.transaction(service.pool) as conn:
                rows = []
                if await repository.lock_status_publisher(conn):
                    rows = await repository.claim_unpublished_statuses(conn, limit=STATUS_BATCH)
                await _publish_all(
                    js,
                    s.status_subject,
                    s.status_stream,
                    [
                        (body.encode(), {"Transaction-ID": key, "Nats-Msg-Id": f"status-{id_}"})
                        for id_, key, body in rows
                    ],
                )
                if rows:
                    await repository.mark_statuses_published(conn, ids=[r[0] for r in rows])
            published += len(rows)
            if once and not rows:
                break
            if len(rows) < STATUS_BATCH and not once:  # drained: wait, without an empty round
                await asyncio.sleep(s.round_linger_s)
                await idle(stop, service.statuses_ready, s.poll_interval_s)
    finally:
        await close_quietly(nc)
    return published


async def _publish_all(
    js: Any, subject: str, stream: str, items: Sequence[tuple[bytes, dict[str, str]]]
) -> None:
    """Written to the socket in order, the acknowledgements awaited together: no request timer
    and reply subscription per message. Raises unless every one was acknowledged in time, so
    nothing is marked and the batch is published again (JetStream drops the repeats by id)."""
    futures = [await js.publish_async(subject, data, stream=stream, headers=h) for data, h in items]
    try:
        await asyncio.wait_for(asyncio.gather(*futures), PUBLISH_TIMEOUT_S)
    finally:
        for future in futures:  # a lost ack must not hold its slot in nats-py's pending table
            future.cancel()
