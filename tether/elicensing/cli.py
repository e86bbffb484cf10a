"""``tether elicensing ...`` and ``tether simulate elicensing``."""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from tether.core import loop
from tether.core.bootstrap import open_runtime
from tether.core.errors import InvalidInput, UpstreamUnavailable
from tether.core.logging import configure_logging
from tether.core.settings import load_settings
from tether.core.simulator_auth import ControlTokenOption, configured_token
from tether.elicensing import obligations
from tether.elicensing.errors import InvoiceNotFound
from tether.elicensing.models import InvoiceType, ObligationLink
from tether.elicensing.obligations import ObligationLinkIn
from tether.elicensing.service import ElicensingService, build
from tether.elicensing.settings import ElicensingSettings

console = Console(soft_wrap=True, markup=False, highlight=False)  # results, as given
app = typer.Typer(
    help=(
        "E-licensing invoices: local copies of invoices mastered in the e-licensing finance "
        "system, refreshed whenever they are read."
    ),
    no_args_is_help=True,
)


Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _run(use: Callable[[ElicensingService], Awaitable[None]]) -> None:
    """Run one use case with the service of this process (a pool, no web app). Warnings and
    worse only, as the payments commands: a call's INFO lines buried the one error line."""
    settings = load_settings()
    configure_logging("WARNING", settings.log_json)

    async def _main() -> None:
        async with open_runtime(settings) as runtime, build(runtime) as service:
            await use(service)

    try:
        loop.run(_main())
    except UpstreamUnavailable as exc:  # the same class, with where it called and what to do
        raise type(exc)(f"{exc.message}; {_unreachable_hint()}") from None


def _unreachable_hint() -> str:
    url = ElicensingSettings().url
    return (
        f"is e-licensing running at TETHER_ELICENSING_URL={url}? Start it (locally: "
        "`tether simulate elicensing`) or set TETHER_ELICENSING_URL, then try again"
    )


def _print_json(value: object) -> None:
    print(json.dumps(value, default=str, indent=2))


EXIT_CODES = (
    "Exit codes: 0 a fresh answer; 3 the local copy, flagged stale (the refresh failed: the "
    "reason is printed); 1 an error, such as an unknown report version."
)
EXIT_STALE = 3


