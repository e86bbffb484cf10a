"""The ``tether`` command line: database, API server, workers, simulators and the demo."""

from __future__ import annotations

import contextlib
import inspect
import logging
import socket
from collections.abc import Callable, Iterator, MutableMapping
from typing import Annotated, Any

import typer
from pydantic_settings import BaseSettings
from typer.core import TyperGroup, TyperOption

from tether import __version__, db_cli
from tether.capabilities import CAPABILITIES, migration_components
from tether.core import cli_output, db, exposure, keys_cli, loop, migrations
from tether.core.capability import Ref
from tether.core.errors import ConfigurationError
from tether.core.logging import configure_logging
from tether.core.settings import (
    Settings,
    SimulatorSettings,
    TetherSettings,
    check_environment,
    load_settings,
)

console = cli_output.errors  # an error stays one line, however long
_typed = TyperOption.display_type_rich


def _no_type_on_flags(self: TyperOption, ctx: Any) -> str | None:
    """No type column for a flag (``--once``, ``--wait``, ``-h``): Typer's rich help showed
    ``<bool>`` there (its plain help does not), and users then typed ``--wait 30``."""
    return None if self.is_flag or self.count else _typed(self, ctx)


TyperOption.display_type_rich = _no_type_on_flags  # type: ignore[method-assign]


def tidy_help(command: Any) -> Any:
    """Join the line breaks inside each paragraph of a command's help, in it and its loaded
    sub-commands. Docstrings wrap at 100 columns in the code, and Typer's rich help keeps those
    breaks after the first paragraph: at 80 columns every such paragraph came out ragged. A
    paragraph that starts with \\b (Click's "keep as written") is left alone."""
    for attr in ("help", "epilog"):
        text = getattr(command, attr, None)
        if text:
            paragraphs = inspect.cleandoc(text).split("\n\n")
            joined = (p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)
            setattr(command, attr, "\n\n".join(joined))
    commands = getattr(command, "commands", None)
    if commands is not None and not isinstance(commands, LazyCommands):
        for sub in commands.values():
            tidy_help(sub)
    return command


class LazyCommands(MutableMapping[str, Any]):
    """A group's sub-commands, some of them loaded only when first looked up: ``tether worker``
    (or any other command) then never imports the other capabilities' CLIs and simulators."""

    def __init__(
        self, loaded: MutableMapping[str, Any], lazy: dict[str, Callable[[], Any]]
    ) -> None:
        self.loaded = dict(loaded)
        self.lazy = dict(lazy)

    def __getitem__(self, name: str) -> Any:
        if name not in self.loaded and name in self.lazy:
            command = tidy_help(self.lazy.pop(name)())
            command.name = name
            self.loaded[name] = command
        return self.loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.lazy.pop(name, None)
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self.lazy.pop(name, None)
        del self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self.loaded, *self.lazy])

    def __len__(self) -> int:
        return len(self.loaded) + len(self.lazy)


def _capability_cli(cli: Ref[typer.Typer]) -> Callable[[], Any]:
    return lambda: typer.main.get_group(cli.load())


def _simulator(name: str, command: Ref[Callable[..., Any]]) -> Callable[[], Any]:
    def load() -> Any:
        single = typer.Typer(add_completion=False)  # ``tether --install-completion`` covers it
        single.command(name)(command.load())
        return typer.main.get_command(single)

    return load


class _Root(TyperGroup):
    """``tether``: every capability's sub-commands (``tether <name> ...``), loaded when used.

    Every command runs through ``invoke``: there the environment is checked first (a bad
    ``TETHER_*`` value stops any command, whichever settings it reads; an unknown name is
    warned of), and an expected failure becomes one ``error: ...`` line and its exit code.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        tidy_help(self)  # and the sub-commands loaded already (db, keys, ...)
        lazy = {c.name: _capability_cli(c.cli) for c in CAPABILITIES if c.cli is not None}
        self.commands = LazyCommands(self.commands, lazy)

    def invoke(self, ctx: Any) -> Any:
        with cli_output.one_line_errors():
            if not set(ctx.args) & set(ctx.help_option_names):  # help reads no setting
                check_environment(settings_classes())
            return super().invoke(ctx)


def settings_classes() -> list[type[TetherSettings]]:
    """Every settings class: core's, the simulators' and each capability's."""
    return [Settings, SimulatorSettings, *(c.settings for c in CAPABILITIES)]


