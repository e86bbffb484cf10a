"""HTTP routes of the payments capability: intake, statuses, the case, its orders, its page.

Three routers, each behind one credential: ``read_router`` (GETs, scope ``read``),
``page_router`` (the HTML page: ``read``, also by the login form's session cookie) and
``write_router`` (intake, scope ``write``).

Keys and sakIds are the sender's and may hold ``/``, ``?``, ``#``, ``%`` or spaces: links quote
them whole (``paths.segment``) and the routes take the rest of the path (``{...:path}``; the server
decodes ``%2F`` before routing), so every stored key and case is reachable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from pydantic_core import to_json
from starlette.responses import HTMLResponse, Response

from tether.core.auth import PAGE, READ, WRITE
from tether.core.errors import InvalidInput, TetherError
from tether.core.hotpath import hot, read_body
from tether.core.web import error_page, render
from tether.payments.intake import FAGSYSTEM
from tether.payments.models import MessageIn
from tether.payments.paths import status_url
from tether.payments.service import PaymentsService

read_router = APIRouter(tags=["payments"], dependencies=READ)
page_router = APIRouter(include_in_schema=False, dependencies=PAGE)
write_router = APIRouter(tags=["payments"], dependencies=WRITE)
router = APIRouter()

MAX_WAIT_S = 60.0


async def _service(request: Request) -> PaymentsService:
    """Async so FastAPI calls it on the loop: a plain ``def`` dependency costs a thread hop."""
    service: PaymentsService = request.app.state.payments
    return service


Service = Annotated[PaymentsService, Depends(_service)]


class Accepted(BaseModel):
    key: str
    status_url: str
    duplicate: bool = False


TRANSACTION_ID_DOC = {
    "name": "Transaction-ID",
    "in": "header",
    "required": True,
    "description": "The sender's original key of the message.",
    "schema": {"type": "string", "title": "Transaction-Id"},
}


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with its ``#/$defs/...`` references replaced by what they name: OpenAPI
    resolves a reference from the document's root, where pydantic's ``$defs`` are not."""
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return _inline(defs[ref.removeprefix("#/$defs/")], defs)
    return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}


def _message_body() -> dict[str, Any]:
    """The request body for OpenAPI, from the parser's own model so the two cannot drift. Only
    documented: the route reads the body raw, so a malformed one is FEILET 400 under its key."""
    schema = MessageIn.model_json_schema()
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    inlined["title"] = "DagpengerMessage"
    return {
        "required": True,
        "description": "The whole case. Unknown fields are ignored; a body that does not fit "
        "is still accepted (202) and ends FEILET 400 under its key.",
        "content": {"application/json": {"schema": inlined}},
    }


class StatusOut(BaseModel):
    key: str
    status: str
    detaljer: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    simulering: bool = False
    simulation: dict[str, Any] | None = None
    created_at: datetime | None = None


class UtbetalingOut(BaseModel):
    uid: str
    klassekode: str
    active: bool
    periods: list[dict[str, Any]]
    last_line_id: str
    last_line: dict[str, Any]


class CaseOut(BaseModel):
    fagsystem: str
    sakId: str
    never_paid: bool = Field(description="True until the payment system confirmed an order.")
    active_uids: list[str]
    order_in_flight: str | None
    utbetalinger: list[UtbetalingOut]


class OrderOut(BaseModel):
    id: str
    original_key: str
    state: str
    created_at: datetime
    sent_at: datetime | None
    receipt_code: str | None
    uids: list[str]
    sha256: str
    xml: str


