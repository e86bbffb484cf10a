"""The worker job: make the worker a DBOS executor of accruals work until it stops.

It runs queued runs and chunks (bounded concurrency), hosts the monthly schedule, and every few
seconds resumes the pending workflows of workers silent for ``dead_worker_s`` (a crashed one).
"""

from __future__ import annotations

import asyncio
import contextlib

from tether.accruals import flow
from tether.accruals.service import AccrualsService
from tether.core import workflows
from tether.core.capability import JobContext


async def executor_job(ctx: JobContext) -> None:
    svc: AccrualsService = ctx.service
    url, settings = svc.url, svc.settings
    await asyncio.to_thread(
        flow.start_executor,
        url,
        settings,
        f"worker-{ctx.worker_id}",
        migrate=ctx.runtime.settings.migrate,
    )
    try:
        while not ctx.stop.is_set():
            await asyncio.to_thread(workflows.recover_dead, url, settings.dead_worker_s)
            if ctx.once and not await asyncio.to_thread(workflows.pending, "accruals-"):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.stop.wait(), 2.0)
    finally:
        await asyncio.to_thread(workflows.shutdown)
