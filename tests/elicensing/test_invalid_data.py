"""Data e-licensing sends that tether cannot keep: stale with its reason, never a 500.

Whatever the client's checks let through and the database still refuses is invalid upstream
data too: the read answers the previous copy, stale with ``upstream_invalid_payload``, and the
attempt and its reason are recorded.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import psycopg
from prometheus_client import REGISTRY

from tether.elicensing.models import StaleReason
from tether.elicensing.service import ElicensingService
from tether.elicensing.simulator import ElicensingSimulatorServer

from .conftest import invoice_number

BASE = "/api/v1/compliance-report-versions"


def _rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def _invalid() -> float:
    return REGISTRY.get_sample_value("tether_elicensing_invalid_payloads_total") or 0.0


async def test_a_value_the_database_refuses_is_stale_invalid_data_and_recorded(
    service: ElicensingService,
    versions: list[int],
    sim: ElicensingSimulatorServer,
    http: httpx.AsyncClient,
    db_url: str,
) -> None:
    await service.read_invoice(versions[0])
    good = await service.read_invoice(versions[1])
    ledger = sim.ledger
    first = ledger.fees[ledger.invoices[invoice_number(sim, 0)].fee_ids[0]]
    second = ledger.fees[ledger.invoices[invoice_number(sim, 1)].fee_ids[0]]
    # a well-formed UUID, so the client accepts it, but line_item.guid is unique: refused
    second.guid = first.guid
    ledger.add_payment(invoice_number(sim, 1), Decimal("5.00"))  # a success would copy this
    counted = _invalid()

    read = await service.read_invoice(versions[1], force=True)

    assert not read.data_is_fresh
    assert read.stale_reason is StaleReason.UPSTREAM_INVALID_PAYLOAD
    assert read.stale_detail is not None and "refused" in read.stale_detail
    assert read.invoice == good.invoice  # the previous copy stays
    assert _invalid() == counted + 1
    number = invoice_number(sim, 1)
    assert _rows(
        db_url,
        "SELECT reason, last_attempt IS NOT NULL FROM elicensing.invoice_stale"
        f" WHERE invoice_number = '{number}'",
    ) == [("upstream_invalid_payload", True)]
    assert _rows(
        db_url,
        "SELECT last_refresh_error_reason FROM elicensing.invoice"
        f" WHERE invoice_number = '{number}'",
    ) == [("upstream_invalid_payload",)]

    # every surface answers: reads and the page with the copy, the write refused as stale
    for path in ("invoice", "obligation-summary", "last-refreshed"):
        response = await http.get(f"{BASE}/{versions[1]}/{path}")
        assert response.status_code == 200, response.text
        assert response.json()["stale_reason"] == "upstream_invalid_payload"
    page = await http.get(f"/compliance-report-versions/{versions[1]}/obligation")
    assert page.status_code == 200 and "fails validation" in page.text
    write = await http.post(f"{BASE}/{versions[1]}/apply-compliance-units", json={"amount": "1.00"})
    assert write.status_code == 400


async def test_an_amount_too_large_for_its_column_is_stale_invalid_data(
    service: ElicensingService, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    good = await service.read_invoice(versions[0])
    sim.ledger.add_payment(invoice_number(sim), Decimal("1e13"))
    read = await service.read_invoice(versions[0], force=True)
    assert read.stale_reason is StaleReason.UPSTREAM_INVALID_PAYLOAD
    assert read.stale_detail is not None and "money must be below" in read.stale_detail
    assert read.invoice == good.invoice


async def test_invalid_data_on_first_retrieval_is_a_502_with_its_reason(
    http: httpx.AsyncClient, versions: list[int], sim: ElicensingSimulatorServer, db_url: str
) -> None:
    """No copy to fall back on: the answer says so, and the attempt is still recorded."""
    fee = sim.ledger.fees[sim.ledger.invoices[invoice_number(sim)].fee_ids[0]]
    fee.guid = "not-a-uuid"
    response = await http.get(f"{BASE}/{versions[0]}/invoice")
    assert response.status_code == 502
    assert response.json()["reason"] == "upstream_invalid_payload"
    assert _rows(db_url, "SELECT reason FROM elicensing.invoice_stale") == [
        ("upstream_invalid_payload",)
    ]