# The hot route: ``@hot`` serves it without FastAPI's routing and dependency solving
# (core/hotpath.py), with this same requirement (the router's WRITE) and endpoint. So the header
# is read here, not declared as a parameter; OpenAPI still documents it.
@write_router.post(
    "/api/v1/payments/dagpenger",
    status_code=202,
    response_model=Accepted,
    openapi_extra={"parameters": [TRANSACTION_ID_DOC], "requestBody": _message_body()},
)
@hot
async def submit_dagpenger(request: Request) -> Response:
    """Take one dagpenger message (the whole case) under the sender's original key
    (header `Transaction-ID`, required: 422 without it).

    Its size is bounded by the app's body limit (``TETHER_MAX_BODY_BYTES``, 413 above it)."""
    given = request.headers.getlist("transaction-id")
    if not given:
        raise InvalidInput("header Transaction-ID is required")
    if len(given) > 1:  # which one is the key? a proxy may keep the last, this read the first
        raise InvalidInput(f"header Transaction-ID was sent {len(given)} times: send it once")
    transaction_id = given[0]
    if not transaction_id.isascii():  # read as UTF-8, as the broker's headers and the CLI are
        transaction_id = _utf8(transaction_id)
    service = await _service(request)  # not a dependency: one less to solve per request
    submission = await service.submit(transaction_id, await read_body(request))
    accepted = {  # ``Accepted``'s JSON, the model not built: half the cost
        "key": submission.key,
        "status_url": status_url(submission.key),
        "duplicate": submission.duplicate,
    }
    return Response(to_json(accepted), status_code=202, media_type="application/json")


def _utf8(header: str) -> str:
    """A header value as the UTF-8 its client sent (ASGI servers hand it over as Latin-1)."""
    try:
        return header.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise InvalidInput("header Transaction-ID is not UTF-8 text") from None


@read_router.get("/api/v1/payments/status/{key:path}", response_model=StatusOut)
async def get_status(
    key: str,
    service: Service,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, allow_inf_nan=False, description="Wait for OK/FEILET.")
    ] = 0,
) -> StatusOut:
    """The latest status of a message; with ``wait``, the final one if it comes in time."""
    row = await service.wait_status(key, wait)
    body = row.body
    return StatusOut(
        key=key,
        status=row.status,
        detaljer=body.get("detaljer"),
        error=body.get("error"),
        simulering=bool(body.get("simulering", False)),
        simulation=body.get("simulation"),
        created_at=row.created_at,
    )


@read_router.get("/api/v1/payments/cases/{sak_id:path}", response_model=CaseOut)
async def get_case(
    sak_id: str, service: Service, fagsystem: Annotated[str, Query()] = FAGSYSTEM
) -> CaseOut:
    """The confirmed state of a case: uids with their periods and last line ids."""
    view = await service.case(sak_id, fagsystem)
    active = view.active_uids or frozenset()
    return CaseOut(
        fagsystem=view.fagsystem,
        sakId=view.sak_id,
        never_paid=view.active_uids is None,
        active_uids=sorted(active),
        order_in_flight=str(view.inflight_order) if view.inflight_order else None,
        utbetalinger=[
            UtbetalingOut(
                uid=u.uid,
                klassekode=u.klassekode,
                active=u.uid in active,
                periods=list(u.periods),
                last_line_id=u.last_line_id,
                last_line=dict(u.last_line),
            )
            for u in view.utbetalinger
        ],
    )


@read_router.get("/api/v1/payments/orders", response_model=list[OrderOut])
async def list_orders(
    service: Service,
    sak_id: Annotated[str, Query(alias="sakId")],
    fagsystem: Annotated[str, Query()] = FAGSYSTEM,
) -> list[OrderOut]:
    """Every order of a case, oldest first, with exactly the XML that was sent (``[]`` for a
    case tether does not know: a list, not one object)."""
    return [
        OrderOut(
            id=str(o.id),
            original_key=o.original_key,
            state=o.state,
            created_at=o.created_at,
            sent_at=o.sent_at,
            receipt_code=o.receipt_code,
            uids=list(o.uids),
            sha256=o.sha256,
            xml=o.xml,
        )
        for o in await service.orders(sak_id, fagsystem)
    ]


@page_router.get("/payments/cases/{sak_id:path}")
async def case_page(sak_id: str, service: Service) -> HTMLResponse:
    """The case on one page: confirmed lines, orders, statuses. Errors are pages too (not the
    API's JSON), whatever the browser's Accept header says."""
    try:
        view = await service.case(sak_id)
        orders = await service.orders(sak_id)
        statuses = await service.statuses(sak_id)
    except TetherError as exc:
        return error_page(exc.status_code, exc.message)
    return render(
        "tether.payments",
        "case.html",
        case=view,
        active=view.active_uids or frozenset(),
        orders=orders,
        statuses=statuses,
    )


router.include_router(read_router)
router.include_router(page_router)
router.include_router(write_router)

__all__ = ["page_router", "read_router", "router", "write_router"]
