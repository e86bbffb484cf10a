"""A fake national datahub behind the accounting point adapter contract, with fault modes.

It is the reference adapter: the contract tests run the OpenAPI file against it, the demo and the
e2e tests sync from it, and its control port changes accounting points and emits the thin change
events the real datahub would send (webhook and/or NATS JetStream).
"""

from __future__ import annotations

import asyncio
import hmac
import random
import re
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Body, FastAPI, Query
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tether.accountingpoints.reference import ENERGY_SUPPLIERS
from tether.accountingpoints.settings import AccountingPointSettings
from tether.accountingpoints.simulated_datahub import (
    TIMELINES,
    ChangeKind,
    Datahub,
    Record,
    Window,
    pick_other,
)
from tether.core.events import CloudEvent, EventEmitter, make_event
from tether.core.simulator import (
    GenericFaults,
    Reply,
    SimulatorServer,
    SimulatorState,
    control_router,
    header,
    json_bytes,
    query,
    send_reply,
    serving_in_thread,
    text_reply,
)
from tether.core.wire import parse_rfc3339

__all__ = [
    "EVENT_SOURCE",
    "EVENT_TYPE",
    "ChangeKind",
    "Datahub",
    "DatahubFault",
    "build_simulator",
    "start_simulator",
]

EVENT_TYPE = "no.datahub.accounting_point.changed"
EVENT_SOURCE = "/simulator/datahub"
_ROUTE = re.compile(r"/accounting_point/([^/]+)")
_GSRN_PATH = re.compile(r"[0-9]{18}")
_CHALLENGE = (b"www-authenticate", b"Bearer")


_DEFAULTS = AccountingPointSettings.model_fields


class DatahubFault(StrEnum):
    """Core fault modes plus the ways a real adapter answer can be wrong (or merely new)."""

    NONE = "none"
    DOWN = "down"
    SLOW = "slow"
    ERROR_500 = "500"
    GARBAGE = "garbage"
    UNKNOWN_FIELDS = "unknown_fields"  # harmless extension: tether must tolerate it
    CONTRACT_VIOLATION = "contract_violation"  # required key missing, gsrn a number
    OVERLAPPING = "overlapping"  # two open energy supplier periods
    NOT_MIDNIGHT = "not_midnight"  # an end user period starting 13:37 local time
    UNKNOWN_ENUM = "unknown_enum"  # energy direction "storage"
    PARTIAL_LOCATION = "partial_location"  # a latitude without its longitude


# --- capability faults: each turns a correct answer into a specific wrong (or new) one ---------


def _unknown_fields(body: Record, tz: ZoneInfo) -> Record:
    body["metering_point_category"] = "simulated-extension"
    body["x_datahub"] = {"revision": 7}
    for key in TIMELINES:
        for period in body.get(key) or []:
            period["x_source"] = "simulator"
    return body


def _contract_violation(body: Record, tz: ZoneInfo) -> Record:
    body.pop("metering_grid_area", None)
    body["gsrn"] = int(body["gsrn"])
    return body


def _overlapping(body: Record, tz: ZoneInfo) -> Record:
    periods = body.get("energy_supplier") or []
    if periods:
        first = periods[0]
        other = pick_other(random.Random(0), list(ENERGY_SUPPLIERS), first.get("business_id"))
        periods.append({"business_id": other, "valid_from": first["valid_from"], "valid_to": None})
    return body


def _not_midnight(body: Record, tz: ZoneInfo) -> Record:
    periods = body.get("end_user") or []
    if periods:
        local = parse_rfc3339(periods[0]["valid_from"]).astimezone(tz)
        periods[0]["valid_from"] = local.replace(hour=13, minute=37).isoformat()
    return body


def _unknown_enum(body: Record, tz: ZoneInfo) -> Record:
    periods = body.get("energy_direction") or []
    if periods:
        periods[0]["direction"] = ["storage"]
    elif body.get("end_user"):
        since = body["end_user"][0]["valid_from"]
        body["energy_direction"] = [
            {"direction": ["storage"], "valid_from": since, "valid_to": None}
        ]
    return body


