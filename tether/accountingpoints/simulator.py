"""A fake national datahub behind the accounting point adapter contract, with fault modes.

It is the reference adapter: the contract tests run the OpenAPI file against it, the demo and the
e2e tests sync from it, and its control port changes accounting points and emits the thin change
events the real datahub would send (webhook and/or NATS JetStream).
"""

from __future__ import annotations

import copy
import hmac
import random
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Body, FastAPI, Query
from pydantic import BaseModel
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from tether.accountingpoints.domain import local_midnight, make_gsrn
from tether.accountingpoints.reference import ENERGY_SUPPLIERS, GRID_AREAS
from tether.core.events import NATS_STREAM, NATS_SUBJECT, CloudEvent, EventEmitter, make_event
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

Record = dict[str, Any]
ONE_DAY = timedelta(days=1)
EVENT_TYPE = "no.datahub.accounting_point.changed"
EVENT_SOURCE = "/simulator/datahub"
_TIMELINES = ("end_user", "energy_supplier", "metering_grid_area", "energy_direction")
_WINDOWS_PER_GSRN = 4  # serialized answers kept per AP; a client uses one or two windows
_ROUTE = re.compile(r"/accounting_point/([^/]+)")
_GSRN_PATH = re.compile(r"[0-9]{18}")
_CHALLENGE = (b"www-authenticate", b"Bearer")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


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


class ChangeKind(StrEnum):
    """What ``Datahub.mutate`` can change on an accounting point."""

    SUPPLIER_SWITCH = "supplier_switch"
    MOVE = "move"
    GRID_AREA_CHANGE = "grid_area_change"
    RELOCATE = "relocate"


def _parse(moment: str) -> datetime:
    """An RFC 3339 date-time (offset required), or ``ValueError``."""
    if not _RFC3339.fullmatch(moment):
        raise ValueError(f"not an RFC 3339 date-time: {moment!r}")
    return datetime.fromisoformat(moment.upper().replace("Z", "+00:00"))


def _end_user(rng: random.Random) -> Record:
    if rng.random() < 0.35:
        return {
            "business_id": str(rng.randrange(100_000_000, 1_000_000_000)),
            "entity_type": "organisation",
        }
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(60 * 365))
    return {"business_id": f"{born:%d%m%y}{rng.randrange(100_000):05d}", "entity_type": "person"}


def _other(rng: random.Random, choices: list[str], current: str | None) -> str:
    return rng.choice([c for c in choices if c != current] or choices)


def _position(rng: random.Random) -> tuple[float, float]:
    """Somewhere in mainland Norway, roughly."""
    return round(rng.uniform(58.0, 70.5), 5), round(rng.uniform(5.0, 30.0), 5)


def _change_days(rng: random.Random, first: date, last: date, count: int) -> list[date]:
    span = (last - first).days
    picked = rng.sample(range(1, span + 1), min(count, max(span, 0)))
    return [first + timedelta(days=d) for d in sorted(picked)]


