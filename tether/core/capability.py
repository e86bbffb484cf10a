"""The capability contract: everything a capability plugs into tether, in one record.

A capability is one package (``tether/<name>/``) plus one line in ``tether/capabilities.py``.
The generic entrypoints (``app.py``, ``cli.py``, ``worker.py``, ``demo.py``) and the migration
runner iterate the list and never name a capability; ``core/`` imports none of them.

A record names its parts by ``Ref("module:attribute")``, imported when first used: loading the
list imports no router, CLI, service or job, so ``tether worker --only X`` imports only X's job
path (not every capability's web stack, numpy or the workflow library: seconds of start-up and
tens of MB per process).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from tether.core import demorun

if TYPE_CHECKING:  # only for annotations: importing them here would load the web stack
    import typer
    from fastapi import APIRouter
    from rich.console import Console

    from tether.core.bootstrap import Runtime
    from tether.core.console import Panel
    from tether.core.settings import Settings, TetherSettings

T = TypeVar("T")


@dataclass(frozen=True)
class Ref(Generic[T]):
    """``"package.module:attribute"``, imported when first used; calling it calls its target."""

    target: str

    def load(self) -> T:
        module, _, attribute = self.target.partition(":")
        return cast(T, getattr(import_module(module), attribute))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return cast(Callable[..., Any], self.load())(*args, **kwargs)


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """What a background job gets from ``tether worker``."""

    runtime: Runtime
    service: Any
    stop: asyncio.Event  # set on SIGTERM / SIGINT: return promptly
    once: bool  # ``--once``: return when nothing is left to do
    worker_id: str


@dataclass(frozen=True, kw_only=True)
class Job:
    """A background job of a capability; every worker process runs each one it is given.

    ``deferred``: nobody waits on it as it runs (it carries on work already accepted, e.g. an
    outbox), unlike an intake consumer whose latency is what a sender sees. With
    ``TETHER_WORKER_DEFERRED_NICE`` > 0 the deferred jobs run in processes of their own at that
    lower OS priority, so on a saturated machine they lag instead of the intake (``worker.py``).
    """

    name: str
    run: Callable[[JobContext], Coroutine[Any, Any, None]]
    deferred: bool = False


def port_or_any(port: int) -> int:
    """``port`` if it is free on 127.0.0.1, else 0 (any free port). Probed as uvicorn binds,
    with ``SO_REUSEADDR``: without it, the TIME-WAIT connections a demo stopped a moment ago
    left on its port made the port "in use", and the next demo moved off 8000 for nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def free_port() -> int:
    """A port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_port(wanted: int, what: str, console: Console) -> int:
    """``wanted`` if free, else any free port, said aloud (``what`` listens on it): a taken port
    moved the demo's URLs without a word why, and a bookmark reached the other process."""
    port = port_or_any(wanted) or free_port()
    if wanted and port != wanted:
        console.print(f"port {wanted} is in use; {what} listens on {port}", highlight=False)
    return port


def scratch_folder(data_dir: Path, name: str) -> Path:
    """A folder ``name`` of the demo's files in ``data_dir``, created empty. They were temporary
    folders in /tmp, one set per run, that a killed demo left there; a demo empties this one
    when it starts and when it stops."""
    folder = data_dir.resolve() / demorun.SCRATCH / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@dataclass(frozen=True, kw_only=True)
class DemoContext:
    """What the demo gives each capability's demo hook."""

    console: Console
    api_url: str
    core: Settings
    nats_url: str | None
    credentials: Mapping[str, str] = field(default_factory=dict)

    def port(self, preferred: int, what: str) -> int:
        """``preferred`` if free, else any free port, said on the console (``demo_port``)."""
        return demo_port(preferred, what, self.console)

    def folder(self, name: str) -> Path:
        """An empty folder for this run's files (``scratch_folder``), in the data dir."""
        return scratch_folder(self.core.data_dir, name)


@dataclass(frozen=True, kw_only=True)
class DemoPart:
    """A capability's share of the demo: settings overrides, and how to seed it."""

    settings: Mapping[str, object] = field(default_factory=dict)
    seed: Callable[[Runtime, Any], Awaitable[list[str]]] | None = None  # lines of the guide
    summary: Callable[[Any], Awaitable[str]] | None = None  # printed when the demo stops


@dataclass(frozen=True, kw_only=True)
class Capability:
    """How a capability plugs into tether. ``build`` yields its service, kept as
    ``app.state.<name>`` in the web app and handed to its jobs in a worker. Everything but the
    name, package and settings is a ``Ref`` (or, for the callables, the function itself)."""

    name: str  # CLI and URL name: ``tether <name> ...``
    package: str  # its migrations live in ``<package>/migrations/``
    settings: type[TetherSettings]  # its errors name the variable (core/settings.py)
    build: Callable[[Runtime], AbstractAsyncContextManager[Any]]
    router: Ref[APIRouter] | None = None
    cli: Ref[typer.Typer] | None = None
    simulators: Mapping[str, Ref[Callable[..., None]]] = field(default_factory=dict)
    jobs: Sequence[Job] = ()
    demo: Callable[[DemoContext], AbstractAsyncContextManager[DemoPart]] | None = None
    panel: Callable[[Runtime, Any], Awaitable[Panel]] | None = None  # console and /metrics

    @property
    def attribute(self) -> str:
        """Its name as a Python identifier (``app.state`` attribute)."""
        return self.name.replace("-", "_")
