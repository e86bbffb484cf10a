"""HTTP routes of the accounting point capability."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tether.accountingpoints import intake, pii
from tether.accountingpoints.parties_api import router as parties_router
from tether.accountingpoints.service import AccountingPointService
from tether.core.auth import require
from tether.core.errors import InvalidInput
from tether.core.events import CloudEvent, parse_event
from tether.core.hotpath import hot
from tether.core.wire import first_error

router = APIRouter(prefix="/api/v1", tags=["accounting points"])


async def _service(request: Request) -> AccountingPointService:
    """Async: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request."""
    service: AccountingPointService = request.app.state.accounting_points
    return service


Service = Annotated[AccountingPointService, Depends(_service)]


class LookupIn(BaseModel):
    # the document says what the validator enforces: exactly one of the two is given
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["accounting_point"],
                    "properties": {
                        "accounting_point": {"type": "string"},
                        "controllable_unit": {"type": "null"},
                    },
                },
                {
                    "required": ["controllable_unit"],
                    "properties": {
                        "controllable_unit": {"type": "string"},
                        "accounting_point": {"type": "null"},
                    },
                },
            ]
        }
    )
    end_user: str = Field(pattern=r"^[1-9][0-9]{8}$|^[0-9]{11}$", description="Org or person id.")
    accounting_point: str | None = Field(default=None, description="GSRN of the AP.")
    controllable_unit: UUID | None = Field(default=None, description="Business id of a CU.")

    @model_validator(mode="after")
    def _exactly_one(self) -> LookupIn:
        if (self.accounting_point is None) == (self.controllable_unit is None):
            raise ValueError("give exactly one of accounting_point and controllable_unit")
        return self


class Period(BaseModel):
    valid_from: datetime
    valid_to: datetime | None
    value: str
    name: str | None = None


class SyncState(BaseModel):
    last_sync_start: datetime | None
    last_synced_at: datetime | None
    version: int
    next_sync_at: datetime | None
    requested_at: datetime | None
    attempts: int
    last_error: str | None
    last_error_reason: str | None
    last_error_at: datetime | None
    unknown_fields: list[str] | None


class ControllableUnitOut(BaseModel):
    business_id: UUID
    name: str
    accounting_point: str
    start_date: date | None
    created_at: datetime


class AccountingPointOut(BaseModel):
    gsrn: str
    latitude: float | None
    longitude: float | None
    location_partial: bool = Field(
        description="The datahub's last answer gave one coordinate only: location unknown."
    )
    end_user: list[Period] = []
    energy_supplier: list[Period] = []
    metering_grid_area: list[Period] = []
    energy_direction: list[Period] = []
    sync: SyncState
    controllable_units: list[ControllableUnitOut] = []


class LookupOut(BaseModel):
    accounting_point: AccountingPointOut
    controllable_units: list[ControllableUnitOut]


class ControllableUnitIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    accounting_point: str = Field(description="GSRN of the AP the unit sits on.")
    start_date: date | None = None


class EventsOut(BaseModel):
    accepted: list[str]
    ignored: list[str]


class HistoryRow(BaseModel):
    kind: str
    valid_from: datetime | None
    valid_to: datetime | None
    value: str | None
    history_operation: str
    recorded_from: datetime | None
    recorded_to: datetime | None
    replaced_by: str | None


def _cu(row: dict[str, Any]) -> ControllableUnitOut:
    return ControllableUnitOut(
        business_id=row["business_id"],
        name=row["name"],
        accounting_point=row["gsrn"],
        start_date=row["start_date"],
        created_at=row["created_at"],
    )


def _ap_out(
    ap: dict[str, Any], timelines: list[dict[str, Any]], units: list[dict[str, Any]]
) -> AccountingPointOut:
    out = AccountingPointOut(
        gsrn=ap["gsrn"],
        latitude=ap["latitude"],
        longitude=ap["longitude"],
        location_partial=ap["location_partial"],
        sync=SyncState.model_validate(ap),
        controllable_units=[_cu(u) for u in units],
    )
    for t in timelines:
        getattr(out, t["kind"]).append(
            Period(
                valid_from=t["valid_from"],
                valid_to=t["valid_to"],
                value=pii.masked(t["value"]) if t["kind"] == "end_user" else t["value"],
                name=t["extra"],
            )
        )
    return out


# The hot route (one POST per event from a datahub): ``@hot`` serves it without FastAPI's routing
# and dependency solving (core/hotpath.py), with this same requirement and endpoint.
@router.post("/events", response_model=EventsOut, status_code=202, dependencies=[require("events")])
@hot
async def receive_events(request: Request) -> Response:
    """Thin change events (CloudEvents JSON, one event or a batch array).

    Scope `events` (an API key, or TETHER_EVENTS_TOKEN as before). Each event names a GSRN
    (`data.gsrn` or `subject`) and has one of the accepted types (TETHER_AP_EVENT_TYPES); the AP
    is marked changed and synced by a worker. A batch holds at most TETHER_AP_MAX_EVENTS_PER_BATCH
    events. Any bad event (a type not accepted, no GSRN, a malformed GSRN: not 18 digits with a
    valid GS1 check digit) refuses the whole request (422, naming the event's position) and
    causes no sync. Events for well-formed GSRNs of APs tether does not hold are ignored and
    reported in `ignored`.
    """
    service = await _service(request)  # not a dependency: one less to solve per request
    settings = service.settings
    raw = await request.body()
    if raw.lstrip().startswith(b"["):
        try:
            items = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise InvalidInput("event batch is not JSON (or nested too deep)") from exc
        limit = settings.max_events_per_batch
        if not isinstance(items, list) or len(items) > limit:
            raise InvalidInput(f"an event batch is an array of at most {limit}")
        try:
            events = [CloudEvent.model_validate(item) for item in items]
        except ValidationError as exc:
            raise InvalidInput(f"not a CloudEvent: {first_error(exc)}") from exc
    else:
        events = [parse_event(raw)]
    accepted = settings.event_types
    if wrong := next((e.type for e in events if e.type not in accepted), None):
        raise InvalidInput(f"event type {wrong[:100]!r} is not accepted (accepted: {accepted})")
    gsrns = [g for e in events if (g := intake.event_gsrn(e))]
    if len(gsrns) != len(events):
        raise InvalidInput("every event must name a GSRN in data.gsrn or subject")
    intake.refuse_malformed(gsrns)
    outcome = await service.handle_changed(gsrns)
    # the answer as bytes: EventsOut documents it, but validating and serialising it through
    # the response model was a measurable share of a single-event request
    body = {"accepted": outcome.accepted, "ignored": outcome.ignored}
    return Response(json.dumps(body).encode(), status_code=202, media_type="application/json")


@router.post("/controllable-unit/lookup", response_model=LookupOut, dependencies=[require("write")])
async def lookup(body: LookupIn, service: Service) -> LookupOut:
    """Find an AP (fetched from the datahub at once if unknown) and its controllable units.

    403 when `end_user` is not the AP's current end user; 404 when neither tether nor the
    datahub knows the AP or CU; 503 when the datahub cannot be reached (try again later).
    """
    result = await service.lookup(
        end_user=body.end_user,
        gsrn=body.accounting_point,
        controllable_unit=None if body.controllable_unit is None else str(body.controllable_unit),
    )
    ap, timelines, units = await service.get(result.accounting_point["gsrn"])
    return LookupOut(
        accounting_point=_ap_out(ap, timelines, units),
        controllable_units=[_cu(u) for u in result.controllable_units],
    )


@router.post(
    "/controllable-units",
    response_model=ControllableUnitOut,
    status_code=201,
    dependencies=[require("write")],
)
async def register_controllable_unit(body: ControllableUnitIn, service: Service) -> Any:
    """Register a controllable unit; its AP is fetched now if unknown and synced from then on."""
    row = await service.register_controllable_unit(
        gsrn=body.accounting_point, name=body.name, start_date=body.start_date
    )
    return _cu(row)


@router.get(
    "/accounting-points/{gsrn}", response_model=AccountingPointOut, dependencies=[require("read")]
)
async def get_accounting_point(gsrn: str, service: Service) -> AccountingPointOut:
    """The stored AP: location, every timeline, sync state and controllable units.

    422 for a malformed GSRN (as in a lookup), 404 for a well-formed one tether does not hold.
    """
    return _ap_out(*(await service.get(gsrn)))


@router.get(
    "/accounting-points/{gsrn}/history",
    response_model=list[HistoryRow],
    dependencies=[require("read")],
)
async def get_history(gsrn: str, service: Service) -> Any:
    """Every replaced or deleted version of the AP and its timelines, newest first.

    Person end users are masked, as everywhere in the API. 422 for a malformed GSRN.
    """
    rows = await service.history(gsrn)
    return [{**r, "value": pii.masked(r["value"])} if r["kind"] == "end_user" else r for r in rows]


router.include_router(parties_router)
