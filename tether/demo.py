"""``tether demo``: the whole product on one machine, seeded, with simulators and a worker.

It uses its own database, ``tether_demo``, recreated on every run on the configured server (the
embedded one by default), so a demo never touches real data and always starts the same way. Each
capability's demo hook starts its simulators and seeds its data; the worker runs every
capability's jobs in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import uvicorn
from psycopg_pool import PoolTimeout
from pydantic import SecretStr
from pydantic_settings import BaseSettings
from rich.console import Console

from tether.app import create_app
from tether.capabilities import CAPABILITIES, migration_components
from tether.core import db, demorun, errors, exposure, keys, migrations
from tether.core.bootstrap import open_runtime
from tether.core.capability import DemoContext, DemoPart, demo_port, scratch_folder
from tether.core.limits import server_options
from tether.core.natsserver import EmbeddedNats
from tether.core.settings import Settings
from tether.worker import WorkerOptions, run_jobs

logger = logging.getLogger(__name__)

DEMO_DB = "tether_demo"
DEMO_ENV = demorun.ENV  # in data_dir while a demo runs: its settings, for the CLI to source


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    port: int = 8000
    duration_s: float | None = None


def api_port(wanted: int, console: Console) -> int:
    """``wanted`` if free, else any free port, said aloud (as every simulator's port is)."""
    return demo_port(wanted, "the API", console)


def recreate_demo_database(server_url: str, dbname: str = DEMO_DB) -> str:
    """Drop and create ``dbname`` on the server; return its URL, migrated.

    The database is new on every run, so every migration applies every time: one INFO line
    says so, and each migration is at DEBUG only (some 40 lines before the banner otherwise).
    ``tether db upgrade`` still prints each: there it is the operator's news.
    """
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    url = db.with_dbname(server_url, dbname)
    applied = migrations.upgrade(url, migration_components(), log_level=logging.DEBUG)
    logger.info(
        "applied %d migrations to %s",
        len(applied),
        dbname,
        extra={"action": "demo_database_migrated"},
    )
    return url


def env_lines(settings: BaseSettings, values: Mapping[str, Any]) -> list[str]:
    """``NAME=value`` (shell-quoted) for each of ``values``, named as ``settings`` reads it."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    lines = []
    for name, value in values.items():
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        lines.append(f"{prefix}{name}".upper() + f"={shlex.quote(text)}")
    return lines


def demo_env(settings: Settings, parts: list[DemoPart]) -> list[str]:
    """What the demo set: the core's random secrets and broker, each capability's overrides."""
    core = {name: getattr(settings, name) for name in exposure.secret_fields(settings)}
    broker = {"nats_url": settings.nats_url} if settings.nats_url else {}
    lines = env_lines(settings, {**core, **broker})
    for capability, part in zip(CAPABILITIES, parts, strict=True):
        lines += env_lines(capability.settings(), part.settings)
    return lines


def write_demo_env(data_dir: Path, lines: list[str]) -> Path:
    """The demo's settings (random tokens, simulator URLs, demo sizes) in a file only its user
    reads: a CLI command that calls a simulator with the defaults instead is refused (401) and
    marks what it read as stale in the demo's database."""
    path = data_dir / DEMO_ENV
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# tether demo settings: set -a; . this file; set +a\n")
        out.write("".join(f"{line}\n" for line in lines))
    return path


def _with_key(line: str, api: str, key: str) -> str:
    """A curl line calling tether without a credential gets the admin key's header."""
    calls_tether = f"curl {api}" in line or f"curl -X POST {api}" in line
    if calls_tether and "authorization" not in line:
        return line.replace("curl ", f"curl -H 'authorization: Bearer {key}' ", 1)
    return line


async def run_demo(settings: Settings, options: DemoOptions, console: Console) -> None:
    """Start everything, seed it, print what to try, and serve until Ctrl-C or the duration."""
    # first of all: another demo on this data dir would lose its database to ours
    with demorun.hold(settings.data_dir):
        await _run_held(settings, options, console)
    if settings.database_url is None:
        console.print(
            "The embedded PostgreSQL keeps running (the next demo starts faster); "
            "`tether db stop` stops it."
        )


async def _run_held(settings: Settings, options: DemoOptions, console: Console) -> None:
    """The demo, this process holding the data dir (``demorun.hold``)."""
    settings = settings.model_copy(update=exposure.random_secrets(settings))  # never dev values
    embedded = settings.database_url is None
    server = db.resolve_database_url(settings)
    with demorun.hold_server(server):  # another data dir's demo may use this server
        console.print("[bold]tether demo[/] — starting simulators, API and a worker")
        url = recreate_demo_database(server)
        _, admin_key = keys.create(url, "demo admin", ["admin"])
        if embedded:  # the CLI, sharing TETHER_DATA_DIR, follows the demo to its database
            demorun.set_active_database(settings.data_dir, DEMO_DB)
        try:
            await _run(settings, options, console, url, admin_key)
        finally:
            if embedded:
                demorun.set_active_database(settings.data_dir, None)


async def _run(
    settings: Settings, options: DemoOptions, console: Console, url: str, admin_key: str
) -> None:
    port = api_port(options.port, console)
    api = f"http://127.0.0.1:{port}"
    stop = asyncio.Event()
    running = asyncio.get_running_loop()
    # Ctrl-C stops gracefully, with a summary; so does a closed terminal (SIGHUP, unless nohup
    # ignores it): it no longer reaches the embedded NATS, in its own session
    hangup = [signal.SIGHUP] if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN else []
    for sig in (signal.SIGINT, signal.SIGTERM, *hangup):
        running.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        if settings.nats_url is None:  # queues and pulled events work on a fresh machine too
            store = scratch_folder(settings.data_dir, "nats")
            stack.callback(shutil.rmtree, store, True)
            nats = stack.enter_context(EmbeddedNats(store))  # stopped last, even on errors
            settings = settings.model_copy(update={"nats_url": nats.url})
        ctx = DemoContext(
            console=console,
            api_url=api,
            core=settings,
            nats_url=settings.nats_url,
            credentials={"api_key": admin_key},
        )
        parts: list[DemoPart] = []
        overrides = []
        for capability in CAPABILITIES:
            part = DemoPart()
            if capability.demo is not None:
                part = await stack.enter_async_context(capability.demo(ctx))
            parts.append(part)
            overrides.append(capability.settings().model_copy(update=dict(part.settings)))
        env_file = write_demo_env(settings.data_dir, demo_env(settings, parts))
        stack.callback(env_file.unlink, True)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, database_url=url, overrides=overrides, migrate=False),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                access_log=False,
                **server_options(settings),  # serve's limits; logs through tether's formatter
            )
        )
        runtime = await stack.enter_async_context(
            open_runtime(settings, database_url=url, overrides=overrides)
        )
        services = [await stack.enter_async_context(c.build(runtime)) for c in CAPABILITIES]
        guide = [
            f"Console         {api}/  (sign in with the admin key)",
            f"API docs        {api}/docs  (Authorize with the admin key)",
            f"Admin API key   {admin_key}  (pages: sign in at {api}/login)",
            f"Events token    {settings.events_token.get_secret_value()}  (random for this run,"
            " as are the upstream tokens and the session secret)",
            f"Metrics         curl {api}/metrics",
            f"Database        {url}",
            "                (while the demo runs, `tether status` and the other commands "
            f"started with TETHER_DATA_DIR={settings.data_dir.resolve()} use it)"
            if settings.database_url is None
            else f"                (for the CLI: export DATABASE_URL='{url}')",
            "CLI             the `tether ...` lines below, from this checkout: `uv run tether ...` "
            "when tether is not on your PATH",
            f"NATS            {settings.nats_url}",
            f"CLI settings    set -a; . {env_file.resolve()}; set +a  (the demo's tokens and "
            "simulator URLs: a command that calls a simulator needs them)",
            "",
        ]
        for part, service in zip(parts, services, strict=True):
            if part.seed is not None:
                guide += [*await part.seed(runtime, service), ""]
        api_task = asyncio.create_task(server.serve())
        jobs = asyncio.create_task(
            run_jobs(settings, url, WorkerOptions(), stop, overrides=overrides)
        )
        while not server.started:
            if api_task.done():
                await api_task  # it failed to start: raise why
            await asyncio.sleep(0.05)
        console.rule("[bold green]tether demo is running")
        for line in [*guide, "Ctrl-C stops everything."]:
            line = _with_key(line, api, admin_key)
            console.print(line, soft_wrap=True, highlight=False, markup=False)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(stop.wait(), options.duration_s)
        stop.set()
        server.should_exit = True
        await api_task
        await jobs
        for capability, part, service in zip(CAPABILITIES, parts, services, strict=True):
            if part.summary is not None:
                console.print(await _summary(capability.name, part, service))


async def _summary(name: str, part: DemoPart, service: Any) -> str:
    """A capability's closing line, or why there is none: the database may be gone by the end
    (stopped under the demo), and the demo still stops cleanly after saying so."""
    assert part.summary is not None
    try:
        return await part.summary(service)
    except (psycopg.Error, PoolTimeout, errors.DatabaseUnavailable) as exc:
        return f"{name}: no summary, the database did not answer ({errors.one_line(exc)})"
