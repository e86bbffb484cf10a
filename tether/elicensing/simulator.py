"""A simulator of the e-licensing API: a real HTTP server over a generated, seeded ledger.

The data port speaks the endpoints tether's client uses. The control port switches faults
(``PUT /faults``) and moves the ledger on (``/ledger/...``: a payment arrives, an adjustment is
applied, an invoice is voided, a child disappears), so refreshes have something to notice.
A voided invoice is no longer served: e-licensing answers 404 for it.
"""

from __future__ import annotations

import copy
import random
import re
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from tether.core.simulator import (
    FaultMode,
    SimulatorServer,
    SimulatorState,
    control_router,
    install_generic_faults,
)

CENT = Decimal("0.01")


class ElicensingFault(StrEnum):
    """The generic faults plus the payload faults this simulator can play."""

    NONE = FaultMode.NONE.value
    DOWN = FaultMode.DOWN.value
    SLOW = FaultMode.SLOW.value
    ERROR_500 = FaultMode.ERROR_500.value
    GARBAGE = FaultMode.GARBAGE.value  # malformed JSON
    ADDED_FIELDS = "added_fields"  # fields the contract does not name
    MISSING_FIELDS = "missing_fields"  # a required invoice field is absent
    BROKEN_CHILD = "broken_child"  # one payment (or fee) has an amount that is not a number


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

    def adjust_fee(self, fee_id: int, amount: Decimal, reason: str, comment: str | None) -> int:
        with self.lock:
            fee = self.fees[fee_id]
            adj = SimAdjustment(
                self._id(), amount.quantize(CENT), date.today(), reason, comment=comment
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

    def fees_json(self, client_object_id: str) -> list[dict[str, Any]]:
        with self.lock:
            numbers = {
                n for n, i in self.invoices.items() if i.client_object_id == client_object_id
            }
            return [
                _fee_json(f, f.invoice_number)
                for f in self.fees.values()
                if f.invoice_number in numbers
            ]


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


def _apply_payload_fault(mode: str, body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    if mode == ElicensingFault.ADDED_FIELDS:
        body["invoiceStatus"] = "Open"
        for fee in body["fees"]:
            fee["glAccount"] = "4010-OBPS"
            for p in fee["payments"]:
                p["paymentChannel"] = "online"
    elif mode == ElicensingFault.MISSING_FIELDS:
        del body["invoiceOutstandingBalance"]
    elif mode == ElicensingFault.BROKEN_CHILD:
        fee = body["fees"][0]
        if fee["payments"]:
            fee["payments"][0]["amount"] = "twelve dollars"
        else:
            fee["baseAmount"] = "twelve dollars"
    return body


def _errors(message: str, status: int) -> JSONResponse:
    return JSONResponse([{"message": message}], status_code=status)


class _AdjustmentIn(BaseModel):
    feeObjectId: int | str
    adjustmentTotal: Decimal
    amount: Decimal | None = None
    date: str | None = None
    reason: str = "Adjustment"
    type: str = "Adjustment"
    comment: str | None = None


class _AdjustIn(BaseModel):
    adjustments: list[_AdjustmentIn]


class _AmountIn(BaseModel):
    amount: Decimal
    reason: str = "Compliance Units Applied"


def _counting(app: FastAPI, state: SimulatorState) -> None:
    """Count every request by endpoint (fault answers too): tests assert on ``state.calls``."""

    @app.middleware("http")
    async def _count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
        path = re.sub(r"^/client/[^/]+", "/client/{id}", request.url.path)
        state.calls[f"{request.method} {path}"] += 1
        return await call_next(request)


def _auth(app: FastAPI, token: str) -> None:
    @app.middleware("http")
    async def _check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
        if request.headers.get("authorization") != f"Bearer {token}":
            return _errors("Unauthorized", 401)
        return await call_next(request)


def data_app(ledger: Ledger, state: SimulatorState, token: str) -> FastAPI:
    """The e-licensing API on the data port."""
    app = FastAPI(title="e-licensing simulator", openapi_url=None)
    _auth(app, token)
    install_generic_faults(app, state)
    _counting(app, state)  # outermost: counts requests that a fault answers too
    _client_routes(app, ledger)
    _invoice_routes(app, ledger, state)
    return app


def _client_routes(app: FastAPI, ledger: Ledger) -> None:
    @app.post("/client")
    async def create_client(body: dict[str, Any]) -> dict[str, Any]:
        client = ledger.create_client(str(body.get("companyName", "Unnamed operator")))
        return {"clientObjectId": client.object_id, "clientGUID": client.guid}

    @app.get("/client/{client_id}")
    async def get_client(client_id: str) -> Any:
        client = ledger.clients.get(client_id)
        if client is None:
            return _errors("Client not found", 404)
        return {
            "clientObjectId": client.object_id,
            "clientGUID": client.guid,
            "companyName": client.company_name,
        }

    @app.post("/client/{client_id}/fees")
    async def create_fees(client_id: str, body: dict[str, Any]) -> Any:
        if client_id not in ledger.clients:
            return _errors("Client not found", 404)
        made = [
            ledger.create_fee(
                client_id,
                Decimal(str(f["baseAmount"])),
                str(f.get("description", "Fee")),
                date.fromisoformat(str(f.get("feeDate", date.today().isoformat()))),
            )
            for f in body.get("fees", [])
        ]
        return {"fees": [{"feeObjectId": f.object_id, "feeGUID": f.guid} for f in made]}

    @app.get("/client/{client_id}/fees")
    async def get_fees(client_id: str) -> Any:
        return {"fees": ledger.fees_json(client_id)}


def _invoice_routes(app: FastAPI, ledger: Ledger, state: SimulatorState) -> None:

    @app.post("/client/{client_id}/adjust")
    async def adjust(client_id: str, body: _AdjustIn) -> Any:
        made = []
        for a in body.adjustments:
            fee_id = int(a.feeObjectId)
            if fee_id not in ledger.fees:
                return _errors(f"Fee {fee_id} not found", 400)
            made.append(ledger.adjust_fee(fee_id, a.adjustmentTotal, a.reason, a.comment))
        return {"adjustments": [{"adjustmentObjectId": oid} for oid in made]}

    @app.post("/client/{client_id}/invoice")
    async def create_invoice(client_id: str, body: dict[str, Any]) -> Any:
        fee_ids = [int(f) for f in body.get("fees", [])]
        due = date.fromisoformat(str(body.get("paymentDueDate", date.today().isoformat())))
        invoice = ledger.create_invoice(client_id, fee_ids, due)
        return {"invoiceNumber": invoice.number}

    @app.get("/client/{client_id}/invoice")
    async def get_invoice(client_id: str, InvoiceNumber: str) -> Any:
        body = ledger.invoice_json(client_id, InvoiceNumber)
        if body is None:
            return _errors("Invoice not found", 404)
        return _apply_payload_fault(state.mode, body)

    @app.get("/interestRates")
    async def interest_rates() -> Any:
        return {"interestRates": [{"startDate": "2025-01-01", "rate": "7.20"}]}


def control_app(ledger: Ledger, state: SimulatorState) -> FastAPI:
    """Faults plus ledger moves on the control port."""
    app = FastAPI(title="e-licensing simulator control")
    app.include_router(control_router(state, ElicensingFault))

    @app.get("/ledger")
    async def get_ledger() -> Any:
        return [
            {"invoiceNumber": n, "clientObjectId": i.client_object_id, "voided": i.voided}
            for n, i in ledger.invoices.items()
        ]

    @app.post("/ledger/invoices/{number}/payments")
    async def pay(number: str, body: _AmountIn) -> Any:
        return {"paymentObjectId": ledger.add_payment(number, body.amount).object_id}

    @app.post("/ledger/invoices/{number}/adjustments")
    async def adjust(number: str, body: _AmountIn) -> Any:
        return {
            "adjustmentObjectId": ledger.add_adjustment(number, body.amount, body.reason).object_id
        }

    @app.post("/ledger/invoices/{number}/void")
    async def void(number: str) -> Any:
        ledger.void(number)
        return {"voided": number}

    @app.delete("/ledger/invoices/{number}/children/{object_id}")
    async def remove(number: str, object_id: int) -> Any:
        return {"removed": ledger.remove_child(number, object_id)}

    return app


class ElicensingSimulatorServer(SimulatorServer):
    """A simulator server that also holds its ledger (tests and the demo move it on)."""

    def __init__(self, ledger: Ledger, state: SimulatorState, token: str, **kwargs: Any) -> None:
        super().__init__(
            data_app(ledger, state, token), control_app(ledger, state), state, **kwargs
        )
        self.ledger = ledger


def make_simulator(
    *,
    token: str = "dev-elicensing-token",
    seed: int = 42,
    clients: int = 5,
    host: str = "127.0.0.1",
    port: int = 0,
    control_port: int = 0,
) -> ElicensingSimulatorServer:
    """A seeded simulator, not yet started (``start_in_thread()`` or ``await serve()``)."""
    ledger = Ledger(seed)
    ledger.seed(clients)
    return ElicensingSimulatorServer(
        ledger, SimulatorState(), token, host=host, port=port, control_port=control_port
    )
