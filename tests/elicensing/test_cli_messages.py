"""What ``tether elicensing`` says when it cannot help: every bad option at once under its
option's name, where it called and what to do next, and no log chatter around the error."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tether.core.errors import InvalidInput
from tether.elicensing.cli import app as cli
from tether.elicensing.cli import simulate

GOOD = {
    "--invoice-number": "INV-7",
    "--client-object-id": "77",
    "--client-guid": "0b3c5a1e-0000-4000-8000-000000000007",
    "--operator-name": "Operator Inc",
    "--cra-business-number": "123456789",
    "--obligation-id": "24-0001-1-1",
    "--fee-amount": "1234.50",
    "--reporting-year": "2024",
}


def _register(**bad: str) -> list[str]:
    values = {**GOOD, **{f"--{k.replace('_', '-')}": v for k, v in bad.items()}}
    return ["obligations", "register", "7", *[x for pair in values.items() for x in pair]]


def test_register_names_every_bad_option_at_once() -> None:
    args = _register(
        fee_amount="12.345", client_guid="nope", cra_business_number="12", reporting_year="1900"
    )
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, InvalidInput)
    assert result.exception.message == (
        "invalid options: --reporting-year must be a year, 2000 to 2100; "
        "--fee-amount must be dollars, 0 or more, at most two decimals, e.g. 1234.50; "
        "--client-guid must be a UUID, e.g. 3f2b8c1e-9d4a-4c6e-8b7f-1a2b3c4d5e6f; "
        "--cra-business-number must be nine digits, e.g. 123456789 (nothing registered)"
    )


def test_register_help_says_the_guid_is_a_uuid() -> None:
    shown = CliRunner().invoke(cli, ["obligations", "register", "--help"], env={"COLUMNS": "200"})
    assert "E-licensing client GUID: a UUID" in " ".join(shown.output.split())


def test_simulate_elicensing_reads_the_token_tether_s_client_sends() -> None:
    single = typer.Typer(add_completion=False)
    single.command()(simulate)
    params = {p.name: p for p in typer.main.get_command(single).params}
    assert params["token"].envvar == "TETHER_ELICENSING_TOKEN"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.usefixtures("versions")
async def test_invoice_errors_name_the_url_or_the_register_command(
    db_url: str, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": db_url,
        "TETHER_DATA_DIR": str(tmp_path),
        "TETHER_ELICENSING_URL": url,
        "TETHER_LOG_LEVEL": "INFO",  # the command shows warnings and worse whatever this says
    }

    def invoice(version: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tether", "elicensing", "invoice", version]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    down = await asyncio.to_thread(invoice, "101")
    assert down.returncode == 1
    *logged, line = down.stderr.splitlines()
    assert not [x for x in logged if " INFO " in x]  # warnings and worse only, as payments
    assert line.startswith("error: elicensing could not be reached")
    assert f"TETHER_ELICENSING_URL={url}" in line and "`tether simulate elicensing`" in line
    unlinked = await asyncio.to_thread(invoice, "999")
    assert unlinked.returncode == 1
    assert unlinked.stderr.strip() == (
        "error: compliance report version 999 has no obligation invoice: register it with "
        "`tether elicensing obligations register 999 --invoice-number ...` (see its --help)"
    )
