"""Records of the e-licensing capability: what e-licensing tells us, and what we keep of it.

Money is ``Decimal`` everywhere; e-licensing object ids are strings (they arrive as either).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


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
    BUSY = "busy"  #: too many refreshes at once: no refresh slot within the queue wait
    UPSTREAM_CHANGED = "upstream_changed"  #: a write changed e-licensing; no refresh since

    @property
    def is_invalid_data(self) -> bool:
        """E-licensing answered, but with data tether cannot keep (vs. could not be reached)."""
        return self is StaleReason.UPSTREAM_INVALID_PAYLOAD


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

    @classmethod
    def from_json(cls, f: dict[str, Any]) -> LineItem:
        fee_id: str = f["object_id"]
        return cls(
            object_id=fee_id,
            guid=f["guid"],
            fee_date=date.fromisoformat(f["fee_date"]),
            description=f["description"],
            base_amount=Decimal(f["base_amount"]),
            line_item_type=f["line_item_type"],
            payments=tuple(
                Payment(
                    payment_object_id=p["payment_object_id"],
                    fee_object_id=fee_id,
                    receipt_number=p["receipt_number"],
                    received_date=_day(p["received_date"]),
                    deposit_date=_day(p["deposit_date"]),
                    amount=Decimal(p["amount"]),
                    method=p["method"],
                    reference_number=p["reference_number"],
                )
                for p in f["payments"]
            ),
            adjustments=tuple(
                Adjustment(
                    adjustment_object_id=a["adjustment_object_id"],
                    fee_object_id=fee_id,
                    amount=Decimal(a["amount"]),
                    adjustment_date=_day(a["adjustment_date"]),
                    reason=a["reason"],
                    type=a["type"],
                    comment=a["comment"],
                )
                for a in f["adjustments"]
            ),
        )


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


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

    @classmethod
    def from_row(cls, row: Any) -> Invoice:
        """From ``fetch_reads``: children arrive as JSON with money as text (never a float)."""
        return cls(
            id=row["id"],
            invoice_number=row["invoice_number"],
            client_object_id=row["client_object_id"],
            due_date=row["due_date"],
            outstanding_balance=row["outstanding_balance"],
            fee_balance=row["invoice_fee_balance"],
            interest_balance=row["invoice_interest_balance"],
            is_void=row["is_void"],
            last_refreshed=row["last_refreshed"],
            line_items=tuple(LineItem.from_json(f) for f in row["line_items"] or ()),
        )

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
    """The outcome of the latest refresh of one invoice, as recorded."""

    last_refreshed: datetime | None
    stale_reason: StaleReason | None
    stale_detail: str | None
    last_attempt: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> RefreshState:
        reason = row["stale_reason"]
        return cls(
            last_refreshed=row["last_refreshed"],
            stale_reason=StaleReason(reason) if reason else None,
            stale_detail=row["stale_detail"],
            last_attempt=row["last_attempt"],
        )


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What one statement tells a read: where the invoice lives, the local copy, its state."""

    target: InvoiceTarget
    invoice: Invoice | None  # None: never retrieved
    state: RefreshState
    stale_since: datetime | None
    circuit_open: bool
    circuit_closed: bool  # closed (failures or not) as the read saw it: no probe is due
    db_now: datetime
    items_read: bool = True  # false: read before a forced refresh, the invoice's fees not read

    def is_fresh(self, window_s: float) -> bool:
        """The last attempt succeeded, nothing changed upstream since, and it is recent enough."""
        refreshed = self.state.last_refreshed
        return (
            self.invoice is not None
            and refreshed is not None
            and self.state.stale_reason is None
            and (self.db_now - refreshed).total_seconds() < window_s
        )

    @classmethod
    def from_row(cls, row: Any, report_version_id: int, invoice_type: InvoiceType) -> Snapshot:
        target = InvoiceTarget(
            compliance_report_version_id=report_version_id,
            invoice_type=invoice_type,
            client_object_id=row["target_client_object_id"],
            invoice_number=row["invoice_number"],
        )
        return cls(
            target=target,
            invoice=None if row["id"] is None else Invoice.from_row(row),
            state=RefreshState.from_row(row),
            stale_since=row["stale_since"],
            circuit_open=row["circuit_open"],
            circuit_closed=row["circuit_closed"],
            db_now=row["db_now"],
            items_read=row["line_items"] is not None,
        )


@dataclass(frozen=True, kw_only=True)
class InvoiceRead:
    """An answer of the refresh-on-read wrapper: the invoice, and how much to trust it."""

    invoice: Invoice
    data_is_fresh: bool
    last_refreshed: datetime | None
    stale_reason: StaleReason | None = None
    stale_detail: str | None = None
    stale_since: datetime | None = None  #: first failure (or write) since the last success


# --- obligation links operators manage ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ObligationLink:
    """A report version's obligation, the invoice it is billed on, its client and operator."""

    report_version_id: int
    reporting_year: int
    obligation_id: str
    fee_amount: Decimal
    invoice_number: str | None
    client_object_id: str
    client_guid: str
    operator_legal_name: str
    cra_business_number: str
    recorded_at: datetime | None = None
    recorded_by: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> ObligationLink:
        return cls(
            report_version_id=row["compliance_report_version_id"],
            reporting_year=row["reporting_year"],
            obligation_id=row["obligation_id"],
            fee_amount=row["fee_amount"],
            invoice_number=row["invoice_number"],
            client_object_id=row["client_object_id"],
            client_guid=row["client_guid"],
            operator_legal_name=row["legal_name"],
            cra_business_number=row["cra_business_number"],
            recorded_at=row["recorded_at"],
            recorded_by=row["recorded_by"],
        )

    def same_link(self, other: ObligationLink) -> bool:
        """Registering ``other`` again would change nothing that identifies the link."""
        keys = ("invoice_number", "client_object_id", "obligation_id", "cra_business_number")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


@dataclass(frozen=True, kw_only=True)
class ObligationLinkVersion:
    """One version of a report version's obligation link, and who ended it."""

    invoice_number: str | None
    obligation_id: str
    fee_amount: Decimal
    client_object_id: str | None
    valid_from: datetime
    valid_until: datetime | None  # None: the current version
    recorded_by: str | None
    ended_by: str | None  # UPDATE / DELETE
    replaced_by: str | None

    @classmethod
    def from_row(cls, row: Any) -> ObligationLinkVersion:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})
