"""``tether payments ...``: send a message, read a status, show a case.

Keys, ids and error texts come from users and other systems: they are printed as ``Text``, never
parsed as Rich markup (a key ``x[/b]`` crashed a command, a key ``[red]`` printed as nothing).
Results go to stdout and errors to stderr, and the exit code tells a script how a message ended.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from tether.core import cli_output, loop, textfiles
from tether.core.bootstrap import open_runtime
from tether.core.logging import configure_logging
from tether.core.settings import Settings, load_settings
from tether.core.textfiles import NotUtf8
from tether.payments.intake import KeyReused
from tether.payments.records import CaseView, OrderRow, StatusRow
from tether.payments.service import FINAL, MAX_KEY, PaymentsService, build, valid_key

out = cli_output.console()  # results: stdout, a line each however long (a pipe greps them)
err = cli_output.console(stderr=True)  # waits given up: stdout stays the result
app = typer.Typer(
    help=(
        "Payment orders: the benefit system's thick messages become one atomic order per case "
        "at the payment system; statuses by original key."
    ),
    no_args_is_help=True,
)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

SEND_WAIT_S = 30.0  # a bare --wait (``send`` and ``status``)
EXIT_FEILET = 1  # as every tether error (unknown key, key reused): the message did not succeed
EXIT_NOT_FINAL = 3  # 2 is taken: Typer's bad usage, here also a file that cannot be used
EXIT_CODES = (
    "Exit codes: 0 OK (or a status not final yet, when not waiting); 1 FEILET, or an error "
    "such as an unknown key; 2 bad usage or an unusable file (nothing sent); 3 --wait ended "
    "before a final status."
)
STATUS_EXIT_CODES = (
    "Exit codes: 0 OK (or a status not final yet, when not waiting); 1 FEILET, or an error "
    "such as an unknown key; 2 bad usage; 3 --wait ended before a final status."
)
STYLES = {"OK": "bold green", "FEILET": "bold red"}
DRY_RUN = "dry run (simulated, nothing paid)"
STILL = {
    "MOTTATT": (
        "the order is stored; a running `tether worker` sends it (orders travel over NATS: "
        "the worker needs TETHER_NATS_URL)"
    ),
    "VENTER": "it waits for the receipt of an earlier order of its case",
    "HOS_OPPDRAG": (
        "tether asks the payment system itself after TETHER_PAYMENTS_RECEIPT_TIMEOUT_S "
        "({timeout:g} s) without a receipt"
    ),
}
JSON_TYPES = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _with_service(work: Any, settings: Settings | None = None) -> Any:
    settings = settings or load_settings()
    configure_logging("WARNING", settings.log_json)

    async def _run() -> Any:
        async with open_runtime(settings) as runtime, build(runtime) as service:
            return await work(service)

    return loop.run(_run())  # an error: ``error: ...``, exit 1, as every command's (cli.py)


def _read(file: Path, dry_run: bool, max_bytes: int) -> bytes:
    """The file's bytes as they are; a dry run's with ``dryrun: true`` set, which needs an
    object (the HTTP and broker intakes take a dry run only from the message itself). Over
    ``max_bytes`` (``TETHER_MAX_BODY_BYTES``) it is refused, as the HTTP intake refuses it."""
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise typer.BadParameter(
                f"{file.name} is {size:,} bytes, over TETHER_MAX_BODY_BYTES ({max_bytes:,}): "
                "the HTTP intake refuses such a message too; nothing sent",
                param_hint="'file'",
            )
        raw = file.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {file} ({exc.strerror}): give a readable file", param_hint="'file'"
        ) from None
    message = _json_object(file, raw)  # refused here, in both modes: nothing stored, key unused
    if not dry_run:
        return raw  # sent as is: a message's own rules are the intake's (FEILET 400 under its key)
    message["dryrun"] = True
    return json.dumps(message, ensure_ascii=False).encode()


def _json_object(file: Path, raw: bytes) -> dict[str, Any]:
    """The file as a JSON object, or a usage error (exit 2). Sent, a file that is no message at
    all ended FEILET under its key and used the key up for the fixed file."""
    try:
        message = json.loads(textfiles.decode(file.name, raw))
    except NotUtf8 as exc:
        raise typer.BadParameter(f"{exc.message}; nothing sent", param_hint="'file'") from None
    except ValueError as exc:
        raise typer.BadParameter(
            f"{file.name} is not JSON ({exc}): a message is a JSON object; nothing sent",
            param_hint="'file'",
        ) from None
    if not isinstance(message, dict):
        kind = JSON_TYPES.get(type(message), "a number")
        raise typer.BadParameter(
            f"{file.name} holds {kind}, not a JSON object (a message is one); nothing sent",
            param_hint="'file'",
        )
    return message


def _report(
    service: PaymentsService, row: StatusRow, as_json: bool, waited_s: float, duplicate: bool
) -> int:
    """Print a status and what it means; returns the exit code."""
    _print_status(row.original_key, row.status, row.body, as_json)
    if duplicate:
        note = (
            "duplicate: this key came before with the same message, so this is its stored "
            "status and nothing new was taken; to send it again, use a new --key"
        )
        (err if as_json else out).print(Text(f"  {note}", style="yellow"))
    if row.status == "FEILET":
        return EXIT_FEILET
    if row.status in FINAL or waited_s <= 0:
        return 0
    hint = STILL.get(row.status, "").format(timeout=service.settings.receipt_timeout_s)
    err.print(
        Text(f"no final status after {waited_s:g} s; still {row.status}: {hint}", style="yellow")
    )
    return EXIT_NOT_FINAL


def _print_status(key: str, status: str, body: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps({"key": key, **dict(body)}, default=str))
        return
    head = Text.assemble(f"{key}: ", (status, STYLES.get(status, "bold yellow")))
    if body.get("simulering"):
        head.append(f", {DRY_RUN}", style="bold cyan")
    out.print(head)
    error = body.get("error")
    if error and status == "OK":  # a 04: paid, with the payment system's warning
        out.print(Text(f"  warning: {error.get('msg')}", style="yellow"))
    elif error:
        out.print(Text(f"  error {error.get('statusCode')}: {error.get('msg')}", style="red"))
    lines = (body.get("detaljer") or {}).get("linjer", [])
    for line in lines:
        out.print(
            Text(f"  {line['klassekode']} {line['fom']}..{line['tom']} beløp {line['beløp']}")
        )
    if status == "OK" and not lines and not error and not body.get("simulering"):
        out.print(Text("  nothing changed, no order sent"))
    if body.get("simulation") is not None:
        out.print_json(json.dumps(body["simulation"], default=str))


def _exit(code: int) -> None:
    if code:
        raise typer.Exit(code)


class _WaitCommand(TyperCommand):
    """``send`` and ``status``: ``--wait`` is a flag (up to ``SEND_WAIT_S``) and ``--wait-s
    SECONDS`` the seconds, on both. ``--wait 30`` (or ``--wait=30``) is read as ``--wait-s 30``:
    ``status`` took seconds after ``--wait`` before, and users typed it on ``send`` too, where
    it was "Got unexpected extra argument (30)". A message file or key named like a number,
    right after ``--wait``, is the one thing this reads otherwise (put it first)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args, given = list(args), list(args)
        for i, option in enumerate(given):
            if option == "--":
                break
            if option.startswith("--wait="):
                args[i : i + 1] = ["--wait-s", option.removeprefix("--wait=")]
                return self.parse_args(ctx, args)
            if option == "--wait" and i + 1 < len(given) and _number(given[i + 1]):
                args[i] = "--wait-s"
                return self.parse_args(ctx, args)
        return super().parse_args(ctx, args)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


