"""``tether elicensing ...`` and ``tether simulate elicensing``."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

import typer
from rich.console import Console

from tether.core import loop
from tether.core.bootstrap import open_runtime
from tether.core.logging import configure_logging
from tether.core.settings import load_settings
from tether.elicensing.models import InvoiceRead, InvoiceType
from tether.elicensing.service import build

console = Console()
app = typer.Typer(
    help=(
        "E-licensing invoices: local copies of invoices mastered in the e-licensing finance "
        "system, refreshed whenever they are read."
    ),
    no_args_is_help=True,
)


@app.command("invoice")
def invoice(
    report_version_id: Annotated[int, typer.Argument(help="Compliance report version id.")],
    invoice_type: Annotated[
        InvoiceType, typer.Option("--type", help="Which invoice of the report version.")
    ] = InvoiceType.OBLIGATION,
    force: Annotated[bool, typer.Option(help="Refresh even inside the freshness window.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Read (and refresh if due) the invoice of a report version; print its balance."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)

    async def _run() -> None:
        async with open_runtime(settings) as runtime, build(runtime) as service:
            read = await service.read_invoice(report_version_id, invoice_type, force=force)
            inv = read.invoice
            if as_json:
                typer.echo(json.dumps(_as_json(read), default=str))
                return
            state = "fresh" if read.data_is_fresh else f"STALE ({read.stale_reason})"
            console.print(
                f"invoice {inv.invoice_number}: {state}, last refreshed "
                f"{service.display_time(read.last_refreshed)}"
            )
            console.print(f"outstanding {inv.outstanding_balance}  amount due {inv.amount_due}")

    loop.run(_run())


def _as_json(read: InvoiceRead) -> dict[str, object]:
    inv = read.invoice
    return {
        "invoice_number": inv.invoice_number,
        "data_is_fresh": read.data_is_fresh,
        "stale_reason": read.stale_reason,
        "last_refreshed": read.last_refreshed,
        "outstanding_balance": inv.outstanding_balance,
        "amount_due": inv.amount_due,
        "is_void": inv.is_void,
    }


def simulate(
    port: Annotated[int, typer.Option(help="Data port (the e-licensing API).")] = 7002,
    control_port: Annotated[int, typer.Option(help="Control port (/faults, /ledger).")] = 7102,
    clients: Annotated[int, typer.Option(help="Generated clients, one invoice each.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed of the generated ledger.")] = 42,
    token: Annotated[str, typer.Option(help="Bearer token the API requires.")] = (
        "dev-elicensing-token"
    ),
) -> None:
    """Run the e-licensing simulator until Ctrl-C.

    Switch faults with PUT http://127.0.0.1:<control-port>/faults {"mode": "down"} (modes:
    none, down, slow, 500, garbage, added_fields, missing_fields, broken_child); move the
    ledger on with POST /ledger/invoices/<number>/payments {"amount": "100.00"}.
    """
    from tether.elicensing.simulator import make_simulator

    sim = make_simulator(
        token=token, seed=seed, clients=clients, port=port, control_port=control_port
    )
    for number, inv in sim.ledger.invoices.items():
        console.print(f"invoice {number} of client {inv.client_object_id}")
    console.print(f"e-licensing simulator on {sim.url}, control on {sim.control_url}")
    with contextlib.suppress(KeyboardInterrupt):
        loop.run(sim.serve())
