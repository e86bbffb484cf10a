"""The accounting point jobs of ``tether worker``: the sync loop and the NATS event consumer.

Any number of these run in any number of processes on any number of machines against one
database; ``FOR UPDATE SKIP LOCKED`` in the claim keeps them from syncing an AP twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tether.accountingpoints import claims as claim_lease
from tether.accountingpoints.intake import event_gsrn, malformed
from tether.accountingpoints.models import Claim
from tether.accountingpoints.service import EVENTS, AccountingPointService
from tether.core.capability import JobContext
from tether.core.events import CloudEvent, consume_nats
from tether.core.jobs import default_worker_id, run_due_loop

logger = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


async def run_worker(
    service: AccountingPointService,
    *,
    stop: asyncio.Event,
    worker_id: str | None = None,
    once: bool = False,
) -> WorkerStats:
    """Sync due APs until ``stop`` is set (or, with ``once``, until none is due).

    With ``batch_apply`` a claimed batch is fetched concurrently and merged in one transaction;
    without, each AP is merged in its own transaction as soon as its fetch returns.
    """
    settings = service.settings
    worker = worker_id or default_worker_id()
    gate = asyncio.Semaphore(settings.fetch_concurrency)
    actor = f"sync:{worker}"
    stats = WorkerStats()

    async def claim() -> list[Claim]:
        return await service.claim_due(limit=settings.claim_batch, worker=worker)

    async def process(claims: Sequence[Claim]) -> None:
        beat = asyncio.create_task(claim_lease.keep_alive(service.pool, settings, worker))
        try:
            outcomes = await service.sync_batch(
                claims, actor=actor, gate=gate, each=not settings.batch_apply
            )
        finally:
            beat.cancel()
        stats.outcomes.update("ok" if o.ok else (o.reason or "error") for o in outcomes)

    stats.claimed = await run_due_loop(
        claim=claim,
        process=process,
        stop=stop,
        once=once,
        poll_interval_s=settings.poll_interval_s,
        name=f"accounting point sync {worker}",
    )
    return stats


async def consume_events(
    service: AccountingPointService, *, nats_url: str, stop: asyncio.Event
) -> None:
    """Pull thin events from NATS JetStream with a durable consumer and mark APs as changed."""
    settings = service.settings

    async def handle(events: list[CloudEvent]) -> None:
        wanted = [e for e in events if e.type in settings.event_types]
        if len(wanted) < len(events):
            logger.warning(
                "dropped %d event(s) of a type not accepted",
                len(events) - len(wanted),
                extra={"action": "event_type_refused"},
            )
        gsrns = [gsrn for e in wanted if (gsrn := event_gsrn(e))]
        if bad := set(malformed(gsrns)):  # nobody to answer 422: dropped, logged and counted
            EVENTS.labels("invalid").inc(len(bad))
            logger.warning(
                "dropped %d event(s) naming a malformed GSRN",
                len(bad),
                extra={"action": "event_gsrn_malformed"},
            )
            gsrns = [g for n, g in enumerate(gsrns) if n not in bad]
        await service.handle_changed(gsrns)

    await consume_nats(
        url=nats_url,
        stream=settings.nats_stream,
        subject=settings.nats_subject,
        durable=settings.nats_durable,
        handle=handle,
        stop=stop,
    )


async def sync_job(ctx: JobContext) -> None:
    """``tether worker``: the sync loop."""
    await run_worker(ctx.service, stop=ctx.stop, worker_id=ctx.worker_id, once=ctx.once)


async def events_job(ctx: JobContext) -> None:
    """``tether worker``: thin events from NATS, when TETHER_NATS_URL is set (not with --once)."""
    nats_url = ctx.runtime.settings.nats_url
    if nats_url and not ctx.once:
        await consume_events(ctx.service, nats_url=nats_url, stop=ctx.stop)