def _partial_location(body: Record, tz: ZoneInfo) -> Record:
    body.pop("longitude", None)
    return body


_BODY_FAULTS: dict[str, Callable[[Record, ZoneInfo], Record]] = {
    DatahubFault.UNKNOWN_FIELDS: _unknown_fields,
    DatahubFault.CONTRACT_VIOLATION: _contract_violation,
    DatahubFault.OVERLAPPING: _overlapping,
    DatahubFault.NOT_MIDNIGHT: _not_midnight,
    DatahubFault.UNKNOWN_ENUM: _unknown_enum,
    DatahubFault.PARTIAL_LOCATION: _partial_location,
}


def _window(params: dict[str, str]) -> Window:
    raw_from, raw_to = params.get("valid_from"), params.get("valid_to")
    if raw_from is None:
        raise ValueError("valid_from is required")
    return parse_rfc3339(raw_from), None if raw_to is None else parse_rfc3339(raw_to)


class DataPort:
    """The adapter's one operation, exactly per the contract; errors are text/plain.

    A bare ASGI app rather than FastAPI: this is the hot path of the sync benchmarks, where the
    framework cost several times the answer. Other paths are 404, other methods 405.
    """

    def __init__(self, datahub: Datahub, state: SimulatorState, token: str) -> None:
        self.datahub = datahub
        self.state = state
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = _ROUTE.fullmatch(scope["path"])
            if route and (delay := self.datahub.delays.get(route[1])):
                await asyncio.sleep(delay)
            await send_reply(send, self.reply(scope))

    def reply(self, scope: Scope) -> Reply:
        route = _ROUTE.fullmatch(scope["path"])
        if route is None:
            return text_reply(404, "Not Found")
        if scope["method"] not in ("GET", "HEAD"):
            return text_reply(405, "Method Not Allowed", (b"allow", b"GET, HEAD"))
        if not hmac.compare_digest(header(scope, b"authorization"), self.expected):
            return text_reply(401, "missing or wrong bearer token", _CHALLENGE)
        gsrn = route[1]
        if not _GSRN_PATH.fullmatch(gsrn):
            return text_reply(400, "gsrn must be 18 digits")
        try:
            valid_from, valid_to = _window(query(scope))
        except ValueError as exc:
            return text_reply(400, str(exc))
        body = self._body(gsrn, valid_from, valid_to)
        if body is None:
            return text_reply(404, "unknown accounting point")
        return 200, body, b"application/json", ()

    def _body(self, gsrn: str, valid_from: datetime, valid_to: datetime | None) -> bytes | None:
        fault = _BODY_FAULTS.get(self.state.mode)
        if fault is None:
            return self.datahub.answer_json(gsrn, valid_from, valid_to)
        answer = self.datahub.answer(gsrn, valid_from, valid_to)
        return None if answer is None else json_bytes(fault(answer, self.datahub.tz))


class CountedCalls:
    """Counts each authorised read of an AP before a fault mode answers it: ``/stats`` shows
    what the datahub received in a ``500`` drill too (a circuit's probe is one call)."""

    def __init__(self, app: ASGIApp, state: SimulatorState, token: str) -> None:
        self.app, self.state = app, state
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            route = _ROUTE.fullmatch(scope["path"])
            if route and hmac.compare_digest(header(scope, b"authorization"), self.expected):
                self.state.calls[route[1]] += 1
        await self.app(scope, receive, send)


def changed_events(gsrns: list[str]) -> list[CloudEvent]:
    """One thin "AP changed" CloudEvent per GSRN."""
    return [
        make_event(type_=EVENT_TYPE, source=EVENT_SOURCE, subject=g, data={"gsrn": g})
        for g in gsrns
    ]


class ChangeIn(BaseModel):
    """Body of ``POST /accounting-points/{gsrn}/changes``."""

    kind: ChangeKind
    emit: bool = True