Wait = Annotated[
    bool,
    typer.Option(
        "--wait",
        help=f"Wait up to {SEND_WAIT_S:g} s (or --wait-s) for OK/FEILET (needs a worker).",
    ),
]
WaitSeconds = Annotated[
    float | None,
    typer.Option("--wait-s", help="Seconds to wait for OK/FEILET (implies --wait).", min=0),
]


def _waited_s(wait: bool, wait_s: float | None) -> float:
    return wait_s if wait_s is not None else SEND_WAIT_S if wait else 0.0


@app.command("send", epilog=EXIT_CODES, cls=_WaitCommand)
def send(
    file: Annotated[
        Path,
        typer.Argument(
            help="The message (JSON) to send.", exists=True, dir_okay=False, readable=True
        ),
    ],
    key: Annotated[str | None, typer.Option(help="Original key (default: a new UUID).")] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help='Simulate only, nothing paid: sets "dryrun": true in the message (a JSON '
            "object). Simulated from this process: it needs TETHER_PAYMENTS_OPPDRAG_URL and "
            "TETHER_PAYMENTS_OPPDRAG_TOKEN.",
        ),
    ] = False,
    wait: Wait = False,
    wait_s: WaitSeconds = None,
    as_json: AsJson = False,
) -> None:
    """Submit one dagpenger message (a JSON object); print its key and status.

    A message of one day (fields in docs/payments.md): {"sakId": "sak-1", "behandlingId":
    "b-1", "ident": "12345678910", "vedtakstidspunktet": "2024-06-20T10:00:00",
    "utbetalinger": [{"meldeperiode": "mp-1", "dato": "2024-06-03", "sats": 800,
    "utbetaltBeløp": 800, "utbetalingstype": "Dagpenger"}]}
    """
    if key is not None and not valid_key(key):
        raise typer.BadParameter(
            f"the original key must be 1 to {MAX_KEY} characters and not blank "
            f"(got {len(key)}); leave --key out for a new UUID",
            param_hint="'--key'",
        )
    settings = load_settings()
    raw = _read(file, dry_run, settings.max_body_bytes)
    original_key = key if key is not None else str(uuid.uuid4())
    waited_s = _waited_s(wait, wait_s)

    async def work(service: PaymentsService) -> int:
        try:
            submission = await service.submit(original_key, raw)
        except KeyReused as exc:  # the next step in this command's own words
            raise KeyReused(exc.key, how="a new --key (or omit --key for a new UUID)") from None
        row = await service.wait_status(submission.key, waited_s)
        return _report(service, row, as_json, waited_s, submission.duplicate)

    _exit(_with_service(work, settings))


