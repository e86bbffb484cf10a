"""``tether accruals ingest PATH... [--json]``: the Typer command function (A2 mounts it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from tether.accruals.ingest import FileResult, ingest_files
from tether.core import loop
from tether.core.bootstrap import open_runtime
from tether.core.logging import configure_logging
from tether.core.settings import load_settings

console = Console(stderr=True)  # the progress bar; results go to stdout
out = Console(soft_wrap=True)  # a file's summary stays one line when piped


def ingest(
    paths: Annotated[
        list[Path],
        typer.Argument(
            # a missing path is bad usage (exit 2, as `accruals load`), not a rejected file
            exists=True,
            help="NEM12/NEM13 files, or folders of them (all files in).",
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of per-file results on stdout.")
    ] = False,
) -> None:
    """Load NEM12/NEM13 meter data files; exit 1 when any file was not fully loaded."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    files = [
        f
        for p in paths
        for f in (sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p])
    ]

    async def _run() -> list[FileResult]:
        # the schema this command writes to (other capabilities' migrations are not its business)
        async with open_runtime(settings, migrate=("tether.core", "tether.accruals")) as runtime:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TimeRemainingColumn(), console=console, transient=True,
            ) as bar:  # fmt: skip
                tasks: dict[str, TaskID] = {}

                def progress(name: str, done: int, total: int) -> None:
                    if name not in tasks:
                        tasks[name] = bar.add_task(Path(name).name, total=total)
                    bar.update(tasks[name], completed=done)

                return await ingest_files(runtime.pool, files, progress)

    results = loop.run(_run())
    if as_json:
        typer.echo(json.dumps([r.as_json() for r in results], indent=2))
    else:
        for r in results:
            _summary(r)
    if any(r.status != "loaded" for r in results):
        raise typer.Exit(1)


def _summary(r: FileResult) -> None:
    colour = {"loaded": "green", "partial": "yellow", "rejected": "red"}[r.status]
    out.print(
        f"[{colour}]{r.status}[/] {r.file}: {r.nmis} NMIs, {r.channel_days} channel-days, "
        f"{r.basic_reads} basic reads, {r.values} values, {len(r.errors)} errors"
    )
    for e in r.errors[:20]:
        out.print(f"  line {e.line}: {e.reason}")
    if len(r.errors) > 20:
        out.print(f"  ... {len(r.errors) - 20} more (see --json)")
