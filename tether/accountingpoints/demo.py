"""The accounting point share of ``tether demo``: a simulated datahub, registered units, a guide."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr
from rich.progress import Progress

from tether.accountingpoints.service import AccountingPointService
from tether.accountingpoints.settings import AccountingPointSettings
from tether.accountingpoints.simulator import Datahub, start_simulator
from tether.core.bootstrap import Runtime
from tether.core.capability import DemoContext, DemoPart
from tether.core.simulator import SimulatorServer


@asynccontextmanager
async def demo(ctx: DemoContext) -> AsyncIterator[DemoPart]:
    """Start a datahub simulator that pushes its change events to the demo's API."""
    settings = AccountingPointSettings()
    token = secrets.token_urlsafe(24)  # a fresh adapter token per demo, never the dev value
    server, datahub = start_simulator(
        count=settings.demo_accounting_points,
        port=ctx.port(7001, "the datahub simulator"),
        control_port=ctx.port(7101, "the datahub simulator's control API"),
        token=token,
        webhook_url=f"{ctx.api_url}/api/v1/events",
        webhook_token=ctx.core.events_token.get_secret_value(),
        nats_url=ctx.nats_url,
        tz=settings.timezone,
    )

    async def seed(runtime: Runtime, service: AccountingPointService) -> list[str]:
        gsrns = datahub.gsrns[: settings.demo_controllable_units]
        await _register_units(service, gsrns, ctx)
        return _guide(ctx, server, datahub, gsrns)

    async def summary(service: AccountingPointService) -> str:
        counts = await service.sync_counts()
        states = ", ".join(f"{state} {n}" for state, n in counts.items())
        return f"worker synced accounting points; sync states: {states}"

    try:
        yield DemoPart(
            settings={
                "adapter_url": server.url,
                "adapter_token": SecretStr(token),
                # person ids are stored as keyed hashes: a fresh key per demo, never the dev value
                "pii_key": SecretStr(secrets.token_urlsafe(32)),
                "resync_interval_s": 300.0,
                "poll_interval_s": 0.5,
            },
            seed=seed,
            summary=summary,
        )
    finally:
        server.stop()


async def _register_units(
    service: AccountingPointService, gsrns: list[str], ctx: DemoContext
) -> None:
    """One controllable unit per AP, so those APs are fetched now and synced from then on."""
    gate = asyncio.Semaphore(16)
    with Progress(console=ctx.console, transient=True) as progress:
        task = progress.add_task("registering controllable units", total=len(gsrns))

        async def register(i: int, gsrn: str) -> None:
            async with gate:
                await service.register_controllable_unit(gsrn=gsrn, name=f"battery-{i}")
            progress.advance(task)

        await asyncio.gather(*(register(i, g) for i, g in enumerate(gsrns, 1)))


def _current_end_user(record: dict[str, Any]) -> str:
    """The open-ended end user of a simulated AP (what a lookup must name)."""
    periods = record.get("end_user") or [{}]
    current = [p for p in periods if p.get("valid_to") is None] or periods
    return str(current[-1].get("business_id", "<end user id>"))


def _guide(
    ctx: DemoContext, server: SimulatorServer, datahub: Datahub, gsrns: list[str]
) -> list[str]:
    api, data_url, control = ctx.api_url, server.url, server.control_url
    control_auth = f"-H 'authorization: Bearer {server.control_token}'"
    gsrn = gsrns[0]
    end_user = _current_end_user(datahub.record(gsrn) or {})
    token = ctx.core.events_token.get_secret_value()
    return [
        f"Datahub sim     {data_url}  (control {control})",
        "Accounting points (synced only where a controllable unit sits):",
        f"  curl {api}/api/v1/accounting-points/{gsrn}",
        f"  curl {api}/api/v1/accounting-points/{gsrn}/history",
        "  a supplier switch in the datahub, announced by a thin event; the worker re-syncs:",
        f"    curl -X POST {control}/accounting-points/{gsrn}/changes {control_auth} "
        "-H 'content-type: application/json' -d '{\"kind\":\"supplier_switch\"}'",
        "  push an event yourself:",
        f"    curl -X POST {api}/api/v1/events -H 'authorization: Bearer "
        f'{token}\' -H \'content-type: application/json\' -d \'{{"specversion":"1.0","id":"1",'
        f'"source":"me","type":"no.datahub.accounting_point.changed","subject":"{gsrn}"}}\'',
        "  look up a controllable unit's accounting point:",
        f"    curl -X POST {api}/api/v1/controllable-unit/lookup -H 'content-type: "
        f'application/json\' -d \'{{"end_user":"{end_user}","accounting_point":"{gsrn}"}}\'',
        "  break the datahub (modes: down, slow, 500, garbage, contract_violation, ...; "
        "none repairs it), then watch the console:",
        f"    curl -X PUT {control}/faults {control_auth} -H 'content-type: application/json'"
        ' -d \'{"mode":"500"}\'',
    ]
