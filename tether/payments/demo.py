"""Demo hooks: the payment system simulator on the demo's NATS, and a few cases sent through."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from typing import Any

from tether.core.bootstrap import Runtime
from tether.core.capability import DemoContext, DemoPart
from tether.payments.service import PaymentsService
from tether.payments.simulator import start_simulator

DEMO_CASES = ("demo-1", "demo-2", "demo-3")


def demo_message(sak_id: str, first: date, weeks: int, amount: int) -> dict[str, Any]:
    """A dagpenger message paying ``amount`` on every weekday of ``weeks`` two-week periods."""
    days = []
    for week in range(weeks):
        start = first + timedelta(days=14 * week)
        for offset in range(14):
            day = start + timedelta(days=offset)
            if day.weekday() < 5:
                days.append(
                    {
                        "meldeperiode": f"{sak_id}-mp{week + 1}",
                        "dato": day.isoformat(),
                        "sats": amount,
                        "utbetaltBeløp": amount,
                        "utbetalingstype": "Dagpenger",
                    }
                )
    return {
        "sakId": sak_id,
        "behandlingId": f"{sak_id}-b1",
        "ident": "12345678910",
        "vedtakstidspunktet": "2024-06-20T10:00:00",
        "utbetalinger": days,
    }


@asynccontextmanager
async def demo(ctx: DemoContext) -> AsyncIterator[DemoPart]:
    """The payments share of ``tether demo``: the Oppdrag simulator and three cases."""
    if not ctx.nats_url:
        yield DemoPart(seed=_without_nats)
        return
    server = start_simulator(ctx.nats_url, port=ctx.port(7003), control_port=ctx.port(7103))

    async def seed(runtime: Runtime, service: Any) -> list[str]:
        assert isinstance(service, PaymentsService)
        for i, sak in enumerate(DEMO_CASES):
            body = demo_message(sak, date(2024, 6, 3), weeks=i + 1, amount=500 + 100 * i)
            await service.submit(f"{sak}-first", json.dumps(body).encode())
        api, control = ctx.api_url, server.control_url
        return [
            f"Payments: Oppdrag simulator {server.url} (control {control}); "
            f"cases {', '.join(DEMO_CASES)} sent",
            f"  case page: {api}/payments/cases/demo-1   status: "
            f"{api}/api/v1/payments/status/demo-1-first?wait=10",
            "  send more: tether payments send message.json --wait  "
            "(or POST /api/v1/payments/dagpenger with header Transaction-ID)",
            f"  make Oppdrag refuse: curl -X PUT {control}/faults -H 'content-type: "
            'application/json\' -d \'{"mode":"08"}\'',
        ]

    try:
        yield DemoPart(settings={"oppdrag_url": server.url}, seed=seed)
    finally:
        server.stop()


async def _without_nats(runtime: Runtime, service: Any) -> list[str]:
    return ["Payments: no NATS (set TETHER_NATS_URL): orders cannot be sent"]
