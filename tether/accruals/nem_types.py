"""What the NEM12/NEM13 parser emits: columnar batches of channel-days and basic reads.

One batch holds numpy arrays, one element per channel-day (values n x 48/96/288), so a month of a
retailer's interval data never becomes one Python object per interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

#: values per day for each accepted interval length (minutes)
INTERVALS: dict[int, int] = {5: 288, 15: 96, 30: 48}

#: energy units (lower case) -> (multiplier, divisor) to kWh; v * mul / div is exact for kWh
ENERGY_UNITS: dict[str, tuple[float, float]] = {
    "kwh": (1.0, 1.0),
    "wh": (1.0, 1000.0),
    "mwh": (1000.0, 1.0),
}
#: other units (lower case) -> canonical spelling; kept in their own unit, not converted
OTHER_UNITS: dict[str, str] = {
    "kvarh": "kVArh",
    "varh": "VArh",
    "mvarh": "MVArh",
    "kvah": "kVAh",
    "vah": "VAh",
    "mvah": "MVAh",
    "kw": "kW",
    "kva": "kVA",
    "kvar": "kVAr",
    "w": "W",
    "pf": "pf",
}
QUALITY_METHOD = re.compile(r"^[AESFVN](\d\d)?$")
NAT = np.datetime64("NaT", "s")

F64 = npt.NDArray[np.float64]
Obj = npt.NDArray[np.object_]


def unit(text: str) -> tuple[str, float, float] | None:
    """(canonical uom, multiplier, divisor) for a UOM in any case; None when unknown."""
    key = text.strip().lower()
    if key in ENERGY_UNITS:
        mul, div = ENERGY_UNITS[key]
        return "kWh", mul, div
    if key in OTHER_UNITS:
        return OTHER_UNITS[key], 1.0, 1.0
    return None


@dataclass(frozen=True, kw_only=True)
class RowError:
    """A quarantined (or, for a rejected file, the fatal) row: 1-based line and why."""

    line: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class ChannelDays:
    """Channel-days of one interval length; row i of every array is one NMI-suffix-day.

    ``values`` are converted to kWh for energy units (other units keep theirs, see ``uom``);
    ``quality`` holds one ASCII flag per interval (A, E, S, F, N; V days resolved by their 400
    rows).
    """

    interval_length: int
    nmi: Obj
    register_id: Obj
    suffix: Obj
    uom: Obj
    day: npt.NDArray[np.datetime64]
    values: F64
    quality: npt.NDArray[np.uint8]
    quality_method: Obj
    reason_code: Obj
    reason_description: Obj
    update_datetime: npt.NDArray[np.datetime64]
    msats_load_datetime: npt.NDArray[np.datetime64]
    interval_methods: Obj  #: None, or for V days ((first, last, method, reason, desc), ...)
    line: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.nmi.shape[0])

    @property
    def totals(self) -> F64:
        """Day totals, in the channel's (converted) unit."""
        totals: F64 = self.values.sum(axis=1)
        return totals

    def qualities(self, i: int) -> str:
        """Row i's per-interval flags as one string, e.g. ``"AAAA...SS"``."""
        return str(self.quality[i].tobytes().decode("ascii"))


@dataclass(frozen=True, kw_only=True)
class BasicReads:
    """NEM13 accumulation reads (250 rows); ``quantity`` in kWh for energy units."""

    nmi: Obj
    register_id: Obj
    suffix: Obj
    meter_serial: Obj
    direction: Obj
    previous_read: F64
    previous_read_at: npt.NDArray[np.datetime64]
    previous_quality_method: Obj
    current_read: F64
    current_read_at: npt.NDArray[np.datetime64]
    current_quality_method: Obj
    current_reason_code: Obj
    quantity: F64
    uom: Obj
    next_scheduled_read: npt.NDArray[np.datetime64]
    update_datetime: npt.NDArray[np.datetime64]
    msats_load_datetime: npt.NDArray[np.datetime64]
    line: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.nmi.shape[0])


Batch = ChannelDays | BasicReads


class Clock:
    """Validated NEM dates and date-times as numpy day / second counts, cached by text.

    Interval dates repeat across thousands of channels, so the cache makes each one a dict hit.
    """

    def __init__(self) -> None:
        self._days: dict[str, int] = {}
        self._stamps: dict[str, int] = {}

    def day(self, text: str) -> int | None:
        """Days since 1970-01-01 for ``yyyyMMdd``; None when not a real date."""
        cached = self._days.get(text)
        if cached is not None:
            return cached
        s = text.strip()
        if len(s) != 8 or not s.isdigit():
            return None
        try:
            value = (date(int(s[:4]), int(s[4:6]), int(s[6:])) - date(1970, 1, 1)).days
        except ValueError:
            return None
        if len(self._days) < 100_000:
            self._days[text] = value
        return value

    def stamp(self, text: str, *, required: bool = False) -> int | None:
        """Seconds since epoch (market time) for ``yyyyMMddHHmmss``; NaT's int for blank."""
        cached = self._stamps.get(text)
        if cached is not None:
            return cached
        if not text and not required:  # blank (MSATSLoadDateTime often is): not cached
            return _NAT_INT
        value = self._stamp(text, required=required)
        if value is not None and value != _NAT_INT and len(self._stamps) < 100_000:
            self._stamps[text] = value
        return value

    def _stamp(self, text: str, *, required: bool) -> int | None:
        s = text.strip()
        if not s:
            return None if required else _NAT_INT
        if len(s) != 14 or not s.isdigit():
            return None
        day = self.day(s[:8])
        hh, mm, ss = int(s[8:10]), int(s[10:12]), int(s[12:14])
        if day is None or hh > 23 or mm > 59 or ss > 59:
            return None
        return day * 86400 + hh * 3600 + mm * 60 + ss


_NAT_INT = int(NAT.astype(np.int64))
