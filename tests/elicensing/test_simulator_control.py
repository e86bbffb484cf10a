"""The e-licensing simulator's own control routes (``/ledger...``) need the control token too."""

from __future__ import annotations

import httpx
import pytest

from tether.elicensing.simulator import ElicensingSimulatorServer

DATA_TOKEN = "Bearer dev-elicensing-token"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/ledger", None),
        ("POST", "/ledger/invoices/{number}/payments", {"amount": "100.00"}),
        ("POST", "/ledger/invoices/{number}/adjustments", {"amount": "-5.00"}),
        ("POST", "/ledger/invoices/{number}/void", None),
    ],
)
def test_the_ledger_routes_refuse_a_missing_or_wrong_control_token(
    sim: ElicensingSimulatorServer, method: str, path: str, body: dict[str, str] | None
) -> None:
    number = sorted(sim.ledger.invoices)[0]
    url = sim.control_url + path.format(number=number)
    before = sim.ledger.invoice_json(sim.ledger.invoices[number].client_object_id, number)
    for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": DATA_TOKEN}):
        answer = httpx.request(method, url, json=body, headers=wrong)
        assert answer.status_code == 401, (wrong, answer.text)
        assert "Authorization: Bearer" in answer.json()["detail"]
    invoice = sim.ledger.invoices[number]
    assert not invoice.voided
    assert sim.ledger.invoice_json(invoice.client_object_id, number) == before


def test_the_right_control_token_moves_the_ledger_on(sim: ElicensingSimulatorServer) -> None:
    number = sorted(sim.ledger.invoices)[0]
    url = f"{sim.control_url}/ledger/invoices/{number}/void"
    assert httpx.post(url, headers=sim.control_headers).json() == {"voided": number}
    assert sim.ledger.invoices[number].voided
