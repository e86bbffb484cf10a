"""Adds every capability's commands to the ``tether`` CLI."""

from __future__ import annotations

import typer


def register(app: typer.Typer, simulate_app: typer.Typer) -> None:
    """Attach capability sub-apps and simulator commands."""
    from tether.accountingpoints import cli as ap_cli

    simulate_app.command("datahub")(ap_cli.simulate)

    from tether.elicensing import cli as elicensing_cli

    app.add_typer(elicensing_cli.app, name="elicensing")
    simulate_app.command("elicensing")(elicensing_cli.simulate)
