"""The simulated e-licensing data: clients, fees with payments and adjustments, and invoices,
in memory.

Generation is deterministic per seed; the ledger methods play what happens upstream (a payment
arrives, an adjustment is applied, an invoice is voided, a child is reversed), and
``invoice_json`` renders an invoice the way the e-licensing API does. ``simulator.py`` serves it.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")


@dataclass
class SimPayment:
    object_id: int
    receipt_number: str
    received_date: date
    amount: Decimal
    method: str = "EFT/Wire - OBPS"


@dataclass
class SimAdjustment:
    object_id: int
    amount: Decimal
    date: date
    reason: str
    type: str = "Adjustment"
    comment: str | None = None


@dataclass
class SimFee:
    object_id: int
    guid: str
    fee_date: date
    description: str
    base_amount: Decimal
    invoice_number: str | None = None
    payments: list[SimPayment] = field(default_factory=list)
    adjustments: list[SimAdjustment] = field(default_factory=list)

    def balance(self) -> Decimal:
        paid = sum((p.amount for p in self.payments), Decimal(0))
        adjusted = sum((a.amount for a in self.adjustments), Decimal(0))
        return self.base_amount + adjusted - paid


@dataclass
class SimInvoice:
    number: str
    client_object_id: str
    due_date: date
    fee_ids: list[int]
    voided: bool = False


@dataclass
class SimClient:
    object_id: str
    guid: str
    company_name: str


class Ledger:
    """The simulated e-licensing data; every method is safe to call from any thread."""

    def __init__(self, seed: int = 42) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.clients: dict[str, SimClient] = {}
        self.fees: dict[int, SimFee] = {}
        self.invoices: dict[str, SimInvoice] = {}
        self._next_id = 1000
        self._next_invoice = 1

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    # --- building ---------------------------------------------------------------------------

    def create_client(self, company_name: str) -> SimClient:
        with self.lock:
            client = SimClient(str(self._id()), self._guid(), company_name)
            self.clients[client.object_id] = client
            return client

    def create_fee(
        self, client_object_id: str, base: Decimal, description: str, day: date
    ) -> SimFee:
        with self.lock:
            fee = SimFee(self._id(), self._guid(), day, description, base.quantize(CENT))
            self.fees[fee.object_id] = fee
            return fee

    def create_invoice(self, client_object_id: str, fee_ids: list[int], due: date) -> SimInvoice:
        with self.lock:
            number = f"OBI{self._next_invoice:07d}"
            self._next_invoice += 1
            invoice = SimInvoice(number, client_object_id, due, list(fee_ids))
            for fid in fee_ids:
                self.fees[fid].invoice_number = number
            self.invoices[number] = invoice
            return invoice

    def seed(self, clients: int = 5, *, year: int = 2025) -> list[SimInvoice]:
        """Generate clients, each with an obligation invoice carrying payments and adjustments."""
        made = []
        for i in range(clients):
            client = self.create_client(f"{_COMPANIES[i % len(_COMPANIES)]} Ltd. #{i + 1}")
            day = date(year, 11, 1) + timedelta(days=self.rng.randrange(30))
            base = Decimal(self.rng.randrange(1_000_000, 200_000_000)) / 100
            fee = self.create_fee(
                client.object_id, base, f"{year - 1} GGIRCA Compliance Obligation", day
            )
            invoice = self.create_invoice(client.object_id, [fee.object_id], date(year + 1, 11, 30))
            for _ in range(self.rng.randrange(3)):
                self.add_payment(invoice.number, (base / 10).quantize(CENT))
            if self.rng.random() < 0.5:
                self.add_adjustment(invoice.number, -(base / 20).quantize(CENT))
            made.append(invoice)
        return made

    # --- moving on --------------------------------------------------------------------------

    def _fee_of(self, number: str) -> SimFee:
        return self.fees[self.invoices[number].fee_ids[0]]

    def add_payment(self, number: str, amount: Decimal) -> SimPayment:
        with self.lock:
            fee = self._fee_of(number)
            oid = self._id()
            day = fee.fee_date + timedelta(days=len(fee.payments) + 1)
            payment = SimPayment(oid, f"R{oid:06d}", day, amount.quantize(CENT))
            fee.payments.append(payment)
            return payment

    def add_adjustment(
        self, number: str, amount: Decimal, reason: str = "Compliance Units Applied"
    ) -> SimAdjustment:
        with self.lock:
            fee = self._fee_of(number)
            adj = SimAdjustment(self._id(), amount.quantize(CENT), fee.fee_date, reason)
            fee.adjustments.append(adj)
            return adj

    def adjust_fee(
        self,
        fee_id: int,
        amount: Decimal,
        reason: str,
        comment: str | None,
        day: date | None = None,
    ) -> int:
        """An adjustment dated ``day``, the date the write carried (the business's day), else
        the host's."""
        with self.lock:
            fee = self.fees[fee_id]
            adj = SimAdjustment(
                self._id(), amount.quantize(CENT), day or date.today(), reason, comment=comment
            )
            fee.adjustments.append(adj)
            return adj.object_id

    def void(self, number: str) -> None:
        with self.lock:
            self.invoices[number].voided = True

    def remove_child(self, number: str, object_id: int) -> bool:
        """Remove a fee, payment or adjustment of an invoice (as a reversal upstream would)."""
        with self.lock:
            invoice = self.invoices[number]
            if object_id in invoice.fee_ids:
                invoice.fee_ids.remove(object_id)
                return True
            for fid in invoice.fee_ids:
                fee = self.fees[fid]
                kept_p = [p for p in fee.payments if p.object_id != object_id]
                kept_a = [a for a in fee.adjustments if a.object_id != object_id]
                if len(kept_p) != len(fee.payments) or len(kept_a) != len(fee.adjustments):
                    fee.payments, fee.adjustments = kept_p, kept_a
                    return True
            return False

    # --- rendering --------------------------------------------------------------------------

    def invoice_json(self, client_object_id: str, number: str) -> dict[str, Any] | None:
        with self.lock:
            invoice = self.invoices.get(number)
            if invoice is None or invoice.voided or invoice.client_object_id != client_object_id:
                return None
            client = self.clients[client_object_id]
            fees = [self.fees[f] for f in invoice.fee_ids]
            fee_balance = sum((f.balance() for f in fees), Decimal(0))
            return {
                "clientObjectId": client.object_id,
                "clientGUID": client.guid,
                "invoiceNumber": number,
                "invoicePaymentDueDate": invoice.due_date.isoformat(),
                "invoiceOutstandingBalance": str(fee_balance),
                "invoiceFeeBalance": str(fee_balance),
                "invoiceInterestBalance": "0.00",
                "fees": [_fee_json(f, number) for f in fees],
            }


def _fee_json(fee: SimFee, number: str | None) -> dict[str, Any]:
    adjusted = sum((a.amount for a in fee.adjustments), Decimal(0))
    paid = sum((p.amount for p in fee.payments), Decimal(0))
    return {
        "feeObjectId": fee.object_id,  # ids arrive as numbers here, as strings elsewhere
        "feeGUID": fee.guid,
        "businessAreaCode": "OBPS",
        "feeDate": fee.fee_date.isoformat(),
        "description": fee.description,
        "baseAmount": str(fee.base_amount),
        "taxTotal": 0,
        "adjustmentTotal": str(adjusted),
        "taxAdjustmentTotal": "0.00",
        "paymentBaseAmount": str(paid),
        "paymentTotal": str(paid),
        "invoiceNumber": number,
        "payments": [
            {
                "paymentObjectId": str(p.object_id),
                "receiptNumber": p.receipt_number,
                "receivedDate": p.received_date.isoformat(),
                "depositDate": p.received_date.isoformat(),
                "amount": str(p.amount),
                "method": p.method,
                "cashHandlingArea": "1",
                "referenceNumber": str(p.object_id),
                "distributions": [],
            }
            for p in fee.payments
        ],
        "adjustments": [
            {
                "adjustmentObjectId": a.object_id,
                "adjustmentTotal": str(a.amount),
                "amount": str(a.amount),
                "date": a.date.isoformat(),
                "reason": a.reason,
                "type": a.type,
                "comment": a.comment,
            }
            for a in fee.adjustments
        ],
    }


_COMPANIES = ["Cedar Cement", "Fraser Pulp", "Peace River Gas", "Kootenay Smelting", "Skeena LNG"]