class _Simulators(TyperGroup):
    """``tether simulate``: every capability's simulators, loaded when used."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        lazy = {n: _simulator(n, ref) for c in CAPABILITIES for n, ref in c.simulators.items()}
        self.commands = LazyCommands(self.commands, lazy)


app = typer.Typer(
    name="tether",
    cls=_Root,
    help=(
        "tether keeps local PostgreSQL copies of externally mastered data true.\n\n"
        "Configuration comes from TETHER_* environment variables (and DATABASE_URL); "
        "without it, `tether db start` starts an embedded PostgreSQL in TETHER_DATA_DIR "
        "(.tether), which the other commands use (serve, worker and demo start it themselves)."
    ),
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # sub-commands inherit it
)
simulate_app = typer.Typer(
    cls=_Simulators,
    help="Run a simulator of an external system (a real HTTP server with fault modes).",
    no_args_is_help=True,
)
app.add_typer(db_cli.app, name="db")
app.add_typer(simulate_app, name="simulate")
app.add_typer(keys_cli.app, name="keys")
NoMigrate = Annotated[
    bool,
    typer.Option(
        "--no-migrate", help="Do not apply migrations (run as a data-only role) [TETHER_MIGRATE]."
    ),
]


def all_settings(settings: Settings) -> list[BaseSettings]:
    """Core settings and every capability's (read from the environment): what safety checks."""
    return [settings, *(capability.settings() for capability in CAPABILITIES)]


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tether {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """tether keeps local PostgreSQL copies of externally mastered data true."""


def settings_from_env() -> Settings:
    """Settings for a CLI command, with logging configured from them."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


@app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Print the Service panel and every capability's panel, as the web console's home page
    shows them; read-only: applies nothing."""
    from tether.ops import print_status

    loop.run(print_status(settings_from_env(), as_json=as_json))


def _port(value: int | None) -> int | None:
    """1 to 65535, checked here: as ``min``/``max`` the range took a column of the help's
    width and the option texts were cut to fit the rest."""
    if value is not None and not 1 <= value <= 65535:
        raise typer.BadParameter(f"{value} is not a port: give 1 to 65535")
    return value


_HOST = f"default: {Settings.model_fields['host'].default}"
_PORT = f"default: {Settings.model_fields['port'].default}"
_WITH_JOBS = " or ".join(", ".join(c.name for c in CAPABILITIES if c.jobs).rsplit(", ", 1))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help=f"Bind address [TETHER_HOST; {_HOST}].")] = None,
    port: Annotated[
        int | None, typer.Option(help=f"Port, 1-65535 [TETHER_PORT; {_PORT}].", callback=_port)
    ] = None,
    no_migrate: NoMigrate = False,
    workers: Annotated[
        int,
        typer.Option(
            help="API processes sharing the port, each with its own pool and key cache "
            "(migrations run once, before they start).",
            min=1,
        ),
    ] = 1,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs, metrics at /metrics). Applies migrations first.

    Refuses a non-loopback address while a secret is unset or a development value.
    """
    import uvicorn

    from tether.app import create_app
    from tether.core.limits import server_options

    settings = settings_from_env()
    if no_migrate:
        settings = settings.model_copy(update={"migrate": False})
    bind_host, bind_port = host or settings.host, port or settings.port
    check_database_url(settings)
    exposure.refuse_unsafe(*all_settings(settings), bind_host=bind_host)
    ensure_port_free(bind_host, bind_port)
    url = db.resolve_database_url(settings)  # then reachable and migrated, before uvicorn runs
    migrations.ready(url, migration_components(), migrate=settings.migrate)
    common = {
        "host": bind_host,
        "port": bind_port,
        "log_level": settings.log_level.lower(),
        "access_log": True,
        **server_options(settings),
    }
    if workers > 1:  # uvicorn starts each process from the app factory's import path
        uvicorn.run("tether.app:app_from_env", factory=True, workers=workers, **common)
        return
    uvicorn.run(create_app(settings, database_url=url, migrate=False), **common)


def check_database_url(settings: Settings) -> None:
    """A DATABASE_URL that is not PostgreSQL's (or not a URL) is said as such first: the
    exposure check read a ``mysql://`` one as a remote database needing real secrets."""
    if settings.database_url:
        db.check_url(settings.database_url)


