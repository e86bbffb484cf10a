"""``tether payments ...``: send a message, read a status, show a case."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tether.core import loop
from tether.core.bootstrap import open_runtime
from tether.core.errors import TetherError
from tether.core.logging import configure_logging
from tether.core.settings import load_settings
from tether.payments.service import PaymentsService, build

console = Console()
app = typer.Typer(
    help=(
        "Payment orders: the benefit system's thick messages become one atomic order per case "
        "at the payment system; statuses by original key."
    ),
    no_args_is_help=True,
)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _with_service(work: Any) -> Any:
    settings = load_settings()
    configure_logging("WARNING", settings.log_json)

    async def _run() -> Any:
        async with open_runtime(settings) as runtime, build(runtime) as service:
            return await work(service)

    try:
        return loop.run(_run())
    except TetherError as exc:
        console.print(f"[red]{type(exc).__name__}: {exc.message}[/red]")
        raise typer.Exit(1) from None


def _print_status(key: str, status: str, body: Any, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps({"key": key, **dict(body)}, default=str))
        return
    console.print(f"{key}: [bold]{status}[/bold]")
    error = body.get("error")
    if error:
        console.print(f"  error {error.get('statusCode')}: {error.get('msg')}")
    for line in (body.get("detaljer") or {}).get("linjer", []):
        console.print(f"  {line['klassekode']} {line['fom']}..{line['tom']} beløp {line['beløp']}")
    if body.get("simulation") is not None:
        console.print_json(json.dumps(body["simulation"], default=str))


@app.command("send")
def send(
    file: Annotated[Path, typer.Argument(help="The message (JSON) to send.", exists=True)],
    key: Annotated[str | None, typer.Option(help="Original key (default: a new UUID).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Simulate only.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for OK/FEILET (needs a worker).")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Submit one dagpenger message; print its key and status."""
    raw = file.read_bytes()
    if dry_run:
        try:
            message = json.loads(raw)
        except ValueError as exc:
            console.print(f"[red]{file} is not JSON: {exc}[/red]")
            raise typer.Exit(1) from None
        message["dryrun"] = True
        raw = json.dumps(message, ensure_ascii=False).encode()
    original_key = key or str(uuid.uuid4())

    async def work(service: PaymentsService) -> None:
        submission = await service.submit(original_key, raw)
        row = await service.wait_status(submission.key, 30.0 if wait else 0.0)
        _print_status(submission.key, row.status, row.body, as_json)

    _with_service(work)


@app.command("status")
def status(
    key: Annotated[str, typer.Argument(help="The original key.")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for OK/FEILET.")] = 0.0,
    as_json: AsJson = False,
) -> None:
    """Print the latest status of a message."""

    async def work(service: PaymentsService) -> None:
        row = await service.wait_status(key, wait)
        _print_status(key, row.status, row.body, as_json)

    _with_service(work)


@app.command("case")
def case(
    sak_id: Annotated[str, typer.Argument(help="The case id (sakId).")],
    fagsystem: Annotated[str, typer.Option(help="The sending system.")] = "DAGPENGER",
    as_json: AsJson = False,
) -> None:
    """Print a case's confirmed utbetalinger and its orders."""

    async def work(service: PaymentsService) -> None:
        view = await service.case(sak_id, fagsystem)
        orders = await service.orders(sak_id, fagsystem)
        active = view.active_uids or frozenset()
        if as_json:
            out = {
                "fagsystem": fagsystem,
                "sakId": sak_id,
                "never_paid": view.active_uids is None,
                "utbetalinger": [
                    {
                        "uid": u.uid,
                        "klassekode": u.klassekode,
                        "active": u.uid in active,
                        "periods": list(u.periods),
                        "last_line_id": u.last_line_id,
                    }
                    for u in view.utbetalinger
                ],
                "orders": [
                    {"id": str(o.id), "original_key": o.original_key, "state": o.state}
                    for o in orders
                ],
            }
            console.print_json(json.dumps(out, default=str))
            return
        table = Table("uid", "klassekode", "periods", "last line", "active")
        for u in view.utbetalinger:
            periods = ", ".join(f"{p['fom']}..{p['tom']}:{p['beløp']}" for p in u.periods)
            table.add_row(
                u.uid,
                u.klassekode,
                periods or "stopped",
                u.last_line_id,
                "yes" if u.uid in active else "no",
            )
        console.print(table)
        for o in orders:
            console.print(f"order {o.id} {o.state} (key {o.original_key})")

    _with_service(work)