class DelayIn(BaseModel):
    """Body of ``PUT /accounting-points/{gsrn}/delay``: 0 answers at once again."""

    delay_ms: float = Field(ge=0, le=600_000)


class EventsIn(BaseModel):
    """Body of ``POST /events``."""

    gsrns: list[str]


def create_control_app(datahub: Datahub, state: SimulatorState, emitter: EventEmitter) -> FastAPI:
    """Faults and stats, plus routes to list, install and change APs and to emit events."""
    app = FastAPI(title="Datahub simulator control")
    app.state.datahub, app.state.emitter = datahub, emitter
    app.include_router(control_router(state, DatahubFault))

    @app.get("/accounting-points")
    async def list_accounting_points(
        limit: int = Query(100, ge=1, le=10_000), offset: int = Query(0, ge=0)
    ) -> dict[str, Any]:
        gsrns = datahub.gsrns
        page = gsrns[offset : offset + limit]
        return {"total": len(gsrns), "limit": limit, "offset": offset, "gsrns": page}

    @app.get("/accounting-points/{gsrn}")
    async def get_accounting_point(gsrn: str) -> Any:
        found = datahub.record(gsrn)
        return found if found is not None else JSONResponse({"detail": "unknown gsrn"}, 404)

    @app.put("/accounting-points/{gsrn}")
    async def put_accounting_point(gsrn: str, record: dict[str, Any] = Body()) -> Any:
        datahub.put(gsrn, record)
        return datahub.record(gsrn)

    @app.put("/accounting-points/{gsrn}/delay")
    async def delay_accounting_point(gsrn: str, body: DelayIn) -> dict[str, Any]:
        """Make one AP's answers slow (the others stay fast), e.g. to see a batch not wait."""
        datahub.delays[gsrn] = body.delay_ms / 1000
        if not body.delay_ms:
            del datahub.delays[gsrn]
        return {"gsrn": gsrn, "delay_ms": body.delay_ms}

    @app.post("/accounting-points/{gsrn}/changes")
    async def change_accounting_point(gsrn: str, change: ChangeIn) -> Any:
        if datahub.record(gsrn) is None:
            return JSONResponse({"detail": "unknown gsrn"}, 404)
        record = datahub.mutate(gsrn, change.kind)
        emitted = await emitter.emit(changed_events([gsrn])) if change.emit else None
        return {"record": record, "emitted": emitted}

    @app.post("/events")
    async def emit_events(body: EventsIn) -> dict[str, Any]:
        return await emitter.emit(changed_events(body.gsrns))

    return app


def build_simulator(
    *,
    count: int = 50,
    seed: int = 1,
    port: int = 0,
    control_port: int = 0,
    token: str = "dev-adapter-token",
    latency_ms: float = 0,
    webhook_url: str | None = None,
    webhook_token: str | None = None,
    nats_url: str | None = None,
    nats_stream: str = _DEFAULTS["nats_stream"].default,
    nats_subject: str = _DEFAULTS["nats_subject"].default,
    tz: str = "Europe/Oslo",
    host: str = "127.0.0.1",
    control_token: str | None = None,
) -> tuple[SimulatorServer, Datahub]:
    """Everything wired and bound to its ports, not yet serving."""
    datahub = Datahub.generate(count, seed=seed, tz=tz)
    state = SimulatorState(latency_s=latency_ms / 1000)
    emitter = EventEmitter(
        webhook_url=webhook_url,
        webhook_token=webhook_token,
        nats_url=nats_url,
        nats_stream=nats_stream,
        nats_subject=nats_subject,
    )
    server = SimulatorServer(
        CountedCalls(GenericFaults(DataPort(datahub, state, token), state), state, token),
        create_control_app(datahub, state, emitter),
        state,
        data_token=token,
        host=host,
        port=port,
        control_port=control_port,
        control_token=control_token,
    )
    return server, datahub


start_simulator = serving_in_thread(build_simulator)
"""``build_simulator``, then serve on a background thread (tests, demo); ``stop()`` ends it."""
