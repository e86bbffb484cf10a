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


def test_an_adjustment_is_dated_by_the_date_the_write_carries(
    sim: ElicensingSimulatorServer,
) -> None:
    """The day tether sends (its configured zone's) is the adjustment's date, not the host's: a
    write just after midnight UTC is still yesterday in Vancouver. An unreadable date is a 400
    that says so, and nothing is applied."""
    number = sorted(sim.ledger.invoices)[0]
    invoice = sim.ledger.invoices[number]
    fee_id = invoice.fee_ids[0]
    url = f"{sim.url}/client/{invoice.client_object_id}/adjust"
    headers = {"Authorization": DATA_TOKEN}

    def adjust(day: str) -> httpx.Response:
        body = {"adjustments": [{"feeObjectId": fee_id, "adjustmentTotal": "-1.00", "date": day}]}
        return httpx.post(url, json=body, headers=headers)

    before = len(sim.ledger.fees[fee_id].adjustments)
    refused = adjust("2026-13-45")
    assert refused.status_code == 400
    assert "'2026-13-45' is not a date" in refused.json()[0]["message"]
    assert len(sim.ledger.fees[fee_id].adjustments) == before
    assert adjust("2001-02-03").status_code == 200
    assert sim.ledger.fees[fee_id].adjustments[-1].date.isoformat() == "2001-02-03"