@app.command("invoice", epilog=EXIT_CODES)
def invoice(
    report_version_id: Annotated[int, typer.Argument(help="Compliance report version id.")],
    invoice_type: Annotated[
        InvoiceType,
        typer.Option(
            "--type",
            # in the help text: as a type, one long word cut mid-word at 80 columns
            show_choices=False,
            help="Which invoice of the report version: "
            + ", ".join(t.value for t in InvoiceType)
            + ".",
        ),
    ] = InvoiceType.OBLIGATION,
    force: Annotated[
        bool, typer.Option("--force", help="Refresh even inside the freshness window.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Read (and refresh if due) the invoice of a report version; print its balance."""
    fresh = True

    async def use(service: ElicensingService) -> None:
        nonlocal fresh
        read = await service.read_invoice(report_version_id, invoice_type, force=force)
        fresh = read.data_is_fresh
        inv = read.invoice
        if as_json:
            _print_json(
                {
                    "invoice_number": inv.invoice_number,
                    "data_is_fresh": read.data_is_fresh,
                    "stale_reason": read.stale_reason,
                    "stale_since": read.stale_since,
                    "last_refreshed": read.last_refreshed,
                    "outstanding_balance": inv.outstanding_balance,
                    "amount_due": inv.amount_due,
                }
            )
            return
        state = "fresh" if read.data_is_fresh else f"STALE ({read.stale_reason})"
        console.print(
            f"invoice {inv.invoice_number}: {state}, last refreshed "
            f"{service.display_time(read.last_refreshed)}"
        )
        console.print(f"outstanding {inv.outstanding_balance}  amount due {inv.amount_due}")

    try:
        _run(use)
    except InvoiceNotFound as exc:
        if invoice_type is not InvoiceType.OBLIGATION:
            raise
        raise InvoiceNotFound(  # the one invoice an operator links by hand: say how
            f"{exc.message}: register it with `tether elicensing obligations register "
            f"{report_version_id} --invoice-number ...` (see its --help)"
        ) from None
    if not fresh:  # answered, from the local copy: a script can tell it from a fresh one
        raise typer.Exit(EXIT_STALE)


obligations_app = typer.Typer(
    help="Obligation links: which e-licensing invoice bills a compliance report version.",
    no_args_is_help=True,
)
app.add_typer(obligations_app, name="obligations")
Actor = Annotated[
    str, typer.Option(help="Who makes the change (kept in history); default: your user name.")
]


OPTIONS = {"operator_legal_name": "operator-name"}  # the fields whose option is named otherwise
EXPECTED = {
    "reporting_year": "a year, 2000 to 2100",
    "obligation_id": "letters, digits, '.', '_' and '-', starting with a letter or digit, "
    "e.g. 24-0001-1-1",
    "fee_amount": "dollars, 0 or more, at most two decimals, e.g. 1234.50",
    "invoice_number": "letters, digits, '.', '_' and '-', starting with a letter or digit",
    "client_object_id": "letters, digits, '.', '_' and '-', starting with a letter or digit",
    "client_guid": "a UUID, e.g. 3f2b8c1e-9d4a-4c6e-8b7f-1a2b3c4d5e6f",
    "operator_legal_name": "1 to 255 characters",
    "cra_business_number": "nine digits, e.g. 123456789",
}


@obligations_app.command("register")
def register(
    report_version_id: Annotated[int, typer.Argument(help="Compliance report version id.")],
    invoice_number: Annotated[str, typer.Option(help="E-licensing invoice number.")],
    client_object_id: Annotated[str, typer.Option(help="E-licensing client object id.")],
    client_guid: Annotated[
        str, typer.Option(help="E-licensing client GUID: a UUID (hex digits 8-4-4-4-12).")
    ],
    operator_name: Annotated[str, typer.Option(help="Operator's legal name.")],
    cra_business_number: Annotated[str, typer.Option(help="Operator's nine-digit CRA number.")],
    obligation_id: Annotated[
        str,
        typer.Option(help=f"Obligation id as e-licensing gives it: {EXPECTED['obligation_id']}."),
    ],
    fee_amount: Annotated[str, typer.Option(help="Dollars the obligation bills, e.g. 1234.50.")],
    reporting_year: Annotated[int, typer.Option(help="Year the report covers, 2000 to 2100.")],
    actor: Actor = "",
    as_json: Json = False,
) -> None:
    """Link a report version's obligation to its invoice, client and operator."""
    try:
        link = ObligationLinkIn(
            reporting_year=reporting_year,
            obligation_id=obligation_id,
            fee_amount=fee_amount,  # pydantic parses the text
            invoice_number=invoice_number,
            client_object_id=client_object_id,
            client_guid=client_guid,
            operator_legal_name=operator_name,
            cra_business_number=cra_business_number,
        )
    except ValidationError as exc:
        raise InvalidInput(_bad_options(exc)) from None

    async def use(service: ElicensingService) -> None:
        made, created = await obligations.register(
            service.pool, report_version_id, link, actor=actor or getpass.getuser()
        )
        if as_json:
            _print_json({**asdict(made), "created": created})
        else:
            verb = "registered" if created else "already registered"
            console.print(f"{verb}: {_line(made)}")

    _run(use)


@obligations_app.command("list")
def list_links(
    after: Annotated[int, typer.Option(help="Only report versions after this id.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many links.", min=1, max=1000)] = 100,
    as_json: Json = False,
) -> None:
    """Registered obligation links in report version order."""

    async def use(service: ElicensingService) -> None:
        links = await obligations.list_links(service.pool, after=after, limit=limit)
        if as_json:
            _print_json([asdict(link) for link in links])
            return
        for link in links:
            console.print(_line(link))
        if not links:
            console.print("no obligation links registered")

    _run(use)


@obligations_app.command("unlink")
def unlink(
    report_version_id: Annotated[int, typer.Argument(help="Compliance report version id.")],
    actor: Actor = "",
    as_json: Json = False,
) -> None:
    """Remove a report version's obligation link (its history keeps it)."""

    async def use(service: ElicensingService) -> None:
        gone = await obligations.unlink(
            service.pool, report_version_id, actor=actor or getpass.getuser()
        )
        if as_json:
            _print_json(asdict(gone))
        else:
            console.print(f"unlinked: {_line(gone)}")

    _run(use)


@obligations_app.command("history")
def history(
    report_version_id: Annotated[int, typer.Argument(help="Compliance report version id.")],
    as_json: Json = False,
) -> None:
    """Every version of a report version's obligation link, oldest first."""

    async def use(service: ElicensingService) -> None:
        versions = await obligations.history(service.pool, report_version_id)
        if as_json:
            _print_json([asdict(v) for v in versions])
            return
        for v in versions:
            until = v.valid_until or "now"
            console.print(
                f"{v.valid_from} .. {until}: invoice {v.invoice_number}, obligation "
                f"{v.obligation_id}, by {v.recorded_by or '?'}"
                + (f"; {v.ended_by.lower()}d by {v.replaced_by or '?'}" if v.ended_by else "")
            )
        if not versions:
            console.print(f"report version {report_version_id} was never linked")

    _run(use)


def _bad_options(exc: ValidationError) -> str:
    """Every bad value at once, each named as its option with what it expects (one refusal
    per attempt, under field names such as ``client_guid``, sent operators round in circles)."""
    bad = dict.fromkeys(str(e["loc"][0]) for e in exc.errors() if e["loc"])
    parts = [
        f"--{OPTIONS.get(field, field.replace('_', '-'))} must be {EXPECTED.get(field, 'valid')}"
        for field in bad
    ]
    return "invalid options: " + "; ".join(parts) + " (nothing registered)"


def _line(link: ObligationLink) -> str:
    return (
        f"report version {link.report_version_id} ({link.reporting_year}) -> invoice "
        f"{link.invoice_number} of client {link.client_object_id}, operator "
        f"{link.operator_legal_name} ({link.cra_business_number}), obligation "
        f"{link.obligation_id} {link.fee_amount}"
    )


def simulate(
    port: Annotated[int, typer.Option(help="Data port (the e-licensing API).")] = 7002,
    control_port: Annotated[int, typer.Option(help="Control port (/faults, /ledger).")] = 7102,
    clients: Annotated[int, typer.Option(help="Generated clients, one invoice each.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed of the generated ledger.")] = 42,
    token: Annotated[
        str,
        typer.Option(
            envvar="TETHER_ELICENSING_TOKEN",  # what tether's client sends: one setting for both
            help="Bearer token the API requires.",
        ),
    ] = "dev-elicensing-token",
    control_token: ControlTokenOption = None,
) -> None:
    """Run the e-licensing simulator until Ctrl-C.

    Switch faults with PUT http://127.0.0.1:<control-port>/faults {"mode": "down"} (modes:
    none, down, slow, 500, garbage, added_fields, missing_fields, broken_child); move the
    ledger on with POST /ledger/invoices/<number>/payments {"amount": "100.00"}. Every
    control request needs Authorization: Bearer <control token> (printed at start).
    """
    from tether.elicensing.simulator import make_simulator

    sim = make_simulator(
        token=token,
        seed=seed,
        clients=clients,
        port=port,
        control_port=control_port,
        control_token=configured_token(control_token),
    )
    for number, inv in sim.ledger.invoices.items():
        console.print(f"invoice {number} of client {inv.client_object_id}")
    console.print(f"e-licensing simulator on {sim.url}, control on {sim.control_url}")
    sim.serve_alone()