class Datahub:
    """Accounting points with their timelines, held in memory as adapter-shaped JSON."""

    def __init__(self, *, tz: str = "Europe/Oslo", seed: int = 1, today: date | None = None):
        self.tz = ZoneInfo(tz)
        self.seed = seed
        self._today = today
        self._records: dict[str, Record] = {}
        self._answers: dict[str, dict[tuple[datetime, datetime | None], bytes]] = {}
        self._rng = random.Random(f"{seed}:changes")

    @property
    def gsrns(self) -> list[str]:
        """Every GSRN held, generated ones first in serial order."""
        return list(self._records)

    def today(self) -> date:
        """The local date (fixed when generated with ``today=``, so tests can predict)."""
        return self._today or datetime.now(self.tz).date()

    def _iso(self, day: date) -> str:
        return local_midnight(day, self.tz).isoformat()

    @classmethod
    def generate(
        cls,
        count: int,
        *,
        seed: int = 1,
        tz: str = "Europe/Oslo",
        start: date = date(2021, 1, 1),
        gsrn_prefix: str = "70705750",
        today: date | None = None,
    ) -> Datahub:
        """``count`` APs; serial ``n`` is ``make_gsrn(gsrn_prefix, n)``, the same for any count."""
        hub = cls(tz=tz, seed=seed, today=today)
        for serial in range(1, count + 1):
            gsrn = make_gsrn(gsrn_prefix, serial)
            hub._records[gsrn] = hub._generate_one(gsrn, random.Random(f"{seed}:{serial}"), start)
        return hub

    def _timeline(self, created: date, days: list[date], values: list[Record]) -> list[Record]:
        bounds: list[date | None] = [created, *days, None]
        return [
            {**value, "valid_from": self._iso(first), "valid_to": last and self._iso(last)}
            for value, first, last in zip(values, bounds, bounds[1:], strict=False)
            if first is not None
        ]

    def _generate_one(self, gsrn: str, rng: random.Random, start: date) -> Record:
        today = self.today()
        created = start + timedelta(days=rng.randrange(int(max(0, (today - start).days) * 0.7) + 1))
        moves = _change_days(rng, created, today, rng.choice([0, 0, 1, 1, 2, 3]))
        switches = _change_days(rng, created, today, rng.choice([0, 1, 1, 2, 3, 5]))
        mga_moves = _change_days(rng, created, today, int(rng.random() < 0.1))
        suppliers: list[str] = []
        for _ in range(len(switches) + 1):
            suppliers.append(
                _other(rng, list(ENERGY_SUPPLIERS), suppliers[-1] if suppliers else None)
            )
        areas: list[str] = []
        for _ in range(len(mga_moves) + 1):
            areas.append(_other(rng, list(GRID_AREAS), areas[-1] if areas else None))
        record: Record = {
            "gsrn": gsrn,
            "end_user": self._timeline(
                created, moves, [_end_user(rng) for _ in range(len(moves) + 1)]
            ),
            "energy_supplier": self._timeline(
                created, switches, [{"business_id": s} for s in suppliers]
            ),
            "metering_grid_area": self._timeline(
                created, mga_moves, [{"business_id": a} for a in areas]
            ),
        }
        roll = rng.random()
        if roll < 0.85:  # some adapters omit directions for plain consumers; so do 5% here
            prosumer = _change_days(rng, created, today, int(roll < 0.15))
            directions = [["consumption"], ["consumption", "production"]][: len(prosumer) + 1]
            values = [{"direction": d} for d in directions]
            record["energy_direction"] = self._timeline(created, prosumer, values)
        elif roll < 0.95:
            record["energy_direction"] = self._timeline(
                created, [], [{"direction": ["consumption"]}]
            )
        if rng.random() < 0.9:
            record["latitude"], record["longitude"] = _position(rng)
        return record

    def record(self, gsrn: str) -> Record | None:
        """The full stored record (a copy), or ``None`` for an unknown GSRN."""
        found = self._records.get(gsrn)
        return copy.deepcopy(found) if found is not None else None

    def put(self, gsrn: str, record: Record) -> None:
        """Install ``record`` exactly as given (it may even break the contract)."""
        self._records[gsrn] = copy.deepcopy(record)
        self._answers.pop(gsrn, None)

    def _windowed(
        self, gsrn: str, valid_from: datetime, valid_to: datetime | None
    ) -> Record | None:
        """Periods overlapping ``[valid_from, valid_to)``, unclipped; shares the stored periods."""
        found = self._records.get(gsrn)
        if found is None:
            return None
        answer = dict(found)
        for key in _TIMELINES:
            if isinstance(answer.get(key), list):
                answer[key] = [p for p in answer[key] if _overlaps(p, valid_from, valid_to)]
        return answer

    def answer(self, gsrn: str, valid_from: datetime, valid_to: datetime | None) -> Record | None:
        """What the adapter returns (a copy the caller may change), or ``None`` if unknown."""
        return copy.deepcopy(self._windowed(gsrn, valid_from, valid_to))

    def answer_json(
        self, gsrn: str, valid_from: datetime, valid_to: datetime | None
    ) -> bytes | None:
        """``answer`` as the data port sends it; cached until ``put``/``mutate`` change the AP."""
        windows = self._answers.setdefault(gsrn, {}) if gsrn in self._records else {}
        body = windows.get((valid_from, valid_to))
        if body is None:
            answer = self._windowed(gsrn, valid_from, valid_to)
            if answer is None:
                return None
            if len(windows) >= _WINDOWS_PER_GSRN:
                windows.clear()
            body = windows[valid_from, valid_to] = json_bytes(answer)
        return body

    def mutate(self, gsrn: str, kind: str) -> Record:
        """Apply one change from tomorrow's local midnight; ``KeyError``/``ValueError`` if bad."""
        record = self._records[gsrn]
        self._answers.pop(gsrn, None)
        change = ChangeKind(kind)
        rng = self._rng
        if change is ChangeKind.RELOCATE:
            record["latitude"], record["longitude"] = _position(rng)
            return copy.deepcopy(record)
        key, make = {
            ChangeKind.SUPPLIER_SWITCH: (
                "energy_supplier",
                lambda cur: {"business_id": _other(rng, list(ENERGY_SUPPLIERS), cur)},
            ),
            ChangeKind.MOVE: ("end_user", lambda _cur: _end_user(rng)),
            ChangeKind.GRID_AREA_CHANGE: (
                "metering_grid_area",
                lambda cur: {"business_id": _other(rng, list(GRID_AREAS), cur)},
            ),
        }[change]
        self._switch(record.setdefault(key, []), make)
        return copy.deepcopy(record)

    def _switch(self, periods: list[Record], make: Callable[[str | None], Record]) -> None:
        boundary = self.today() + ONE_DAY
        current = None
        if periods:
            last = max(periods, key=lambda p: _parse(p["valid_from"]))
            current = last.get("business_id")
            started = _parse(last["valid_from"]).astimezone(self.tz).date()
            boundary = max(boundary, started + ONE_DAY)
            if last.get("valid_to") is not None:
                boundary = max(boundary, _parse(last["valid_to"]).astimezone(self.tz).date())
            else:
                last["valid_to"] = self._iso(boundary)
        periods.append({**make(current), "valid_from": self._iso(boundary), "valid_to": None})


