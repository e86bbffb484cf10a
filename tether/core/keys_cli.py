"""``tether keys ...``: create, list and revoke API keys (the secret is shown once, at creation)."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tether.core import cli_output, db, keys
from tether.core.errors import InvalidInput
from tether.core.logging import configure_logging
from tether.core.settings import load_settings

app = typer.Typer(help="API keys: bearer credentials with scopes.", no_args_is_help=True)
console = cli_output.console(stderr=True)  # notes; results (a secret, a revocation): stdout


def _url() -> str:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return db.url_in_use(settings)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key.")],
    scope: Annotated[
        list[str],
        typer.Option(help="read, write, events or admin; repeat for several, or read,write."),
    ],
) -> None:
    """Create a key and print its secret once (only a hash is stored).

    The secret alone goes to stdout (its middle part is the key's id), so KEY="$(tether keys
    create ...)" keeps it; the notes about it go to stderr.
    """
    scopes = [s.strip() for given in scope for s in given.split(",") if s.strip()]
    key, secret = keys.create(_url(), name, scopes)
    console.print(f"created key {key.id} ({key.name}) with scopes {', '.join(key.scopes)}")
    console.print("the secret is shown only now; send it as 'Authorization: Bearer <secret>':")
    typer.echo(secret)


@app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """Every key with its scopes and when it was created, last used and revoked."""
    found = keys.list_all(_url())
    if not found and not as_json:  # an empty table said nothing about what to do
        console.print("no keys yet: create one with `tether keys create NAME --scope read`")
        return
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": k.id,
                        "name": k.name,
                        "scopes": list(k.scopes),
                        "created_at": k.created_at.isoformat(),
                        "last_used_at": k.last_used_at and k.last_used_at.isoformat(),
                        "revoked_at": k.revoked_at and k.revoked_at.isoformat(),
                    }
                    for k in found
                ]
            )
        )
        return
    # the id is never cut short (``keys revoke`` needs all of it), however narrow the terminal
    # or the 80 columns rich assumes when piped: the other columns wrap, even inside a word
    table = Table()
    table.add_column("id", no_wrap=True, min_width=max((len(k.id) for k in found), default=16))
    for column in ("name", "scopes", "created", "last used", "revoked"):
        table.add_column(column, overflow="fold")
    for k in found:
        table.add_row(
            k.id,
            k.name,
            " ".join(k.scopes),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-",
        )
    Console().print(table)


@app.command("revoke")
def revoke(
    key_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="The key's id (its secret works too: it is revoked by its id)."
        ),
    ],
) -> None:
    """Revoke a key; requests with it get 401 from then on. A key revoked before stays so."""
    key_id = _id_of(key_id)
    key, already = keys.revoke(_url(), key_id)
    if already and key.revoked_at is not None:
        typer.echo(
            f"key {key.id} ({key.name}) was already revoked at {key.revoked_at:%Y-%m-%d %H:%M %Z}"
        )
    else:
        typer.echo(f"revoked key {key.id} ({key.name})")


_SECRET_ID = re.compile(rf"^{keys.PREFIX}(?P<id>[0-9a-f]{{16}})_")


def _id_of(given: str) -> str:
    """The key id in ``given``. A whole secret (``tth_<id>_<secret>``) is taken by its id and
    never printed: echoed back in "no API key with id ..." it landed in the terminal's
    scrollback and in whatever logs the command's output."""
    if not given.startswith(keys.PREFIX):
        return given
    found = _SECRET_ID.match(given)
    if found is None:
        raise InvalidInput(
            f"that looks like a key's secret ({keys.PREFIX}...), not an id, and it has no id in "
            "it: give the id `tether keys list` shows"
        )
    console.print(f"that is a key's secret; revoking it by its id {found['id']}")
    return found["id"]
