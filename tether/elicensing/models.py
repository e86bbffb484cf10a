"""Records of the e-licensing capability: what e-licensing tells us, and what we keep of it.

Money is ``Decimal`` everywhere; e-licensing object ids are strings (they arrive as either).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class InvoiceType(StrEnum):
    """Which of a compliance report version's invoices is meant."""

    OBLIGATION = "obligation"
    AUTOMATIC_OVERDUE = "automatic_overdue"
    LATE_SUBMISSION = "late_submission"


class StaleReason(StrEnum):
    """Why a read answered from the local copy without a successful refresh."""

    UPSTREAM_UNAVAILABLE = "upstream_unavailable"  #: down, timed out or 5xx
    CIRCUIT_OPEN = "circuit_open"  #: known down: not called at all
    UPSTREAM_INVALID_PAYLOAD = "upstream_invalid_payload"  #: answered with broken data
    UPSTREAM_REJECTED = "upstream_rejected"  #: refused our request (4xx)
    REFRESH_IN_PROGRESS = "refresh_in_progress"  #: another reader's refresh did not finish in time


# --- what the API sends ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RemotePayment:
    payment_object_id: str
    receipt_number: str | None
    received_date: date | None
    deposit_date: date | None
    amount: Decimal
    method: str | None
    cash_handling_area: str | None
    reference_number: str | None


@dataclass(frozen=True, kw_only=True)
class RemoteAdjustment:
    adjustment_object_id: str
    adjustment_total: Decimal
    amount: Decimal
    date: date | None
    reason: str | None
    type: str | None
    comment: str | None


@dataclass(frozen=True, kw_only=True)
class RemoteFee:
    fee_object_id: str
    fee_guid: str
    business_area_code: str | None
    fee_date: date
    description: str
    base_amount: Decimal
    tax_total: Decimal
    adjustment_total: Decimal
    tax_adjustment_total: Decimal
    payment_base_amount: Decimal
    payment_total: Decimal
    fee_type: str | None
    payments: tuple[RemotePayment, ...]
    adjustments: tuple[RemoteAdjustment, ...]


@dataclass(frozen=True, kw_only=True)
class RemoteInvoice:
    client_object_id: str
    client_guid: str
    invoice_number: str
    due_date: date | None
    outstanding_balance: Decimal
    fee_balance: Decimal
    interest_balance: Decimal
    fees: tuple[RemoteFee, ...]


# --- what we keep ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Payment:
    payment_object_id: str
    fee_object_id: str
    receipt_number: str | None
    received_date: date | None
    deposit_date: date | None
    amount: Decimal
    method: str | None
    reference_number: str | None


@dataclass(frozen=True, kw_only=True)
class Adjustment:
    adjustment_object_id: str
    fee_object_id: str
    amount: Decimal
    adjustment_date: date | None
    reason: str | None
    type: str | None
    comment: str | None


@dataclass(frozen=True, kw_only=True)
class LineItem:
    object_id: str
    guid: str
    fee_date: date
    description: str
    base_amount: Decimal
    line_item_type: str
    payments: tuple[Payment, ...]
    adjustments: tuple[Adjustment, ...]


@dataclass(frozen=True, kw_only=True)
class Invoice:
    id: int
    invoice_number: str
    client_object_id: str
    due_date: date | None
    outstanding_balance: Decimal
    fee_balance: Decimal
    interest_balance: Decimal
    is_void: bool
    last_refreshed: datetime | None
    line_items: tuple[LineItem, ...]

    @property
    def fees_total(self) -> Decimal:
        return sum((li.base_amount for li in self.line_items), Decimal("0.00"))

    @property
    def payments_total(self) -> Decimal:
        return sum((p.amount for li in self.line_items for p in li.payments), Decimal("0.00"))

    @property
    def adjustments_total(self) -> Decimal:
        return sum((a.amount for li in self.line_items for a in li.adjustments), Decimal("0.00"))

    @property
    def amount_due(self) -> Decimal:
        """Fees minus payments plus adjustments (reducing adjustments are negative)."""
        return self.fees_total - self.payments_total + self.adjustments_total


@dataclass(frozen=True, kw_only=True)
class InvoiceTarget:
    """Where a report version's invoice lives: the e-licensing client and invoice number."""

    compliance_report_version_id: int
    invoice_type: InvoiceType
    client_object_id: str
    invoice_number: str


@dataclass(frozen=True, kw_only=True)
class RefreshState:
    """The refresh bookkeeping of one local invoice."""

    last_refreshed: datetime | None
    last_refresh_attempt: datetime | None
    last_refresh_error_reason: str | None
    db_now: datetime


@dataclass(frozen=True, kw_only=True)
class InvoiceRead:
    """An answer of the refresh-on-read wrapper: the invoice, and how much to trust it."""

    invoice: Invoice
    data_is_fresh: bool
    last_refreshed: datetime | None
    stale_reason: StaleReason | None = None
    stale_detail: str | None = None