def ensure_port_free(host: str, port: int) -> None:
    """A port already in use is a one-line error, before anything starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {host}:{port} ({exc.strerror}): another process uses it. "
                "Stop it, or pick another port with --port or TETHER_PORT."
            ) from None


@app.command()
def worker(
    processes: Annotated[
        int,
        typer.Option(
            help="Worker processes to start; with TETHER_WORKER_DEFERRED_NICE > 0 (default) this "
            "many for the jobs a sender waits on and as many for the deferred jobs.",
            min=1,
        ),
    ] = 1,
    once: Annotated[  # a flag alone: a --no-once column squeezed every option's help
        bool, typer.Option("--once", help="Exit when nothing is due instead of polling.")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help=f"Run only this capability's jobs: {_WITH_JOBS} (repeat for several); "
            "default: all.",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve the worker processes' counters and durations for Prometheus on this "
            "port, summed over --processes, to an API key with scope read "
            "[TETHER_WORKER_METRICS_PORT; default: off].",
            callback=_port,
        ),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option(help="Bind address of --metrics-port [TETHER_WORKER_METRICS_HOST]."),
    ] = None,
    no_migrate: NoMigrate = False,
) -> None:
    """Run every capability's background jobs: due work claimed with SKIP LOCKED, event and
    queue consumers, scheduled runs.

    Run any number of these, on any number of machines, against one database. Each capability's
    jobs are configured by its own TETHER_<CAPABILITY>_* variables (see the README). SIGTERM or
    Ctrl-C stop every process cleanly; a child whose parent dies stops by itself.
    """
    from tether.worker import WorkerOptions, run_processes, selected

    settings = settings_from_env()
    options = WorkerOptions(once=once, only=tuple(only or ()))
    try:
        selected(options)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--only") from None
    check_database_url(settings)
    exposure.refuse_unsafe(*all_settings(settings), skip=("events_token", "session_secret"))
    url = db.resolve_database_url(settings)
    if settings.migrate and not no_migrate:
        migrations.upgrade(url, migration_components())
    port = metrics_port or settings.worker_metrics_port
    metrics = None if port is None else (metrics_host or settings.worker_metrics_host, port)
    try:
        failed = run_processes(settings, url, processes, options, metrics=metrics)
    except OSError as exc:
        if metrics is None:
            raise
        raise ConfigurationError(
            f"cannot serve worker metrics on {metrics[0]}:{metrics[1]} ({exc.strerror}). "
            "Pick another port with --metrics-port or TETHER_WORKER_METRICS_PORT."
        ) from None
    if failed:
        console.print(f"[red]{failed} worker process(es) failed[/]")
        raise typer.Exit(1)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="API port (any free port if taken).")] = 8000,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
) -> None:
    """Run everything on this machine: embedded PostgreSQL, simulators, API, worker, demo data.

    Uses its own database `tether_demo`, recreated on each run. Prints the URLs and what to try.
    Each capability adds its simulators, data and guide lines (sizes: TETHER_<CAPABILITY>_DEMO_*).
    """
    from tether.demo import DemoOptions, run_demo

    settings = settings_from_env()
    logging.getLogger("tether.core.http").setLevel(logging.WARNING)  # one line per call: too much
    options = DemoOptions(port=port, duration_s=duration)
    with contextlib.suppress(KeyboardInterrupt):
        loop.run(run_demo(settings, options, cli_output.console()))


def main() -> None:
    """Entry point of the ``tether`` script."""
    import warnings

    # pgserver's platformdirs warns on machines without XDG_RUNTIME_DIR; harmless, and noisy.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    with cli_output.one_line_errors():  # what ``_Root.invoke`` did not see
        app()
