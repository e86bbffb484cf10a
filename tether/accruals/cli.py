"""``tether accruals ...``: ingest, load, generate, run, runs, resubmit, purge-superseded."""

from __future__ import annotations

import calendar
import json
import os
import re
import socket
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tether.accruals import service
from tether.accruals.cli_ingest import ingest
from tether.accruals.loader import KINDS
from tether.accruals.retention import SnapshotPurged
from tether.accruals.settings import AccrualsSettings
from tether.core import cli_output
from tether.core.logging import configure_logging
from tether.core.settings import load_settings

console = cli_output.console(stderr=True)  # progress, warnings, errors: a line each
stdout = cli_output.console()  # results, one line each however long (`out` is an option)
app = typer.Typer(
    help="Bottom-up accruals: meter data, accounts, tariffs, the run.", no_args_is_help=True
)
app.command("ingest")(ingest)

PeriodEnd = Annotated[str, typer.Option("--period-end", help="Run date YYYY-MM-DD (identity).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _url() -> str:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return service.database(settings)


def _day(text: str, option: str = "--period-end") -> date:
    """A date option; 2024-02-30 is "not a calendar date" (it has the format: saying "not a
    date YYYY-MM-DD" sent a user looking for a typo in the format)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    found = re.fullmatch(r"(\d{4})-(\d{2})-\d{2}", text)
    why = "is not a date YYYY-MM-DD"
    if found and 1 <= int(found[2]) <= 12:
        days = calendar.monthrange(int(found[1]), int(found[2]))[1]
        why = f"is not a calendar date ({found[1]}-{found[2]} has {days} days)"
    raise typer.BadParameter(f"{text!r} {why}", param_hint=f"'{option}'")


def _stamp(text: str) -> datetime:
    """An --as-at: an ISO timestamp with its offset (a bad one is a usage error, exit 2)."""
    example = "e.g. 2026-12-07T00:00:00+10:00"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO timestamp ({example})") from None
    if stamp.tzinfo is None:
        raise typer.BadParameter(f"--as-at needs an offset, {example}")
    return stamp


@app.command("load")
def load(
    kind: Annotated[str, typer.Argument(help=f"One of {', '.join(KINDS)}.")],
    file: Annotated[
        Path,
        typer.Argument(help="CSV file (columns in docs/accruals.md).", exists=True, dir_okay=False),
    ],
    as_json: AsJson = False,
) -> None:
    """Load accounts, tariffs or invoices; a file with any bad line is rejected whole."""
    from tether.accruals import loader

    if kind not in KINDS:
        raise typer.BadParameter(f"kind must be one of {', '.join(KINDS)}")
    result = loader.load(_url(), kind, file)
    if as_json:
        typer.echo(json.dumps(result.__dict__, indent=2))
    else:
        colour = "green" if result.status == "loaded" else "red"
        stdout.print(f"[{colour}]{result.status}[/] {file}: {result.rows} {kind}")
        for err in result.errors[:20]:
            stdout.print(f"  line {err['line']}: {err['reason']}")
    if result.status != "loaded":
        raise typer.Exit(1)


@app.command("generate")
def generate(
    out: Annotated[Path, typer.Argument(help="Folder to write the files into.")],
    accounts: Annotated[int, typer.Option(help="Accounts to generate.", min=1)] = 100,
    months: Annotated[int, typer.Option(help="Months of history.", min=1)] = 13,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 1,
) -> None:
    """Write realistic NEM12/NEM13 files and accounts, tariffs and invoices CSVs."""
    from tether.accruals.generator import generate as gen

    with console.status("generating"):
        result = gen(accounts, months, out, seed)
    stdout.print(
        f"{result.accounts} accounts, {result.channel_days} channel-days, "
        f"{result.basic_reads} basic reads, {result.invoices} invoices -> {out}"
    )


def _executor(url: str, prefix: str) -> None:
    from tether.accruals import flow

    flow.start_executor(url, AccrualsSettings(), f"{prefix}-{socket.gethostname()}-{os.getpid()}")


def _wait(url: str, period_end: date, wid: str) -> None:
    """Progress bar over chunks until the workflow ends (its error is raised here)."""
    from tether.core import workflows

    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            outcome["result"] = workflows.result(wid)
        except Exception as exc:  # shown below, after the bar
            outcome["error"] = exc

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"run {period_end}", total=None)
        while waiter.is_alive():
            detail = service.run_detail(url, period_end) or {}
            prog = detail.get("progress") or {}
            running = [s["step"] for s in detail.get("steps", []) if s["status"] == "running"]
            bar.update(
                task,
                total=prog.get("accounts") or None,
                completed=prog.get("accounts_done", 0),
                description=f"run {period_end} {','.join(running)}",
            )
            waiter.join(0.5)
    if "error" in outcome:
        raise typer.Exit(_fail(f"run failed: {outcome['error']}"))


def _fail(message: str) -> int:
    console.print(f"[red]{message}[/]")
    return 1


@app.command("run")
def run_cmd(
    period_end: PeriodEnd,
    as_at: Annotated[
        str | None,
        typer.Option(
            "--as-at",
            help="Snapshot cut-off (ISO timestamp with offset, not in the future). Default: the"
            " run date's stored one (a re-run: same bytes), else period end +"
            " TETHER_ACCRUALS_AS_AT_LAG_DAYS, 00:00 AEST.",
        ),
    ] = None,
    new_settings: Annotated[
        bool,
        typer.Option(
            "--new-settings",
            help="Re-run with this process's TETHER_ACCRUALS_* estimation settings instead of"
            " the ones stored with the run date (its figures may differ).",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the files into OUT/<period end>/ [TETHER_ACCRUALS_EXPORT_DIR]."),
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Run here and wait (else leave it to workers).")
    ] = True,
) -> None:
    """Run (or re-run: replaces the run date's own results) the accruals of a period end."""
    from tether.accruals import flow
    from tether.accruals.plan import RunRefused
    from tether.core import workflows

    day = _day(period_end)
    stamp = _stamp(as_at) if as_at else None
    if out is not None and not wait:
        raise typer.BadParameter(
            "--out writes the files when the run ends, and with --no-wait nothing here waits "
            "for that: leave out --out (the files stay with the run; the API serves them at "
            f"/api/v1/accruals/runs/{day}/exports/<name>), or drop --no-wait",
            param_hint="'--out'",
        )
    url = _url()
    try:
        wid = flow.submit(url, AccrualsSettings(), day, stamp, new_settings=new_settings)
    except RunRefused as exc:
        raise typer.BadParameter(str(exc)) from None
    except SnapshotPurged as exc:
        raise typer.Exit(_fail(str(exc))) from None
    stdout.print(f"workflow {wid}")
    if not wait:
        console.print(_QUEUED.format(day=day), markup=False, highlight=False, soft_wrap=True)
        return
    _executor(url, "cli")  # this process helps: it runs queued work until the run ends
    try:
        _wait(url, day, wid)
    finally:
        workflows.shutdown()
    _print_run(url, day, out or AccrualsSettings().export_dir)


_QUEUED = (
    "queued: a running `tether worker` runs it (this command does not wait); follow it with "
    "`tether accruals runs --period-end {day}`"
)


def _print_run(url: str, day: date, out: Path | None) -> None:
    detail = service.run_detail(url, day) or {}
    stdout.print_json(data=detail.get("totals", {}))
    for warning in service.warnings(detail):
        console.print(f"[yellow]warning:[/] {warning}")
    if out:
        folder = out / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        for export in detail.get("exports", []):
            content = service.export_content(url, day, export["name"]) or b""
            (folder / export["name"]).write_bytes(content)
        stdout.print(f"files in {folder}")


@app.command("runs")
def runs(
    period_end: Annotated[str | None, typer.Option("--period-end", help="One run in full.")] = None,
    as_json: AsJson = False,
) -> None:
    """List runs, or show one (steps, progress, totals, failures, files)."""
    day = _day(period_end) if period_end else None
    url = _url()
    data: Any = service.run_detail(url, day) if day else service.list_runs(url)
    if data is None and day is not None:
        _not_started(url, day, as_json)
        return
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    if not data:
        console.print(
            "no runs yet: start one with `tether accruals run --period-end YYYY-MM-DD`",
            markup=False,
            highlight=False,
        )
    for row in data if isinstance(data, list) else [data]:
        totals = row.get("totals") or {}
        stdout.print(
            f"{row['period_end']}  {row['status']:<8} attempt {row['attempt']}  "
            f"accounts {totals.get('accounts', '-')}  "
            f"ex-GST {totals.get('amount_ex_gst', '-')}  "
            f"estimated {totals.get('estimated_share', '-')}  "
            f"failures {totals.get('failures', '-')}"
        )
        for step in row.get("steps", []):
            stdout.print(f"  {step['step']:<9} {step['status']:<8} {step['detail']}")


def _not_started(url: str, day: date, as_json: bool) -> None:
    """A run date with no run row: queued and not started by a worker yet (said, exit 0: it
    answered "no run", exit 1, until a worker took it), or never submitted (exit 1)."""
    from tether.accruals.run import workflow_id
    from tether.core import workflows

    wid = workflow_id(day, 1)  # a date's first attempt: later ones have the row of the first
    state = workflows.status(url, wid)
    if state not in ("ENQUEUED", "PENDING"):
        raise typer.Exit(
            _fail(f"no run for {day}: start one with `tether accruals run --period-end {day}`")
        )
    if as_json:
        typer.echo(json.dumps({"period_end": str(day), "status": "queued", "workflow_id": wid}))
        return
    stdout.print(
        f"{day}  queued   workflow {wid}: not started yet; a running `tether worker` runs it",
        markup=False,
        highlight=False,
    )


@app.command("resubmit")
def resubmit(period_end: PeriodEnd) -> None:
    """Price the run's failed accounts again (after fixing their data), then re-export."""
    from tether.accruals import flow
    from tether.core import workflows

    day, url = _day(period_end), _url()
    try:
        wid = flow.resubmit(url, AccrualsSettings(), day)
    except (LookupError, SnapshotPurged) as exc:
        raise typer.Exit(_fail(str(exc))) from None
    _executor(url, "cli")
    try:
        _wait(url, day, wid)
    finally:
        workflows.shutdown()
    _print_run(url, day, None)


@app.command("purge-superseded")
def purge_superseded(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Rows deleted per transaction.", min=1)] = 10_000,
) -> None:
    """Delete superseded meter data versions older than the retention.

    Every version of a channel-day or basic read that an ingest replaced (or found older than
    the stored one) is kept in acc.*_superseded, so that a run date re-run later sees the data
    as at its as-at and writes the same files. This deletes the versions kept more than
    TETHER_ACCRUALS_SUPERSEDED_RETENTION_DAYS (400) days ago (not past the as-at of a run still
    under way), in batches of --batch-size rows, each its own transaction, and prints how many
    went. A run or re-run whose as-at is before that horizon is refused from then on: its
    snapshot can no longer be rebuilt. Safe to run at any time, e.g. daily.
    """
    from tether.accruals import retention

    settings, url = AccrualsSettings(), _url()
    with console.status("purging") as status:

        def progress(table: str, gone: int) -> None:
            status.update(f"purging: {gone} {table.replace('_', ' ')} deleted")

        result = retention.purge(
            url, settings, dry_run=dry_run, batch=batch_size, progress=progress
        )
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {result.channel_days} channel-day and {result.basic_reads} basic read versions"
        f" superseded before {result.horizon.isoformat()}"
        f" (retention {settings.superseded_retention_days} days)"
    )
    if result.held_by is not None:
        typer.echo(f"note: {result.held_back()}", err=True)


if __name__ == "__main__":
    app()
