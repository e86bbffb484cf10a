"""The HTTP API: freshness in every body, Age headers, honest errors, the fail-closed write."""

from __future__ import annotations

from decimal import Decimal

import httpx
import psycopg

from tether.elicensing.errors import STALE_MESSAGE
from tether.elicensing.simulator import ElicensingSimulatorServer

from .conftest import INVOICE_CALL, invoice_number

BASE = "/api/v1/compliance-report-versions"


async def test_every_read_carries_freshness_and_an_age_header(
    http: httpx.AsyncClient, versions: list[int]
) -> None:
    for path in ("invoice", "payments", "obligation-summary", "last-refreshed"):
        response = await http.get(f"{BASE}/{versions[0]}/{path}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data_is_fresh"] is True
        assert body["last_refreshed"] is not None
        assert int(response.headers["Age"]) >= 0


async def test_summary_computes_amount_due_from_fees_payments_and_adjustments(
    http: httpx.AsyncClient, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    number = invoice_number(sim)
    sim.ledger.add_payment(number, Decimal("100.00"))
    sim.ledger.add_adjustment(number, Decimal("-40.00"))
    body = (await http.get(f"{BASE}/{versions[0]}/obligation-summary")).json()
    fees, paid, adjusted = (
        Decimal(body[k]) for k in ("fees_total", "payments_total", "adjustments_total")
    )
    assert Decimal(body["amount_due"]) == fees - paid + adjusted
    assert Decimal(body["amount_due"]) == Decimal(body["outstanding_balance"])


async def test_reads_fail_open_with_the_local_copy(
    http: httpx.AsyncClient, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    first = (await http.get(f"{BASE}/{versions[0]}/invoice")).json()
    sim.set_mode("down")
    response = await http.get(f"{BASE}/{versions[0]}/invoice", params={"force": "true"})
    assert response.status_code == 200
    body = response.json()
    assert body["data_is_fresh"] is False
    assert body["stale_reason"] == "upstream_unavailable"
    assert body["fees"] == first["fees"] and body["last_refreshed"] == first["last_refreshed"]
    meta = (await http.get(f"{BASE}/{versions[0]}/last-refreshed")).json()
    assert meta["last_refreshed_display"] != "never"


async def test_report_version_without_invoice_is_a_clear_404(
    http: httpx.AsyncClient, versions: list[int]
) -> None:
    response = await http.get(
        f"{BASE}/{versions[0]}/invoice", params={"invoice_type": "automatic_overdue"}
    )
    assert response.status_code == 404
    assert response.json()["error"] == "InvoiceNotFound"
    assert (await http.get(f"{BASE}/424242/obligation-summary")).status_code == 404


async def test_a_report_version_id_out_of_range_is_a_clear_422_before_any_read(
    http: httpx.AsyncClient,
) -> None:
    """Ids are bigint: 10^20 reached the database and came back as "a value cannot be stored"."""
    reads = ("invoice", "payments", "obligation-summary", "last-refreshed")
    for version in ("99999999999999999999", str(2**63), "0", "-1"):
        for path in reads:
            response = await http.get(f"{BASE}/{version}/{path}")
            assert response.status_code == 422, (version, path, response.text)
            detail = response.json()["detail"]
            assert detail.startswith("path.report_version_id: Input should be"), detail
            assert "cannot be stored" not in detail
        write = await http.post(f"{BASE}/{version}/apply-compliance-units", json={"amount": "1"})
        assert write.status_code == 422 and "report_version_id" in write.json()["detail"]
        link = await http.get(f"/api/v1/elicensing/obligations/{version}/history")
        assert link.status_code == 422 and "report_version_id" in link.json()["detail"]
    largest = await http.get(f"{BASE}/{2**63 - 1}/obligation-summary")
    assert largest.status_code == 404  # in range: an honest "no such report version"


async def test_every_read_of_invoice_data_takes_force(
    http: httpx.AsyncClient, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    """Inside the freshness window a plain read calls nobody; ``?force=true`` refreshes, on the
    summary and the payments as on the invoice (the summary ignored it)."""
    for path in ("invoice", "obligation-summary", "payments"):
        url = f"{BASE}/{versions[0]}/{path}"
        assert (await http.get(url)).status_code == 200
        calls = sim.state.calls[INVOICE_CALL]
        assert (await http.get(url)).status_code == 200
        assert sim.state.calls[INVOICE_CALL] == calls  # fresh: answered from the copy
        forced = await http.get(url, params={"force": "true"})
        assert forced.status_code == 200 and forced.json()["data_is_fresh"] is True
        assert sim.state.calls[INVOICE_CALL] == calls + 1, path


async def test_write_fails_closed_on_stale_data(
    http: httpx.AsyncClient, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    await http.get(f"{BASE}/{versions[0]}/invoice")
    sim.set_mode("down")
    response = await http.post(
        f"{BASE}/{versions[0]}/apply-compliance-units", json={"amount": "10.00"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == STALE_MESSAGE
    sim.set_mode("none")
    assert all(
        a.reason != "Compliance Units Applied" or a.amount != Decimal("-10.00")
        for f in sim.ledger.fees.values()
        for a in f.adjustments
    )


async def test_write_applies_units_upstream_then_refreshes(
    http: httpx.AsyncClient, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    before = (await http.get(f"{BASE}/{versions[0]}/obligation-summary")).json()
    response = await http.post(
        f"{BASE}/{versions[0]}/apply-compliance-units",
        json={"amount": "1000.50", "comment": "units"},
    )
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["data_is_fresh"] is True
    assert Decimal(after["outstanding_balance"]) == Decimal(
        before["outstanding_balance"]
    ) - Decimal("1000.50")
    fee = sim.ledger.fees[sim.ledger.invoices[invoice_number(sim)].fee_ids[0]]
    assert fee.adjustments[-1].amount == Decimal("-1000.50")
    assert sim.state.calls["POST /client/{id}/adjust"] == 1


async def test_schema_drift_in_our_own_database_is_a_500_not_stale_data(
    http: httpx.AsyncClient, versions: list[int], db_url: str
) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("ALTER TABLE elicensing.payment DROP COLUMN method CASCADE")
    response = await http.get(f"{BASE}/{versions[0]}/invoice")
    assert response.status_code == 500
    assert "data_is_fresh" not in response.text


async def test_two_applies_at_once_cannot_overdraw_the_balance(
    http: httpx.AsyncClient, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    """Each apply checks the balance, then writes: without turns, both would pass the check."""
    import asyncio

    before = (await http.get(f"{BASE}/{versions[0]}/obligation-summary")).json()
    share = (Decimal(before["outstanding_balance"]) * Decimal("0.6")).quantize(Decimal("0.01"))
    sim.set_mode("none", latency_ms=100)  # both reads would land before either write
    try:
        first, second = await asyncio.gather(
            *(
                http.post(
                    f"{BASE}/{versions[0]}/apply-compliance-units", json={"amount": str(share)}
                )
                for _ in range(2)
            )
        )
    finally:
        sim.set_mode("none", latency_ms=0)

    assert sorted([first.status_code, second.status_code]) == [200, 422]
    refused = first if first.status_code == 422 else second
    assert "exceeds the outstanding balance" in refused.json()["detail"]
    assert sim.state.calls["POST /client/{id}/adjust"] == 1
    after = (await http.get(f"{BASE}/{versions[0]}/obligation-summary?force=true")).json()
    assert Decimal(after["outstanding_balance"]) == Decimal(before["outstanding_balance"]) - share
