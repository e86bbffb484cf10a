"""The background sync worker: claim due accounting points in batches, sync them concurrently.

Any number of these run in any number of processes on any number of machines against one
database; ``FOR UPDATE SKIP LOCKED`` in the claim keeps them from syncing an AP twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import Counter
from dataclasses import dataclass, field

from tether.accountingpoints.models import Claim
from tether.accountingpoints.service import AccountingPointService, SyncOutcome, event_gsrn
from tether.core.events import CloudEvent, consume_nats

logger = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def run_worker(
    service: AccountingPointService,
    *,
    stop: asyncio.Event,
    worker_id: str | None = None,
    batch: int | None = None,
    concurrency: int | None = None,
    once: bool = False,
    batch_apply: bool | None = None,
) -> WorkerStats:
    """Sync due APs until ``stop`` is set (or, with ``once``, until none is due).

    With ``batch_apply`` a claimed batch is fetched concurrently and merged in one transaction;
    without, each AP is merged in its own transaction as soon as its fetch returns.
    """
    settings = service.settings
    worker = worker_id or default_worker_id()
    limit = batch or settings.ap_claim_batch
    gate = asyncio.Semaphore(concurrency or settings.ap_fetch_concurrency)
    together = settings.ap_batch_apply if batch_apply is None else batch_apply
    actor = f"sync:{worker}"
    stats = WorkerStats()

    async def sync(claims: list[Claim]) -> list[SyncOutcome]:
        if together:
            return await service.sync_batch(claims, actor=actor, gate=gate)
        return list(
            await asyncio.gather(*(service.sync_one(c, actor=actor, gate=gate) for c in claims))
        )

    logger.info("worker %s started", worker, extra={"action": "worker_started"})
    while not stop.is_set():
        claimed = await service.claim_due(limit=limit, worker=worker)
        if not claimed:
            if once:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.ap_poll_interval_s)
            continue
        stats.claimed += len(claimed)
        outcomes = await sync(claimed)
        stats.outcomes.update("ok" if o.ok else (o.reason or "error") for o in outcomes)
    logger.info(
        "worker %s stopped after %d claims",
        worker,
        stats.claimed,
        extra={"action": "worker_stopped"},
    )
    return stats


async def consume_events(service: AccountingPointService, *, stop: asyncio.Event) -> None:
    """Pull thin events from NATS JetStream with a durable consumer and mark APs as changed."""
    settings = service.settings
    if not settings.nats_url:
        raise ValueError("TETHER_NATS_URL is not set")

    async def handle(events: list[CloudEvent]) -> None:
        await service.handle_changed([gsrn for e in events if (gsrn := event_gsrn(e))])

    await consume_nats(
        url=settings.nats_url,
        stream=settings.nats_stream,
        subject=settings.nats_subject,
        durable=settings.nats_durable,
        handle=handle,
        stop=stop,
    )
