"""The generator's writers: real NEM12 (200/300/400/500/900) and NEM13 (250/550) files.

Values are whole Wh written as kWh with three decimals through a lookup table of their text, so
a row costs one ``join`` instead of 48-288 float formats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

MAX_WH = 199_999  #: the largest interval value written (199.999 kWh); larger values are capped
_TABLE: npt.NDArray[np.object_] | None = None

# day status codes
ACTUAL, MISSING, ESTIMATE, SUBSTITUTE, VARIABLE = 0, 1, 2, 3, 4


def _table() -> npt.NDArray[np.object_]:
    global _TABLE
    if _TABLE is None:
        _TABLE = np.array([f"{i / 1000:.3f}" for i in range(MAX_WH + 1)], dtype=object)
    return _TABLE


@dataclass(frozen=True, kw_only=True)
class ChannelBlock:
    """One channel's days in one file: a 200 row, then a 300 row per day not missing."""

    nmi: str
    suffix: str
    register_id: str
    interval: int
    days: list[str]  #: yyyyMMdd
    updates: list[str]  #: UpdateDateTime per day
    wh: npt.NDArray[np.int64]  #: days x intervals
    status: npt.NDArray[np.int64]  #: per day: ACTUAL, MISSING, ...
    cut: npt.NDArray[np.int64]  #: per day (a, b): a V day's intervals a+1..b are estimated


def _lines(block: ChannelBlock) -> Iterable[str]:
    width = block.wh.shape[1]
    config = "E1B1" if block.suffix in ("E1", "B1") else "E1E2"
    yield (
        f"200,{block.nmi},{config},{block.register_id},{block.suffix},N{block.suffix[1]},"
        f"M{block.nmi[-6:]},kWh,{block.interval},"
    )
    texts = _table()[block.wh]
    status = block.status.tolist()
    for d, day in enumerate(block.days):
        code = status[d]
        if code == MISSING:
            continue
        quality = ("A", "", "E52", "S14", "V")[code]
        values = ",".join(texts[d].tolist())
        yield f"300,{day},{values},{quality},,,{block.updates[d]},"
        if code == VARIABLE:
            a, b = int(block.cut[d, 0]), int(block.cut[d, 1])
            yield f"400,1,{a},A,,"
            yield f"400,{a + 1},{b},E52,,"
            if b < width:
                yield f"400,{b + 1},{width},A,,"


def write_nem12(path: Path, created: str, blocks: Iterable[ChannelBlock]) -> tuple[int, int]:
    """Write one NEM12 file; (channel-days, values) written."""
    days = values = 0
    with path.open("w", newline="\r\n") as out:
        out.write(f"100,NEM12,{created},MDP1,RETAILER\n")
        for block in blocks:
            written = int((block.status != MISSING).sum())
            days += written
            values += written * block.wh.shape[1]
            out.write("\n".join(_lines(block)))
            out.write("\n")
        out.write("900\n")
    return days, values


def write_nem13(path: Path, created: str, rows: Iterable[str]) -> int:
    """Write one NEM13 file of 250 rows (each followed by a 550 row); rows written."""
    count = 0
    with path.open("w", newline="\r\n") as out:
        out.write(f"100,NEM13,{created},MDP1,RETAILER\n")
        for row in rows:
            out.write(row + "\n550,N,,A,\n")
            count += 1
        out.write("900\n")
    return count


def basic_row(
    *, nmi: str, previous: tuple[int, str], current: tuple[int, str], quality: str, nxt: str,
    update: str,
) -> str:  # fmt: skip
    """One 250 row; register reads in tenths of kWh, datetimes as yyyyMMddHHmmss."""
    (prev_reg, prev_at), (cur_reg, cur_at) = previous, current
    quantity = cur_reg - prev_reg
    return (
        f"250,{nmi},11,1,11,11,M{nmi[-6:]},E,{prev_reg / 10:08.1f},{prev_at},A,,,"
        f"{cur_reg / 10:08.1f},{cur_at},{quality},,,{quantity / 10:.1f},kWh,{nxt},{update},"
    )
