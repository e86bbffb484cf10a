"""Operators register, list and unlink the obligation link of a report version (API and CLI),
and every change is kept in history with who made it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tether.elicensing.cli import app as cli
from tether.elicensing.simulator import ElicensingSimulatorServer

from .conftest import invoice_number

LINKS = "/api/v1/elicensing/obligations"


def _body(sim: ElicensingSimulatorServer, index: int = 0, **changes: Any) -> dict[str, Any]:
    number = invoice_number(sim, index)
    client = sim.ledger.clients[sim.ledger.invoices[number].client_object_id]
    body = {
        "reporting_year": 2024,
        "obligation_id": f"24-0{index}01-1-1",
        "fee_amount": "1234.50",
        "invoice_number": number,
        "client_object_id": client.object_id,
        "client_guid": client.guid,
        "operator_legal_name": client.company_name,
        "cra_business_number": f"12345678{index}",
    }
    body.update(changes)
    return body


async def test_register_then_read_list_unlink_and_history(
    http: httpx.AsyncClient, sim: ElicensingSimulatorServer
) -> None:
    created = await http.put(f"{LINKS}/501", json=_body(sim))
    assert created.status_code == 201, created.text
    assert created.json()["recorded_by"] == "api"
    again = await http.put(f"{LINKS}/501", json=_body(sim))
    assert again.status_code == 200  # the same link again changes nothing

    read = await http.get("/api/v1/compliance-report-versions/501/invoice")
    assert read.status_code == 200 and read.json()["data_is_fresh"] is True
    assert read.json()["invoice_number"] == invoice_number(sim)

    other = await http.put(f"{LINKS}/501", json=_body(sim, 1))
    assert other.status_code == 409 and "unlink it first" in other.json()["detail"]
    stolen = await http.put(f"{LINKS}/502", json=_body(sim, obligation_id="24-0502-1-1"))
    assert stolen.status_code == 409
    assert "already linked to another report version" in stolen.json()["detail"]

    listed = (await http.get(LINKS)).json()
    assert [link["report_version_id"] for link in listed] == [501]

    gone = await http.delete(f"{LINKS}/501")
    assert gone.status_code == 200 and gone.json()["invoice_number"] == invoice_number(sim)
    assert (await http.delete(f"{LINKS}/501")).status_code == 404
    assert (await http.get("/api/v1/compliance-report-versions/501/invoice")).status_code == 404
    assert (await http.get(LINKS)).json() == []

    history = (await http.get(f"{LINKS}/501/history")).json()
    assert [(h["invoice_number"], h["ended_by"], h["replaced_by"]) for h in history] == [
        (invoice_number(sim), "DELETE", "api")
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_guid", "not-a-guid"),
        ("fee_amount", "1.001"),
        ("fee_amount", "-1.00"),
        ("cra_business_number", "12345"),
        ("invoice_number", "OBI 1; DROP"),
        ("reporting_year", 1900),
    ],
)
async def test_invalid_links_are_refused_before_the_database(
    http: httpx.AsyncClient, sim: ElicensingSimulatorServer, field: str, value: Any
) -> None:
    response = await http.put(f"{LINKS}/501", json=_body(sim, **{field: value}))
    assert response.status_code == 422
    assert field in response.text
    assert (await http.get(LINKS)).json() == []


def test_cli_registers_lists_unlinks_and_shows_history(
    db_url: str, sim: ElicensingSimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    body = _body(sim)
    args = [
        "obligations", "register", "601",
        "--invoice-number", body["invoice_number"],
        "--client-object-id", body["client_object_id"],
        "--client-guid", body["client_guid"],
        "--operator-name", body["operator_legal_name"],
        "--cra-business-number", body["cra_business_number"],
        "--obligation-id", body["obligation_id"],
        "--fee-amount", body["fee_amount"],
        "--reporting-year", "2024",
        "--actor", "ops-alice",
    ]  # fmt: skip
    made = runner.invoke(cli, [*args, "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["created"] is True

    listed = runner.invoke(cli, ["obligations", "list", "--json"])
    assert [link["invoice_number"] for link in json.loads(listed.output)] == [
        body["invoice_number"]
    ]
    assert json.loads(listed.output)[0]["recorded_by"] == "ops-alice"

    bad = runner.invoke(cli, [*args[:-2], "--actor", "x", "--client-guid", "nope"])
    assert bad.exit_code != 0

    gone = runner.invoke(cli, ["obligations", "unlink", "601", "--actor", "ops-bob"])
    assert gone.exit_code == 0 and "unlinked" in gone.output
    history = runner.invoke(cli, ["obligations", "history", "601", "--json"])
    versions = json.loads(history.output)
    assert [(v["recorded_by"], v["ended_by"], v["replaced_by"]) for v in versions] == [
        ("ops-alice", "DELETE", "ops-bob")
    ]
