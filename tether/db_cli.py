"""``tether db ...``: migrations, the database URL, and the embedded server's lifecycle.

Only ``start`` starts the embedded server: the other commands use a running one (or
DATABASE_URL), since a server they started as a side effect would outlive them unnoticed.
Results go to stdout; errors, and advice, to stderr.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console

from tether.capabilities import migration_components, upgrade_database
from tether.core import db, embedded, migrations, roles
from tether.core.errors import ConfigurationError
from tether.core.logging import configure_logging
from tether.core.settings import Settings, load_settings

out = Console(soft_wrap=True, highlight=False)  # results: stdout, one line each
app = typer.Typer(help="Database: migrations, its URL, the embedded server.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


def masked(url: str) -> str:
    """``url`` with its password (if any) as ``***``: what a status may show in a log."""
    if "://" not in url:  # key=value conninfo
        return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)
    parts = urlsplit(url)
    if not parts.password:  # none, or empty (the embedded server's)
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


@app.command("upgrade")
def upgrade() -> None:
    """Apply every pending migration (safe to run concurrently and repeatedly).

    Migrates DATABASE_URL, or the running embedded server (`tether db start` starts it).
    """
    # it prints each applied migration on stdout: the log says it at DEBUG only
    applied = upgrade_database(db.url_in_use(_settings()), log_level=logging.DEBUG)
    for m in applied:
        out.print(f"applied {m.component} {m.version:04d}_{m.name}")
    out.print(
        f"[green]database is up to date[/] ({len(applied)} migration(s) applied)", markup=True
    )


def _status(settings: Settings) -> dict[str, Any]:
    where = str(settings.data_dir.resolve())
    if settings.database_url:
        url: str | None = db.check_url(settings.database_url)
        body: dict[str, Any] = {"server": "DATABASE_URL", "running": True, "data_dir": None}
    else:
        url = db.running_embedded_url(settings.data_dir)
        body = {"server": "embedded", "running": url is not None, "data_dir": where}
    body["database_url"] = None if url is None else masked(url)
    pending = None if url is None else migrations.pending(url, migration_components())
    body["pending"] = (
        None
        if pending is None
        else [{"component": m.component, "version": m.version, "name": m.name} for m in pending]
    )
    return body


@app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Which database is in use, whether the embedded server runs, and the migrations not
    applied yet (read-only: starts no server, applies nothing; the password is masked).

    With the embedded server stopped, "pending" is null (`tether db start` starts it).
    """
    settings = _settings()
    body = _status(settings)
    if as_json:
        typer.echo(json.dumps(body))
        return
    if body["server"] == "embedded":
        state = "running" if body["running"] else "not running"
        out.print(f"embedded PostgreSQL {state} in {body['data_dir']}")
    if not body["running"]:  # advice, not a result: stderr, and still exit 0 (a status)
        typer.echo("start it with `tether db start`; nothing more to show", err=True)
        return
    out.print(f"database {body['database_url']}")
    for m in body["pending"]:
        out.print(f"pending {m['component']} {m['version']:04d}_{m['name']}")
    out.print(f"{len(body['pending'])} pending migration(s)")


@app.command("url")
def url(as_json: JsonOption = False) -> None:
    """Print the URL of the database in use, whole (password included), for scripts such as
    psql "$(tether db url)".

    DATABASE_URL as it is set; else the running embedded server's postgresql:// URL (the demo's
    database while a demo runs). Starts no server: when the embedded one is not running, says so
    and exits 1.
    """
    found = db.url_in_use(_settings())
    typer.echo(json.dumps({"database_url": found}) if as_json else found)


@app.command("start")
def start() -> None:
    """Start (or join) the embedded PostgreSQL of TETHER_DATA_DIR and print where it runs.

    It keeps running after this command: `tether db stop` stops it.
    """
    settings = _settings()
    if settings.database_url:
        raise ConfigurationError("DATABASE_URL is set: that server is not tether's to start")
    db.resolve_database_url(settings)
    where = settings.data_dir.resolve()
    out.print(f"embedded PostgreSQL running in {where}; `tether db url` prints its URL")


@app.command("stop")
def stop() -> None:
    """Stop the embedded PostgreSQL of TETHER_DATA_DIR.

    It outlives `tether demo` and `tether serve` on purpose, so workers and the CLI can join it.
    """
    settings = _settings()
    if settings.database_url:
        raise ConfigurationError("DATABASE_URL is set: that server is not tether's to stop")
    stopped = embedded.stop_embedded_postgres(settings.data_dir)
    where = settings.data_dir.resolve()
    out.print(
        f"stopped the embedded PostgreSQL in {where}"
        if stopped
        else f"no embedded PostgreSQL is running in {where}"
    )


app.command("grant")(roles.grant_command)  # listed last: run once, after `upgrade`
