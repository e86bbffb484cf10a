"""``tether accounting-points ...`` and ``tether simulate datahub``: the accounting point CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tether.accountingpoints import claims, parties
from tether.core import loop, textfiles
from tether.core.bootstrap import open_runtime
from tether.core.logging import configure_logging
from tether.core.settings import load_settings
from tether.core.simulator_auth import ControlTokenOption, configured_token

if TYPE_CHECKING:
    from tether.core.simulator import SimulatorServer

console = Console(soft_wrap=True)  # results: stdout (errors reach stderr as exceptions)

app = typer.Typer(
    help="Accounting point sync: keep the local copy of datahub accounting points true.",
    no_args_is_help=True,
)


def _run(use: Callable[[Any], Awaitable[None]]) -> None:
    """Run one use case against the database of this process (a pool, no web app)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)

    async def _main() -> None:
        async with open_runtime(settings) as runtime:
            await use(runtime.pool)

    loop.run(_main())


def _print(rows: list[parties.Party]) -> None:
    for p in rows:
        flags = ("" if p.verified else " [unverified]") + (" [retired]" if p.retired_at else "")
        print(f"{p.business_id}  {p.name}{flags}")


BusinessId = Annotated[
    str, typer.Argument(help="A supplier's GLN (13 digits) or a grid area's EIC code.")
]


def _party_commands(kind: parties.PartyKind) -> typer.Typer:
    """``list``, ``add``, ``retire`` and ``load`` for one kind of party."""
    group = typer.Typer(help=f"Reference data: {kind.value}.", no_args_is_help=True)

    @group.command("list")
    def list_(
        include_retired: Annotated[bool, typer.Option("--all", help="Retired too.")] = False,
    ) -> None:
        """Known parties, active ones unless --all."""

        async def use(pool: Any) -> None:
            _print(await parties.list_parties(pool, kind, include_retired=include_retired))

        _run(use)

    @group.command("add")
    def add(
        business_id: BusinessId, name: Annotated[str, typer.Argument(help="Its name.")]
    ) -> None:
        """Add or rename one party (verified, active again if retired)."""

        async def use(pool: Any) -> None:
            _print(await parties.add_parties(pool, kind, [(business_id, name)]))

        _run(use)

    @group.command("retire")
    def retire(business_id: BusinessId) -> None:
        """Mark a party retired; past periods still name it, so it stays known."""

        async def use(pool: Any) -> None:
            _print([await parties.retire_party(pool, kind, business_id)])

        _run(use)

    @group.command("load")
    def load(
        path: Annotated[
            Path,
            typer.Argument(
                exists=True,
                dir_okay=False,
                help="UTF-8 CSV file of business_id,name rows; a first line business_id,name "
                "(a header) is optional.",
            ),
        ],
    ) -> None:
        """Add every business_id,name row of a CSV file, all or none."""
        rows = parties.parse_csv(textfiles.read_text(path))

        async def use(pool: Any) -> None:
            stored = await parties.add_parties(pool, kind, rows)
            console.print(f"loaded {len(stored)} {kind.value}")

        _run(use)

    return group


WORKER_ID_HELP = (
    "The dead worker's id, host:pid (e.g. db1:4242): `tether status` lists workers gone "
    "silent by id; the claimed_by column of ap.accounting_point_sync holds it too."
)


@app.command("release", epilog="Exit codes: 0 claims released; 1 none held by that id.")
def release(worker_id: Annotated[str, typer.Argument(help=WORKER_ID_HELP)]) -> None:
    """Free a dead worker's claims at once (they also lapse by themselves within a minute)."""
    released = 0

    async def use(pool: Any) -> None:
        nonlocal released
        released = await claims.release(pool, worker_id)

    _run(use)
    if not released:  # a typo, or claims that lapsed and were taken over already
        typer.echo(
            f"no claims held by {worker_id!r}: nothing released (an id is host:pid, as "
            "`tether status` shows; a dead worker's claims also lapse by themselves within "
            "a minute)",
            err=True,
        )
        raise typer.Exit(1)
    console.print(f"released {released} claim(s) of {worker_id}", markup=False, highlight=False)


app.add_typer(_party_commands(parties.PartyKind.ENERGY_SUPPLIERS), name="suppliers")
app.add_typer(_party_commands(parties.PartyKind.GRID_AREAS), name="grid-areas")


