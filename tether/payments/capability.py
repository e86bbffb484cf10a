"""The payments capability record: what it plugs into tether, each part imported when first
used."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

from tether.core.capability import Capability, Job, JobContext, Ref
from tether.payments.settings import PaymentsSettings

logger = logging.getLogger(__name__)

Loop = Callable[..., Awaitable[int]]


_told: set[int] = set()  # the processes that said it (a forked child says it again)


def _say_no_broker() -> None:
    """One warning a process for all its payments jobs (it was one per job: five lines)."""
    if os.getpid() in _told:
        return
    _told.add(os.getpid())
    logger.warning(
        "payments jobs not started in this process: set TETHER_NATS_URL to a NATS server with "
        "JetStream",
        extra={"action": "payments_job_no_nats"},
    )


def _job(name: str, loop: Loop, *, deferred: bool = True) -> Job:
    """A job that runs ``loop`` against the broker; without ``TETHER_NATS_URL`` it says so.

    Every job but the intake is deferred (``Job.deferred``): a sender waits for its message to
    be logged, not for the order to be sent, its receipt booked or the status published."""

    async def run(ctx: JobContext) -> None:
        url = ctx.runtime.settings.nats_url
        if not url:
            _say_no_broker()
            return
        await loop(ctx.service, url, stop=ctx.stop, once=ctx.once)

    return Job(name=name, run=run, deferred=deferred)


CAPABILITY = Capability(
    name="payments",
    package="tether.payments",
    settings=PaymentsSettings,
    build=Ref("tether.payments.service:build"),
    router=Ref("tether.payments.api:router"),
    cli=Ref("tether.payments.cli:app"),
    simulators={"oppdrag": Ref("tether.payments.simulator:simulate")},
    jobs=(
        _job("send-orders", Ref("tether.payments.tasks:send_orders")),
        _job("receipts", Ref("tether.payments.tasks:consume_receipts")),
        _job("intake", Ref("tether.payments.tasks:consume_intake"), deferred=False),
        _job("statuses", Ref("tether.payments.statuses:publish_statuses")),
        _job("chase-receipts", Ref("tether.payments.tasks:chase_receipts")),
    ),
    demo=Ref("tether.payments.demo:demo"),
    panel=Ref("tether.payments.console:panel"),
)
