"""HTTP routes of the e-licensing capability: invoice reads, one balance write, the page.

Every read carries ``data_is_fresh`` and ``last_refreshed`` in its body and an ``Age`` header
(seconds since the last successful refresh). Reads fail open; the write fails closed. The reads
of invoice data (invoice, payments, obligation summary, like the page) take ``?force=true``; a
report version id outside 1..2^63-1 is a 422 before anything is read.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from tether.core.auth import READ, WRITE
from tether.elicensing import links_api, pages
from tether.elicensing.access import ReportVersionId, Service
from tether.elicensing.models import InvoiceRead, InvoiceType, StaleReason

api_router = APIRouter(prefix="/api/v1/compliance-report-versions", tags=["e-licensing"])


Kind = Annotated[InvoiceType, Query(description="Which invoice of the report version.")]
Force = Annotated[bool, Query(description="Refresh even inside the freshness window.")]


class Freshness(BaseModel):
    data_is_fresh: bool
    last_refreshed: datetime | None
    stale_reason: StaleReason | None = None
    stale_since: datetime | None = None


class PaymentOut(BaseModel):
    payment_object_id: str
    fee_object_id: str
    receipt_number: str | None
    received_date: date | None
    amount: Decimal
    method: str | None


class AdjustmentOut(BaseModel):
    adjustment_object_id: str
    fee_object_id: str
    amount: Decimal
    adjustment_date: date | None
    reason: str | None
    type: str | None
    comment: str | None


class FeeOut(BaseModel):
    object_id: str
    fee_date: date
    description: str
    base_amount: Decimal
    payments: list[PaymentOut]
    adjustments: list[AdjustmentOut]


class InvoiceOut(Freshness):
    invoice_number: str
    due_date: date | None
    outstanding_balance: Decimal
    invoice_fee_balance: Decimal
    invoice_interest_balance: Decimal
    is_void: bool
    fees: list[FeeOut]


class PaymentsOut(Freshness):
    invoice_number: str
    payments: list[PaymentOut]


class SummaryOut(Freshness):
    invoice_number: str
    due_date: date | None
    fees_total: Decimal
    payments_total: Decimal
    adjustments_total: Decimal
    outstanding_balance: Decimal
    amount_due: Decimal


class MetadataOut(Freshness):
    last_refreshed_display: str


class ApplyUnitsIn(BaseModel):
    amount: Decimal = Field(gt=0, decimal_places=2, description="Dollars of units applied.")
    comment: str | None = Field(default=None, max_length=500)


def _fresh(read: InvoiceRead, response: Response) -> Freshness:
    response.headers["Age"] = pages.age(read)
    return Freshness(
        data_is_fresh=read.data_is_fresh,
        last_refreshed=read.last_refreshed,
        stale_reason=read.stale_reason,
        stale_since=read.stale_since,
    )


def _invoice_out(read: InvoiceRead, response: Response) -> InvoiceOut:
    inv = read.invoice
    fees = [
        FeeOut(
            object_id=li.object_id,
            fee_date=li.fee_date,
            description=li.description,
            base_amount=li.base_amount,
            payments=[PaymentOut.model_validate(p, from_attributes=True) for p in li.payments],
            adjustments=[
                AdjustmentOut.model_validate(a, from_attributes=True) for a in li.adjustments
            ],
        )
        for li in inv.line_items
    ]
    return InvoiceOut(
        **_fresh(read, response).model_dump(),
        invoice_number=inv.invoice_number,
        due_date=inv.due_date,
        outstanding_balance=inv.outstanding_balance,
        invoice_fee_balance=inv.fee_balance,
        invoice_interest_balance=inv.interest_balance,
        is_void=inv.is_void,
        fees=fees,
    )


@api_router.get("/{report_version_id}/invoice", response_model=InvoiceOut, dependencies=READ)
async def get_invoice(
    report_version_id: ReportVersionId,
    service: Service,
    response: Response,
    invoice_type: Kind = InvoiceType.OBLIGATION,
    force: Force = False,
) -> InvoiceOut:
    """The invoice with its fees, payments and adjustments (refreshed on read)."""
    read = await service.read_invoice(report_version_id, invoice_type, force=force)
    return _invoice_out(read, response)


@api_router.get("/{report_version_id}/payments", response_model=PaymentsOut, dependencies=READ)
async def get_payments(
    report_version_id: ReportVersionId,
    service: Service,
    response: Response,
    invoice_type: Kind = InvoiceType.OBLIGATION,
    force: Force = False,
) -> PaymentsOut:
    """Payments received against the invoice (refreshed on read, as the invoice)."""
    read = await service.read_invoice(report_version_id, invoice_type, force=force)
    payments = [
        PaymentOut.model_validate(p, from_attributes=True)
        for li in read.invoice.line_items
        for p in li.payments
    ]
    return PaymentsOut(
        **_fresh(read, response).model_dump(),
        invoice_number=read.invoice.invoice_number,
        payments=payments,
    )


def _summary(read: InvoiceRead, response: Response) -> SummaryOut:
    inv = read.invoice
    return SummaryOut(
        **_fresh(read, response).model_dump(),
        invoice_number=inv.invoice_number,
        due_date=inv.due_date,
        fees_total=inv.fees_total,
        payments_total=inv.payments_total,
        adjustments_total=inv.adjustments_total,
        outstanding_balance=inv.outstanding_balance,
        amount_due=inv.amount_due,
    )


@api_router.get(
    "/{report_version_id}/obligation-summary", response_model=SummaryOut, dependencies=READ
)
async def get_obligation_summary(
    report_version_id: ReportVersionId, service: Service, response: Response, force: Force = False
) -> SummaryOut:
    """Outstanding balance and amount due of the obligation (refreshed on read, as the invoice)."""
    read = await service.read_invoice(report_version_id, InvoiceType.OBLIGATION, force=force)
    return _summary(read, response)


@api_router.get(
    "/{report_version_id}/last-refreshed", response_model=MetadataOut, dependencies=READ
)
async def get_last_refreshed(
    report_version_id: ReportVersionId,
    service: Service,
    response: Response,
    invoice_type: Kind = InvoiceType.OBLIGATION,
) -> MetadataOut:
    """When the invoice was last refreshed, for the stale-data alert."""
    read = await service.read_invoice(report_version_id, invoice_type)
    return MetadataOut(
        **_fresh(read, response).model_dump(),
        last_refreshed_display=service.display_time(read.last_refreshed),
    )


@api_router.post(
    "/{report_version_id}/apply-compliance-units", response_model=SummaryOut, dependencies=WRITE
)
async def apply_compliance_units(
    report_version_id: ReportVersionId, body: ApplyUnitsIn, service: Service, response: Response
) -> SummaryOut:
    """Apply compliance units as a negative adjustment; refused (400) on stale data."""
    read = await service.apply_compliance_units(
        report_version_id, body.amount, comment=body.comment
    )
    return _summary(read, response)


router = APIRouter()
router.include_router(api_router)
router.include_router(links_api.router)
router.include_router(pages.router)
