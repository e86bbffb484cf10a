"""The worker job: make the worker a DBOS executor of accruals work until it stops.

It runs queued runs and chunks (bounded concurrency), hosts the monthly schedule, and every few
seconds resumes the pending workflows of workers silent for ``dead_worker_s`` (a crashed one).
"""

from __future__ import annotations

import asyncio
import contextlib

from tether.accruals.service import AccrualsService
from tether.core.capability import JobContext


async def executor_job(ctx: JobContext) -> None:
    # imported here: the workflow library takes ~1 s to import, and every CLI command and every
    # worker (also `--only` another capability) imports this module through the capability list
    from tether.accruals import flow
    from tether.core import workflows

    svc: AccrualsService = ctx.service
    url, settings = svc.url, svc.settings
    try:  # a launch that fails half-way (the database down) is shut down too, so a retry works
        await asyncio.to_thread(
            flow.start_executor,
            url,
            settings,
            f"worker-{ctx.worker_id}",
            migrate=ctx.runtime.settings.migrate,
        )
        while not ctx.stop.is_set():
            await asyncio.to_thread(workflows.recover_dead, url, settings.dead_worker_s)
            if ctx.once and not await asyncio.to_thread(workflows.pending, "accruals-"):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.stop.wait(), 2.0)
    finally:
        await asyncio.to_thread(workflows.shutdown)
