"""A fee belongs to the invoice that first listed it: another invoice's answer cannot take it.

If e-licensing's answer for invoice A lists a fee (its object id and GUID) tether already keeps
under invoice B, saving A must not move the fee: B would lose it (no fees, nothing due) while
still reported fresh, its payments and adjustments hanging off A. The answer is invalid data:
A's read is stale with ``upstream_invalid_payload`` and keeps its previous copy; B is untouched.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg

from tether.elicensing.models import StaleReason
from tether.elicensing.service import ElicensingService
from tether.elicensing.simulator import ElicensingSimulatorServer

from .conftest import invoice_number


def _rows(db_url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


async def test_an_answer_listing_another_invoices_fee_is_invalid_and_moves_nothing(
    service: ElicensingService,
    versions: list[int],
    sim: ElicensingSimulatorServer,
    db_url: str,
) -> None:
    ledger = sim.ledger
    a_number, b_number = invoice_number(sim, 0), invoice_number(sim, 1)
    ledger.add_payment(b_number, Decimal("5.00"))  # B's fee has a payment to lose
    a_before = await service.read_invoice(versions[0])
    b_before = await service.read_invoice(versions[1])
    assert a_before.data_is_fresh and b_before.data_is_fresh
    assert b_before.invoice.line_items and b_before.invoice.amount_due > 0
    b_fee_id = ledger.invoices[b_number].fee_ids[0]
    b_fee = ledger.fees[b_fee_id]
    b_fee_key = str(b_fee.object_id)
    (b_item,) = [li for li in b_before.invoice.line_items if li.object_id == b_fee_key]
    assert b_item.payments

    # e-licensing now lists B's fee (same feeObjectId and feeGUID) on A as well
    with ledger.lock:
        ledger.invoices[a_number].fee_ids.append(b_fee_id)

    a_read = await service.read_invoice(versions[0], force=True)

    assert not a_read.data_is_fresh
    assert a_read.stale_reason is StaleReason.UPSTREAM_INVALID_PAYLOAD
    assert a_read.stale_detail is not None and "refused" in a_read.stale_detail
    assert a_read.invoice == a_before.invoice  # A's previous copy stays

    b_read = await service.read_invoice(versions[1])
    assert b_read.data_is_fresh
    assert b_read.stale_reason is None
    assert b_read.invoice.line_items == b_before.invoice.line_items
    assert b_read.invoice.amount_due == b_before.invoice.amount_due > 0
    assert _rows(
        db_url,
        "SELECT i.invoice_number, count(p.id) FROM elicensing.line_item li"
        " JOIN elicensing.invoice i ON i.id = li.invoice_id"
        " LEFT JOIN elicensing.payment p ON p.line_item_id = li.id"
        " WHERE li.object_id = %s GROUP BY i.invoice_number",
        (b_fee_key,),
    ) == [(b_number, len(b_item.payments))]