def simulate(
    port: Annotated[int, typer.Option(help="Data port: the adapter contract.")] = 7001,
    control_port: Annotated[int, typer.Option(help="Control port: faults, stats, changes.")] = 7101,
    count: Annotated[int, typer.Option(help="Accounting points to generate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same datahub.")] = 1,
    latency_ms: Annotated[float, typer.Option(help="Added to every data request.")] = 0,
    token: Annotated[
        str,
        typer.Option(
            # the variable tether's adapter client reads first, so one setting serves both
            envvar=["TETHER_AP_ADAPTER_TOKEN", "TETHER_ADAPTER_TOKEN"],
            help="Bearer token clients must send.",
        ),
    ] = "dev-adapter-token",
    webhook_url: Annotated[
        str | None,
        typer.Option(help="POST change events here, e.g. http://127.0.0.1:8000/api/v1/events."),
    ] = None,
    webhook_token: Annotated[
        str | None, typer.Option(envvar="TETHER_EVENTS_TOKEN", help="Bearer token for webhook.")
    ] = None,
    nats_url: Annotated[
        str | None, typer.Option(envvar="TETHER_NATS_URL", help="Publish change events to NATS.")
    ] = None,
    tz: Annotated[
        str,
        typer.Option(envvar=["TETHER_AP_TIMEZONE", "TETHER_TIMEZONE"], help="Datahub time zone."),
    ] = "Europe/Oslo",
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    control_token: ControlTokenOption = None,
) -> None:
    """Run a simulated datahub behind the accounting point adapter contract.

    Data port: GET /accounting_point/{gsrn}?valid_from=... with bearer auth.

    Control port (header Authorization: Bearer <control token>, printed at start):
    GET/PUT /faults, GET/DELETE /stats, GET /accounting-points,
    PUT /accounting-points/{gsrn}, POST /accounting-points/{gsrn}/changes,
    POST /events.

    Fault modes: none, down, slow, 500, garbage, unknown_fields,
    contract_violation, overlapping, not_midnight, unknown_enum,
    partial_location.

    GSRNs: 18 digits, 70705750, then n (1..count) in 9 digits, then a GS1 check digit
    (707057500000000018 is the first). Serves until Ctrl-C.
    """
    from tether.accountingpoints.simulator import build_simulator

    server, datahub = build_simulator(
        count=count,
        seed=seed,
        port=port,
        control_port=control_port,
        token=token,
        latency_ms=latency_ms,
        webhook_url=webhook_url,
        webhook_token=webhook_token,
        nats_url=nats_url,
        tz=tz,
        host=host,
        control_token=configured_token(control_token),
    )
    console.print(f"[green]datahub simulator[/]: {count} accounting points, seed {seed}")
    console.print(f"  events   webhook={webhook_url or 'off'}  nats={nats_url or 'off'}")
    _print_usage(server, token, datahub.gsrns[0] if count else "<gsrn>")
    server.serve_alone()


def _print_usage(server: SimulatorServer, token: str, gsrn: str) -> None:
    """Where things are, and curl lines to copy (soft-wrapped so they stay one line each)."""
    data, ctl = server.url, server.control_url
    auth = f"-H 'Authorization: Bearer {server.shown_control_token}'"
    console.print(
        f"  data     {data}/accounting_point/{{gsrn}}  (token {token!r})\n"
        f"  control  {ctl}/faults /stats /accounting-points /events\n"
        "examples:\n"
        f"  curl -H 'Authorization: Bearer {token}' "
        f"'{data}/accounting_point/{gsrn}?valid_from=2024-01-01T00:00:00%2B01:00'\n"
        f"  curl {auth} '{ctl}/accounting-points?limit=10'\n"
        f"  curl -X PUT {ctl}/faults {auth} -H 'Content-Type: application/json' "
        f'-d \'{{"mode": "down"}}\'\n'
        f"  curl -X POST {ctl}/accounting-points/{gsrn}/changes {auth} "
        f"-H 'Content-Type: application/json' -d '{{\"kind\": \"supplier_switch\"}}'\n"
        f"  curl -X POST {ctl}/events {auth} -H 'Content-Type: application/json' "
        f'-d \'{{"gsrns": ["{gsrn}"]}}\'',
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command("show")
def show(
    gsrn: Annotated[str, typer.Argument(help="GSRN of the accounting point (18 digits).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Show the stored accounting point: sync state, current timeline values, units."""
    from tether.accountingpoints.api import _ap_out
    from tether.accountingpoints.service import build
    from tether.core.bootstrap import open_runtime
    from tether.core.logging import configure_logging
    from tether.core.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)

    async def _run() -> None:
        async with open_runtime(settings) as runtime, build(runtime) as service:
            out = _ap_out(*(await service.get(gsrn)))
        if as_json:
            typer.echo(out.model_dump_json())
            return
        sync = out.sync
        state = f"failing ({sync.last_error_reason})" if sync.last_error else "ok"
        typer.echo(
            f"accounting point {out.gsrn}: last synced {sync.last_synced_at or 'never'}, "
            f"{state}, next sync {sync.next_sync_at}"
        )
        for kind in ("energy_supplier", "metering_grid_area", "energy_direction"):
            periods = getattr(out, kind)
            current = next((p for p in periods if p.valid_to is None), None)
            typer.echo(f"  {kind.replace('_', ' ')}: {current.value if current else '-'}")
        typer.echo(f"  controllable units: {', '.join(u.name for u in out.controllable_units)}")

    loop.run(_run())
