"""Publishing of statuses: every stored status to ``payments.status.v1`` (at least once, in
order per key: one publisher at a time across workers, the log's cursor moved only after
JetStream's ack; migration 0008 says how the cursor finds every committed status once).

A status goes out as the database's JSON text of its body (``jsonb`` keeps its own key order, the
one a decoded body has): the same object as the status endpoints show, never decoded and encoded
again here, which was most of this job's CPU. A body larger than the broker takes (its
``max_payload``) goes out compact (``compact``): without its details, saying where to read them,
so one status never stops the publisher nor the statuses after it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from tether.core import db
from tether.core.errors import UpstreamError
from tether.core.events import close_quietly, connect_nats, ensure_stream
from tether.core.jetstream import Item, Publisher
from tether.core.jobs import idle
from tether.payments import repository, rounds
from tether.payments.paths import status_url
from tether.payments.service import PaymentsService

logger = logging.getLogger(__name__)

STATUS_BATCH = 500  # statuses published per round
PUBLISH_TIMEOUT_S = 10.0  # every acknowledgement of a round, or the round is published again
HEADROOM = 4096  # of the broker's max_payload, kept for the headers and the subject


async def publish_statuses(
    service: PaymentsService, nats_url: str, *, stop: asyncio.Event, once: bool = False
) -> int:
    """Publish stored statuses in order; the cursor moves only after JetStream acknowledged."""
    s = service.settings
    nc = await connect_nats(nats_url)
    published = 0
    try:
        js = nc.jetstream()
        await ensure_stream(js, s.status_stream, s.status_subject, max_age_s=s.stream_max_age_s)
        publisher = Publisher(nc, s.status_subject, stream=s.status_stream)
        while not stop.is_set():
            # one transaction in two round trips: BEGIN with the claim, COMMIT with the move
            # (a failure in between leaves it open, and db.autocommit rolls it back)
            async with db.autocommit(service.pool) as conn:
                page = await repository.claim_status_window(conn, limit=STATUS_BATCH, begin=True)
                rows = [] if page is None else page.rows
                await _publish_all(
                    publisher,
                    [
                        (
                            _fit(key, body, nc.max_payload - HEADROOM),
                            {"Transaction-ID": key, "Nats-Msg-Id": f"status-{id_}"},
                        )
                        for _, id_, key, body in rows
                    ],
                )
                await repository.move_status_cursor(conn, page, commit=True)
            published += len(rows)
            if once and not rows:
                break
            if len(rows) < STATUS_BATCH and not once:  # drained: wait, without an empty round
                await asyncio.sleep(
                    rounds.after_statuses(
                        s, published=len(rows), batch=STATUS_BATCH, queueing=service.queueing.now()
                    )
                )
                await idle(stop, service.statuses_ready, s.poll_interval_s)
    finally:
        await close_quietly(nc)
    return published


async def _publish_all(publisher: Publisher, items: Sequence[Item]) -> None:
    """Raises unless every one was acknowledged in time, so nothing is marked and the batch is
    published again (JetStream drops the repeats by id)."""
    answers = await publisher.publish(items, timeout_s=PUBLISH_TIMEOUT_S)
    failed = [answer for answer in answers if answer is not None]
    if failed:
        raise UpstreamError(f"{len(failed)} of {len(items)} statuses not stored: {failed[0]}")


def _fit(key: str, body: str, limit: int) -> bytes:
    """The status as stored, or its compact form when the broker would refuse it."""
    data = body.encode()
    if len(data) <= limit:
        return data
    logger.warning(
        "status of %s is %d bytes, over the %d the broker takes: published without details",
        key,
        len(data),
        limit,
        extra={"action": "payments_status_compact"},
    )
    return json.dumps(compact(key, json.loads(body), len(data)), ensure_ascii=False).encode()


def compact(key: str, body: dict[str, Any], size: int) -> dict[str, Any]:
    """A status without its details (and a dry run's simulation): its status, error and
    simulering, and a note of what was left out and where to read it."""
    details = body.get("detaljer")
    lines = details.get("linjer") if isinstance(details, dict) else None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("msg"), str):
        error = {**error, "msg": error["msg"][:1000]}
    path = status_url(key)
    return {
        "status": body.get("status"),
        "detaljer": None,
        "error": error,
        "simulering": body.get("simulering", False),
        "utelatt": {
            "linjer": len(lines) if isinstance(lines, list) else 0,
            "bytes": size,
            "info": f"details left out ({size} bytes, over what the broker takes): GET {path}",
        },
    }
