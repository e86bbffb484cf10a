"""The simulated datahub's data: generated accounting points with their timelines, in memory.

Generation is deterministic per seed and serial; ``mutate`` plays the changes a real datahub
sees (supplier switch, move, grid area change, relocation), and ``answer``/``answer_json`` window
a record the way the adapter contract does. ``simulator.py`` serves it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from tether.accountingpoints.domain import local_midnight, make_gsrn
from tether.accountingpoints.reference import ENERGY_SUPPLIERS, GRID_AREAS
from tether.core.simulator import json_bytes
from tether.core.wire import parse_rfc3339

Record = dict[str, Any]
Window = tuple[datetime, datetime | None]
ONE_DAY = timedelta(days=1)
TIMELINES = ("end_user", "energy_supplier", "metering_grid_area", "energy_direction")
_WINDOWS_PER_GSRN = 4  # serialized answers kept per AP; a client uses one or two windows


class ChangeKind(StrEnum):
    """What ``Datahub.mutate`` can change on an accounting point."""

    SUPPLIER_SWITCH = "supplier_switch"
    MOVE = "move"
    GRID_AREA_CHANGE = "grid_area_change"
    RELOCATE = "relocate"


def _end_user(rng: random.Random) -> Record:
    if rng.random() < 0.35:
        return {
            "business_id": str(rng.randrange(100_000_000, 1_000_000_000)),
            "entity_type": "organisation",
        }
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(60 * 365))
    return {"business_id": f"{born:%d%m%y}{rng.randrange(100_000):05d}", "entity_type": "person"}


def pick_other(rng: random.Random, choices: list[str], current: str | None) -> str:
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
        self._answers: dict[str, dict[Window, bytes]] = {}
        self._rng = random.Random(f"{seed}:changes")
        self.delays: dict[str, float] = {}  # gsrn -> seconds its answers take (one slow AP)

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
                pick_other(rng, list(ENERGY_SUPPLIERS), suppliers[-1] if suppliers else None)
            )
        areas: list[str] = []
        for _ in range(len(mga_moves) + 1):
            areas.append(pick_other(rng, list(GRID_AREAS), areas[-1] if areas else None))
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

    def answer(self, gsrn: str, valid_from: datetime, valid_to: datetime | None) -> Record | None:
        """What the adapter returns (a copy the caller may change), or ``None`` if unknown."""
        found = self._records.get(gsrn)
        return None if found is None else copy.deepcopy(_windowed(found, valid_from, valid_to))

    def answer_json(
        self, gsrn: str, valid_from: datetime, valid_to: datetime | None
    ) -> bytes | None:
        """``answer`` as the data port sends it; cached until ``put``/``mutate`` change the AP."""
        found = self._records.get(gsrn)
        if found is None:
            return None
        windows, window = self._answers.setdefault(gsrn, {}), (valid_from, valid_to)
        body = windows.get(window)
        if body is None:
            if len(windows) >= _WINDOWS_PER_GSRN:
                windows.clear()
            body = windows[window] = json_bytes(_windowed(found, valid_from, valid_to))
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
                lambda cur: {"business_id": pick_other(rng, list(ENERGY_SUPPLIERS), cur)},
            ),
            ChangeKind.MOVE: ("end_user", lambda _cur: _end_user(rng)),
            ChangeKind.GRID_AREA_CHANGE: (
                "metering_grid_area",
                lambda cur: {"business_id": pick_other(rng, list(GRID_AREAS), cur)},
            ),
        }[change]
        self._switch(record.setdefault(key, []), make)
        return copy.deepcopy(record)

    def _switch(self, periods: list[Record], make: Callable[[str | None], Record]) -> None:
        boundary = self.today() + ONE_DAY
        current = None
        if periods:
            last = max(periods, key=lambda p: parse_rfc3339(p["valid_from"]))
            current = last.get("business_id")
            started = parse_rfc3339(last["valid_from"]).astimezone(self.tz).date()
            boundary = max(boundary, started + ONE_DAY)
            if last.get("valid_to") is not None:
                boundary = max(boundary, parse_rfc3339(last["valid_to"]).astimezone(self.tz).date())
            else:
                last["valid_to"] = self._iso(boundary)
        periods.append({**make(current), "valid_from": self._iso(boundary), "valid_to": None})


def _windowed(record: Record, start: datetime, end: datetime | None) -> Record:
    """Periods overlapping ``[start, end)``, unclipped; shares the stored period dicts."""
    answer = dict(record)
    for key in TIMELINES:
        if isinstance(answer.get(key), list):
            answer[key] = [p for p in answer[key] if _overlaps(p, start, end)]
    return answer


def _overlaps(period: Record, start: datetime, end: datetime | None) -> bool:
    try:
        begins = parse_rfc3339(period["valid_from"])
        ends = None if period.get("valid_to") is None else parse_rfc3339(period["valid_to"])
    except (KeyError, TypeError, ValueError):
        return True  # an installed odd record: show it, let the client judge
    return (ends is None or ends > start) and (end is None or begins < end)
