"""Reading stored meter data back: one NMI's channel-days and basic reads between two dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.sql import load_queries

queries = load_queries("tether.accruals")


@dataclass(frozen=True, kw_only=True)
class ChannelDayRow:
    nmi: str
    suffix: str
    register_id: str
    uom: str
    interval_length: int
    day: date
    values: list[float]  #: kWh for energy channels
    qualities: str  #: one flag per interval
    quality_method: str
    total: float
    update_datetime: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ChannelDayRow:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def as_json(self) -> dict[str, Any]:
        return {
            "suffix": self.suffix, "register_id": self.register_id, "uom": self.uom,
            "interval_length": self.interval_length, "date": self.day.isoformat(),
            "values": self.values, "qualities": self.qualities,
            "quality_method": self.quality_method, "total": self.total,
            "update_datetime": _iso(self.update_datetime),
        }  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class BasicReadRow:
    nmi: str
    register_id: str
    suffix: str
    direction: str
    previous_read_at: datetime
    current_read_at: datetime
    quantity: float  #: kWh for energy registers
    uom: str
    current_quality: str
    update_datetime: datetime | None
    source: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BasicReadRow:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def as_json(self) -> dict[str, Any]:
        return {
            "register_id": self.register_id, "suffix": self.suffix, "direction": self.direction,
            "previous_read_at": _iso(self.previous_read_at),
            "current_read_at": _iso(self.current_read_at), "quantity": self.quantity,
            "uom": self.uom, "current_quality": self.current_quality,
            "update_datetime": _iso(self.update_datetime), "source": self.source,
        }  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class MeterData:
    nmi: str
    channel_days: list[ChannelDayRow]
    basic_reads: list[BasicReadRow]

    def as_json(self) -> dict[str, Any]:
        return {
            "nmi": self.nmi,
            "channel_days": [c.as_json() for c in self.channel_days],
            "basic_reads": [b.as_json() for b in self.basic_reads],
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def read_meter_data(
    pool: AsyncConnectionPool[Any], nmi: str, date_from: date, date_to: date
) -> MeterData:
    """Channel-days with ``date_from <= day <= date_to`` and basic reads overlapping it."""
    params = {"nmi": nmi, "date_from": date_from, "date_to": date_to}
    async with pool.connection() as conn:
        days = await db.fetch_all(conn, queries["md_channel_days_of_nmi"], params)
        reads = await db.fetch_all(conn, queries["md_basic_reads_of_nmi"], params)
    return MeterData(
        nmi=nmi,
        channel_days=[ChannelDayRow.from_row(r) for r in days],
        basic_reads=[BasicReadRow.from_row(r) for r in reads],
    )
