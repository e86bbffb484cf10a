"""Run the payments jobs in one process: ``python -m tether.payments.runner [--once]``.

The worker entry until the core job loop runs capability jobs (``tether worker``); tests start
several of these processes to show that per-case ordering holds across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

from tether.core import loop
from tether.core.bootstrap import open_runtime
from tether.core.logging import configure_logging
from tether.core.settings import Settings, load_settings
from tether.payments import tasks
from tether.payments.service import PaymentsService, build
from tether.payments.settings import PaymentsSettings

JobFn = Callable[..., Awaitable[int]]
JOBS: dict[str, JobFn] = {
    "send-orders": tasks.send_orders,
    "receipts": tasks.consume_receipts,
    "intake": tasks.consume_intake,
    "statuses": tasks.publish_statuses,
}


async def run_jobs(
    service: PaymentsService,
    nats_url: str,
    *,
    stop: asyncio.Event,
    once: bool = False,
    only: tuple[str, ...] = tuple(JOBS),
) -> None:
    """Every payments job until ``stop`` (or, with ``once``, until each has nothing left)."""
    await asyncio.gather(*(JOBS[name](service, nats_url, stop=stop, once=once) for name in only))


async def _main(core: Settings, own: PaymentsSettings, once: bool) -> None:
    if not core.nats_url:
        raise SystemExit("set TETHER_NATS_URL: the payments jobs need NATS")
    stop = asyncio.Event()
    running = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            running.add_signal_handler(sig, stop.set)
    async with open_runtime(core, upgrade=False) as runtime, build(runtime, own) as service:
        await run_jobs(service, core.nats_url, stop=stop, once=once)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    core = load_settings()
    configure_logging(core.log_level, core.log_json)
    loop.run(_main(core, PaymentsSettings(), once="--once" in args))


if __name__ == "__main__":
    main()
