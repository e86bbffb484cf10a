"""``tether demo``: the whole product on one machine, seeded, with simulators and a worker.

It uses its own database, ``tether_demo``, recreated on every run on the configured server (the
embedded one by default), so a demo never touches real data and always starts the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
from dataclasses import dataclass
from typing import Any

import psycopg
import uvicorn
from rich.console import Console
from rich.progress import Progress

from tether.accountingpoints import service as ap_service
from tether.accountingpoints.simulator import start_simulator as start_datahub
from tether.accountingpoints.tasks import run_worker
from tether.app import create_app
from tether.core import db, exposure, keys, migrations
from tether.core.bootstrap import open_runtime
from tether.core.settings import Settings
from tether.elicensing import demo as elicensing_demo

DEMO_DB = "tether_demo"


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    port: int = 8000
    accounting_points: int = 300
    controllable_units: int = 100
    duration_s: float | None = None


def port_or_any(port: int) -> int:
    """``port`` if it is free on 127.0.0.1, else 0 (any free port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def recreate_demo_database(server_url: str) -> str:
    """Drop and create ``tether_demo`` on the server; return its URL, migrated."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DEMO_DB}"')
    url = db.with_dbname(server_url, DEMO_DB)
    migrations.upgrade(url)
    return url


async def run_demo(settings: Settings, options: DemoOptions, console: Console) -> None:
    """Start everything, seed it, print what to try, and serve until Ctrl-C or the duration."""
    console.print("[bold]tether demo[/] — starting PostgreSQL, simulators, API and a worker")
    settings = settings.model_copy(update=exposure.random_secrets(settings))  # never dev values
    url = recreate_demo_database(db.resolve_database_url(settings))
    _, admin_key = keys.create(url, "demo admin", ["admin"])
    port = port_or_any(options.port) or free_port()
    api = f"http://127.0.0.1:{port}"
    datahub_server, datahub = start_datahub(
        count=options.accounting_points,
        port=port_or_any(7001),
        control_port=port_or_any(7101),
        token=settings.adapter_token.get_secret_value(),
        webhook_url=f"{api}/api/v1/events",
        webhook_token=settings.events_token.get_secret_value(),
        nats_url=settings.nats_url,
        tz=settings.timezone,
    )
    elicensing_server = elicensing_demo.start_simulator(
        port=port_or_any(7002),
        control_port=port_or_any(7102),
        token=settings.elicensing_token.get_secret_value(),
    )
    settings = settings.model_copy(
        update={
            "adapter_url": datahub_server.url,
            "elicensing_url": elicensing_server.url,
            "ap_resync_interval_s": 300.0,
            "ap_poll_interval_s": 0.5,
            # short, so that reloading the obligation page shows the alert within seconds
            "elicensing_freshness_s": 5.0,
        }
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, database_url=url),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C stops gracefully, with a summary
        loop.add_signal_handler(sig, stop.set)
    try:
        async with (
            open_runtime(settings, upgrade=False, database_url=url) as runtime,
            ap_service.build(runtime) as service,
        ):
            gsrns = datahub.gsrns[: options.controllable_units]
            await _register_units(service, gsrns, console)
            elicensing_lines = await elicensing_demo.seed(runtime, elicensing_server)
            api_task = asyncio.create_task(server.serve())
            worker_task = asyncio.create_task(run_worker(service, stop=stop))
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
                await asyncio.sleep(0.05)
            end_user = _current_end_user(datahub.record(gsrns[0]) or {})
            guide = _guide(api, datahub_server.control_url, gsrns, end_user, settings, admin_key)
            console.rule("[bold green]tether demo is running")
            for line in [*guide, *elicensing_lines, "", "Ctrl-C stops everything."]:
                console.print(
                    _with_key(
                        re.sub(r" (/(api/v1/)?compliance)", rf" {api}\1", line), api, admin_key
                    ),
                    soft_wrap=True,
                    highlight=False,
                    markup=False,
                )
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(stop.wait(), options.duration_s)
            stop.set()
            server.should_exit = True
            await api_task
            stats = await worker_task
            counts = await service.sync_counts()
            console.print(
                f"worker synced {stats.outcomes.get('ok', 0)} accounting point(s); "
                f"sync states: {dict(counts)}"
            )
    finally:
        datahub_server.stop()
        elicensing_server.stop()


def _with_key(line: str, api: str, key: str) -> str:
    """A curl line calling tether without a credential gets the admin key's header."""
    calls_tether = f"curl {api}" in line or f"curl -X POST {api}" in line
    if calls_tether and "authorization" not in line:
        return line.replace("curl ", f"curl -H 'authorization: Bearer {key}' ", 1)
    return line


async def _register_units(
    service: ap_service.AccountingPointService, gsrns: list[str], console: Console
) -> None:
    """One controllable unit per AP, so those APs are fetched now and synced from then on."""
    gate = asyncio.Semaphore(16)
    with Progress(console=console, transient=True) as progress:
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
    api: str,
    control: str,
    gsrns: list[str],
    end_user: str,
    settings: Settings,
    admin_key: str,
) -> list[str]:
    gsrn = gsrns[0]
    token = settings.events_token.get_secret_value()
    return [
        f"API docs        {api}/docs  (Authorize with the admin key)",
        f"Admin API key   {admin_key}  (pages: sign in at {api}/login)",
        f"Events token    {token}  (random for this run, as are the adapter and e-licensing"
        " tokens and the session secret)",
        f"Metrics         curl {api}/metrics",
        f"Datahub sim     {settings.adapter_url}  (control {control})",
        f"E-licensing sim {settings.elicensing_url}",
        "",
        "Accounting points (synced only where a controllable unit sits):",
        f"  curl {api}/api/v1/accounting-points/{gsrn}",
        f"  curl {api}/api/v1/accounting-points/{gsrn}/history",
        "  a supplier switch in the datahub, announced by a thin event; the worker re-syncs:",
        f"    curl -X POST {control}/accounting-points/{gsrn}/changes "
        "-H 'content-type: application/json' -d '{\"kind\":\"supplier_switch\"}'",
        f"  push an event yourself: curl -X POST {api}/api/v1/events -H 'authorization: Bearer "
        f'{token}\' -H \'content-type: application/json\' -d \'{{"specversion":"1.0","id":"1",'
        f'"source":"me","type":"changed","subject":"{gsrn}"}}\'',
        f"  lookup: curl -X POST {api}/api/v1/controllable-unit/lookup -H 'content-type: "
        f'application/json\' -d \'{{"end_user":"{end_user}","accounting_point":"{gsrn}"}}\'',
        f"  break the datahub: curl -X PUT {control}/faults -H 'content-type: application/json'"
        ' -d \'{"mode":"500"}\'  (modes: down, slow, 500, garbage, contract_violation, ...)',
        "",
    ]
