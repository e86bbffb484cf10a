"""The payments capability record: what it plugs into tether."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tether.core.capability import Capability, Job, JobContext
from tether.payments import api, cli, console, demo, service, simulator, tasks
from tether.payments.settings import PaymentsSettings

logger = logging.getLogger(__name__)

Loop = Callable[..., Awaitable[int]]


def _job(name: str, loop: Loop) -> Job:
    """A job that runs ``loop`` against the broker; without ``TETHER_NATS_URL`` it says so."""

    async def run(ctx: JobContext) -> None:
        url = ctx.runtime.settings.nats_url
        if not url:
            logger.warning(
                "payments job %s not started: set TETHER_NATS_URL",
                name,
                extra={"action": "payments_job_no_nats"},
            )
            return
        await loop(ctx.service, url, stop=ctx.stop, once=ctx.once)

    return Job(name=name, run=run)


CAPABILITY = Capability(
    name="payments",
    package="tether.payments",
    settings=PaymentsSettings,
    build=service.build,
    router=api.router,
    cli=cli.app,
    simulators={"oppdrag": simulator.simulate},
    jobs=(
        _job("send-orders", tasks.send_orders),
        _job("receipts", tasks.consume_receipts),
        _job("intake", tasks.consume_intake),
        _job("statuses", tasks.publish_statuses),
        _job("chase-receipts", tasks.chase_receipts),
    ),
    demo=demo.demo,
    panel=console.panel,
)
