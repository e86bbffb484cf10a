"""Client of the e-licensing API, on the core upstream client.

A tolerant reader: fields the contract does not name are ignored, counted and logged once (the
reference failed every refresh on a harmless new field). A strict validator: a missing or wrongly
typed field, a duplicate object id, or a value our columns cannot hold (a GUID that is not a
UUID, money beyond numeric(14, 2) or with fractions of a cent, text too long or with a NUL
character) is ``InvalidElicensingPayload`` before the database sees anything. Money is parsed
straight from the JSON text into ``Decimal``; it never passes a float.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import httpx
from pydantic import AfterValidator, BeforeValidator, Field, StrictStr, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from tether.core.errors import UpstreamNotFound, UpstreamRejected
from tether.core.http import RetryPolicy, UpstreamClient
from tether.core.wire import WireModel, first_error, note_unknown_fields
from tether.elicensing.errors import InvalidElicensingPayload
from tether.elicensing.models import (
    RemoteAdjustment,
    RemoteFee,
    RemoteInvoice,
    RemotePayment,
)
from tether.elicensing.settings import ElicensingSettings

logger = logging.getLogger(__name__)
SYSTEM = "elicensing"


CENT = Decimal("0.01")
MONEY_LIMIT = Decimal("1e12")  # money columns are numeric(14, 2)
ID_LENGTH = 100  # object ids, receipt and reference numbers
TEXT_LENGTH = 255  # names, codes, methods, reasons
LONG_TEXT_LENGTH = 2000  # descriptions and comments


def _money(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("money must be a string or a number")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError("money is not a number") from exc
    if not amount.is_finite():
        raise ValueError("money must be finite")
    if abs(amount) >= MONEY_LIMIT:
        raise ValueError("money must be below 1,000,000,000,000.00 in absolute value")
    if amount != amount.quantize(CENT):
        raise ValueError("money must not have fractions of a cent")
    return amount


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("text must not contain a NUL character")
    return text


def _object_id(value: object) -> str:
    # ids may arrive as numbers (the spec); a JSON ``2.0`` decodes to Decimal: the id 2
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("an object id must be a string or an integer")
    text = _no_nul(str(value).strip())
    if not text:
        raise ValueError("an object id must not be empty")
    if len(text) > ID_LENGTH:
        raise ValueError(f"an object id must be at most {ID_LENGTH} characters")
    return text


def _guid(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("a GUID must be a string")
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ValueError("a GUID must be a UUID") from exc


def _iso_date(value: object) -> date:
    """``YYYY-MM-DD``, or a local date-time whose date is meant. Cutting any text to its first 10
    characters took trailing garbage, and dropped an offset that could move the day."""
    if not isinstance(value, str):
        raise ValueError("a date must be a YYYY-MM-DD string")
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("a date must be a YYYY-MM-DD string") from exc
    if moment.tzinfo is not None:
        raise ValueError("a date must be a YYYY-MM-DD string, not a moment with an offset")
    return moment.date()


Money = Annotated[Decimal, BeforeValidator(_money)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
ObjectId = Annotated[str, BeforeValidator(_object_id)]
Guid = Annotated[str, BeforeValidator(_guid)]
Text = Annotated[StrictStr, StringConstraints(max_length=TEXT_LENGTH), AfterValidator(_no_nul)]
LongText = Annotated[
    StrictStr, StringConstraints(max_length=LONG_TEXT_LENGTH), AfterValidator(_no_nul)
]


class _Wire(WireModel):
    pass


class _Payment(_Wire):
    paymentObjectId: ObjectId
    receiptNumber: ObjectId | None = None
    receivedDate: IsoDate | None = None
    depositDate: IsoDate | None = None
    amount: Money
    method: Text | None = None
    cashHandlingArea: ObjectId | None = None
    referenceNumber: ObjectId | None = None
    onlineOrderNumber: ObjectId | None = None
    onlineTransactionId: ObjectId | None = None
    onlineApprovalCode: ObjectId | None = None
    distributions: list[Any] = Field(default_factory=list)
    adjustmentAmount: Money | None = None


class _Adjustment(_Wire):
    adjustmentObjectId: ObjectId
    adjustmentTotal: Money
    amount: Money
    date: IsoDate | None
    reason: Text | None
    type: Text | None
    adjustmentGUID: Text | None = None
    taxAmounts: Money | None = None
    comment: LongText | None = None


class _Fee(_Wire):
    feeObjectId: ObjectId
    feeGUID: Guid
    businessAreaCode: Text | None
    feeDate: IsoDate
    description: LongText
    baseAmount: Money
    taxTotal: Money
    adjustmentTotal: Money
    taxAdjustmentTotal: Money
    paymentBaseAmount: Money
    paymentTotal: Money
    invoiceNumber: ObjectId | None = None
    feeType: Text | None = None
    payments: list[_Payment]
    adjustments: list[_Adjustment]


class _Invoice(_Wire):
    clientObjectId: ObjectId
    clientGUID: Guid
    invoiceNumber: ObjectId
    invoicePaymentDueDate: IsoDate | None
    invoiceOutstandingBalance: Money
    invoiceFeeBalance: Money
    invoiceInterestBalance: Money
    fees: list[_Fee]


def _check_unique(wire: _Invoice) -> None:
    fee_ids = [f.feeObjectId for f in wire.fees]
    if len(set(fee_ids)) != len(fee_ids):
        raise InvalidElicensingPayload("e-licensing invoice lists one fee twice")
    for fee in wire.fees:
        pay = [p.paymentObjectId for p in fee.payments]
        adj = [a.adjustmentObjectId for a in fee.adjustments]
        if len(set(pay)) != len(pay) or len(set(adj)) != len(adj):
            raise InvalidElicensingPayload(
                f"e-licensing fee {fee.feeObjectId} lists a payment or adjustment twice"
            )


def parse_invoice(
    payload: Any, *, invoice_number: str, client_object_id: str | None = None
) -> RemoteInvoice:
    """Turn an invoice answer into records, or raise ``InvalidElicensingPayload``: also an
    answer about another invoice or another client (it would be stored under this one)."""
    try:
        wire = _Invoice.model_validate(payload)
    except PydanticValidationError as exc:
        raise InvalidElicensingPayload(
            f"e-licensing invoice breaks the contract at {first_error(exc)}"
        ) from exc
    if wire.invoiceNumber != invoice_number:
        raise InvalidElicensingPayload(
            f"asked e-licensing for invoice {invoice_number}, got {wire.invoiceNumber}"
        )
    if client_object_id is not None and wire.clientObjectId != client_object_id:
        raise InvalidElicensingPayload(
            f"asked e-licensing about client {client_object_id}, got {wire.clientObjectId}"
        )
    _check_unique(wire)
    note_unknown_fields(SYSTEM, wire)
    return RemoteInvoice(
        client_object_id=wire.clientObjectId,
        client_guid=wire.clientGUID,
        invoice_number=wire.invoiceNumber,
        due_date=wire.invoicePaymentDueDate,
        outstanding_balance=wire.invoiceOutstandingBalance,
        fee_balance=wire.invoiceFeeBalance,
        interest_balance=wire.invoiceInterestBalance,
        fees=tuple(_fee(f) for f in wire.fees),
    )


def _fee(f: _Fee) -> RemoteFee:
    return RemoteFee(
        fee_object_id=f.feeObjectId,
        fee_guid=f.feeGUID,
        business_area_code=f.businessAreaCode,
        fee_date=f.feeDate,
        description=f.description,
        base_amount=f.baseAmount,
        tax_total=f.taxTotal,
        adjustment_total=f.adjustmentTotal,
        tax_adjustment_total=f.taxAdjustmentTotal,
        payment_base_amount=f.paymentBaseAmount,
        payment_total=f.paymentTotal,
        fee_type=f.feeType,
        payments=tuple(
            RemotePayment(
                payment_object_id=p.paymentObjectId,
                receipt_number=p.receiptNumber,
                received_date=p.receivedDate,
                deposit_date=p.depositDate,
                amount=p.amount,
                method=p.method,
                cash_handling_area=p.cashHandlingArea,
                reference_number=p.referenceNumber,
            )
            for p in f.payments
        ),
        adjustments=tuple(
            RemoteAdjustment(
                adjustment_object_id=a.adjustmentObjectId,
                adjustment_total=a.adjustmentTotal,
                amount=a.amount,
                date=a.date,
                reason=a.reason,
                type=a.type,
                comment=a.comment,
            )
            for a in f.adjustments
        ),
    )


def decode(response: httpx.Response | bytes) -> Any:
    """The JSON body with every non-integer number as ``Decimal`` (never a float)."""
    body = response if isinstance(response, bytes) else response.content
    try:
        return json.loads(body, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidElicensingPayload("e-licensing answered with a body that is not JSON") from exc


class ElicensingClient:
    """The e-licensing endpoints tether uses, with short timeouts and no retries on reads.

    A read happens while a user waits: the circuit breaker, not retries, handles an outage.
    """

    def __init__(self, upstream: UpstreamClient) -> None:
        self.upstream = upstream

    @classmethod
    def from_settings(
        cls, settings: ElicensingSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> ElicensingClient:
        timeout = httpx.Timeout(
            settings.read_timeout_s,
            connect=settings.connect_timeout_s,
        )
        return cls(
            UpstreamClient(
                system=SYSTEM,
                base_url=settings.url,
                token=settings.token.get_secret_value(),
                timeout=timeout,
                retry=RetryPolicy(attempts=1),
                transport=transport,
                max_connections=settings.upstream_concurrency,
            )
        )

    async def aclose(self) -> None:
        await self.upstream.aclose()

    async def get_invoice(self, client_object_id: str, invoice_number: str) -> RemoteInvoice:
        """``GET /client/{id}/invoice?InvoiceNumber=``, validated. A 404 means the invoice is gone
        (voided) only when its answer says so: any 404 (a wrong URL, an unknown client, a proxy's
        page) used to mark the local copy void and fresh."""
        try:
            body = await self.upstream.get_body(
                f"/client/{client_object_id}/invoice", params={"InvoiceNumber": invoice_number}
            )
        except UpstreamNotFound as exc:
            if "invoice" not in exc.answer.lower():
                raise UpstreamRejected(
                    f"{exc.message}: not an answer about the invoice; check TETHER_ELICENSING_URL"
                    " and the operator's client id (the local copy is kept)"
                ) from exc
            raise
        return parse_invoice(
            decode(body), invoice_number=invoice_number, client_object_id=client_object_id
        )

    async def adjust_fees(self, client_object_id: str, adjustments: list[dict[str, Any]]) -> None:
        """``POST /client/{id}/adjust``: apply adjustments (negative reduces a fee). Any 2xx is
        success, whatever its body: decoding it once turned an applied write into a 502, and a
        retry would have applied the units twice."""
        await self.upstream.request(
            "POST", f"/client/{client_object_id}/adjust", json_body={"adjustments": adjustments}
        )


__all__ = ["ElicensingClient", "decode", "parse_invoice"]
