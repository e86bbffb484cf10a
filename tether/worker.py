"""Background processes: accounting point sync workers and the NATS event consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from dataclasses import dataclass

from tether.accountingpoints import service as ap_service
from tether.accountingpoints.tasks import WorkerStats, consume_events, run_worker
from tether.core import loop
from tether.core.bootstrap import open_runtime
from tether.core.logging import configure_logging
from tether.core.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    once: bool = False
    batch: int | None = None
    batch_apply: bool | None = None
    concurrency: int | None = None
    events: bool = False
    worker_id: str | None = None


async def run_one(
    settings: Settings, database_url: str, options: WorkerOptions, stop: asyncio.Event
) -> WorkerStats:
    """One worker process's work: the sync loop, plus the event consumer when asked."""
    async with (
        open_runtime(settings, upgrade=False, database_url=database_url) as runtime,
        ap_service.build(runtime) as service,
    ):
        consumer = None
        if options.events and settings.nats_url:
            consumer = asyncio.create_task(consume_events(service, stop=stop))
        try:
            return await run_worker(
                service,
                stop=stop,
                worker_id=options.worker_id,
                batch=options.batch,
                batch_apply=options.batch_apply,
                concurrency=options.concurrency,
                once=options.once,
            )
        finally:
            stop.set()
            if consumer is not None:
                await consumer


def _install_stop_handlers(stop: asyncio.Event) -> None:
    running = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            running.add_signal_handler(sig, stop.set)


def process_main(settings: Settings, database_url: str, options: WorkerOptions) -> None:
    """Entry of a worker process (spawned, so it shares nothing but the database)."""
    configure_logging(settings.log_level, settings.log_json)

    async def main() -> None:
        stop = asyncio.Event()
        _install_stop_handlers(stop)
        stats = await run_one(settings, database_url, options, stop)
        logger.info(
            "worker done: %d claimed, outcomes %s",
            stats.claimed,
            dict(stats.outcomes),
            extra={"action": "worker_done"},
        )

    loop.run(main())


def run_processes(
    settings: Settings, database_url: str, processes: int, options: WorkerOptions
) -> int:
    """Start ``processes`` worker processes and wait; returns how many exited non-zero."""
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(
            target=process_main,
            args=(settings, database_url, options),
            name=f"tether-worker-{i}",
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    try:
        for child in children:
            child.join()
    except KeyboardInterrupt:
        for child in children:
            child.terminate()
        for child in children:
            child.join()
    return sum(1 for c in children if c.exitcode not in (0, None))
