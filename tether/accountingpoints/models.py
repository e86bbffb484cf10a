"""Records of the accounting point capability: what the adapter tells us, and what we store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class Direction(StrEnum):
    PRODUCTION = "production"
    CONSUMPTION = "consumption"


class EntityType(StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"


@dataclass(frozen=True, kw_only=True)
class Period:
    """A ``[valid_from, valid_to)`` validity period; ``valid_to=None`` is open-ended."""

    valid_from: datetime
    valid_to: datetime | None


@dataclass(frozen=True, kw_only=True)
class EndUserPeriod(Period):
    business_id: str
    entity_type: EntityType | None = None


@dataclass(frozen=True, kw_only=True)
class EnergySupplierPeriod(Period):
    business_id: str  # GLN


@dataclass(frozen=True, kw_only=True)
class GridAreaPeriod(Period):
    business_id: str  # EIC-Y code


@dataclass(frozen=True, kw_only=True)
class DirectionPeriod(Period):
    directions: tuple[Direction, ...]


@dataclass(frozen=True, kw_only=True)
class AccountingPointData:
    """One adapter answer, parsed and validated; safe to merge into the database."""

    gsrn: str
    end_users: tuple[EndUserPeriod, ...]
    energy_suppliers: tuple[EnergySupplierPeriod, ...]
    metering_grid_areas: tuple[GridAreaPeriod, ...]
    energy_directions: tuple[DirectionPeriod, ...] = ()
    latitude: float | None = None
    longitude: float | None = None
    # the answer gave one coordinate only: the location is unknown (both None), and flagged
    location_partial: bool = False
    unknown_fields: tuple[str, ...] = field(default=())


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One AP to sync: ``started_at`` is when its claim began (None: an unclaimed fetch)."""

    gsrn: str
    started_at: datetime | None
    earliest_start: date | None = None  # of its controllable units: the fetch window's start
    attempts: int = 1
    last_reason: str | None = None  # why the previous attempt failed (None: it did not)
    probe: bool = False  # claimed under the circuit's probe: one request, no retry


@dataclass(frozen=True, kw_only=True)
class SyncOutcome:
    gsrn: str
    ok: bool
    reason: str | None = None
    error: str | None = None


def internal_error(gsrn: str, exc: Exception) -> SyncOutcome:
    return SyncOutcome(
        gsrn=gsrn,
        ok=False,
        reason="internal_error",
        error=f"internal error {type(exc).__name__}: {exc}",
    )


@dataclass(frozen=True, kw_only=True)
class EventsOutcome:
    accepted: list[str]
    ignored: list[str]


@dataclass(frozen=True, kw_only=True)
class LookupResult:
    accounting_point: dict[str, Any]
    controllable_units: list[dict[str, Any]]
