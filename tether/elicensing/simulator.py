"""A simulator of the e-licensing API: a real HTTP server over a generated, seeded ledger.

The data port speaks the endpoints tether's client uses. The control port switches faults
(``PUT /faults``) and moves the ledger on (``/ledger/...``: a payment arrives, an adjustment is
applied, an invoice is voided, a child disappears), so refreshes have something to notice.
A voided invoice is no longer served: e-licensing answers 404 for it.
"""

from __future__ import annotations

import copy
import hmac
import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from tether.core.simulator import (
    FaultMode,
    GenericFaults,
    Reply,
    SimulatorServer,
    SimulatorState,
    control_router,
    header,
    json_bytes,
    query,
    send_reply,
)
from tether.elicensing.simulated_elicensing import Ledger


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


def _apply_payload_fault(mode: str, body: dict[str, Any]) -> dict[str, Any]:
    if mode not in _PAYLOAD_FAULTS:
        return body
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


_PAYLOAD_FAULTS = {
    ElicensingFault.ADDED_FIELDS,
    ElicensingFault.MISSING_FIELDS,
    ElicensingFault.BROKEN_CHILD,
}


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


_CLIENT = re.compile(r"^/client/[^/]+")
_INVOICE = re.compile(r"/client/([^/]+)/invoice")


class DataPort:
    """The e-licensing API on the data port, as bare ASGI in front of FastAPI.

    Every request is counted (fault answers too: tests assert on ``state.calls``), then the
    generic faults play, then the bearer token is checked; the invoice read, the hot path of the
    benchmarks, is answered here, the rest by FastAPI. Starlette's ``@app.middleware("http")``
    and FastAPI's encoding cost several times what this simulator has to do for one answer.
    """

    def __init__(self, ledger: Ledger, state: SimulatorState, token: str) -> None:
        self.ledger = ledger
        self.state = state
        self.expected = f"Bearer {token}".encode()
        api = FastAPI(title="e-licensing simulator", openapi_url=None)
        _routes(api, ledger, state)
        self.api = api
        self.faults = GenericFaults(self._answer, state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = _CLIENT.sub("/client/{id}", scope["path"])
            self.state.calls[f"{scope['method']} {path}"] += 1
            return await self.faults(scope, receive, send)
        await self.api(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not hmac.compare_digest(header(scope, b"authorization"), self.expected):
            return await send_reply(send, _error_reply("Unauthorized", 401))
        route = _INVOICE.fullmatch(scope["path"])
        number = query(scope).get("InvoiceNumber") if route else None
        if route is None or number is None or scope["method"] != "GET":
            return await self.api(scope, receive, send)  # FastAPI: other routes, 404, 405, 422
        body = self.ledger.invoice_json(route[1], number)
        if body is None:
            return await send_reply(send, _error_reply("Invoice not found", 404))
        payload = json_bytes(_apply_payload_fault(self.state.mode, body))
        await send_reply(send, (200, payload, b"application/json", ()))


def _error_reply(message: str, status: int) -> Reply:
    return status, json_bytes([{"message": message}]), b"application/json", ()


def data_app(ledger: Ledger, state: SimulatorState, token: str) -> DataPort:
    """The e-licensing API on the data port."""
    return DataPort(ledger, state, token)


def _routes(app: FastAPI, ledger: Ledger, state: SimulatorState) -> None:
    """The endpoints tether's client uses: read an invoice, adjust fees."""

    @app.post("/client/{client_id}/adjust")
    async def adjust(client_id: str, body: _AdjustIn) -> Any:
        made = []
        for a in body.adjustments:
            fee_id = int(a.feeObjectId)
            if fee_id not in ledger.fees:
                return _errors(f"Fee {fee_id} not found", 400)
            try:
                day = None if a.date is None else date.fromisoformat(a.date)
            except ValueError:
                return _errors(f"date {a.date!r} is not a date (YYYY-MM-DD)", 400)
            made.append(ledger.adjust_fee(fee_id, a.adjustmentTotal, a.reason, a.comment, day))
        return {"adjustments": [{"adjustmentObjectId": oid} for oid in made]}

    @app.get("/client/{client_id}/invoice")
    async def get_invoice(client_id: str, InvoiceNumber: str) -> Any:
        body = ledger.invoice_json(client_id, InvoiceNumber)
        if body is None:
            return _errors("Invoice not found", 404)
        return _apply_payload_fault(state.mode, body)


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
            data_app(ledger, state, token),
            control_app(ledger, state),
            state,
            data_token=token,
            **kwargs,
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
    control_token: str | None = None,
) -> ElicensingSimulatorServer:
    """A seeded simulator, not yet started (``start_in_thread()`` or ``await serve()``)."""
    ledger = Ledger(seed)
    ledger.seed(clients)
    ports = {"host": host, "port": port, "control_port": control_port}
    return ElicensingSimulatorServer(
        ledger, SimulatorState(), token, control_token=control_token, **ports
    )
