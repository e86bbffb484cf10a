"""Demo hooks: the Oppdrag simulator on the demo's NATS, and a few cases sent through."""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from tether.core.bootstrap import Runtime
from tether.core.capability import DemoContext, DemoPart
from tether.payments.service import PaymentsService
from tether.payments.settings import PaymentsSettings
from tether.payments.simulator import Topology, start_simulator

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
    # the payment system's queues, created here first, keep what tether's own streams keep
    topology = Topology(max_age_s=PaymentsSettings().stream_max_age_s)
    token = secrets.token_urlsafe(24)  # a fresh token per demo, never the dev value
    server = start_simulator(
        ctx.nats_url,
        port=ctx.port(7003, "the Oppdrag simulator"),
        control_port=ctx.port(7103, "the Oppdrag simulator's control API"),
        topology=topology,
        token=token,
    )
    examples = ctx.folder("payments")

    async def seed(runtime: Runtime, service: Any) -> list[str]:
        assert isinstance(service, PaymentsService)
        for i, sak in enumerate(DEMO_CASES):
            body = demo_message(sak, date(2024, 6, 3), weeks=i + 1, amount=500 + 100 * i)
            await service.submit(f"{sak}-first", json.dumps(body).encode())
        files = _write_examples(examples)
        api, control = ctx.api_url, server.control_url
        auth = (
            f"-H 'authorization: Bearer {ctx.credentials['api_key']}' " if ctx.credentials else ""
        )
        return [
            f"Payments: Oppdrag simulator {server.url} (control {control}); "
            f"cases {', '.join(DEMO_CASES)} sent",
            f"  case page: {api}/payments/cases/demo-1",
            "  the first message's status:",
            f"    curl {auth}'{api}/api/v1/payments/status/demo-1-first?wait=10'",
            "  a new case, then demo-1 at a higher rate simulated only (dry run):",
            f"    tether payments send {files['new']} --wait",
            # a dry run asks the payment system from the CLI's own process: it needs the token
            f"    TETHER_PAYMENTS_OPPDRAG_URL={server.url} TETHER_PAYMENTS_OPPDRAG_TOKEN={token} "
            f"tether payments send {files['raise']} --dry-run --wait",
            "  a message over HTTP:",
            f"    curl -X POST {api}/api/v1/payments/dagpenger {auth}"
            f"-H 'Transaction-ID: demo-5-first' -H 'content-type: application/json' "
            f"--data-binary @{files['http']}",
            "  make Oppdrag answer otherwise (modes: 04, 08, 12, 08-untrimmed, silent, duplicate, "
            "slow, down; none repairs it):",
            f"    curl -X PUT {control}/faults -H 'authorization: Bearer {server.control_token}' "
            "-H 'content-type: application/json' "
            '-d \'{"mode":"08"}\'',
        ]

    try:
        yield DemoPart(
            settings={"oppdrag_url": server.url, "oppdrag_token": SecretStr(token)}, seed=seed
        )
    finally:
        server.stop()
        shutil.rmtree(examples, ignore_errors=True)


def _write_examples(folder: Path) -> dict[str, Path]:
    """Messages the guide's lines send, as files (the CLI and curl read them)."""
    bodies = {
        "new": demo_message("demo-4", date(2024, 6, 3), weeks=2, amount=800),
        "raise": demo_message("demo-1", date(2024, 6, 3), weeks=1, amount=650),
        "http": demo_message("demo-5", date(2024, 6, 17), weeks=1, amount=700),
    }
    files = {}
    for name, body in bodies.items():
        files[name] = folder / f"{body['sakId']}-{name}.json"
        files[name].write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    return files


async def _without_nats(runtime: Runtime, service: Any) -> list[str]:
    return ["Payments: no NATS (set TETHER_NATS_URL): orders cannot be sent"]
