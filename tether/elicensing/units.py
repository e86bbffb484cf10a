"""Applying compliance units: the one write to e-licensing that depends on the balance.

It fails closed (only on a copy refreshed just now), takes turns per report version across every
process (an advisory lock on the lock pool), and marks the local copy stale before the call goes
out and again once it is answered, so no read calls the copy fresh until a refresh whose request
left after the write succeeds. If the refresh after the write fails, the write's answer and every
read after it say stale.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tether.core import locking
from tether.core.errors import Busy, Conflict, InvalidInput, UpstreamUnavailable
from tether.elicensing.errors import ElicensingDataStale
from tether.elicensing.models import InvoiceRead, InvoiceType

if TYPE_CHECKING:
    from tether.elicensing.service import ElicensingService

logger = logging.getLogger(__name__)
MAX_UNITS = Decimal("1e12")  # numeric(14, 2)


async def apply_compliance_units(
    service: ElicensingService, report_version_id: int, amount: Decimal, *, comment: str | None
) -> InvoiceRead:
    """Reduce the obligation by ``amount`` (a negative adjustment), on fresh data only."""
    if amount <= 0 or amount >= MAX_UNITS or amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(
            "the amount of compliance units applied must be positive, in cents, "
            "below 1,000,000,000,000.00"
        )
    try:
        async with asyncio.timeout(service.wait_s):
            await service.write_slots.acquire()
    except TimeoutError:
        raise Busy("too many balance writes at once; try again") from None
    # two applies at once would both check the same balance and could overdraw it together
    name = f"elicensing:apply-compliance-units:{report_version_id}"
    try:
        async with locking.exclusive(service.lock_pool, name, wait_s=service.wait_s * 2):
            return await _apply(service, report_version_id, amount, comment)
    finally:
        service.write_slots.release()


async def _apply(
    service: ElicensingService, report_version_id: int, amount: Decimal, comment: str | None
) -> InvoiceRead:
    read = await service.read_invoice(report_version_id, InvoiceType.OBLIGATION, force=True)
    if not read.data_is_fresh:
        raise ElicensingDataStale()
    invoice = read.invoice
    if invoice.is_void:
        raise Conflict(f"invoice {invoice.invoice_number} is void")
    if amount > invoice.outstanding_balance:
        raise InvalidInput(
            f"{amount} exceeds the outstanding balance of {invoice.outstanding_balance}"
        )
    if not invoice.line_items:
        raise Conflict(f"invoice {invoice.invoice_number} has no fee to adjust")
    fee = invoice.line_items[0]
    adjustment = {
        "feeObjectId": fee.object_id,
        "adjustmentTotal": str(-amount),
        "amount": str(-amount),
        "date": datetime.now(service.tz).date().isoformat(),  # the business's day, not the host's
        "reason": "Compliance Units Applied",
        "type": "Adjustment",
        "comment": comment,
    }
    # stale from before the call (its outcome may be unknown) until a later refresh succeeds
    await service.mark_changed(invoice.invoice_number, f"applying {amount} of compliance units")
    try:
        await service.client.adjust_fees(invoice.client_object_id, [adjustment])
    except UpstreamUnavailable as exc:
        await service.breaker.record_failure(exc.message)
        raise
    await service.mark_changed(invoice.invoice_number, f"applied {amount} of compliance units")
    logger.info(
        "applied %s of compliance units to invoice %s",
        amount,
        invoice.invoice_number,
        extra={"action": "compliance_units_applied"},
    )
    return await service.read_after_write(report_version_id)