@app.command("status", epilog=STATUS_EXIT_CODES, cls=_WaitCommand)
def status(
    key: Annotated[str, typer.Argument(help="The original key.")],
    wait: Wait = False,
    wait_s: WaitSeconds = None,
    as_json: AsJson = False,
) -> None:
    """Print the latest status of a message."""
    waited_s = _waited_s(wait, wait_s)

    async def work(service: PaymentsService) -> int:
        row = await service.wait_status(key, waited_s)
        return _report(service, row, as_json, waited_s, duplicate=False)

    _exit(_with_service(work))


def _short(value: str) -> str:
    return value[:8]


def case_table(view: CaseView) -> Table:
    """Periods and amounts are what is read here: they never wrap or truncate at 80 columns.
    Ids are cut to 8 characters (a UUID's first group), whole in ``--json``."""
    active = view.active_uids or frozenset()
    table = Table(caption="ids shortened; --json shows them whole")
    table.add_column("uid", no_wrap=True)
    table.add_column("klassekode", no_wrap=True)
    table.add_column("periods: fom..tom amount", no_wrap=True)
    table.add_column("last line", no_wrap=True)
    table.add_column("active", no_wrap=True)
    for u in view.utbetalinger:
        periods = "\n".join(f"{p['fom']}..{p['tom']} {p['beløp']}" for p in u.periods)
        table.add_row(
            Text(_short(u.uid)),
            Text(u.klassekode),
            Text(periods or "stopped"),
            Text(_short(u.last_line_id)),
            "yes" if u.uid in active else "no",
        )
    return table


def _case_json(view: CaseView, orders: list[OrderRow]) -> dict[str, Any]:
    active = view.active_uids or frozenset()
    return {
        "fagsystem": view.fagsystem,
        "sakId": view.sak_id,
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
            {"id": str(o.id), "original_key": o.original_key, "state": o.state} for o in orders
        ],
    }


@app.command("case")
def case(
    sak_id: Annotated[str, typer.Argument(help="The case id (sakId).")],
    fagsystem: Annotated[str, typer.Option(help="The sending system.")] = "DAGPENGER",
    as_json: AsJson = False,
) -> None:
    """Print a case's confirmed utbetalinger and its orders (exit code 1: no such case)."""

    async def work(service: PaymentsService) -> None:
        view = await service.case(sak_id, fagsystem)
        orders = await service.orders(sak_id, fagsystem)
        if as_json:
            out.print_json(json.dumps(_case_json(view, orders), default=str))
            return
        out.print(case_table(view), soft_wrap=False)
        for o in orders:
            out.print(Text(f"order {o.id} {o.state} (key {o.original_key})"))

    _with_service(work)