def _overlaps(period: Record, start: datetime, end: datetime | None) -> bool:
    try:
        begins = _parse(period["valid_from"])
        ends = None if period.get("valid_to") is None else _parse(period["valid_to"])
    except (KeyError, TypeError, ValueError):
        return True  # an installed odd record: show it, let the client judge
    return (ends is None or ends > start) and (end is None or begins < end)


# --- capability faults: each turns a correct answer into a specific wrong (or new) one ---------


def _unknown_fields(body: Record, tz: ZoneInfo) -> Record:
    body["metering_point_category"] = "simulated-extension"
    body["x_datahub"] = {"revision": 7}
    for key in _TIMELINES:
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
        other = _other(random.Random(0), list(ENERGY_SUPPLIERS), first.get("business_id"))
        periods.append({"business_id": other, "valid_from": first["valid_from"], "valid_to": None})
    return body


def _not_midnight(body: Record, tz: ZoneInfo) -> Record:
    periods = body.get("end_user") or []
    if periods:
        local = _parse(periods[0]["valid_from"]).astimezone(tz)
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


_BODY_FAULTS: dict[str, Callable[[Record, ZoneInfo], Record]] = {
    DatahubFault.UNKNOWN_FIELDS: _unknown_fields,
    DatahubFault.CONTRACT_VIOLATION: _contract_violation,
    DatahubFault.OVERLAPPING: _overlapping,
    DatahubFault.NOT_MIDNIGHT: _not_midnight,
    DatahubFault.UNKNOWN_ENUM: _unknown_enum,
}


def _window(params: dict[str, str]) -> tuple[datetime, datetime | None]:
    raw_from, raw_to = params.get("valid_from"), params.get("valid_to")
    if raw_from is None:
        raise ValueError("valid_from is required")
    return _parse(raw_from), None if raw_to is None else _parse(raw_to)


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
        self.state.calls[gsrn] += 1
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
    nats_stream: str = NATS_STREAM,
    nats_subject: str = NATS_SUBJECT,
    tz: str = "Europe/Oslo",
    host: str = "127.0.0.1",
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
        GenericFaults(DataPort(datahub, state, token), state),
        create_control_app(datahub, state, emitter),
        state,
        host=host,
        port=port,
        control_port=control_port,
    )
    return server, datahub


start_simulator = serving_in_thread(build_simulator)
"""``build_simulator``, then serve on a background thread (tests, demo); ``stop()`` ends it."""
