"""NEM13 (accumulation meter) 250 rows, validated one by one and gathered into columns."""

from __future__ import annotations

import math

import numpy as np

from tether.accruals.nem_types import QUALITY_METHOD, BasicReads, Clock, unit


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _bad_fields(f: list[str]) -> str | None:
    if len(f) != BasicReadColumns.FIELDS:
        return f"250 row has {len(f)} fields, expected {BasicReadColumns.FIELDS}"
    nmi, suffix = f[1], f[4]
    if len(nmi) != 10 or not nmi.isalnum():
        return f"bad NMI {nmi!r}"
    if not suffix or len(suffix) > 2 or not suffix.isalnum():
        return f"bad NMISuffix {suffix!r}"
    if f[7] not in ("E", "I"):
        return f"bad DirectionIndicator {f[7]!r} (E or I)"
    if unit(f[19]) is None:
        return f"unknown UOM {f[19]!r}"
    for i, name in ((8, "PreviousRegisterRead"), (13, "CurrentRegisterRead"), (18, "Quantity")):
        if _number(f[i]) is None:
            return f"{name} {f[i]!r} is not a number"
    return None


class BasicReadColumns:
    """Accumulates valid 250 rows; :meth:`take` empties it into a :class:`BasicReads`."""

    FIELDS = 23

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._rows: list[tuple[object, ...]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, parts: list[str], line: int) -> str | None:
        """Validate and keep one 250 row; the reason it is quarantined, or None."""
        f = [p.strip() for p in parts]
        problem = _bad_fields(f)
        if problem is not None:
            return problem
        uom = unit(f[19])
        prev, cur, qty = _number(f[8]), _number(f[13]), _number(f[18])
        if uom is None or prev is None or cur is None or qty is None:
            return "250 row UOM or register reads or Quantity unreadable"
        if qty < 0:
            return f"negative Quantity {f[18]}"
        clock = self._clock
        prev_at = clock.stamp(f[9], required=True)
        cur_at = clock.stamp(f[14], required=True)
        if prev_at is None or cur_at is None:
            return "bad PreviousRegisterReadDateTime or CurrentRegisterReadDateTime"
        if cur_at < prev_at:
            return "CurrentRegisterReadDateTime is before PreviousRegisterReadDateTime"
        for qm in (f[10], f[15]):
            if not QUALITY_METHOD.fullmatch(qm) or qm[0] == "V":
                return f"bad QualityMethod {qm!r}"
        nxt = clock.day(f[20]) if f[20] else -(2**63)
        update, msats = clock.stamp(f[21]), clock.stamp(f[22])
        if nxt is None:
            return f"bad NextScheduledReadDate {f[20]!r}"
        if update is None or msats is None:
            return "bad UpdateDateTime or MSATSLoadDateTime"
        name, mul, div = uom
        self._rows.append(
            (f[1], f[3], f[4], f[6], f[7], prev, prev_at, f[10], cur, cur_at, f[15], f[16],
             qty * mul / div, name, nxt, update, msats, line)
        )  # fmt: skip
        return None

    def take(self) -> BasicReads:
        cols = list(zip(*self._rows, strict=True))
        self._rows = []

        def obj(i: int) -> np.ndarray:
            return np.array(cols[i], dtype=object)

        def f64(i: int) -> np.ndarray:
            return np.array(cols[i], dtype=np.float64)

        def sec(i: int) -> np.ndarray:
            return np.array(cols[i], dtype=np.int64).astype("datetime64[s]")

        return BasicReads(
            nmi=obj(0),
            register_id=obj(1),
            suffix=obj(2),
            meter_serial=obj(3),
            direction=obj(4),
            previous_read=f64(5),
            previous_read_at=sec(6),
            previous_quality_method=obj(7),
            current_read=f64(8),
            current_read_at=sec(9),
            current_quality_method=obj(10),
            current_reason_code=obj(11),
            quantity=f64(12),
            uom=obj(13),
            next_scheduled_read=np.array(cols[14], dtype=np.int64).astype("datetime64[D]"),
            update_datetime=sec(15),
            msats_load_datetime=sec(16),
            line=np.array(cols[17], dtype=np.int64),
        )
