"""The obligation page as HTML (no browser): the alert's reason and time, errors as pages,
money as accountants write it."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.elicensing import repository
from tether.elicensing.pages import money
from tether.elicensing.simulator import ElicensingSimulatorServer

from .conftest import invoice_number

PAGE = "/compliance-report-versions/{}/obligation"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("-92387.37"), "($92,387.37)"),
        (Decimal("92387.37"), "$92,387.37"),
        (Decimal("0"), "$0.00"),
        (Decimal("-0.00"), "$0.00"),
        (Decimal("-0.5"), "($0.50)"),
    ],
)
def test_money_uses_parentheses_for_negative_amounts(amount: Decimal, shown: str) -> None:
    assert money(amount) == shown


async def test_negative_adjustments_show_in_parentheses_on_the_page(
    http: httpx.AsyncClient, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    sim.ledger.add_adjustment(invoice_number(sim), Decimal("-92387.37"))
    page = await http.get(PAGE.format(versions[0]))
    assert page.status_code == 200
    assert "($92,387.37)" in page.text and "$-" not in page.text


async def test_the_alert_says_unavailable_or_invalid_data_and_since_when(
    http: httpx.AsyncClient, versions: list[int], sim: ElicensingSimulatorServer
) -> None:
    assert 'role="alert"' not in (await http.get(PAGE.format(versions[0]))).text
    sim.set_mode("down")
    down = (await http.get(PAGE.format(versions[0]), params={"force": "true"})).text
    assert "Connection to source could not be established since " in down
    assert "did not answer in time or failed" in down
    sim.set_mode("broken_child")
    invalid = await http.get(PAGE.format(versions[1]))  # first read of this one: no copy
    assert invalid.status_code == 502 and "<html" in invalid.text  # an error page, not JSON
    sim.set_mode("none")
    await http.get(PAGE.format(versions[1]))
    sim.set_mode("missing_fields")
    page = (await http.get(PAGE.format(versions[1]), params={"force": "true"})).text
    assert "fails validation since " in page and "Connection to source" not in page
    assert page.count('role="alert"') == 1


async def test_unknown_version_and_version_without_invoice_are_html_404_pages(
    http: httpx.AsyncClient, versions: list[int], runtime: Runtime
) -> None:
    async with db.transaction(runtime.pool) as conn:
        operator = await repository.insert_operator(
            conn, legal_name="No Invoice Ltd.", cra_business_number="999999999"
        )
        link = await repository.insert_client_operator(
            conn,
            operator_id=operator,
            client_object_id="no-invoice",
            client_guid="99999999-9999-9999-9999-999999999999",
        )
        await repository.insert_report_version(
            conn, id=900, operator_id=operator, reporting_year=2024
        )
        await repository.insert_obligation(
            conn,
            report_version_id=900,
            obligation_id="24-0900-1-1",
            fee_amount=Decimal("10.00"),
            client_operator_id=link,
            invoice_number=None,
        )
    # superscript two and Arabic-Indic 101 are digits to str.isdigit: int() of the first raised
    # (a 500), and the second aliased version 101
    # and a bigint's overflow was "a value cannot be stored" (422) on a read
    for version in (
        "424242",
        "900",
        "not-a-number",
        "%C2%B2",
        "%D9%A1%D9%A0%D9%A1",
        "99999999999999999999",
        "0",
    ):
        response = await http.get(PAGE.format(version))
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text and "Not found" in response.text
