"""Client of the accounting point adapter (``accounting-point-adapter.openapi.yml``).

A tolerant reader: fields the contract does not name are ignored and counted, never fatal (the
reference broke every sync on a harmless extension). A strict validator: what the contract
requires, and what tether's rules demand (midnight-aligned, non-overlapping periods, known
enums, valid GSRN), is checked here, before the database sees anything.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import httpx
from prometheus_client import Counter
from pydantic import Field, StrictFloat, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

from tether.accountingpoints import domain
from tether.accountingpoints.errors import InvalidAccountingPointData
from tether.accountingpoints.models import (
    AccountingPointData,
    Direction,
    DirectionPeriod,
    EndUserPeriod,
    EnergySupplierPeriod,
    EntityType,
    GridAreaPeriod,
)
from tether.accountingpoints.settings import AccountingPointSettings
from tether.core.http import RetryPolicy, UpstreamClient
from tether.core.wire import Rfc3339, WireModel, first_error, note_unknown_fields

logger = logging.getLogger(__name__)

_SYSTEM = "accounting_point_adapter"

PARTIAL_LOCATIONS = Counter(
    "tether_ap_partial_locations_total",
    "Adapter answers with one coordinate only, stored as an unknown location",
)


class _Wire(WireModel):
    pass


class _Period(_Wire):
    valid_from: Rfc3339
    valid_to: Rfc3339 | None = None


class _EndUser(_Period):
    business_id: StrictStr
    entity_type: EntityType | None = None


class _BusinessPeriod(_Period):
    business_id: StrictStr


class _Direction(_Period):
    direction: list[Direction]


class _AccountingPoint(_Wire):
    gsrn: StrictStr
    end_user: list[_EndUser]
    energy_supplier: list[_BusinessPeriod]
    metering_grid_area: list[_BusinessPeriod]
    energy_direction: list[_Direction] | None = None
    # WGS84 ranges, as the contract says; the database checks them too, as a last line
    latitude: Annotated[StrictFloat | StrictInt, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[StrictFloat | StrictInt, Field(ge=-180, le=180)] | None = None


def parse_accounting_point(payload: Any, *, gsrn: str, tz: ZoneInfo) -> AccountingPointData:
    """Turn an adapter answer into validated records, or raise ``InvalidAccountingPointData``."""
    try:
        wire = _AccountingPoint.model_validate(payload)
    except PydanticValidationError as exc:
        raise InvalidAccountingPointData(
            f"adapter answer breaks the contract at {first_error(exc)}"
        ) from exc
    unknown = note_unknown_fields(_SYSTEM, wire)
    latitude, longitude, partial = _location(wire)
    data = AccountingPointData(
        gsrn=wire.gsrn,
        end_users=tuple(
            EndUserPeriod(
                valid_from=p.valid_from,
                valid_to=p.valid_to,
                business_id=p.business_id,
                entity_type=p.entity_type,
            )
            for p in wire.end_user
        ),
        energy_suppliers=tuple(
            EnergySupplierPeriod(
                valid_from=p.valid_from, valid_to=p.valid_to, business_id=p.business_id
            )
            for p in wire.energy_supplier
        ),
        metering_grid_areas=tuple(
            GridAreaPeriod(valid_from=p.valid_from, valid_to=p.valid_to, business_id=p.business_id)
            for p in wire.metering_grid_area
        ),
        energy_directions=tuple(
            DirectionPeriod(
                valid_from=p.valid_from, valid_to=p.valid_to, directions=tuple(p.direction)
            )
            for p in wire.energy_direction or []
        ),
        latitude=latitude,
        longitude=longitude,
        location_partial=partial,
        unknown_fields=tuple(unknown),
    )
    domain.validate(data, tz, requested_gsrn=gsrn)
    return data


def _location(wire: _AccountingPoint) -> tuple[float | None, float | None, bool]:
    """Both coordinates, or none; a lone one is a partial answer: unknown, flagged, counted.

    Half a position is no position, and keeping the one stored before could keep a place the
    AP has left, so the location becomes unknown until a whole answer comes.
    """
    if (wire.latitude is None) == (wire.longitude is None):
        if wire.latitude is None or wire.longitude is None:
            return None, None, False
        return float(wire.latitude), float(wire.longitude), False
    PARTIAL_LOCATIONS.inc()
    logger.warning(
        "accounting point %s: adapter sent one coordinate only; location stored as unknown",
        wire.gsrn,
        extra={"action": "location_partial"},
    )
    return None, None, True


class AdapterClient:
    """Reads accounting points from the adapter over the core upstream client."""

    def __init__(self, upstream: UpstreamClient, tz: ZoneInfo) -> None:
        self.upstream = upstream
        self.tz = tz

    @classmethod
    def from_settings(
        cls, settings: AccountingPointSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> AdapterClient:
        upstream = UpstreamClient(
            system=_SYSTEM,
            base_url=settings.adapter_url,
            token=settings.adapter_token.get_secret_value(),
            timeout=httpx.Timeout(settings.adapter_timeout_s, connect=2.0),
            retry=RetryPolicy(attempts=1 + settings.adapter_retries),
            transport=transport,
            max_connections=max(10, settings.fetch_concurrency),
        )
        return cls(upstream, ZoneInfo(settings.timezone))

    async def aclose(self) -> None:
        await self.upstream.aclose()

    async def get_accounting_point(
        self,
        gsrn: str,
        valid_from: datetime,
        valid_to: datetime | None = None,
        *,
        probe: bool = False,
    ) -> AccountingPointData:
        """``GET /accounting_point/{gsrn}``; ``valid_from`` is required by the contract. A
        circuit's ``probe`` is one request, not retried: the runbook promises one call."""
        params = {"valid_from": valid_from.isoformat()}
        if valid_to is not None:
            params["valid_to"] = valid_to.isoformat()
        attempts = 1 if probe else None
        path = f"/accounting_point/{gsrn}"
        payload = await self.upstream.get_json(path, params=params, attempts=attempts)
        return parse_accounting_point(payload, gsrn=gsrn, tz=self.tz)


def to_sync_payload(data: AccountingPointData) -> dict[str, Any]:
    """The JSON document ``ap.apply_sync`` merges."""

    def period(p: Any, **extra: Any) -> dict[str, Any]:
        return {
            "valid_from": p.valid_from.isoformat(),
            "valid_to": None if p.valid_to is None else p.valid_to.isoformat(),
            **extra,
        }

    payload: dict[str, Any] = {
        "end_user": [
            period(p, business_id=p.business_id, entity_type=p.entity_type) for p in data.end_users
        ],
        "energy_supplier": [period(p, business_id=p.business_id) for p in data.energy_suppliers],
        "metering_grid_area": [
            period(p, business_id=p.business_id) for p in data.metering_grid_areas
        ],
        "energy_direction": [
            period(p, direction=[str(d) for d in p.directions]) for p in data.energy_directions
        ],
        "latitude": data.latitude,
        "longitude": data.longitude,
    }
    if data.location_partial:
        payload["location_partial"] = True
    if data.unknown_fields:
        payload["unknown_fields"] = list(data.unknown_fields)
    return payload
